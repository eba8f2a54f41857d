"""The shipped example projects load, and their specs carry what the README promises.
(Their accuracy targets are enforced by `make gate`: `shipyard eval` on each example.)"""

from __future__ import annotations

import pytest

from shipyard.spec import load_project
from tests.conftest import EXAMPLE

EXAMPLES = EXAMPLE.parent


@pytest.mark.parametrize(
    ("folder", "task", "labels"),
    [("support-desk", "ticket-triage", 77), ("assistant-intents", "route-request", 151)],
)
def test_example_loads_with_gates_and_hypothesis(folder: str, task: str, labels: int) -> None:
    spec = load_project(EXAMPLES / folder).tasks[task]
    assert len(spec.output["label"].values or []) == labels
    assert spec.evaluation is not None
    assert spec.evaluation.gates
    assert spec.hypothesis is not None
    assert spec.hypothesis.kpis


def test_out_of_scope_example_never_routes_oos() -> None:
    spec = load_project(EXAMPLES / "assistant-intents").tasks["route-request"]
    assert spec.policy.review_labels == ["oos"]
    assert spec.evaluation is not None
    assert spec.evaluation.out_of_scope_label == "oos"
