"""Comparator strings such as ``">= 0.92"`` used by evaluation gates and KPI targets.

Specs keep the text the author wrote (it round-trips and reads well in YAML); everything that
decides pass/fail uses the parsed :class:`Threshold`, so the grammar lives in one place.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, cast

Comparator = Literal[">=", "<=", ">", "<"]

THRESHOLD_PATTERN = r"^\s*(>=|<=|>|<)\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*$"
_THRESHOLD_RE = re.compile(THRESHOLD_PATTERN)

THRESHOLD_HINT = "write a comparator and a number, e.g. '>= 0.92', '<= 0.05', '> 10' or '< 3'"


@dataclass(frozen=True)
class Threshold:
    """A parsed comparator: ``observed <op> value`` must hold for the gate or KPI to pass."""

    op: Comparator
    value: float

    def passes(self, observed: float) -> bool:
        """True when ``observed`` satisfies the comparator (NaN never passes)."""
        if math.isnan(observed):
            return False
        if self.op == ">=":
            return observed >= self.value
        if self.op == "<=":
            return observed <= self.value
        if self.op == ">":
            return observed > self.value
        return observed < self.value

    @property
    def higher_is_better(self) -> bool:
        """Direction of the metric, so reports can show a drop as a regression."""
        return self.op in (">=", ">")

    def __str__(self) -> str:
        number = int(self.value) if self.value.is_integer() else self.value
        return f"{self.op} {number!r}"


def parse_threshold(text: str) -> Threshold:
    """Parse ``">= 0.92"``-style text; raise ``ValueError`` with a fix-it hint otherwise."""
    match = _THRESHOLD_RE.match(text)
    if match is None:
        raise ValueError(f"invalid comparator {text!r}: {THRESHOLD_HINT}")
    value = float(match.group(2))
    if not math.isfinite(value):
        raise ValueError(f"invalid comparator {text!r}: the number must be finite")
    return Threshold(op=cast(Comparator, match.group(1)), value=value)
