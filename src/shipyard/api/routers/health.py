"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from shipyard.access.roles import Operation, authorize
from shipyard.api.deps import ContainerDep, PrincipalDep
from shipyard.storage import migrate

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database reachable, schema current, models loaded",
    responses={
        200: {"description": "Ready: every check passed"},
        503: {
            "description": "Not ready: the same body, naming the failed checks",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    },
)
def readyz(container: ContainerDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        with container.engine.connect() as connection:
            connection.execute(text("select 1"))
        checks["database"] = "ok" if migrate.is_current(container.engine) else "schema not current"
    except Exception as exc:  # any driver error means "not ready", reported by type only
        checks["database"] = f"unreachable ({type(exc).__name__})"
    # Counts only: this endpoint is unauthenticated; GET /v1/tasks gives each task's reason.
    states = container.runtime.readiness().values()
    not_ready = sum(state != "ready" for state in states)
    checks["tasks"] = {"ready": len(states) - not_ready, "not_ready": not_ready}
    ready = checks["database"] == "ok" and not_ready == 0
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(container: ContainerDep) -> Response:
    return Response(generate_latest(container.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def private_openapi_router() -> APIRouter:
    """``GET /openapi.json`` for callers with a key (``SHIPYARD_PUBLIC_API_DOCS=false``)."""
    private = APIRouter(tags=["operations"])

    @private.get("/openapi.json", include_in_schema=False)
    def openapi(request: Request, principal: PrincipalDep) -> JSONResponse:
        authorize(principal.roles, Operation.TASK_READ)
        return JSONResponse(request.app.openapi())

    return private
