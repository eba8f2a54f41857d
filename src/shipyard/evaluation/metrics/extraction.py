"""Extraction metrics: per-field exact match and token F1, averaged micro and macro.

A field that is absent, None or empty (after normalisation) is *missing*. Both sides missing is
a match (1.0 for both scores): correctly reporting "not in the text" is a right answer. Exactly
one side missing scores 0.0. Every field is scored on every case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shipyard.evaluation.metrics._checks import same_length
from shipyard.evaluation.metrics.text import exact_match, f1_from_counts, overlap, token_f1


def _value(row: Mapping[str, str | None], field: str) -> str | None:
    value = row.get(field)
    return None if value is None else str(value)


def extract_metrics(
    expected: Sequence[Mapping[str, str | None]],
    predicted: Sequence[Mapping[str, str | None]],
    fields: Sequence[str],
) -> tuple[dict[str, float], dict[str, Any]]:
    """(gateable scalars, per-field details) for extracted fields.

    Micro averages pool every (case, field) instance: ``exact_match_micro`` is the share of
    instances that match, ``token_f1_micro`` is F1 over token counts summed across instances
    (long values weigh more). Macro averages are the plain mean of the per-field means, so a
    rare or short field counts as much as any other. Because every field is scored on every
    case, exact-match micro and macro coincide; they are both reported so gates can name either.
    """
    n = same_length("extract_metrics", expected=expected, predicted=predicted)
    names = list(dict.fromkeys(fields))
    if not names:
        raise ValueError("extract_metrics: fields must not be empty")
    per_field: dict[str, dict[str, float]] = {}
    pooled = [0, 0, 0]
    total_matches = 0.0
    for field in names:
        matches = f1_sum = 0.0
        for gold_row, guess_row in zip(expected, predicted, strict=True):
            gold, guess = _value(gold_row, field), _value(guess_row, field)
            matches += exact_match(gold, guess)
            f1_sum += token_f1(gold, guess)
            pooled = [
                total + part for total, part in zip(pooled, overlap(gold, guess), strict=True)
            ]
        total_matches += matches
        per_field[field] = {"exact_match": matches / n, "token_f1": f1_sum / n, "cases": n}
    scores = list(per_field.values())
    scalars = {
        "exact_match_micro": total_matches / (n * len(names)),
        "exact_match_macro": sum(row["exact_match"] for row in scores) / len(names),
        "token_f1_micro": f1_from_counts(*pooled),
        "token_f1_macro": sum(row["token_f1"] for row in scores) / len(names),
    }
    return scalars, {"fields": names, "per_field": per_field}
