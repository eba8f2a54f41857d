"""``shipyard keys`` and ``shipyard tenants``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Column, Table

from shipyard.access.roles import Role, parse_roles
from shipyard.cli.common import (
    ProjectOption,
    cli_principal,
    console,
    fail,
    open_container,
    user_errors,
)

keys_app = typer.Typer(no_args_is_help=True)
tenants_app = typer.Typer(no_args_is_help=True)

_DURATION_RE = re.compile(r"^(\d{1,7})([dhm])$")
MAX_KEY_LIFETIME = timedelta(days=3650)
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_duration(value: str, *, option: str = "--expires-in") -> timedelta:
    match = _DURATION_RE.match(value.strip())
    if not match or int(match.group(1)) == 0:
        raise fail(f"{option} {value!r}: use a positive number with d, h or m (e.g. 30d)")
    lifetime = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if lifetime > MAX_KEY_LIFETIME:
        raise fail(f"{option}: at most 3650d")
    return lifetime


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="What the key is for, e.g. crm-prod")],
    role: Annotated[
        list[str], typer.Option("--role", "-r", help="admin, operator, reviewer, caller")
    ],
    tenant: Annotated[str | None, typer.Option(help="Tenant slug (default: project's)")] = None,
    expires_in: Annotated[str | None, typer.Option(help="Lifetime, e.g. 90d, 12h")] = None,
    groups: Annotated[
        str, typer.Option(help="Knowledge access groups, comma-separated, e.g. hr,finance")
    ] = "",
    project: ProjectOption = Path("."),
) -> None:
    """Create an API key. The key is printed once and only its keyed hash is stored."""
    try:
        roles = parse_roles(role)
    except ValueError as exc:
        raise fail(f"--role: {exc}") from None
    expires_at = datetime.now(UTC) + parse_duration(expires_in) if expires_in else None
    container = open_container(project)
    with user_errors():
        key, token = container.access.create_key(
            tenant or container.project.config.default_tenant,
            name=name,
            roles=roles,
            expires_at=expires_at,
            actor="cli",
            groups=frozenset(g.strip() for g in groups.split(",") if g.strip()),
        )
    groups_note = f"; groups {', '.join(key.groups)}" if key.groups else ""
    console.print(f"key id {key.id} ({', '.join(key.roles)}{groups_note}); the key, shown once:")
    console.print(token, highlight=False, soft_wrap=True)


@keys_app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys")] = None,
    project: ProjectOption = Path("."),
) -> None:
    """List keys (never their secrets)."""
    container = open_container(project)
    with user_errors():
        keys = container.access.keys(tenant)
        tenants = {t.id: t.slug for t in container.access.tenants()}
    table = Table(
        Column("id", no_wrap=True),
        "tenant",
        "name",
        "roles",
        "groups",
        "created",
        "expires",
        "last used",
        Column("state", no_wrap=True),
    )
    now = datetime.now(UTC)
    for key in keys:
        state = (
            "revoked"
            if key.revoked_at
            else ("expired" if key.expires_at and key.expires_at <= now else "active")
        )
        table.add_row(
            key.id,
            tenants.get(key.tenant_id, "?"),
            escape(key.name),
            ",".join(key.roles),
            escape(",".join(key.groups)) or "-",
            f"{key.created_at:%Y-%m-%d %H:%M}",
            f"{key.expires_at:%Y-%m-%d %H:%M}" if key.expires_at else "-",
            f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "-",
            state,
        )
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="Key id (the part after sy_)")],
    project: ProjectOption = Path("."),
) -> None:
    """Revoke a key; the next request with it is refused."""
    container = open_container(project)
    with user_errors():
        key = container.access.revoke_key(key_id, actor="cli")
    console.print(f"key {key.id} revoked")


@keys_app.command("rotate")
def rotate(
    key_id: Annotated[str, typer.Argument(help="Key id (the part after sy_)")],
    overlap: Annotated[
        str, typer.Option(help="How long the old key keeps working, e.g. 24h, 7d; 0m revokes it")
    ] = "24h",
    project: ProjectOption = Path("."),
) -> None:
    """Replace a key with a new one of the same name, roles and groups. The new key is printed
    once; the old one keeps working for the overlap, then expires."""
    window = (
        timedelta(0)
        if overlap.strip() in {"0", "0m", "0h", "0d"}
        else parse_duration(overlap, option="--overlap")
    )
    container = open_container(project)
    with user_errors():
        found = next((k for k in container.access.keys(None) if k.id == key_id), None)
        if found is None:
            raise fail(f"no key {key_id!r}")
        tenant = next(t.slug for t in container.access.tenants() if t.id == found.tenant_id)
        # The CLI is the host's operator: it may re-issue whatever the key held.
        principal = cli_principal(
            container, tenant, frozenset(found.groups), roles=frozenset({Role.PLATFORM_ADMIN})
        )
        key, token = container.admin.rotate_key(principal, key_id, overlap=window)
    until = "now" if window == timedelta(0) else f"in {overlap}"
    console.print(f"key {key_id} is replaced by {key.id}; the old key stops working {until}.")
    console.print("The new key, shown once:")
    console.print(token, highlight=False, soft_wrap=True)


@tenants_app.command("create")
def create_tenant(
    slug: Annotated[str, typer.Argument(help="Tenant slug, e.g. acme")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the slug)")] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Create a tenant."""
    container = open_container(project)
    with user_errors():
        tenant = container.access.create_tenant(slug, actor="cli", name=name)
    console.print(f"tenant {tenant.slug} created ({tenant.id})")


def _set_disabled(slug: str, disabled: bool, project: Path) -> None:
    container = open_container(project)
    with user_errors():
        principal = cli_principal(container, None, roles=frozenset({Role.PLATFORM_ADMIN}))
        tenant = container.admin.update_tenant(principal, slug, name=None, disabled=disabled)
    state = "disabled: its keys and sign-ins are refused" if disabled else "enabled"
    console.print(f"tenant {tenant.slug} {state}")


@tenants_app.command("disable")
def disable_tenant(
    slug: Annotated[str, typer.Argument(help="Tenant slug")],
    project: ProjectOption = Path("."),
) -> None:
    """Refuse every key and sign-in of a tenant (its data stays)."""
    _set_disabled(slug, True, project)


@tenants_app.command("enable")
def enable_tenant(
    slug: Annotated[str, typer.Argument(help="Tenant slug")],
    project: ProjectOption = Path("."),
) -> None:
    """Let a disabled tenant's keys and sign-ins in again."""
    _set_disabled(slug, False, project)


@tenants_app.command("list")
def list_tenants(project: ProjectOption = Path(".")) -> None:
    """List tenants."""
    container = open_container(project)
    table = Table("slug", "name", "id", "created", "state")
    for tenant in container.access.tenants():
        table.add_row(
            tenant.slug,
            escape(tenant.name),
            tenant.id,
            f"{tenant.created_at:%Y-%m-%d %H:%M}",
            "disabled" if tenant.disabled_at else "active",
        )
    console.print(table)
