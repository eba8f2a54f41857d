"""RFC 9457 problem+json rendering for every error the API answers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shipyard.errors import PROBLEM_BASE, FieldProblem, ShipyardError, Unauthenticated
from shipyard.observability.logging import request_id_var
from shipyard.observability.metrics import Metrics

log = logging.getLogger("shipyard.api")

PROBLEM_JSON = "application/problem+json"

_HTTP_SLUGS = {
    400: ("bad-request", "Bad request"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


def problem_response(
    request: Request,
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    errors: list[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    metrics: Metrics | None = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(slug).inc()
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] if len(parts) > 1 else parts
    return ".".join(parts) or "body"


async def _shipyard_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ShipyardError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
    retry_after = getattr(exc, "retry_after", None)  # e.g. BudgetExceeded: when to come back
    if isinstance(retry_after, int):
        headers = {**(headers or {}), "Retry-After": str(retry_after)}
    return problem_response(
        request,
        status=exc.status,
        slug=exc.slug,
        title=exc.title,
        detail=exc.detail,
        errors=exc.problems,
        headers=headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for item in exc.errors():
        if item.get("type") == "json_invalid":
            problems.append(FieldProblem("body", "request body is not valid JSON"))
        else:
            problems.append(FieldProblem(_field_name(tuple(item.get("loc", ()))), item["msg"]))
    return problem_response(
        request,
        status=422,
        slug="invalid-input",
        title="Invalid input",
        detail="the request does not match the schema",
        errors=problems,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug, title = _HTTP_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
    return problem_response(
        request,
        status=exc.status_code,
        slug=slug,
        title=title,
        detail=str(exc.detail),
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Locked (SQLite busy timeout), failed over or unreachable: nothing was stored, so the
    # client may safely retry. Logged by type only: driver messages can quote parameters.
    log.warning("database unavailable", extra={"error_type": type(exc).__name__})
    return problem_response(
        request,
        status=503,
        slug="database-unavailable",
        title="Database unavailable",
        detail="the database is busy or unreachable; nothing was stored, retry shortly",
        headers={"Retry-After": "1"},
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return problem_response(
        request,
        status=500,
        slug="internal-error",
        title="Internal error",
        detail="an unexpected error occurred; the request id identifies it in the logs",
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ShipyardError, _shipyard_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected_error)
