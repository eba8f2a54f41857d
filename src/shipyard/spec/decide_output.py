"""The output contract of kind ``decide`` (its own module: spec/model.py must stay small)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from shipyard.spec.constraints import Problem

if TYPE_CHECKING:  # model.py imports this module; the name is only needed for typing
    from shipyard.spec.model import FieldSpec

DECIDE_FIELDS: Final[Mapping[str, tuple[str, bool]]] = MappingProxyType(
    {
        "decision": ("enum", True),
        # Produced by the trained classifier; a chat-model route has no calibrated one.
        "confidence": ("number", False),
        "rationale": ("string", True),
        "evidence": ("citations", True),
        "alternatives": ("list", False),
    }
)
"""Output field -> (type, always produced)."""


def decide_output(output: Mapping[str, FieldSpec]) -> list[Problem]:
    """A decision among declared options with its probability, a rationale and the past cases
    it rests on (``evidence``); optionally the other options by probability (``alternatives``)."""
    problems: list[Problem] = []
    allowed = ", ".join(f"'{name}'" for name in DECIDE_FIELDS)
    for name in sorted(set(output) - set(DECIDE_FIELDS)):
        problems.append(((name,), f"kind decide allows only {allowed} outputs"))
    for name, (wanted, needed) in DECIDE_FIELDS.items():
        field = output.get(name)
        if field is None:
            if needed or name == "confidence":
                problems.append(((), f"kind decide needs a '{name}' output of type {wanted}"))
        elif field.type != wanted:
            problems.append(((name, "type"), f"kind decide needs '{name}' of type {wanted}"))
        elif needed and not field.required:
            problems.append(((name, "required"), f"'{name}' is always produced; keep it required"))
        elif field.type == "list" and field.items != "string":
            problems.append(((name, "items"), f"kind decide lists '{name}' as strings"))
    return problems
