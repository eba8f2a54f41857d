"""One pure-ASGI middleware: request id, body size limit, trace span, metrics, access log.

The size limit answers 413 from ``Content-Length`` before reading anything, and counts streamed
bytes for chunked bodies, failing as soon as the limit is crossed, so a large body is never
held in memory whole.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, Tracer
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.errors import PROBLEM_BASE, PayloadTooLarge
from shipyard.observability.logging import request_id_var
from shipyard.observability.metrics import Metrics

log = logging.getLogger("shipyard.http")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_UPLOAD_PATH = re.compile(r"^/v1/collections/[^/]+/documents/?$")


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        max_upload_body: int | None = None,
        metrics: Metrics,
        tracer: Tracer,
        trust_traceparent: bool = False,
    ) -> None:
        self.app = app
        self.max_body = max_body
        # Document uploads are the one place a large body is expected.
        self.max_upload_body = max(max_upload_body or max_body, max_body)
        self.metrics = metrics
        self.tracer = tracer
        # An untrusted client must not choose the trace id stored with its runs.
        self.trust_traceparent = trust_traceparent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = {"code": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        method = scope["method"]
        # Named by method only until the route is known: concrete paths carry ids.
        with self.tracer.start_as_current_span(
            method,
            kind=SpanKind.SERVER,
            context=extract(headers) if self.trust_traceparent else None,
            attributes={"http.request.method": method},
        ) as span:
            try:
                await self._handle(scope, receive, send_with_id, headers, request_id)
            except Exception:
                # Caught here, while the request id is still set, so the log line and the
                # answer both carry it; the traceback goes to the log only.
                log.exception("unhandled error")
                self.metrics.errors.labels("internal-error").inc()
                if not status["started"]:
                    await self._send_problem(
                        send_with_id,
                        500,
                        "internal-error",
                        "Internal error",
                        "an unexpected error occurred; the request id identifies it in the logs",
                        scope["path"],
                        request_id,
                    )
            finally:
                route = _route_template(scope)
                elapsed = time.perf_counter() - started
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status["code"])
                self.metrics.http_requests.labels(method, route, str(status["code"])).inc()
                self.metrics.http_latency.labels(method, route).observe(elapsed)
                log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status["code"],
                        "duration_ms": round(elapsed * 1000, 3),
                    },
                )
                request_id_var.reset(token)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], request_id: str
    ) -> None:
        limit = (
            self.max_upload_body
            if scope["method"] == "POST" and _UPLOAD_PATH.match(scope["path"])
            else self.max_body
        )
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            code = 413 if declared.isdigit() else 400
            await self._reject(send, request_id, scope["path"], code, limit)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException passes through FastAPI's body parsing unchanged.
                    raise HTTPException(413, f"request body exceeds {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)

    async def _reject(self, send: Send, request_id: str, path: str, code: int, limit: int) -> None:
        if code == 413:
            problem = PayloadTooLarge(f"request body exceeds {limit} bytes")
            await self._send_problem(
                send, 413, problem.slug, problem.title, problem.detail, path, request_id
            )
        else:
            await self._send_problem(
                send,
                400,
                "bad-request",
                "Bad request",
                "invalid Content-Length header",
                path,
                request_id,
            )

    @staticmethod
    async def _send_problem(
        send: Send, code: int, slug: str, title: str, detail: str, path: str, request_id: str
    ) -> None:
        body = json.dumps(
            {
                "type": PROBLEM_BASE + slug,
                "title": title,
                "status": code,
                "detail": detail,
                "instance": path,
                "request_id": request_id,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _route_template(scope: Scope) -> str:
    # The template, not the concrete path, keeps metric label cardinality bounded
    # and keeps ids out of logs.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
