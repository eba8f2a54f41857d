"""Scheduled retention purges for the in-process runner: a daemon thread in the API process.

With ``SHIPYARD_JOBS=celery`` the schedule belongs to Celery beat instead (task
``shipyard.retention.purge``, see ``celery_app``). Several API processes each running this
thread is safe: a purge only changes rows that are still unpurged, each exactly once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from shipyard.bootstrap import Container
from shipyard.services.retention import PurgeReport

log = logging.getLogger("shipyard.retention")

FIRST_RUN_DELAY = 60.0  # seconds after start-up: let models load and traffic settle first


class RetentionScheduler:
    """Call ``purge`` every ``interval`` seconds in a daemon thread until ``stop``."""

    def __init__(
        self,
        purge: Callable[[], PurgeReport],
        interval: float,
        first_delay: float = FIRST_RUN_DELAY,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._purge = purge
        self._interval = interval
        self._first_delay = min(first_delay, interval)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="shipyard-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            # A batch in progress commits or rolls back on its own; do not wait for a backlog.
            self._thread.join(timeout=10)
            self._thread = None

    def run_once(self) -> PurgeReport | None:
        """One purge; a failure is logged (the next interval tries again), never raised."""
        try:
            report = self._purge()
        except Exception:
            log.exception("retention purge failed; retrying at the next interval")
            return None
        log.info(
            "retention purge finished",
            extra={"runs": report.total("runs"), "documents": report.total("documents")},
        )
        return report

    def _loop(self) -> None:
        delay = self._first_delay
        while not self._stopping.wait(delay):
            self.run_once()
            delay = self._interval


def make_retention_scheduler(container: Container) -> RetentionScheduler | None:
    """The API's purge thread, or None when Celery beat schedules purges or the interval is 0."""
    settings = container.settings
    if settings.jobs == "celery" or settings.retention_interval_seconds <= 0:
        return None
    return RetentionScheduler(container.retention.purge, settings.retention_interval_seconds)
