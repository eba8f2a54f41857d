"""Scoring for kind ``extract``: slot precision/recall/F1 plus the per-case extraction scores.

Dataset columns map onto the task's string outputs, one column per field holding the gold
value, or an empty value when the text does not mention it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shipyard.evaluation.metrics.extraction import extract_metrics
from shipyard.evaluation.metrics.slots import slot_metrics
from shipyard.evaluation.metrics.text import normalize
from shipyard.spec import TaskSpec

CONFIDENCE = "confidence"
_POOLED = ("micro_precision", "micro_recall", "micro_f1", "macro_f1", "exact_match")
_PER_CASE = ("exact_match_micro", "exact_match_macro", "token_f1_micro", "token_f1_macro")


def scored_fields(spec: TaskSpec) -> list[str]:
    """The output fields the dataset has gold values for (``confidence`` is not extracted)."""
    mapped = spec.evaluation.dataset.expected if spec.evaluation else spec.output
    return [name for name in mapped if name != CONFIDENCE]


def extract_correct(expected: dict[str, Any], output: dict[str, Any]) -> bool:
    """Every field with a gold column is right (both empty counts as right)."""
    return all(
        normalize(_text(value)) == normalize(_text(output.get(field)))
        for field, value in expected.items()
        if field != CONFIDENCE
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def score_extract(spec: TaskSpec, cases: Sequence[Any]) -> tuple[dict[str, float], dict[str, Any]]:
    fields = scored_fields(spec)
    expected = [case.expected for case in cases]
    predicted = [case.output for case in cases]
    metrics, details = slot_metrics(expected, predicted, fields)
    texts = [{f: _text(row.get(f)) for f in fields} for row in expected]
    guesses = [{f: _text(row.get(f)) for f in fields} for row in predicted]
    per_case, per_case_details = extract_metrics(texts, guesses, fields)
    metrics |= per_case
    for field, scores in per_case_details["per_field"].items():
        details["per_field"][field] |= {"exact_match": scores["exact_match"]}
        details["per_field"][field] |= {"token_f1": scores["token_f1"]}
    return metrics, details


def extract_metric_names(spec: TaskSpec) -> frozenset[str]:
    per_field = {
        f"{field}_{name}" for field in scored_fields(spec) for name in ("precision", "recall", "f1")
    }
    return frozenset({*_POOLED, *_PER_CASE, *per_field})
