"""The shipped example: ticket-triage trained on the BANKING77 train split reaches the
issue's target on the dev split, through the same runner the API serves."""

from __future__ import annotations

import csv
from collections.abc import Callable

import pytest

from tests.conftest import EXAMPLE, make_container

TARGET_ACCURACY = 0.92


@pytest.fixture(scope="module")
def example_container(
    tmp_path_factory: pytest.TempPathFactory, fresh_database: Callable[[str], str]
):  # type: ignore[no-untyped-def]
    container = make_container(
        EXAMPLE, tmp_path_factory.mktemp("example-state"), fresh_database("sqlite")
    )
    container.training.train("ticket-triage", actor="tests")
    yield container
    container.close()


def test_example_spec_loads_with_all_77_intents(example_container) -> None:  # type: ignore[no-untyped-def]
    spec = example_container.project.tasks["ticket-triage"]
    assert len(spec.output["label"].values) == 77
    assert spec.hypothesis is not None
    assert spec.hypothesis.kpis


def test_dev_accuracy_meets_the_target(example_container) -> None:  # type: ignore[no-untyped-def]
    runner = example_container.runtime.runner("ticket-triage")
    with (EXAMPLE / "data" / "dev.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    correct = sum(
        runner.run({"text": row["text"]}).output["label"] == row["category"] for row in rows
    )
    accuracy = correct / len(rows)
    print(f"ticket-triage dev accuracy: {accuracy:.4f} on {len(rows)} rows")
    assert accuracy >= TARGET_ACCURACY


def test_training_is_skipped_when_the_model_is_current(example_container) -> None:  # type: ignore[no-untyped-def]
    assert example_container.training.untrained_tasks() == []
