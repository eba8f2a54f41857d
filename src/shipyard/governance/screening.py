"""Screening of a run's input before the task runs: prompt injection, then personal data.

Run flags written here and by the kinds (documented in docs/pii.md):

- ``injection``: something in the run read like a prompt injection (input or retrieved);
- ``injection:input``: an input field did (policy ``flag`` or ``review``; ``block`` refuses);
- ``injection:retrieved``: a retrieved passage did;
- ``injection:dropped``: policy ``block`` left such passages out of the model's context;
- ``pii_redacted``: personal data was replaced by placeholders in the input, the retrieved
  passages or the output (counts in ``pii_entities``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from shipyard.errors import FieldProblem, InvalidInput
from shipyard.governance.pii import PiiScreen, Redactor, string_fields
from shipyard.knowledge.injection import (
    INJECTION,
    INJECTION_DROPPED,
    INJECTION_INPUT,
    INJECTION_RETRIEVED,
    injection_signals,
)
from shipyard.spec import TaskSpec

__all__ = [
    "INJECTION",
    "INJECTION_DROPPED",
    "INJECTION_INPUT",
    "INJECTION_RETRIEVED",
    "PII_REDACTED",
    "InjectionBlocked",
    "Screened",
    "merge_flags",
    "review_for_injection",
    "screen_input",
]

PII_REDACTED: Final = "pii_redacted"


@dataclass
class InjectionBlocked(InvalidInput):
    """An input field reads like a prompt injection and the task's policy is ``block``."""

    status: int = 422
    slug: str = "injection-blocked"
    title: str = "Input refused by injection screening"


@dataclass
class Screened:
    """What the task may see and the run may store, with the run's flags so far, and the
    redactor its passages and output go through (None: the task allows personal data)."""

    data: dict[str, Any]
    flags: list[str] = field(default_factory=list)
    redactor: Redactor | None = None

    @property
    def pii_entities(self) -> dict[str, int] | None:
        """Findings by entity type over input, passages and output so far (None: none)."""
        counts = self.redactor.counts if self.redactor is not None else {}
        return counts or None

    @property
    def originals(self) -> dict[str, str]:
        """Placeholder -> original, to seal; empty when nothing is kept."""
        return self.redactor.originals if self.redactor is not None else {}

    def redact_text(self) -> Callable[[str], str] | None:
        """What a kind applies to retrieved text before a model sees it (None: nothing)."""
        return self.redactor.text if self.redactor is not None else None

    def redact_output(self, spec: TaskSpec, output: dict[str, Any]) -> dict[str, Any]:
        """The kind's output as the run may store it; flags the run if anything was found."""
        if self.redactor is None:
            return output
        redacted = self.redactor.fields(spec.output, output)
        if self.redactor.counts and PII_REDACTED not in self.flags:
            self.flags.append(PII_REDACTED)
        return redacted


def merge_flags(*groups: Iterable[str]) -> list[str]:
    """The flags of all groups, each once, in first-seen order."""
    return list(dict.fromkeys(flag for group in groups for flag in group))


def review_for_injection(spec: TaskSpec, flags: Iterable[str]) -> bool:
    """Whether the task's ``injection: review`` policy sends this run to review."""
    return spec.injection == "review" and INJECTION in flags


def _injection(spec: TaskSpec, data: dict[str, Any]) -> list[str]:
    flagged = [
        (path, signals)
        for path, text in string_fields(spec, data)
        if (signals := injection_signals(text))
    ]
    if not flagged:
        return []
    if spec.injection == "block":
        raise InjectionBlocked(
            f"task {spec.name} refuses input that reads like a prompt injection",
            [
                FieldProblem(path, f"reads like a prompt injection ({', '.join(signals)})")
                for path, signals in flagged
            ],
        )
    return [INJECTION, INJECTION_INPUT]


def screen_input(screen: PiiScreen | None, spec: TaskSpec, data: dict[str, Any]) -> Screened:
    """Apply the task's injection and PII policies to validated input. Raises
    :class:`InjectionBlocked` or :class:`~shipyard.governance.pii.PiiBlocked` to refuse it."""
    flags = _injection(spec, data)
    if spec.pii.policy == "allow":
        return Screened(data, flags)
    if screen is None:  # a service built without one cannot honour the spec: refuse, not leak
        raise InvalidInput(f"task {spec.name} has a PII policy but PII screening is not set up")
    redaction = screen.screen(spec, data)
    # ``block`` refused personal data in the input; what the documents and the model bring
    # in is redacted all the same (a fresh redactor: the input held none).
    redactor = redaction.redactor or screen.redactor(spec)
    if not redaction.redacted:
        return Screened(redaction.data, flags, redactor)
    return Screened(redaction.data, [*flags, PII_REDACTED], redactor)
