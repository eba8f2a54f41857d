"""Response bodies shared by routers. Task-specific input/output models come from the spec."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from shipyard.storage.tables import Run


class RunOut(BaseModel):
    """One execution of a task version for one caller."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    task: str
    version: int
    status: str = Field(description="ok | needs_review | failed")
    input: dict[str, Any]
    output: Any = None
    confidence: float | None = None
    model: str
    artifact: str | None = Field(default=None, description="Model artifact digest")
    latency_ms: float
    model_latency_ms: float | None = None
    error: str | None = None
    flags: list[str] = Field(
        default=[],
        description="Warnings about the run, e.g. 'injection' (with 'injection:input' or "
        "'injection:retrieved': text tried to instruct the model), 'pii_redacted'",
    )
    trace_id: str | None = None
    request_id: str | None = None
    created_at: datetime
    prompt_tokens: int | None = Field(default=None, description="Chat-model runs: input tokens")
    completion_tokens: int | None = Field(
        default=None, description="Chat-model runs: generated tokens"
    )
    cost: float | None = Field(
        default=None, description="Chat-model runs: cost from the price table; null if unknown"
    )
    pii_entities: dict[str, int] | None = Field(
        default=None,
        description="PII policy redact: findings per entity type (no values); null if none",
    )
    purged_at: datetime | None = Field(
        default=None,
        description="When retention emptied the run's input and output (then input is {} and "
        "output null); null while they are kept",
    )


class RunList(BaseModel):
    items: list[RunOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end")


class TaskSummary(BaseModel):
    name: str
    version: int
    kind: str
    description: str
    owner: str
    ready: bool
    status: str = Field(description="'ready' or why the task cannot serve")


class TaskDetail(TaskSummary):
    spec: dict[str, Any]
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


def run_out(run: Run) -> dict[str, Any]:
    return RunOut.model_validate(run).model_dump(mode="json")


def _not_a_number(value: Any) -> Any:
    # Pydantic would read "0.5" or 1700000000 as Unix time; the API documents date-times.
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(value, str):
        try:
            float(value)
            is_number = True
        except ValueError:
            pass
    if is_number:
        raise ValueError("expected an ISO 8601 date-time with offset, e.g. 2026-01-31T09:00:00Z")
    return value


IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]
"""An ISO 8601 date-time with a UTC offset, as documented (``format: date-time``)."""


def _json_number(value: Any) -> Any:
    # Pydantic's lax mode reads "5" and true as integers; JSON Schema's integer is a number
    # without a fraction (7.0 included, which pydantic then takes), never a string or a bool.
    if isinstance(value, str | bool):
        raise ValueError("expected a JSON integer")
    return value


JSON_INTEGER = BeforeValidator(_json_number)
"""For a request body's integer: ``Annotated[int, Field(ge=1, le=50), JSON_INTEGER]`` (bounds
before the validator, or they fall out of the JSON Schema). StrictInt would refuse 7.0."""
