"""Input checks shared by the metric functions.

Every metric refuses empty input with a ValueError instead of dividing by zero: an evaluation
with no cases has measured nothing, and reporting 0.0 (or NaN) would let it pass or fail a gate
for the wrong reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def same_length(what: str, **columns: Sequence[Any]) -> int:
    """Return the common length of ``columns``; refuse empty or mismatched input."""
    lengths = {name: len(column) for name, column in columns.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name}={length}" for name, length in lengths.items())
        raise ValueError(f"{what}: inputs must have the same length, got {listed}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError(f"{what}: no cases to measure (empty input)")
    return n


def probabilities(what: str, values: Sequence[float]) -> list[float]:
    """Return ``values`` as floats, refusing anything outside [0, 1] (including NaN)."""
    checked = [float(value) for value in values]
    for index, value in enumerate(checked):
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{what}: confidence at index {index} is {value}, not in [0, 1]")
    return checked


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or 0.0 when the denominator is 0 (sklearn's convention)."""
    return numerator / denominator if denominator else 0.0


def f1(precision: float, recall: float) -> float:
    """Harmonic mean, 0.0 when both are 0."""
    return ratio(2 * precision * recall, precision + recall)
