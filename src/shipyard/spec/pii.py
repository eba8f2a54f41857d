"""The ``pii`` block and the ``injection`` screening policy of a task spec.

``pii`` decides what happens when a string input field holds personal data: ``allow`` (the
default: nothing is screened), ``redact`` (each finding is replaced by a typed placeholder such
as ``<EMAIL_ADDRESS_1>`` before the task runs or anything is stored) or ``block`` (the request
is refused, naming the field and the entity types found, never the values).

``injection`` decides what happens when an input field or a retrieved passage reads like a
prompt-injection attempt: ``flag`` (the default: the run is flagged), ``review`` (flagged and
sent to review) or ``block`` (an input is refused; retrieved passages are left out of the
context).

The entity names are declared here (no detector is imported): the governance layer maps each
to a Presidio recognizer, and a test keeps both lists in step.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Annotated, Final, Literal

from pydantic import Field, field_validator, model_validator

from shipyard.spec.constraints import Problem, SpecModel, raise_problems

__all__ = [
    "BASE_ENTITIES",
    "COUNTRY_ENTITIES",
    "InjectionPolicy",
    "PiiPolicy",
    "PiiSpec",
    "RecognizerSpec",
    "known_entities",
]

PiiPolicy = Literal["allow", "redact", "block"]
RevealRole = Literal["admin", "operator", "reviewer", "caller"]
InjectionPolicy = Literal["flag", "review", "block"]

BASE_ENTITIES: Final = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS")
"""Detected whatever the countries configured."""

COUNTRY_ENTITIES: Final = MappingProxyType(
    {
        "US": ("US_SSN", "US_ITIN"),
        "GB": ("UK_NHS", "UK_NINO"),
        "ES": ("ES_NIF", "ES_NIE"),
        "IT": ("IT_FISCAL_CODE",),
        "DE": ("DE_TAX_ID",),
        "PL": ("PL_PESEL",),
        "FI": ("FI_PERSONAL_IDENTITY_CODE",),
        "SE": ("SE_PERSONNUMMER",),
        "IN": ("IN_AADHAAR",),
        "AU": ("AU_TFN",),
        "SG": ("SG_NRIC_FIN",),
        "CA": ("CA_SIN",),
    }
)
"""National identifiers per country (``SHIPYARD_PII_COUNTRIES``)."""

MAX_PATTERN_CHARS: Final = 200
MAX_RECOGNIZERS: Final = 20
_ENTITY_NAME = r"^[A-Z][A-Z0-9_]{1,39}$"
# A quantified group that itself contains a quantifier, e.g. (a+)+ or (\w*)*: the classic
# shape of catastrophic backtracking. Refused outright; the length limit bounds the rest.
_NESTED_QUANTIFIER = re.compile(
    r"\((?:[^()\\]|\\.)*(?:[+*]|\{\d*,\d*\})(?:[^()\\]|\\.)*\)(?:[+*]|\{\d*,\d*\})"
)


def known_entities() -> frozenset[str]:
    """Every built-in entity name a spec may list (countries' ids included)."""
    return frozenset(BASE_ENTITIES).union(*COUNTRY_ENTITIES.values())


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a custom recognizer's regex, or None when it can."""
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"at most {MAX_PATTERN_CHARS} characters"
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return f"not a valid regular expression ({exc.msg})"
    if _NESTED_QUANTIFIER.search(pattern):
        return "a repeated group that itself repeats (e.g. (a+)+) can take exponential time"
    if re.search(r"\\[1-9]|\(\?P=", pattern):
        return "back-references are not allowed"
    if compiled.fullmatch(""):
        return "must not match the empty string"
    return None


class RecognizerSpec(SpecModel):
    """A custom regex recognizer, e.g. an employee id."""

    name: Annotated[str, Field(pattern=_ENTITY_NAME, description="Entity type, UPPER_SNAKE_CASE.")]
    pattern: str = Field(
        min_length=1,
        description=f"Python regular expression (at most {MAX_PATTERN_CHARS} characters, no "
        "nested repetition or back-references); matched case-insensitively.",
    )
    score: float = Field(default=0.85, gt=0, le=1, description="Confidence of a match.")

    @field_validator("pattern")
    @classmethod
    def _safe_pattern(cls, pattern: str) -> str:
        problem = pattern_problem(pattern)
        if problem is not None:
            raise ValueError(f"pattern {problem}")
        return pattern

    @field_validator("name")
    @classmethod
    def _not_built_in(cls, name: str) -> str:
        if name in known_entities():
            raise ValueError(f"{name} is a built-in entity; choose another name")
        return name


class PiiSpec(SpecModel):
    """What happens to personal data found in the task's string input fields."""

    policy: PiiPolicy = Field(
        default="allow",
        description="allow: not screened; redact: replaced by typed placeholders before the "
        "task runs or anything is stored; block: the request is refused (422).",
    )
    entities: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Entity types screened; default all built-in ones of the configured "
        "countries plus the custom recognizers.",
    )
    recognizers: list[RecognizerSpec] = Field(
        default=[], max_length=MAX_RECOGNIZERS, description="Custom regex recognizers."
    )
    reveal_roles: list[RevealRole] = Field(
        default=[],
        description="Roles that may see redacted values restored (besides admins); empty: "
        "redaction is irreversible, no originals are kept.",
    )

    @model_validator(mode="after")
    def _entities_known(self) -> PiiSpec:
        problems: list[Problem] = []
        custom = [recognizer.name for recognizer in self.recognizers]
        for index, name in enumerate(custom):
            if name in custom[:index]:
                problems.append((("recognizers", index, "name"), f"{name} is declared twice"))
        known = known_entities() | set(custom)
        for index, name in enumerate(self.entities or []):
            if name not in known:
                problems.append(
                    (
                        ("entities", index),
                        f"unknown entity {name!r} (built-in: {', '.join(sorted(known_entities()))}"
                        "; or declare it under recognizers)",
                    )
                )
        raise_problems("PiiSpec", problems)
        return self
