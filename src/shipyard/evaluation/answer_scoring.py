"""Scoring for kind ``answer``: answer overlap, abstention and citation of the gold passage.

Dataset columns map onto the task's outputs: ``answer`` holds the gold answer strings (a
list, or one string; empty for an unanswerable question), ``answerable`` a boolean, and
optionally ``citations`` the source name of the gold document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shipyard.evaluation.metrics.answer import abstention
from shipyard.evaluation.metrics.text import exact_match, normalize, token_f1
from shipyard.spec import TaskSpec

ANSWER_METRICS = frozenset(
    {
        "token_f1",
        "exact_match",
        "answer_recall",
        "answered_accuracy",
        "abstain_precision",
        "abstain_recall",
        "abstain_f1",
        "citation_recall",
        "coverage",
    }
)


def gold_answers(expected: dict[str, Any]) -> list[str]:
    value = expected.get("answer")
    if value is None:
        return []
    if isinstance(value, list):
        return [str(item) for item in value if str(item).strip()]
    return [str(value)] if str(value).strip() else []


def is_answerable(expected: dict[str, Any]) -> bool:
    value = expected.get("answerable")
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    if value is None:
        return bool(gold_answers(expected))
    return bool(value)


def contains_answer(answer: str, golds: Sequence[str]) -> bool:
    """The answer quotes a gold answer (extractive answers are whole sentences)."""
    text = f" {normalize(answer)} "
    return any(f" {normalize(gold)} " in text for gold in golds if normalize(gold))


def answer_correct(expected: dict[str, Any], output: dict[str, Any]) -> bool:
    if not is_answerable(expected):
        return not output.get("answerable", False)
    return bool(output.get("answerable")) and contains_answer(
        str(output.get("answer", "")), gold_answers(expected)
    )


def _best(metric: Any, golds: Sequence[str], answer: str) -> float:
    return max((metric(gold, answer) for gold in golds), default=0.0)


def score_answer(spec: TaskSpec, cases: Sequence[Any]) -> tuple[dict[str, float], dict[str, Any]]:
    answerable = [is_answerable(case.expected) for case in cases]
    answered = [bool(case.output.get("answerable")) for case in cases]
    metrics: dict[str, float] = {"coverage": sum(answered) / len(cases) if cases else 0.0}
    gold_cases = [case for case, ok in zip(cases, answerable, strict=True) if ok]
    if gold_cases:
        # SQuAD convention: an abstention on an answerable question scores 0.
        f1s, ems, recalls = [], [], []
        for case in gold_cases:
            golds = gold_answers(case.expected)
            answer = str(case.output.get("answer", "")) if case.output.get("answerable") else ""
            f1s.append(_best(token_f1, golds, answer) if answer else 0.0)
            ems.append(_best(exact_match, golds, answer) if answer else 0.0)
            recalls.append(1.0 if answer and contains_answer(answer, golds) else 0.0)
        metrics["token_f1"] = sum(f1s) / len(f1s)
        metrics["exact_match"] = sum(ems) / len(ems)
        metrics["answer_recall"] = sum(recalls) / len(recalls)
        with_citation_gold = [c for c in gold_cases if c.expected.get("citations")]
        if with_citation_gold:
            cited = [
                str(c.expected["citations"])
                in {str(item.get("source")) for item in c.output.get("citations") or []}
                for c in with_citation_gold
            ]
            metrics["citation_recall"] = sum(cited) / len(cited)
    answered_cases = [c for c, a in zip(cases, answered, strict=True) if a]
    if answered_cases:
        metrics["answered_accuracy"] = sum(
            answer_correct(c.expected, c.output) for c in answered_cases
        ) / len(answered_cases)
    abstain = abstention(answerable, answered)
    for name in ("precision", "recall", "f1"):
        if abstain[name] is not None:
            metrics[f"abstain_{name}"] = float(abstain[name])
    details = {
        "answerable": sum(answerable),
        "unanswerable": len(cases) - sum(answerable),
        "abstained": abstain["abstained"],
    }
    return metrics, details
