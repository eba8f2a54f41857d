"""``POST /v1/tasks/<name>/runs:stream``: a generate task's reply as Server-Sent Events.

Events: ``delta`` (``{"text": ...}``) as the model writes, then ``run`` (the stored run, as
``GET /v1/runs/<id>`` shows it) - or ``error`` (a problem object with the failed run's id).
Refusals (authentication, input, budget, configuration) are ordinary problem responses, sent
before the stream starts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, create_model
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from shipyard.api.deps import ContainerDep, CredentialsDep, authenticate
from shipyard.api.schemas import run_out
from shipyard.errors import PROBLEM_BASE
from shipyard.observability.logging import request_id_var
from shipyard.providers.llm import TextDelta
from shipyard.services.run_stream import StreamFailed, StreamItem
from shipyard.spec import TaskSpec, input_model


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _format(item: StreamItem) -> str:
    if isinstance(item, TextDelta):
        return _sse("delta", {"text": item.text})
    if isinstance(item, StreamFailed):
        error = item.error
        return _sse(
            "error",
            {
                "type": PROBLEM_BASE + error.slug,
                "title": error.title,
                "status": error.status,
                "detail": error.detail,
                "run_id": item.run.id,
            },
        )
    return _sse("run", run_out(item))


class RunEventStream(StreamingResponse):
    """Closes the run's event iterator once the response is over, however it ended: when the
    client left mid-stream, closing stores the run as failed ("client disconnected")."""

    def __init__(
        self, events: Iterator[StreamItem], on_close: Callable[[], None] | None = None
    ) -> None:
        self._events = events
        self._on_close = on_close  # e.g. give back the run's concurrent-run slot
        super().__init__(
            self._body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _body(self) -> AsyncIterator[str]:
        while True:
            # Each step runs in a worker thread: the provider call and storage block.
            item = await run_in_threadpool(next, self._events, None)
            if item is None:
                return
            yield _format(item)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):  # store the run even when cancelled
                await anyio.to_thread.run_sync(self._close)

    def _close(self) -> None:
        try:
            close = getattr(self._events, "close", None)
            if close is not None:
                close()
        finally:
            if self._on_close is not None:
                self._on_close()


def add_stream_route(router: APIRouter, spec: TaskSpec) -> None:
    """The streaming route of one free-text generate task."""
    name = "".join(part.capitalize() for part in spec.name.split("-"))
    request_model = create_model(
        f"{name}StreamRequest",
        __config__=ConfigDict(extra="forbid"),
        input=(input_model(spec), ...),
    )

    async def stream_run(
        body: BaseModel, credentials: CredentialsDep, container: ContainerDep
    ) -> StreamingResponse:
        typed_input: BaseModel = body.input  # type: ignore[attr-defined]  # spec-built model

        def open_events() -> tuple[Iterator[StreamItem], Callable[[], None]]:
            principal = authenticate(container, credentials)
            # The concurrent-run slot is held until the stream is over (RunEventStream closes).
            release = container.rate_limits.acquire_run(principal)
            try:
                events = container.runs.stream(
                    principal, spec.name, typed_input.model_dump(), request_id=request_id_var.get()
                )
            except BaseException:
                release()  # refused before streaming: no response will release it
                raise
            return events, release

        events, release = await run_in_threadpool(open_events)
        return RunEventStream(events, on_close=release)

    stream_run.__annotations__["body"] = request_model
    router.add_api_route(
        f"/v1/tasks/{spec.name}/runs:stream",
        stream_run,
        methods=["POST"],
        response_model=None,
        response_class=StreamingResponse,
        summary=f"Run {spec.name} v{spec.version}, streaming the reply (Server-Sent Events)",
        description=(
            "Events: `delta` {text} as the model writes, then `run` (the stored run with "
            "usage and cost) or `error` (a problem object naming the failed run)."
        ),
        operation_id=f"stream_{spec.name.replace('-', '_')}",
        tags=["tasks"],
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "The run's events"},
            429: {"description": "A budget, rate or concurrent-run limit (see Retry-After)"},
            503: {"description": "No LLM provider configured or available"},
        },
    )
