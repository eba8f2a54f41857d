"""The ``shipyard`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from shipyard.cli import audit_cmd, bindings_cmd, eval_cmd, keys_cmd, knowledge_cmd, worker_cmd
from shipyard.cli.common import (
    ProjectOption,
    cli_principal,
    console,
    errors,
    fail,
    open_container,
    user_errors,
)
from shipyard.cli.retention_cmd import retention_app
from shipyard.cli.spec_cmd import app as spec_app
from shipyard.cli.train_cmd import train_tasks
from shipyard.errors import ShipyardError

app = typer.Typer(
    name="shipyard",
    help="Shipyard: one typed task spec becomes a governed production service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(spec_app, name="spec", help="Validate task specs; print the spec JSON Schema.")
app.add_typer(keys_cmd.keys_app, name="keys", help="Create, list and revoke API keys.")
app.add_typer(keys_cmd.tenants_app, name="tenants", help="Create and list tenants.")
app.add_typer(
    bindings_cmd.bindings_app, name="bindings", help="Grant roles to OIDC users and groups."
)
app.command("eval")(eval_cmd.eval_command)
app.command("evals")(eval_cmd.evals_command)
app.command("calibrate")(eval_cmd.calibrate_command)
app.add_typer(knowledge_cmd.collections_app, name="collections", no_args_is_help=True)
app.command("ingest")(knowledge_cmd.ingest)
app.command("jobs")(knowledge_cmd.jobs)
app.command("search")(knowledge_cmd.search)
app.command("worker")(worker_cmd.worker)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_cmd.audit_app, name="audit")
app.add_typer(retention_app, name="retention")


@app.command()
def serve(
    project: ProjectOption = Path("."),
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000)")] = None,
    train_missing: Annotated[
        bool, typer.Option(help="Train tasks whose model is missing before serving")
    ] = True,
) -> None:
    """Migrate, train what is missing, print a first admin key, and serve the project."""
    import uvicorn

    from shipyard.api.app import create_app
    from shipyard.observability.logging import configure_logging

    container = open_container(project)
    settings = container.settings
    with user_errors():
        if train_missing:
            for task in container.training.untrained_tasks():
                # One task's bad training data must not keep the others from serving.
                try:
                    train_tasks(container, [task])
                except ShipyardError as exc:
                    errors.print(
                        f"[red]not serving {task}:[/red] {escape(str(exc))}", highlight=False
                    )
        tenant = container.project.config.default_tenant
        # The installation's first key: it may also create and disable tenants.
        token = container.access.ensure_admin_key(tenant, name="bootstrap-admin", actor="cli")
        if token is not None:
            console.print(f"Admin API key for tenant [bold]{tenant}[/bold] (shown once, store it):")
            console.print(token, highlight=False, soft_wrap=True)
    configure_logging(settings.log_level, json_format=settings.log_json)
    api = create_app(container)
    uvicorn.run(
        api,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        server_header=False,
    )


@app.command()
def train(
    tasks: Annotated[list[str] | None, typer.Argument(help="Task names (default: all)")] = None,
    if_missing: Annotated[
        bool, typer.Option(help="Skip tasks whose model is current for their training data")
    ] = False,
    project: ProjectOption = Path("."),
) -> None:
    """Train the local model of one or more tasks from their spec's training data."""
    container = open_container(project)
    names = tasks or container.training.trainable_tasks()
    unknown = [name for name in names if name not in container.project.tasks]
    if unknown:
        raise fail(f"unknown task(s): {', '.join(unknown)}")
    with user_errors():
        if if_missing:
            current = set(names) - set(container.training.untrained_tasks())
            for name in sorted(current & set(names)):
                console.print(f"{name}: model is current, not retrained")
            names = [name for name in names if name not in current]
        train_tasks(container, names)


@app.command()
def run(
    task: Annotated[str, typer.Argument(help="Task name")],
    input_json: Annotated[str, typer.Option("--input", "-i", help="Task input as JSON object")],
    tenant: Annotated[str | None, typer.Option(help="Tenant slug (default: project's)")] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Run a task once from the command line; the run is stored and audited."""
    try:
        inputs = json.loads(input_json)
    except json.JSONDecodeError as exc:
        raise fail(f"--input is not valid JSON: {exc.msg}") from None
    if not isinstance(inputs, dict):
        raise fail('--input must be a JSON object, e.g. \'{"text": "..."}\'')
    container = open_container(project)
    with user_errors():
        principal = cli_principal(container, tenant)
        result = container.runs.create(principal, task, inputs)
    from shipyard.api.schemas import run_out

    console.print_json(json.dumps(run_out(result)))


@db_app.command("upgrade")
def db_upgrade(project: ProjectOption = Path(".")) -> None:
    """Apply database migrations."""
    open_container(project)
    console.print("database schema is current")


def main() -> None:
    app()
