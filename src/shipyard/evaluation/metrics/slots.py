"""Slot-filling metrics: precision, recall and F1 of extracted values, per field and pooled.

Unlike the per-case averages of :mod:`extraction` (where a correct "not mentioned" counts as a
hit), these count only values: a predicted value that matches the gold value (after the shared
normalisation) is a true positive, any other predicted value a false positive, and a gold value
not matched a false negative, so a wrong value costs both. This is the span-level F1 used for
Restaurants-8K (Coope et al., 2020).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shipyard.evaluation.metrics._checks import f1, ratio, same_length
from shipyard.evaluation.metrics.text import normalize


def _counts(gold: str, guess: str) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of one normalised pair."""
    hit = bool(gold) and gold == guess
    return int(hit), int(bool(guess) and not hit), int(bool(gold) and not hit)


def _normalised(row: Mapping[str, Any], field: str) -> str:
    value = row.get(field)
    return normalize(None if value is None else str(value))


def slot_metrics(
    expected: Sequence[Mapping[str, Any]],
    predicted: Sequence[Mapping[str, Any]],
    fields: Sequence[str],
) -> tuple[dict[str, float], dict[str, Any]]:
    """(gateable scalars, per-field counts) for extracted fields.

    Scalars: ``micro_precision``/``micro_recall``/``micro_f1`` over counts pooled across
    fields, ``macro_f1`` (mean of the per-field F1), ``<field>_precision``/``_recall``/``_f1``,
    and ``exact_match``: the share of cases with every field right (both empty is right). A
    field with no gold and no predicted value anywhere has no per-field scores (undefined, so
    a gate on it fails rather than passes on nothing) and is left out of ``macro_f1``; with no
    value anywhere the micro scores are undefined too.
    """
    n = same_length("slot_metrics", expected=expected, predicted=predicted)
    names = list(dict.fromkeys(fields))
    if not names:
        raise ValueError("slot_metrics: fields must not be empty")
    counts = {field: [0, 0, 0] for field in names}
    all_right = 0
    for gold_row, guess_row in zip(expected, predicted, strict=True):
        row_right = True
        for field in names:
            gold, guess = _normalised(gold_row, field), _normalised(guess_row, field)
            row_right = row_right and gold == guess
            pair = _counts(gold, guess)
            counts[field] = [total + part for total, part in zip(counts[field], pair, strict=True)]
        all_right += row_right
    scalars: dict[str, float] = {}
    per_field: dict[str, dict[str, float]] = {}
    for field, (tp, fp, fn) in counts.items():
        row: dict[str, float] = {"tp": tp, "fp": fp, "fn": fn}
        if tp + fp + fn:
            precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
            row |= {"precision": precision, "recall": recall, "f1": f1(precision, recall)}
            for name in ("precision", "recall", "f1"):
                scalars[f"{field}_{name}"] = row[name]
        per_field[field] = row
    tp, fp, fn = (sum(c[i] for c in counts.values()) for i in range(3))
    if tp + fp + fn:
        precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
        scalars |= {"micro_precision": precision, "micro_recall": recall}
        scalars["micro_f1"] = f1(precision, recall)
    defined = [row["f1"] for row in per_field.values() if "f1" in row]
    if defined:
        scalars["macro_f1"] = sum(defined) / len(defined)
    scalars["exact_match"] = all_right / n
    return scalars, {"fields": names, "per_field": per_field}
