"""Periodic jobs of the in-process runner: daemon threads in the API process.

Two jobs use this: the retention purge (SHIPYARD_RETENTION_INTERVAL_SECONDS) and signing audit
checkpoints (SHIPYARD_AUDIT_CHECKPOINT_INTERVAL_SECONDS, when SHIPYARD_AUDIT_SIGNING_KEY is set).
With ``SHIPYARD_JOBS=celery`` Celery beat schedules both instead (see ``celery_app``). Several
API processes each running these threads is safe: a purge changes only rows still unpurged,
and a checkpoint is skipped when the head has not moved since the last one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("shipyard.jobs")

FIRST_RUN_DELAY = 60.0  # seconds after start-up: let models load and traffic settle first
Result = TypeVar("Result")


class PeriodicJob(Generic[Result]):
    """Call ``action`` every ``interval`` seconds in a daemon thread until ``stop``."""

    def __init__(
        self,
        name: str,
        action: Callable[[], Result],
        interval: float,
        first_delay: float = FIRST_RUN_DELAY,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.name = name
        self._action = action
        self._interval = interval
        self._first_delay = min(first_delay, interval)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._loop, name=f"shipyard-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            # Work in progress commits or rolls back on its own; do not wait for a backlog.
            self._thread.join(timeout=10)
            self._thread = None

    def run_once(self) -> Result | None:
        """One call; a failure is logged (the next interval tries again), never raised."""
        try:
            return self._action()
        except Exception:
            log.exception(
                "periodic job failed; retrying at the next interval", extra={"job": self.name}
            )
            return None

    def _loop(self) -> None:
        delay = self._first_delay
        while not self._stopping.wait(delay):
            self.run_once()
            delay = self._interval
