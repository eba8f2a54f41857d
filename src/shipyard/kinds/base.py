"""The task-kind protocol every kind (built-in or plugin) implements."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shipyard.spec import TaskSpec

Progress = Callable[[str], None]


@dataclass(frozen=True)
class KindResult:
    """What a kind returns for one run, before the platform adds status and bookkeeping."""

    output: dict[str, Any]
    confidence: float | None
    model_ms: float
    flags: tuple[str, ...] = ()  # e.g. "injection" when retrieved text tried to instruct
    force_review: bool = False  # the kind itself asks for a human (e.g. an abstained answer)
    # Chat-model kinds: tokens billed, their cost (None: unknown price) and the route entry
    # that actually served (after a fallback it differs from the spec's primary).
    usage: dict[str, int] | None = None
    cost: float | None = None
    model_name: str | None = None


@dataclass(frozen=True)
class RunContext:
    """Who a run is for, as far as a kind needs to know: retrieval is scoped by it."""

    tenant_id: str
    groups: frozenset[str]
    # The task's PII policy for text the kind brings in (retrieved passages) before a model
    # sees it; None: the task allows personal data.
    redact: Callable[[str], str] | None = None


@dataclass(frozen=True)
class Example:
    """One labelled training example: the task's input fields and its expected output."""

    line: int
    inputs: dict[str, Any]
    expected: dict[str, Any]


class TaskRunner(Protocol):
    """A loaded, ready-to-serve task version."""

    @property
    def model_name(self) -> str: ...

    @property
    def artifact(self) -> str | None: ...

    def run(self, inputs: Mapping[str, Any], context: RunContext | None = None) -> KindResult:
        """One run; ``context`` is None only where no caller exists (offline evaluation of
        kinds that do not retrieve)."""
        ...

    def run_many(
        self, batch: Sequence[Mapping[str, Any]], context: RunContext | None = None
    ) -> list[KindResult]:
        """Several inputs at once, in order (evaluation and batch work)."""
        ...


class TaskKind(Protocol):
    name: str
    needs_training: bool

    def train(
        self, spec: TaskSpec, examples: Sequence[Example], out_dir: Path, progress: Progress
    ) -> dict[str, Any]:
        """Train into ``out_dir``; return training metadata stored with the artifact."""
        ...

    def load(
        self, spec: TaskSpec, artifact_dir: Path | None, artifact: str | None
    ) -> TaskRunner: ...


def trains(kind: TaskKind, spec: TaskSpec) -> bool:
    """Whether this task has a model to train: a kind whose need depends on the route (e.g.
    extract: its offline tagger trains, a chat model does not) defines ``trains(spec)``."""
    per_spec = getattr(kind, "trains", None)
    return bool(per_spec(spec)) if callable(per_spec) else kind.needs_training


class KindRegistry:
    def __init__(self) -> None:
        self._kinds: dict[str, TaskKind] = {}

    def register(self, kind: TaskKind) -> None:
        if kind.name in self._kinds:
            raise ValueError(f"task kind {kind.name!r} is already registered")
        self._kinds[kind.name] = kind

    def get(self, name: str) -> TaskKind:
        return self._kinds[name]

    def names(self) -> frozenset[str]:
        return frozenset(self._kinds)
