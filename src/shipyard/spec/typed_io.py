"""Pydantic models built at run time from a task's ``input`` and ``output`` fields.

The API validates each request against its task's own model and FastAPI shows that model in
OpenAPI, so every task gets a typed, documented endpoint without generated code. Input models
are strict (a client sending ``"5"`` for an integer gets a 422, not a silent conversion);
output models check what a task kind produced before it is returned or stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from shipyard.errors import SpecInvalid
from shipyard.spec.model import FieldSpec, TaskSpec


class Citation(BaseModel):
    """Where a statement of an answer comes from: a quote at character offsets of a document."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    document_id: str
    source: str = Field(description="The document's source name (file name or caller's key).")
    title: str
    chunk: int = Field(description="Chunk number within the document (0-based).")
    quote: str = Field(description="The quoted text, verbatim.")
    start: int = Field(ge=0, description="Offset of the quote in the document's text.")
    end: int = Field(ge=0, description="End offset (exclusive) of the quote.")


_SCALARS: Mapping[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}


def input_model(spec: TaskSpec) -> type[BaseModel]:
    """The request model of ``spec``, e.g. ``TicketTriageInput``."""
    return _cached(_class_name(spec.name, "Input"), _fingerprint(spec.input), True)


def output_model(spec: TaskSpec) -> type[BaseModel]:
    """The response model of ``spec``, e.g. ``TicketTriageOutput``."""
    return _cached(_class_name(spec.name, "Output"), _fingerprint(spec.output), False)


def _class_name(task_name: str, suffix: str) -> str:
    return "".join(part.capitalize() for part in task_name.split("-")) + suffix


def _fingerprint(fields: Mapping[str, FieldSpec]) -> str:
    """Hashable cache key. Keyed on the fields themselves rather than (name, version) alone,
    so a spec edited during development without a version bump never gets a stale model."""
    return json.dumps({n: f.model_dump(exclude_defaults=True) for n, f in fields.items()})


@lru_cache(maxsize=512)
def _cached(class_name: str, fingerprint: str, strict: bool) -> type[BaseModel]:
    raw: dict[str, Any] = json.loads(fingerprint)
    fields = {name: FieldSpec.model_validate(value) for name, value in raw.items()}
    definitions: dict[str, Any] = {}
    for name, field in fields.items():
        annotation = _annotation(class_name, name, field)
        if field.required:
            definitions[name] = (annotation, Field(description=field.description or None))
        else:
            definitions[name] = (
                annotation | None,
                Field(default=None, description=field.description or None),
            )
    config = ConfigDict(extra="forbid", strict=strict)
    model: type[BaseModel] = create_model(
        class_name, __config__=config, __module__=__name__, **definitions
    )
    return model


def _annotation(class_name: str, name: str, field: FieldSpec) -> Any:
    """Python type plus constraints for one field."""
    if field.type == "enum":
        if not field.values:
            raise SpecInvalid(
                f"{class_name}.{name}: enum values were not resolved; "
                "load specs with shipyard.spec.load_task_spec or load_project"
            )
        return Literal[tuple(field.values)]
    if field.type == "citations":
        return Annotated[list[Citation], Field(max_length=field.max_items)]
    if field.type == "list":
        item = _SCALARS[field.items or "string"]
        return Annotated[list[item], Field(max_length=field.max_items)]  # type: ignore[valid-type]
    base = _SCALARS[field.type]
    return Annotated[
        base,
        Field(
            min_length=field.min_length,
            max_length=field.max_length,
            ge=_bound(field.minimum, field.type),
            le=_bound(field.maximum, field.type),
            allow_inf_nan=False if field.type == "number" else None,
        ),
    ]


def _bound(value: float | None, field_type: str) -> float | int | None:
    if value is None:
        return None
    return int(value) if field_type == "integer" else value
