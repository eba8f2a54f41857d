"""Run a task for a caller, store the run with its audit event, list and fetch runs."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.trace import Tracer
from pydantic import ValidationError

from shipyard.access.principal import Principal
from shipyard.access.roles import Operation, allowed, authorize
from shipyard.errors import (
    FieldProblem,
    Forbidden,
    InvalidInput,
    InvalidModelOutput,
    LLMUnavailable,
    NotFound,
    ShipyardError,
)
from shipyard.governance import audit
from shipyard.governance.budgets import BudgetGuard, Metered
from shipyard.governance.pii import PiiScreen
from shipyard.governance.screening import (
    Screened,
    merge_flags,
    review_for_injection,
    screen_input,
)
from shipyard.kinds.base import KindResult, RunContext, TaskRunner
from shipyard.knowledge.groups import caller_groups
from shipyard.observability.metrics import Metrics
from shipyard.observability.tracing import current_trace_id
from shipyard.providers.llm import ProviderError, ProviderRejected
from shipyard.services.ids import is_uuid
from shipyard.services.run_pii import reveal, seal
from shipyard.services.run_stream import StreamItem, open_stream
from shipyard.services.runtime import TaskRuntime
from shipyard.services.usage_booking import book_worst_case
from shipyard.spec import Project, TaskSpec, input_model
from shipyard.storage.db import SessionFactory
from shipyard.storage.repositories import RunFilter, RunRepository
from shipyard.storage.tables import Run
from shipyard.storage.usage import add_usage, release

log = logging.getLogger("shipyard.runs")

MAX_PAGE = 200


@dataclass
class RunFailed(ShipyardError):
    """The model raised while running; the run is stored with status ``failed``."""

    status: int = 503
    slug: str = "run-failed"
    title: str = "Run failed"


@dataclass(frozen=True)
class RunPage:
    runs: Sequence[Run]
    next_cursor: str | None


def validation_problems(error: ValidationError, prefix: str) -> list[FieldProblem]:
    return [
        FieldProblem(".".join([prefix, *map(str, item["loc"])]), item["msg"])
        for item in error.errors(include_url=False)
    ]


def _text_size(value: object) -> int:
    """Characters of text anywhere in an input (lists included)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_text_size(item) for item in value.values())
    if isinstance(value, list):
        return sum(_text_size(item) for item in value)
    return 0


REQUEST_FAULTS = frozenset({400, 413, 422})


def _tokens(run: Run) -> int | None:
    if run.prompt_tokens is None and run.completion_tokens is None:
        return None
    return (run.prompt_tokens or 0) + (run.completion_tokens or 0)


def _visible_output(principal: Principal, run: Run) -> Run:
    """A knowledge run's output quotes documents of the groups it retrieved with; another
    reader sees it only when holding all of them (the run itself stays whole in storage)."""
    if (
        run.access_groups is None
        or run.key_id == principal.key_id
        or allowed(principal.roles, Operation.KNOWLEDGE_WRITE)
        or set(run.access_groups) <= caller_groups(principal.groups)
    ):
        return run
    # Detached from its session (expire_on_commit=False): this change is never written.
    run.output = None
    run.flags = [*run.flags, "redacted"]
    return run


def _encode_cursor(run: Run) -> str:
    raw = f"{run.created_at.isoformat()}|{run.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_text, run_id = raw.split("|", 1)
        created = datetime.fromisoformat(created_text)
        if created.tzinfo is None or not is_uuid(run_id):
            raise ValueError("not a cursor of ours")
        return created.astimezone(UTC), run_id
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise InvalidInput(
            "invalid cursor", [FieldProblem("cursor", "not a cursor from a previous page")]
        ) from None


class RunService:
    def __init__(
        self,
        sessions: SessionFactory,
        project: Project,
        runtime: TaskRuntime,
        metrics: Metrics,
        tracer: Tracer,
        budgets: BudgetGuard | None = None,
        pii: PiiScreen | None = None,
    ) -> None:
        self._pii = pii
        self._sessions = sessions
        self._project = project
        self._runtime = runtime
        self._metrics = metrics
        self._tracer = tracer
        self._budgets = budgets

    def _reserve_budget(
        self,
        principal: Principal,
        spec: TaskSpec,
        runner: TaskRunner,
        data: Mapping[str, Any],
        run_id: str,
    ) -> None:
        """Refuse a metered (chat-model) run before any provider is called, or hold its worst
        case until it is stored (``_store`` books it and drops the hold in one transaction)."""
        budgets = self._budgets
        if (
            budgets is not None
            and isinstance(runner, Metered)
            and budgets.applicable(principal.tenant_slug, spec.name)
        ):
            estimate = runner.estimate(data)
            # Longer than any run may take (its deadline, a repair call), so only the hold of a
            # process that died mid-run ever expires.
            hold = timedelta(seconds=2 * spec.generation.timeout_seconds + 60)
            budgets.reserve(
                run_id, principal.tenant_id, principal.tenant_slug, spec.name, estimate, hold
            )

    def _release_budget(self, run_id: str) -> None:
        if self._budgets is not None:
            self._budgets.release(run_id)

    def _fail_provider(
        self, run: Run, principal: Principal, error: Exception, started: float
    ) -> ShipyardError:
        """Store the run as failed and name the problem; provider messages stay in the log
        (type only in the run): they may quote upstream replies."""
        log.warning(
            "model provider failed",
            extra={"task": run.task, "run_id": run.id, "error_type": type(error).__name__},
        )
        run.status, run.output = "failed", None
        run.error = type(error).__name__
        run.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        self._store(run, principal)
        self._metrics.runs.labels(run.task, str(run.version), run.status).inc()
        if isinstance(error, InvalidModelOutput):
            error.detail = f"{error.detail}; run {run.id} is stored as failed"
            return error
        if isinstance(error, ProviderRejected) and error.status in REQUEST_FAULTS:
            # The request itself was refused (e.g. longer than the model's context): the
            # caller's to fix, not an outage. The provider's own words are not passed on.
            return InvalidInput(
                f"the model refused this input; run {run.id} is stored as failed",
                [FieldProblem("input", "refused by the model (too long or not acceptable)")],
            )
        return LLMUnavailable(
            f"no model provider of the task's route could serve it; run {run.id} is stored "
            "as failed"
        )

    @staticmethod
    def _record_usage(run: Run, result: KindResult) -> None:
        if result.usage is not None:
            run.prompt_tokens = result.usage.get("prompt_tokens")
            run.completion_tokens = result.usage.get("completion_tokens")
        run.cost = result.cost
        if result.model_name is not None:
            run.model = result.model_name

    def spec_for(self, principal: Principal, task: str) -> TaskSpec:
        authorize(principal.roles, Operation.TASK_READ)
        spec = self._project.tasks.get(task)
        if spec is None:
            raise NotFound(f"no task {task!r}")
        return spec

    def runnable_spec(self, principal: Principal, task: str) -> TaskSpec:
        """The task's spec, if this caller may run it: the run operation, then the task's own
        ``policy.roles`` (separation of duties on top of the role matrix)."""
        spec = self.spec_for(principal, task)
        authorize(principal.roles, Operation.TASK_RUN)
        if not any(role.value in spec.policy.roles for role in principal.roles):
            raise Forbidden(f"task {task} may be run by roles {', '.join(spec.policy.roles)} only")
        return spec

    def _check_input(self, spec: TaskSpec, inputs: Mapping[str, Any]) -> dict[str, Any]:
        try:
            validated = input_model(spec).model_validate(dict(inputs))
        except ValidationError as exc:
            raise InvalidInput(
                "input does not match the task's input schema", validation_problems(exc, "input")
            ) from None
        data = validated.model_dump()
        limit = spec.policy.max_input_chars
        if limit is not None:
            size = _text_size(data)
            if size > limit:
                raise InvalidInput(
                    "input too long",
                    [
                        FieldProblem(
                            "input", f"{size} characters; this task accepts at most {limit}"
                        )
                    ],
                )
        return data

    def create(
        self,
        principal: Principal,
        task: str,
        inputs: Mapping[str, Any],
        *,
        request_id: str | None = None,
    ) -> Run:
        spec = self.runnable_spec(principal, task)
        data = self._check_input(spec, inputs)
        # Injection and PII policies, before the kind (or a provider) sees the input and
        # before anything is stored or logged: from here on ``data`` is the screened input.
        screened = screen_input(self._pii, spec, data)
        data = screened.data
        runner = self._runtime.runner(task)
        run_id = str(uuid.uuid4())
        self._reserve_budget(principal, spec, runner, data, run_id)
        started = time.perf_counter()
        version = str(spec.version)
        with self._tracer.start_as_current_span(
            "shipyard.run",
            attributes={
                "shipyard.task": task,
                "shipyard.version": spec.version,
            },
        ):
            run = Run(
                id=run_id,
                tenant_id=principal.tenant_id,
                key_id=principal.key_id,
                task=task,
                version=spec.version,
                input=data,
                model=runner.model_name,
                artifact=runner.artifact,
                trace_id=current_trace_id(),
                request_id=request_id,
                flags=list(screened.flags),
                access_groups=(
                    sorted(caller_groups(principal.groups)) if spec.knowledge is not None else None
                ),
                created_at=datetime.now(UTC),
            )
            seal(self._pii, run, screened)
            result: KindResult | None = None
            try:
                with self._tracer.start_as_current_span(
                    "shipyard.model",
                    attributes={
                        "shipyard.model": runner.model_name,
                    },
                    # Provider messages may quote upstream replies; the run keeps the type.
                    record_exception=False,
                ):
                    result = runner.run(
                        data,
                        RunContext(
                            principal.tenant_id,
                            caller_groups(principal.groups),
                            screened.redact_text(),
                        ),
                    )
                self._complete(run, spec, screened, result, started)
            except (ProviderError, InvalidModelOutput) as exc:
                book_worst_case(run, runner, data, exc)
                raise self._fail_provider(run, principal, exc, started) from exc
            except ShipyardError:  # refused before any provider call (e.g. not ready)
                self._release_budget(run.id)
                raise
            except Exception as exc:  # a model (or screening) fault is not the caller's
                log.exception("model failed", extra={"task": task, "run_id": run.id})
                run.status, run.error, run.output = "failed", type(exc).__name__, None
                if result is not None:  # the model answered: what it used is booked
                    self._record_usage(run, result)
                run.latency_ms = (time.perf_counter() - started) * 1000
                self._store(run, principal)
                self._metrics.runs.labels(task, version, run.status).inc()
                raise RunFailed(f"the model failed; run {run.id} is stored as failed") from exc
            self._store(run, principal)
        self._metrics.runs.labels(task, version, run.status).inc()
        self._metrics.run_latency.labels(task, version).observe(run.latency_ms / 1000)
        self._metrics.model_latency.labels(task, runner.model_name).observe(result.model_ms / 1000)
        if result.confidence is not None:
            self._metrics.confidence.labels(task, version).observe(result.confidence)
        log.info("run stored", extra={"task": task, "run_id": run.id, "status": run.status})
        return run

    def _complete(
        self, run: Run, spec: TaskSpec, screened: Screened, result: KindResult, started: float
    ) -> None:
        """The run's status, output (redacted as the task's PII policy says), flags and usage
        from the kind's result."""
        threshold = spec.policy.review_below
        unsure = (
            threshold is not None
            and result.confidence is not None
            and result.confidence < threshold
        )
        needs_review = (
            unsure or result.force_review or result.output.get("label") in spec.policy.review_labels
        )
        self._record_usage(run, result)
        # Personal data the documents or the model brought in is redacted before storage.
        run.output = screened.redact_output(spec, result.output)
        run.flags = merge_flags(run.flags, result.flags, screened.flags)
        seal(self._pii, run, screened)
        needs_review = needs_review or review_for_injection(spec, run.flags)
        run.status = "needs_review" if needs_review else "ok"
        run.confidence = result.confidence
        run.model_latency_ms = round(result.model_ms, 3)
        run.latency_ms = round((time.perf_counter() - started) * 1000, 3)

    def _store(self, run: Run, principal: Principal) -> None:
        # The input is hashed, not copied, into the audit event: the chain proves what was
        # asked without duplicating payloads that retention will later delete.
        input_hash = hashlib.sha256(
            json.dumps(run.input, sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
        with self._sessions.begin() as session:
            audit.append(
                session,
                actor=principal.actor,
                action="run.created",
                subject_type="run",
                subject_id=run.id,
                tenant_id=run.tenant_id,
                data={
                    "task": run.task,
                    "version": run.version,
                    "status": run.status,
                    "artifact": run.artifact,
                    "confidence": run.confidence,
                    "input_sha256": input_hash,
                    "flags": run.flags,
                    "tokens": _tokens(run),
                    "cost": run.cost,
                },
            )
            RunRepository(session, principal.tenant_id).add(run)
            release(session, run.id)  # its usage is booked below: the hold is no longer needed
            if run.cost is not None or _tokens(run) is not None:
                add_usage(
                    session,
                    run.tenant_id,
                    run.task,
                    run.created_at,
                    run.cost or 0.0,
                    _tokens(run) or 0,
                )

    def stream(
        self,
        principal: Principal,
        task: str,
        inputs: Mapping[str, Any],
        *,
        request_id: str | None = None,
    ) -> Iterator[StreamItem]:
        """A generate run as it happens; see :mod:`shipyard.services.run_stream`."""
        return open_stream(self, principal, task, inputs, request_id=request_id)

    def _visible_to(self, principal: Principal) -> str | None:
        """None: every run of the tenant; otherwise only runs of this key."""
        if allowed(principal.roles, Operation.RUN_READ_ALL):
            return None
        authorize(principal.roles, Operation.RUN_READ_OWN)
        return principal.key_id

    def get(self, principal: Principal, run_id: str, *, reveal_pii: bool = False) -> Run:
        """One run; ``reveal_pii``: with redacted personal data restored (see run_pii)."""
        only_key = self._visible_to(principal)
        if not is_uuid(run_id):  # never a run id; answer like any unknown id
            raise NotFound(f"no run {run_id!r}")
        with self._sessions() as session:
            run = RunRepository(session, principal.tenant_id).get(run_id)
        if run is None or (only_key is not None and run.key_id != only_key):
            raise NotFound(f"no run {run_id!r}")
        run = _visible_output(principal, run)
        if reveal_pii:
            return reveal(self._sessions, self._project, self._pii, principal, run)
        return run

    def list(
        self, principal: Principal, where: RunFilter, *, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        only_key = self._visible_to(principal)
        if only_key is not None:
            where = RunFilter(
                where.task, where.status, only_key, where.created_after, where.created_before
            )
        limit = max(1, min(limit, MAX_PAGE))
        after = _decode_cursor(cursor) if cursor else None
        with self._sessions() as session:
            runs = RunRepository(session, principal.tenant_id).page(
                where, limit=limit + 1, after=after
            )
        has_more = len(runs) > limit
        runs = [_visible_output(principal, run) for run in runs[:limit]]
        return RunPage(runs, _encode_cursor(runs[-1]) if has_more and runs else None)
