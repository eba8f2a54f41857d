"""``shipyard retention run``: purge runs and documents past their retention period."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from shipyard.cli.common import (
    ProjectOption,
    console,
    errors,
    fail,
    open_container,
    user_errors,
)
from shipyard.services.retention import PurgeReport

retention_app = typer.Typer(
    help="Purge run payloads and documents older than their retention period.",
    no_args_is_help=True,
)


def _print(report: PurgeReport) -> None:
    verb = "would purge" if report.dry_run else "purged"
    if not report.items:
        console.print(f"nothing to purge ({'dry run' if report.dry_run else 'nothing changed'})")
        return
    table = Table("what", "task / collection", "tenant", "days", "cut-off (UTC)", verb)
    for item in report.items:
        table.add_row(
            item.kind,
            escape(item.target),
            escape(item.tenant),
            str(item.retention_days),
            f"{item.cutoff:%Y-%m-%d %H:%M:%S}",
            str(item.count),
        )
    console.print(table)
    console.print(
        f"{verb}: {report.total('runs')} runs, {report.total('documents')} documents",
        highlight=False,
    )


@retention_app.command("run")
def run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be purged; change nothing")
    ] = False,
    project: ProjectOption = Path("."),
) -> None:
    """Purge now: runs of tasks with `retention_days` lose input and output, documents of
    collections with a retention period become tombstones. Each batch is audited."""
    container = open_container(project)
    with user_errors():
        try:
            report = container.retention.purge(dry_run=dry_run)
        except SQLAlchemyError as exc:
            # Batches committed before the failure stay purged; running again continues.
            raise fail(f"database error during the purge ({type(exc).__name__})") from None
    _print(report)
    if report.failed:
        # The rest was purged; the log names each error. Exit 1 like a failed gate.
        errors.print(f"[red]purge failed for {', '.join(report.failed)}[/red]", highlight=False)
        raise typer.Exit(1)
