"""Choose and wire the configured job runner for a process (API server or CLI)."""

from __future__ import annotations

from shipyard.bootstrap import Container
from shipyard.jobs.base import JobRunner
from shipyard.jobs.inprocess import InProcessRunner
from shipyard.storage.knowledge_repositories import pending_documents


def make_runner(container: Container) -> JobRunner:
    """The runner named by settings, set as the ingestion service's dispatcher (not started)."""
    runner: JobRunner
    if container.settings.jobs == "celery":
        from shipyard.jobs.celery_app import CeleryDispatcher

        runner = CeleryDispatcher(container.settings)
    else:

        def pending() -> list[tuple[str, str]]:
            with container.sessions() as session:
                return pending_documents(session)

        runner = InProcessRunner(container.ingestion.process, pending)
    container.ingestion.dispatch = runner.dispatch
    return runner
