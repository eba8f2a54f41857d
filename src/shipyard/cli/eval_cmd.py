"""``shipyard eval``, ``shipyard evals`` and ``shipyard calibrate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from shipyard.cli.common import (
    EXIT_FAILED,
    ProjectOption,
    console,
    errors,
    fail,
    open_container,
    user_errors,
)
from shipyard.errors import ShipyardError
from shipyard.services.calibration import TargetUnreachable

_OPS = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}


def _summary_table(report: dict[str, Any]) -> Table:
    gates = {gate["metric"]: gate for gate in report["gates"]}
    previous = (report.get("previous") or {}).get("metrics", {})
    table = Table("metric", "value", "gate", "previous", "diff", "")
    for metric, value in report["metrics"].items():
        gate = gates.get(metric)
        before = previous.get(metric)
        diff = "" if before is None else f"{value - before:+.4f}"
        verdict = "" if gate is None else ("[green]pass[/]" if gate["passed"] else "[red]FAIL[/]")
        table.add_row(
            metric,
            f"{value:.4f}",
            f"{_OPS[gate['op']]} {gate['threshold']}" if gate else "",
            "" if before is None else f"{before:.4f}",
            diff,
            verdict,
        )
    return table


def _write(path: Path, content: str) -> None:
    try:
        path.write_text(content, encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {path}: {exc.strerror}") from None


def eval_command(
    task: Annotated[str, typer.Argument(help="Task name")],
    dataset: Annotated[
        Path | None, typer.Option(help="CSV/JSONL to evaluate instead of the spec's dataset")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the report as JSON")
    ] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Write a one-file HTML report")
    ] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Evaluate a task on its dataset; exit 1 when a gate or the regression check fails."""
    from shipyard.evaluation.report_html import render_html

    for target in (json_out, html_out):
        # Checked before the evaluation runs and is stored, not after.
        if target is not None and (target.is_dir() or not target.parent.is_dir()):
            raise fail(f"cannot write {target}: not a file in an existing folder")
    container = open_container(project)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with user_errors(), Progress(*columns, console=console, transient=True) as bar:
        job = bar.add_task(f"eval {task}", total=None, rate="")

        def advance(done: int, total: int) -> None:
            speed = bar.tasks[0].speed
            bar.update(
                job, completed=done, total=total, rate=f"{speed:,.0f} cases/s" if speed else ""
            )

        report = container.evaluations.evaluate(task, dataset=dataset, progress=advance)
    console.print(
        f"[bold]{report['task']}[/] v{report['version']} on {escape(report['dataset']['path'])} "
        f"({report['dataset']['rows']} cases, {report['cases_per_second']} cases/s)"
    )
    console.print(_summary_table(report))
    for item in report["regression"]:
        state = "[green]pass[/]" if item["passed"] else "[red]FAIL[/]"
        console.print(
            f"regression {item['metric']}: drop {item['drop']:+.4f} "
            f"(max {item['max_drop']}) {state}"
        )
    if json_out:
        _write(json_out, json.dumps(report, indent=2))
    if html_out:
        _write(html_out, render_html(report))
    if not report["passed"]:
        for gate in report["gates"]:
            if not gate["passed"]:
                errors.print(
                    f"gate failed: {gate['metric']} = {gate['value']:.4f}, "
                    f"required {gate['op']} {gate['threshold']}"
                )
        for item in report["regression"]:
            if not item["passed"]:
                errors.print(
                    f"regression: {item['metric']} dropped {item['drop']:.4f}, "
                    f"more than {item['max_drop']}"
                )
        raise typer.Exit(EXIT_FAILED)
    console.print("[green]all gates pass[/]")


def evals_command(
    task: Annotated[str | None, typer.Argument(help="Only this task")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    project: ProjectOption = Path("."),
) -> None:
    """List stored evaluations, newest first."""
    container = open_container(project)
    with user_errors():
        rows = container.evaluations.list(task, limit=limit)
    table = Table("when", "task", "version", "artifact", "dataset", "rows", "metrics", "result")
    for row in rows:
        metrics = ", ".join(f"{k}={v:.3f}" for k, v in list(row["metrics"].items())[:3])
        table.add_row(
            row["created_at"][:19],
            row["task"],
            str(row["version"]),
            (row["artifact"] or "-")[:12],
            escape(row["dataset"]["path"]),
            str(row["dataset"]["rows"]),
            metrics,
            "[green]pass[/]" if row["passed"] else "[red]FAIL[/]",
        )
    console.print(table)


def calibrate_command(
    task: Annotated[str, typer.Argument(help="Task name")],
    target_accuracy: Annotated[float, typer.Option(help="Accuracy wanted on answered cases")],
    dry_run: Annotated[bool, typer.Option(help="Report only; do not edit the spec")] = False,
    project: ProjectOption = Path("."),
) -> None:
    """Choose policy.review_below from out-of-fold training predictions; write it to the spec."""
    container = open_container(project)
    try:
        result = container.calibration.calibrate(task, target_accuracy, write=not dry_run)
    except TargetUnreachable as exc:  # the command ran; the data cannot meet the target
        raise fail(str(exc), EXIT_FAILED) from None
    except ShipyardError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:  # the spec file could not be rewritten
        raise fail(f"{exc.filename}: {exc.strerror}") from None
    where = "" if dry_run else f" and wrote it to {container.project.sources[task]}"
    console.print(
        f"review_below = {result.threshold}{where}: expected coverage {result.coverage:.1%} "
        f"at accuracy {result.accuracy:.3f} (out-of-fold, {result.examples} training examples)"
    )
