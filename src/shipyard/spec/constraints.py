"""Building blocks of the spec models: constrained string types and located problems.

Each constrained type carries a readable error message (so authors learn the fix, not a regex)
and publishes its regex in the JSON Schema, so editors flag the same mistakes.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema
from pydantic_core import InitErrorDetails, PydanticCustomError

from shipyard import names
from shipyard.spec.thresholds import THRESHOLD_PATTERN, parse_threshold

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]

_RESERVED_FIELD_NAMES: Final = frozenset(n for n in dir(BaseModel) if not n.startswith("_"))


def raise_problems(title: str, problems: list[Problem]) -> None:
    """Raise all ``problems`` at once, each at its own location relative to the validator."""
    if problems:
        details = [
            InitErrorDetails(
                type=PydanticCustomError("spec_rule", "{detail}", {"detail": message}),
                loc=loc,
                input=None,
            )
            for loc, message in problems
        ]
        raise ValidationError.from_exception_data(title, details)


def _matching(pattern: str, hint: str) -> AfterValidator:
    """A validator with a readable message; the regex itself goes into the JSON Schema."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise ValueError(f"{value!r} is not valid: {hint}")
        return value

    return AfterValidator(check)


def _schema(pattern: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": pattern})


def relative_path_problem(value: str) -> str | None:
    """Why ``value`` cannot be a path inside the project folder, or None when it can."""
    if not value.strip():
        return "must not be empty"
    if value.startswith(("/", "\\")) or PureWindowsPath(value).drive:
        return "must be relative to the project folder, not absolute"
    parts = PurePosixPath(value.replace("\\", "/")).parts
    if ".." in parts:
        return "must stay inside the project folder ('..' is not allowed)"
    return None


def _relative_path(*suffixes: str) -> AfterValidator:
    def check(value: str) -> str:
        problem = relative_path_problem(value)
        if problem is not None:
            raise ValueError(f"path {value!r} {problem}")
        if suffixes and not value.lower().endswith(suffixes):
            raise ValueError(f"path {value!r} must end with {' or '.join(suffixes)}")
        return value

    return AfterValidator(check)


def _field_name(value: str) -> str:
    if value in _RESERVED_FIELD_NAMES or value.startswith("model_"):
        raise ValueError(f"field name {value!r} is reserved; choose another name")
    return value


def _threshold_text(value: str) -> str:
    parse_threshold(value)
    return value


_SLUG = names.SLUG
_IDENT = r"^[a-z][a-z0-9_]{0,62}$"
_PROVIDER = r"^[a-z][a-z0-9_-]{0,62}$"
_NO_SPACE = r"^\S+$"
_REL_PATH = r"^(?![/\\])(?!.*(^|[/\\])\.\.([/\\]|$)).+$"

Slug = Annotated[
    str,
    _matching(_SLUG, "use 2-63 lowercase letters, digits or '-', e.g. ticket-triage"),
    _schema(_SLUG),
]
Identifier = Annotated[
    str, _matching(_IDENT, "use lowercase snake_case, e.g. macro_f1"), _schema(_IDENT)
]
FieldName = Annotated[
    str,
    _matching(_IDENT, "use lowercase snake_case, e.g. customer_text"),
    AfterValidator(_field_name),
    _schema(_IDENT),
]
ProviderName = Annotated[
    str, _matching(_PROVIDER, "use lowercase letters, digits, '-' or '_'"), _schema(_PROVIDER)
]
ModelName = Annotated[
    str, _matching(_NO_SPACE, "must be non-empty, without spaces"), _schema(_NO_SPACE)
]
Column = Annotated[str, Field(min_length=1)]
ThresholdText = Annotated[
    str,
    AfterValidator(_threshold_text),
    WithJsonSchema({"type": "string", "pattern": THRESHOLD_PATTERN, "examples": [">= 0.92"]}),
]
DataPath = Annotated[str, _relative_path(".csv", ".jsonl"), _schema(_REL_PATH)]
JsonPath = Annotated[str, _relative_path(".json"), _schema(_REL_PATH)]
DirPath = Annotated[str, _relative_path(), _schema(_REL_PATH)]


class SpecModel(BaseModel):
    """Base of every spec model: unknown keys are errors, no coercion, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
