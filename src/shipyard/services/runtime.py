"""Loaded task runners: one per task of the project, built from its newest artifact."""

from __future__ import annotations

import logging
import threading

from shipyard.errors import ModelNotReady, NotFound, ShipyardError
from shipyard.kinds.base import KindRegistry, TaskRunner, trains
from shipyard.observability.metrics import Metrics
from shipyard.providers.local import ArtifactStore
from shipyard.spec import Project
from shipyard.storage.db import SessionFactory
from shipyard.storage.repositories import ArtifactRepository

log = logging.getLogger("shipyard.runtime")


class TaskRuntime:
    def __init__(
        self,
        sessions: SessionFactory,
        project: Project,
        kinds: KindRegistry,
        store: ArtifactStore,
        metrics: Metrics,
    ) -> None:
        self._sessions = sessions
        self._project = project
        self._kinds = kinds
        self._store = store
        self._metrics = metrics
        self._runners: dict[str, TaskRunner] = {}
        self._problems: dict[str, str] = {}
        self._lock = threading.Lock()

    def _load(self, task: str) -> TaskRunner:
        spec = self._project.tasks[task]
        kind = self._kinds.get(spec.kind)
        digest = None
        artifact_dir = None
        if trains(kind, spec):
            with self._sessions() as session:
                latest = ArtifactRepository(session).latest(spec.name, spec.version)
            if latest is not None:
                digest = latest.digest
                artifact_dir = self._store.path(digest)
        return kind.load(spec, artifact_dir, digest)

    def load_all(self) -> dict[str, str]:
        """Load every task; return the reason for each task that could not be loaded."""
        for task in self._project.tasks:
            try:
                self.runner(task)
            except ShipyardError as exc:
                log.warning("task not ready", extra={"task": task, "reason": exc.detail})
        return dict(self._problems)

    def runner(self, task: str) -> TaskRunner:
        if task not in self._project.tasks:
            raise NotFound(f"no task {task!r}")
        runner = self._runners.get(task)
        if runner is not None:
            return runner
        with self._lock:
            runner = self._runners.get(task)
            if runner is None:
                try:
                    runner = self._load(task)
                except ModelNotReady as exc:
                    self._problems[task] = exc.detail
                    self._metrics.model_ready.labels(task).set(0)
                    raise
                self._runners[task] = runner
                self._problems.pop(task, None)
                self._metrics.model_ready.labels(task).set(1)
        return runner

    def readiness(self) -> dict[str, str]:
        return {
            task: "ready" if task in self._runners else self._problems.get(task, "not loaded")
            for task in self._project.tasks
        }
