"""Turn per-case results into metrics, per task kind (a registry, not a switch)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shipyard.errors import DataInvalid, FieldProblem
from shipyard.evaluation.answer_scoring import ANSWER_METRICS, answer_correct, score_answer
from shipyard.evaluation.extract_scoring import (
    extract_correct,
    extract_metric_names,
    score_extract,
)
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
    return str(expected.get("label")) == str(output.get("label"))


def _decide_correct(expected: dict[str, Any], output: dict[str, Any]) -> bool:
    return str(expected.get("decision")) == str(output.get("decision"))


def _score_classify(
    spec: TaskSpec, cases: Sequence[CaseResult], field: str = "label"
) -> tuple[dict[str, float], dict[str, Any]]:
    """Classification metrics of the enum output ``field`` (kind decide scores ``decision``)."""
    oos = spec.evaluation.out_of_scope_label if spec.evaluation else None
    labels = list(spec.output[field].values or [])
    if oos is not None and oos not in labels:
        labels.append(oos)
    expected = [str(case.expected[field]) for case in cases]
    unknown = [
        FieldProblem(field, f"{label!r} is not one of the task's labels", line=case.line)
        for case, label in zip(cases, expected, strict=True)
        if label not in labels
    ]
    if unknown:
        raise DataInvalid(f"{len(unknown)} row(s) expect unknown labels", unknown[:20])
    predicted = [str(case.output.get(field)) for case in cases]
    confidences = [float(case.confidence or 0.0) for case in cases]
    threshold = spec.policy.review_below
    metrics, details = classify_metrics(
        expected,
        predicted,
        confidences,
        labels=labels,
        review_threshold=threshold,
        oos_label=oos,
    )
    if threshold is not None and spec.policy.review_labels:
        # Review labels always go to a person: they are never "answered automatically".
        routed = [
            conf if label not in spec.policy.review_labels else -1.0
            for conf, label in zip(confidences, predicted, strict=True)
        ]
        answered = [i for i, conf in enumerate(routed) if conf >= threshold]
        metrics["coverage"] = len(answered) / len(cases)
        if answered:
            metrics["selective_accuracy"] = sum(
                expected[i] == predicted[i] for i in answered
            ) / len(answered)
        else:
            metrics.pop("selective_accuracy", None)
    return metrics, details


def _classify_metric_names(spec: TaskSpec) -> frozenset[str]:
    names = {"accuracy", "macro_f1", "ece"}
    if spec.policy.review_below is not None:
        names |= {"coverage", "selective_accuracy"}
    if spec.evaluation is not None and spec.evaluation.out_of_scope_label is not None:
        names |= {"in_scope_accuracy", "oos_recall", "oos_precision", "oos_f1"}
    return frozenset(names)


@dataclass(frozen=True)
class KindScoring:
    correct: Callable[[dict[str, Any], dict[str, Any]], bool]
    score: Scorer
    # The metrics this kind can report for a spec (some may be undefined on a dataset).
    metric_names: Callable[[TaskSpec], frozenset[str]]
    empty_expected: bool = False  # whether an expected value may be empty


SCORING: dict[str, KindScoring] = {
    "classify": KindScoring(_classify_correct, _score_classify, _classify_metric_names),
    "decide": KindScoring(
        _decide_correct,
        lambda spec, cases: _score_classify(spec, cases, "decision"),
        _classify_metric_names,
    ),
    "answer": KindScoring(
        answer_correct, score_answer, lambda _spec: ANSWER_METRICS, empty_expected=True
    ),
    "extract": KindScoring(
        extract_correct, score_extract, extract_metric_names, empty_expected=True
    ),
}
