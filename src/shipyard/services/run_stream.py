"""A streamed run: the same checks as :meth:`RunService.create`, then the reply's text as it is
generated, then the run - stored (with its audit event) only once the stream has ended.

:func:`open_stream` does every check that can refuse the request *before* returning, so the
caller can still answer with a problem; only then does it hand back the event iterator.
Closing the iterator early (the client went away) stores the run as failed with the error
"client disconnected".
"""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shipyard.access.principal import Principal
from shipyard.errors import InvalidInput, InvalidModelOutput, ShipyardError
from shipyard.governance.screening import (
    Screened,
    merge_flags,
    review_for_injection,
    screen_input,
)
from shipyard.kinds.base import KindResult, RunContext
from shipyard.kinds.generate import GenerateRunner
from shipyard.knowledge.groups import caller_groups
from shipyard.observability.tracing import current_trace_id
from shipyard.providers.llm import ProviderError, TextDelta
from shipyard.services.run_pii import seal
from shipyard.services.usage_booking import book_worst_case
from shipyard.spec import TaskSpec
from shipyard.storage.tables import Run

if TYPE_CHECKING:
    from shipyard.services.runs import RunService

log = logging.getLogger("shipyard.runs")
CLIENT_DISCONNECTED = "client disconnected"


@dataclass(frozen=True)
class StreamFailed:
    """The last event of a stream that failed after it started: the problem and the stored
    (failed) run."""

    error: ShipyardError
    run: Run


StreamItem = TextDelta | Run | StreamFailed


def open_stream(
    service: RunService,
    principal: Principal,
    task: str,
    inputs: Mapping[str, Any],
    *,
    request_id: str | None = None,
) -> Iterator[StreamItem]:
    """Check everything, then return the events: deltas, then the stored run (or a
    :class:`StreamFailed`). Raises the same problems as ``create`` before streaming."""
    # A friend of RunService: it shares its input check, budget check and storage.
    spec = service.runnable_spec(principal, task)
    data = service._check_input(spec, inputs)
    screened = screen_input(service._pii, spec, data)  # as in create: before anything else
    data = screened.data
    runner = service._runtime.runner(task)
    if not isinstance(runner, GenerateRunner) or not runner.streams_text:
        raise InvalidInput(
            f"task {task} cannot stream: only kind generate with a 'text' output (and, with "
            "knowledge, 'citations') does"
        )
    run_id = str(uuid.uuid4())
    service._reserve_budget(principal, spec, runner, data, run_id)
    run = Run(
        id=run_id,
        tenant_id=principal.tenant_id,
        key_id=principal.key_id,
        task=task,
        version=spec.version,
        input=data,
        model=runner.model_name,
        artifact=None,
        trace_id=current_trace_id(),
        request_id=request_id,
        flags=merge_flags(["streamed"], screened.flags),
        # As in create: a knowledge run's output quotes what these groups may read.
        access_groups=(
            sorted(caller_groups(principal.groups)) if spec.knowledge is not None else None
        ),
        created_at=datetime.now(UTC),
    )
    seal(service._pii, run, screened)
    # The status a completed stream gets: ok, unless the injection policy asks for review.
    run.status = "needs_review" if review_for_injection(spec, run.flags) else "ok"
    return _Stream(
        _events(service, principal, runner, run, data, spec, screened),
        on_unstarted_close=lambda: service._release_budget(run.id),
    )


class _Stream(Iterator[StreamItem]):
    """The events, and a ``close`` that also covers a stream that never started: closing a
    generator before its first step runs none of its code, so the run's budget hold (taken
    above) would otherwise wait for its expiry."""

    def __init__(
        self, events: Generator[StreamItem], on_unstarted_close: Callable[[], None]
    ) -> None:
        self._events = events
        self._on_unstarted_close = on_unstarted_close

    def __next__(self) -> StreamItem:
        return next(self._events)

    def close(self) -> None:
        unstarted = inspect.getgeneratorstate(self._events) == inspect.GEN_CREATED
        self._events.close()
        if unstarted:
            self._on_unstarted_close()


def _events(
    service: RunService,
    principal: Principal,
    runner: GenerateRunner,
    run: Run,
    data: dict[str, Any],
    spec: TaskSpec,
    screened: Screened,
) -> Generator[StreamItem]:
    started = time.perf_counter()
    result: KindResult | None = None
    try:
        # closing(): a client that leaves also closes the provider's stream, at once.
        context = RunContext(
            principal.tenant_id, caller_groups(principal.groups), screened.redact_text()
        )
        with closing(runner.stream(data, context)) as events:
            for event in events:
                if isinstance(event, TextDelta):
                    yield event
                else:
                    result = event
    except GeneratorExit:
        # The client went away mid-stream: keep the run, as failed, and stop generating;
        # what the provider may bill for is booked against budgets.
        book_worst_case(run, runner, data, None)
        _store_failed(service, principal, run, CLIENT_DISCONNECTED, started)
        raise
    except (ProviderError, InvalidModelOutput) as exc:
        book_worst_case(run, runner, data, exc)
        yield StreamFailed(service._fail_provider(run, principal, exc, started), run)
        return
    except ShipyardError as exc:
        book_worst_case(run, runner, data, exc)
        _store_failed(service, principal, run, exc.slug, started)
        yield StreamFailed(exc, run)
        return
    except Exception as exc:  # a model or storage fault mid-stream: keep the run as failed
        log.exception("stream failed", extra={"task": run.task, "run_id": run.id})
        book_worst_case(run, runner, data, exc)
        _store_failed(service, principal, run, type(exc).__name__, started)
        from shipyard.services.runs import RunFailed  # runs imports this module

        yield StreamFailed(RunFailed(f"the model failed; run {run.id} is stored as failed"), run)
        return
    assert result is not None  # runner.stream always ends with its result
    service._record_usage(run, result)
    try:
        # The caller saw the reply as it came; what is stored follows the task's PII policy.
        run.output = screened.redact_output(spec, result.output)
    except Exception as exc:  # a screening fault: keep the run (and its usage), not the text
        log.exception("stream failed", extra={"task": run.task, "run_id": run.id})
        _store_failed(service, principal, run, type(exc).__name__, started)
        from shipyard.services.runs import RunFailed  # runs imports this module

        yield StreamFailed(RunFailed(f"the run failed; run {run.id} is stored as failed"), run)
        return
    run.confidence = result.confidence
    run.flags = merge_flags(run.flags, result.flags, screened.flags)
    if review_for_injection(spec, run.flags):  # e.g. a retrieved passage read like one
        run.status = "needs_review"
    seal(service._pii, run, screened)
    run.model_latency_ms = round(result.model_ms, 3)
    run.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    service._store(run, principal)
    service._metrics.runs.labels(run.task, str(run.version), run.status).inc()
    log.info("streamed run stored", extra={"task": run.task, "run_id": run.id})
    yield run


def _store_failed(
    service: RunService, principal: Principal, run: Run, error: str, started: float
) -> None:
    run.status, run.error, run.output = "failed", error, None
    run.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    service._store(run, principal)
    service._metrics.runs.labels(run.task, str(run.version), run.status).inc()
