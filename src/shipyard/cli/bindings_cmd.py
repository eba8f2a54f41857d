"""``shipyard bindings``: roles and access groups for people who sign in with OIDC."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table

from shipyard.access.roles import Role, parse_roles
from shipyard.cli.common import ProjectOption, console, fail, open_container, user_errors

bindings_app = typer.Typer(no_args_is_help=True)

TenantOption = Annotated[str | None, typer.Option(help="Tenant slug (default: project's)")]


@bindings_app.command("create")
def create(
    user: Annotated[str | None, typer.Option(help="A user: the token's `sub` claim")] = None,
    group: Annotated[str | None, typer.Option(help="An IdP group from the groups claim")] = None,
    role: Annotated[
        list[str] | None,
        typer.Option("--role", "-r", help="admin, operator, reviewer, caller (repeatable)"),
    ] = None,
    groups: Annotated[
        str, typer.Option(help="Knowledge access groups, comma-separated, e.g. hr,finance")
    ] = "",
    tenant: TenantOption = None,
    project: ProjectOption = Path("."),
) -> None:
    """Bind roles and access groups to an OIDC user or IdP group."""
    if (user is None) == (group is None):
        raise fail("give exactly one of --user and --group")
    roles: frozenset[Role] = frozenset()
    if role:
        try:
            roles = parse_roles(role)
        except ValueError as exc:
            raise fail(f"--role: {exc}") from None
    access_groups = frozenset(g.strip() for g in groups.split(",") if g.strip())
    container = open_container(project)
    with user_errors():
        binding = container.bindings.create_binding(
            tenant or container.project.config.default_tenant,
            subject_type="user" if user is not None else "group",
            subject=user if user is not None else str(group),
            roles=roles,
            groups=access_groups,
            actor="cli",
        )
    granted = ", ".join(binding.roles) or "-"
    group_list = escape(", ".join(binding.groups)) or "-"
    console.print(
        f"binding {binding.id}: {binding.subject_type} {escape(binding.subject)} -> "
        f"roles {granted}; groups {group_list}",
        highlight=False,
    )


@bindings_app.command("list")
def list_bindings(tenant: TenantOption = None, project: ProjectOption = Path(".")) -> None:
    """List a tenant's role bindings."""
    container = open_container(project)
    with user_errors():
        found = container.bindings.bindings(tenant or container.project.config.default_tenant)
    table = Table(
        Column("id", no_wrap=True),
        "type",
        *(Column(name, overflow="fold") for name in ("subject", "roles", "groups", "created by")),
    )
    for binding in found:
        table.add_row(
            binding.id,
            binding.subject_type,
            escape(binding.subject),
            ",".join(binding.roles) or "-",
            escape(",".join(binding.groups)) or "-",
            escape(binding.created_by),
        )
    console.print(table)


@bindings_app.command("delete")
def delete(
    binding_id: Annotated[str, typer.Argument(help="Binding id (from `bindings list`)")],
    tenant: TenantOption = None,
    project: ProjectOption = Path("."),
) -> None:
    """Delete a role binding; the user's next request no longer holds its rights."""
    container = open_container(project)
    with user_errors():
        binding = container.bindings.delete_binding(
            tenant or container.project.config.default_tenant, binding_id, actor="cli"
        )
    console.print(f"binding {binding.id} deleted")
