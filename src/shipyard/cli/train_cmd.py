"""Training with a progress display."""

from __future__ import annotations

import time
from collections.abc import Sequence

from shipyard.bootstrap import Container
from shipyard.cli.common import console


def train_tasks(container: Container, tasks: Sequence[str]) -> None:
    for task in tasks:
        started = time.perf_counter()
        with console.status(f"training {task}...") as status:

            def show(message: str, task: str = task) -> None:
                status.update(f"{task}: {message}")

            outcome = container.training.train(task, actor="cli", progress=show)
        seconds = time.perf_counter() - started
        details = outcome.metadata
        accuracy = details.get("oof_accuracy")
        console.print(
            f"trained [bold]{task}[/bold] v{outcome.version} in {seconds:.0f}s: "
            f"artifact {outcome.digest[:12]}"
            + (f", out-of-fold accuracy {accuracy:.3f}" if isinstance(accuracy, float) else "")
        )
