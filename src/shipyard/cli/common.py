"""Shared CLI plumbing: the --project option, the container, and error-to-exit-code mapping."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from shipyard.access.principal import Principal
from shipyard.access.roles import Role
from shipyard.bootstrap import Container, build
from shipyard.errors import ShipyardError
from shipyard.settings import Settings
from shipyard.storage.repositories import TenantRepository

console = Console()
errors = Console(stderr=True)

ProjectOption = Annotated[
    Path,
    typer.Option(
        "--project",
        "-p",
        help="Project folder holding shipyard.yaml",
        envvar="SHIPYARD_PROJECT_DIR",
    ),
]

EXIT_FAILED = 1  # the command ran and found a problem (e.g. a broken audit chain)
EXIT_USAGE = 2  # bad arguments, files or configuration


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    # escape: messages quote user input (paths, names) that may look like Rich markup.
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def open_container(project: Path, *, migrate: bool = True) -> Container:
    if not (project / "shipyard.yaml").is_file():
        raise fail(f"{project}: no shipyard.yaml here; pass --project DIR")
    try:
        container = build(Settings(project_dir=project))
        if migrate:
            container.upgrade_database()
            container.ensure_default_tenant()
    except ShipyardError as exc:
        raise fail(str(exc)) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise fail(f"invalid settings: {first['loc']}: {first['msg']}") from None
    except OSError as exc:  # e.g. a read-only project folder for the SQLite file
        raise fail(f"{exc.filename or project}: {exc.strerror}") from None
    except SQLAlchemyError as exc:
        raise fail(
            f"database unavailable ({type(exc).__name__}); check SHIPYARD_DATABASE_URL"
        ) from None
    return container


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn Shipyard's own errors into a one-line message and exit code 2."""
    try:
        yield
    except ShipyardError as exc:
        raise fail(str(exc)) from None


def cli_principal(
    container: Container,
    tenant: str | None,
    groups: frozenset[str] = frozenset(),
    *,
    roles: frozenset[Role] = frozenset({Role.ADMIN}),
) -> Principal:
    """Who a command acts as: the CLI (no key) in the named tenant, by default the project's."""
    slug = tenant or container.project.config.default_tenant
    with container.sessions() as session:
        found = TenantRepository(session).by_slug(slug)
    if found is None:
        raise fail(f"no tenant {slug!r}")
    return Principal(found.id, found.slug, None, "cli", roles, groups)
