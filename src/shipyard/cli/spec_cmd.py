"""``shipyard spec``: validate task specs and print the published JSON Schemas.

``validate`` is meant for CI: it prints every problem as ``file:line: field: message`` (the
format editors and CI annotations understand) and exits 1 when anything is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from shipyard.errors import SpecInvalid
from shipyard.spec import (
    PROJECT_FILE,
    find_project_dir,
    load_project,
    load_task_spec,
    project_json_schema,
    spec_json_schema,
)

EXIT_INVALID = 1
EXIT_USAGE = 2

app = typer.Typer(
    help="Validate task specs and print the JSON Schema of the spec format.",
    no_args_is_help=True,
)


@app.command()
def validate(
    path: Path = typer.Argument(
        ..., help="A project folder (holding shipyard.yaml) or one task spec YAML file."
    ),
) -> None:
    """Check specs and the files they reference; list every problem with its line."""
    if not path.exists():
        typer.echo(f"error: {path} does not exist", err=True)
        raise typer.Exit(EXIT_USAGE)
    try:
        count = _validate(path)
    except SpecInvalid as exc:
        for problem in exc.problems:
            typer.echo(str(problem))
        typer.echo(f"invalid: {len(exc.problems)} problem(s)", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    typer.echo(f"ok: {count} task(s) valid")


def _validate(path: Path) -> int:
    """Number of valid task specs at ``path``; :class:`SpecInvalid` otherwise."""
    if path.is_dir():
        return len(load_project(path).tasks)
    if path.name == PROJECT_FILE:
        return len(load_project(path.parent).tasks)
    project_dir = find_project_dir(path) or path.parent
    load_task_spec(path, project_dir=project_dir)
    return 1


@app.command()
def schema(
    project_schema: bool = typer.Option(
        False, "--project-schema", help="Print the schema of shipyard.yaml instead."
    ),
) -> None:
    """Print the JSON Schema of task spec files (for editors and other tools)."""
    document = project_json_schema() if project_schema else spec_json_schema()
    typer.echo(json.dumps(document, indent=2))
