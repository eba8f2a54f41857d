"""The default runner: worker threads inside the API (or CLI) process.

Durable without a broker: work is only dispatched after its rows committed, and ``start``
re-queues every document still pending, so a job accepted before a crash resumes after the
restart. The handler is idempotent, so re-queuing something already done costs one read.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy.exc import OperationalError

from shipyard.jobs.base import Handler, WorkItem

log = logging.getLogger("shipyard.jobs")

_STOP = ("", "")
RETRIES = 3


class InProcessRunner:
    def __init__(
        self, handler: Handler, pending: Callable[[], list[WorkItem]], workers: int = 1
    ) -> None:
        self._handler = handler
        self._pending = pending
        self._workers = workers
        self._queue: queue.Queue[WorkItem] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._idle = threading.Condition()

    def dispatch(self, job_id: str, items: Sequence[WorkItem]) -> None:
        with self._idle:
            self._busy += len(items)
        for item in items:
            self._queue.put(item)

    def start(self) -> None:
        if self._threads:
            return
        for number in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"shipyard-job-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        recovered = self._pending()
        if recovered:
            log.info("resuming pending documents", extra={"count": len(recovered)})
            self.dispatch("recovered", recovered)

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every dispatched item is handled (tests, CLI)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item == _STOP:
                return
            try:
                self._run(item)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _run(self, item: WorkItem) -> None:
        for attempt in range(1, RETRIES + 1):
            try:
                self._handler(*item)
                return
            except OperationalError:
                # A locked or unreachable database is transient; the row stays pending and
                # is resumed at the next start if every attempt fails.
                log.warning("job item failed; retrying", extra={"attempt": attempt})
                time.sleep(0.5 * attempt)
            except Exception:
                log.exception("job item failed", extra={"document_id": item[1]})
                return
