"""FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from shipyard import __version__
from shipyard.api import problems
from shipyard.api.middleware import RequestMiddleware
from shipyard.api.routers import admin, evaluations, health, knowledge, runs, tasks
from shipyard.bootstrap import Container
from shipyard.jobs.audit_checkpoints import make_checkpoint_scheduler
from shipyard.jobs.periodic import PeriodicJob
from shipyard.jobs.retention import make_retention_scheduler
from shipyard.jobs.setup import make_runner


def create_app(container: Container, *, load_models: bool = True, run_jobs: bool = True) -> FastAPI:
    """Build the app for ``container``; models load and the job runner starts (resuming
    accepted work) at start-up unless told otherwise."""
    project = container.project
    # Build authentication now: a bad SHIPYARD_OIDC (say, an unreadable jwks_file) must stop
    # the start, not turn the first request into a 500.
    _ = container.access
    # Built now for the same reason: a bad SHIPYARD_AUDIT_SIGNING_KEY stops the start.
    periodic: list[PeriodicJob[Any]] = (
        [
            job
            for job in (make_retention_scheduler(container), make_checkpoint_scheduler(container))
            if job is not None
        ]
        if run_jobs
        else []
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if load_models:
            container.runtime.load_all()
        runner = make_runner(container) if run_jobs else None
        if runner is not None:
            runner.start()
        app.state.jobs = runner
        for job in periodic:
            job.start()  # retention purge, audit checkpoints (jobs/periodic.py)
        try:
            yield
        finally:
            for job in periodic:
                job.stop()
            if runner is not None:
                runner.stop()

    public_docs = container.settings.public_api_docs
    app = FastAPI(
        title=f"Shipyard: {project.config.name}",
        version=__version__,
        description=project.config.description or "Task endpoints served by Shipyard.",
        lifespan=lifespan,
        # Private docs: the document names every task and its fields; only callers see it.
        openapi_url="/openapi.json" if public_docs else None,
        docs_url="/docs" if public_docs else None,
        redoc_url="/redoc" if public_docs else None,
    )
    app.state.container = container
    app.state.metrics = container.metrics
    problems.install(app)
    app.include_router(health.router)
    app.include_router(tasks.build_router(project))
    app.include_router(runs.router)
    app.include_router(evaluations.router)
    app.include_router(knowledge.router)
    app.include_router(admin.router)
    if not public_docs:
        app.include_router(health.private_openapi_router())
    app.add_middleware(
        RequestMiddleware,
        max_body=container.settings.max_request_bytes,
        max_upload_body=container.settings.max_upload_bytes,
        metrics=container.metrics,
        tracer=container.tracer_provider.get_tracer("shipyard.http"),
        trust_traceparent=container.settings.trust_traceparent,
    )
    return app
