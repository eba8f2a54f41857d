"""RFC 9457 problem+json rendering for every error the API answers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from shipyard.api.deps import bearer_credentials
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

# The one shape of every error body (problem_response below, and the middleware's 400/413/500),
# documented once in the OpenAPI document and referenced by every error response.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; every error response has this shape.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string", "description": "URI naming the problem, e.g. .../not-found"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request path"},
        "errors": {
            "type": "array",
            "description": "The offending fields",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "request_id": {"type": "string", "description": "Also in the X-Request-ID header"},
    },
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_PROBLEM_DESCRIPTIONS = {
    400: "Malformed request: the body cannot be parsed, or Content-Length is invalid",
    401: "Missing, invalid, expired or revoked API key (see WWW-Authenticate)",
    403: "The key's roles or groups do not allow this",
    404: "No such object for this caller",
    413: "Request body too large",
    422: "The request does not match the schema (fields named in `errors`)",
    429: "A rate limit, concurrent-run limit or budget was reached (see Retry-After)",
}
_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _is_default_validation_error(response: dict[str, Any] | None) -> bool:
    """FastAPI's own 422 entry: a JSON ``HTTPValidationError``, a body this API never sends."""
    schema = (response or {}).get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def add_problem_responses(document: dict[str, Any]) -> dict[str, Any]:
    """Document, on every operation, the problem+json answers the app gives it in fact:
    401/403/429 wherever a key is required (``deps.bearer_credentials``, roles, rate limits),
    404 wherever a path names an object, 422 wherever there is input, 400/413 wherever there is
    a body (parsing; the middleware's size limit). Derived from each operation's declared
    security, parameters and body, so new routes are covered without repeating ``responses=``.
    Every 4xx/5xx entry without content of its own is problem+json with the ``Problem`` schema.
    Changes ``document`` in place (new dicts only: route ``responses=`` dicts are shared)."""
    document.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _HTTP_METHODS:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            parameters = operation.get("parameters", [])
            codes: set[int] = set()
            if operation.get("security"):
                codes |= {401, 403, 429}
            if any(parameter.get("in") == "path" for parameter in parameters):
                codes.add(404)
            if parameters or "requestBody" in operation:
                codes.add(422)
            if "requestBody" in operation:
                codes |= {400, 413}
            if _is_default_validation_error(responses.get("422")):
                del responses["422"]
            for code in sorted(codes):
                responses.setdefault(str(code), {"description": _PROBLEM_DESCRIPTIONS[code]})
            for status, response in list(responses.items()):
                content = response.get("content") or {PROBLEM_JSON: {}}
                if status[:1] in ("4", "5") and PROBLEM_JSON in content:
                    problem = {**content[PROBLEM_JSON], "schema": PROBLEM_REF}
                    responses[status] = {**response, "content": {**content, PROBLEM_JSON: problem}}
    schemas = document["components"]["schemas"]
    if "HTTPValidationError" not in str(document.get("paths")):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return document


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's own ``Allow`` names only the
    methods of the first route whose path matched, and FastAPI has one route per method)."""
    return [
        method
        for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.routes
        )
    ]


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


def _requires_key(dependant: Any) -> bool:
    return any(
        sub.call is bearer_credentials or _requires_key(sub) for sub in dependant.dependencies
    )


async def _unauthenticated(request: Request) -> Unauthenticated | None:
    """Why a route that requires a key refuses this request's key, if it does.

    FastAPI validates a body before the endpoint runs, and the task-run and upload routes
    authenticate inside the endpoint (authentication and work share one worker-thread hop), so
    without this a wrong key would be answered 422 and learn the input schema's errors. Costs
    one key check, on the error path only."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None or not _requires_key(dependant):
        return None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return Unauthenticated("missing API key: send `Authorization: Bearer <key>`")
    try:
        await run_in_threadpool(request.app.state.container.access.authenticate, token.strip())
    except Unauthenticated as refused:
        return refused
    return None


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    refused = await _unauthenticated(request)
    if refused is not None:  # a wrong key is told so, not how its input was wrong
        return await _shipyard_error(request, refused)
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
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    return problem_response(
        request,
        status=exc.status_code,
        slug=slug,
        title=title,
        detail=str(exc.detail),
        headers=headers,
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
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:  # built once, on first request, when all routes exist
            add_problem_responses(generate_openapi())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point
    app.add_exception_handler(ShipyardError, _shipyard_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected_error)
