"""The job protocol: a runner takes committed work items and runs the idempotent handler."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

WorkItem = tuple[str, str]  # (tenant_id, document_id)
Handler = Callable[[str, str], str]  # returns the item's final status


class JobRunner(Protocol):
    def dispatch(self, job_id: str, items: Sequence[WorkItem]) -> None:
        """Queue items of a job whose rows are already committed (so none is ever lost)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...
