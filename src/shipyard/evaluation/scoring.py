"""Turn per-case results into metrics, per task kind (a registry, not a switch)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shipyard.evaluation.metrics import classify_metrics
from shipyard.spec import TaskSpec

# Metrics where smaller is better; every other metric is better when larger.
LOWER_IS_BETTER = frozenset({"ece"})


@dataclass(frozen=True)
class CaseResult:
    line: int
    inputs: dict[str, Any]
    expected: dict[str, Any]
    output: dict[str, Any]
    confidence: float | None
    correct: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "input": self.inputs,
            "expected": self.expected,
            "output": self.output,
            "confidence": self.confidence,
            "correct": self.correct,
        }


Scorer = Callable[[TaskSpec, Sequence[CaseResult]], tuple[dict[str, float], dict[str, Any]]]


def _classify_correct(expected: dict[str, Any], output: dict[str, Any]) -> bool:
    return bool(expected.get("label") == output.get("label"))


def _score_classify(
    spec: TaskSpec, cases: Sequence[CaseResult]
) -> tuple[dict[str, float], dict[str, Any]]:
    oos = spec.evaluation.out_of_scope_label if spec.evaluation else None
    labels = list(spec.output["label"].values or [])
    expected = [str(case.expected["label"]) for case in cases]
    if oos is not None and oos not in labels:
        labels.append(oos)
    return classify_metrics(
        expected,
        [str(case.output.get("label")) for case in cases],
        [float(case.confidence or 0.0) for case in cases],
        labels=labels,
        review_threshold=spec.policy.review_below,
        oos_label=oos,
    )


@dataclass(frozen=True)
class KindScoring:
    correct: Callable[[dict[str, Any], dict[str, Any]], bool]
    score: Scorer


SCORING: dict[str, KindScoring] = {
    "classify": KindScoring(_classify_correct, _score_classify),
}
