"""Celery runner: the API (or CLI) publishes one message per document, workers index them.

Nothing is lost when a worker dies: a message is acknowledged only after its task returned
(``acks_late``), a worker killed mid-task hands it back (``reject_on_worker_lost``; Redis
after ``broker_visibility_timeout``), and every worker start re-publishes each document still
``pending``, which covers work whose message never reached the broker. Duplicates are the
price, and a cheap one: ``IngestionService.process`` indexes a document only while it is
pending, so a second message for it is a single read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery
from celery.signals import worker_process_shutdown, worker_ready, worker_shutdown
from kombu.exceptions import KombuError
from sqlalchemy.exc import OperationalError

from shipyard.bootstrap import Container, build
from shipyard.errors import ConfigError
from shipyard.governance.checkpoints import load_private_key
from shipyard.jobs.base import WorkItem
from shipyard.settings import Settings
from shipyard.storage.db import make_engine, make_session_factory
from shipyard.storage.knowledge_repositories import pending_documents

log = logging.getLogger("shipyard.jobs")

TASK_NAME = "shipyard.ingest_document"
RETENTION_TASK = "shipyard.retention.purge"
CHECKPOINT_TASK = "shipyard.audit.checkpoint"
SWEEP_TASK = "shipyard.ingest.sweep_pending"
TASK_TIME_LIMIT = 360  # seconds; the soft limit (300) lets process() record the failure
QUEUE = "shipyard"
# Publishing happens inside an API request: give up quickly (the rows are committed and the
# next worker start re-publishes them) rather than hold the request while the broker is down.
_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


class _WorkerContainer:
    """The container of one worker process, built on its first task: in a prefork pool that
    is after the fork, so no database connection or model session is shared across processes."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._container: Container | None = None
        self._lock = threading.Lock()  # the threads pool runs tasks concurrently

    def get(self) -> Container:
        with self._lock:
            if self._container is None:
                self._container = build(self._settings)
            return self._container

    def close(self) -> None:
        with self._lock:
            if self._container is not None:
                self._container.close()
                self._container = None


def _beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The periodic jobs Celery beat sends: retention purges and audit checkpoints."""
    schedule: dict[str, dict[str, Any]] = {}
    jobs = (
        ("shipyard-retention", RETENTION_TASK, settings.retention_interval_seconds, True),
        ("shipyard-pending-sweep", SWEEP_TASK, settings.pending_sweep_seconds, True),
        (
            "shipyard-audit-checkpoint",
            CHECKPOINT_TASK,
            settings.audit_checkpoint_interval_seconds,
            settings.audit_signing_key is not None,
        ),
    )
    for name, task, interval, wanted in jobs:
        if wanted and interval > 0:
            schedule[name] = {
                "task": task,
                "schedule": float(interval),
                "options": {"queue": QUEUE, "expires": float(interval)},
            }
    return schedule


def make_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings.broker_url`` with the ingestion task and worker hooks."""
    if not settings.broker_url:
        raise ConfigError(
            "SHIPYARD_BROKER_URL must be set when SHIPYARD_JOBS=celery "
            "(e.g. redis://localhost:6379/0 or amqp://user:password@host:5672//)"
        )
    app = Celery("shipyard", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,  # process() records its own failures
        worker_prefetch_multiplier=1,  # a dying worker strands at most one reserved message
        # A hostile but valid file must not hold a worker for ever: the soft limit raises
        # inside process(), which records the document as failed (retryable on resend).
        task_soft_time_limit=300,
        task_time_limit=TASK_TIME_LIMIT,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE,
        task_publish_retry_policy=_PUBLISH_RETRY,
        # Redis only (AMQP ignores it): how long an unacknowledged message stays invisible.
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout},
        broker_connection_retry_on_startup=True,
    )
    # Sent by `celery -A shipyard.jobs.celery_beat beat`, run by any `shipyard worker`.
    app.conf.beat_schedule = _beat_schedule(settings)
    holder = _WorkerContainer(settings)

    def ingest_document(tenant_id: str, document_id: str) -> str:
        return holder.get().ingestion.process(tenant_id, document_id)

    # A locked or unreachable database is transient; the row stays pending either way, so a
    # task that exhausts its retries is picked up again at the next worker start.
    app.task(
        name=TASK_NAME,
        autoretry_for=(OperationalError,),
        retry_backoff=True,
        retry_backoff_max=60,
        retry_jitter=True,
        max_retries=5,
    )(ingest_document)

    def purge_retention() -> dict[str, int]:
        # Idempotent and safe beside another purge: rows are purged by conditional updates.
        report = holder.get().retention.purge()
        return {"runs": report.total("runs"), "documents": report.total("documents")}

    # A backlog is worked off in batches that each commit: a purge cut short by the time
    # limit keeps what it did, and the next scheduled one continues.
    # shared=False: another app built in the same process must not get this app's container.
    app.task(name=RETENTION_TASK, shared=False, soft_time_limit=1800, time_limit=1900)(
        purge_retention
    )

    def sign_checkpoint() -> int | None:
        # The worker needs SHIPYARD_AUDIT_SIGNING_KEY too; a skipped (unmoved) head is None.
        secret = settings.audit_signing_key
        if secret is None:
            log.warning("audit checkpoint skipped: SHIPYARD_AUDIT_SIGNING_KEY is not set here")
            return None
        key = load_private_key(secret.get_secret_value())
        checkpoint = holder.get().audit.checkpoint_if_moved(key)
        return None if checkpoint is None else checkpoint.seq

    app.task(name=CHECKPOINT_TASK, shared=False, autoretry_for=(OperationalError,), max_retries=3)(
        sign_checkpoint
    )

    def sweep_pending() -> int:
        # A document accepted while the broker was down has no message: without this it
        # would wait for the next worker start. While messages wait in the queue, workers
        # are behind, not stranded: re-publishing then would only pile up duplicates (each
        # one a claim attempt). Older than a task may run: not one being indexed right now.
        if _queued_messages(app) > 0:
            return 0
        wait = max(settings.pending_sweep_seconds, 2 * TASK_TIME_LIMIT)
        cutoff = datetime.now(UTC) - timedelta(seconds=wait)
        with holder.get().sessions() as session:
            items = pending_documents(session, accepted_before=cutoff)
        sent = publish(app, items) if items else 0
        if items:
            log.info("re-published stale pending documents", extra={"count": sent})
        return sent

    app.task(name=SWEEP_TASK, shared=False)(sweep_pending)

    def requeue_pending(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return  # another app's worker in this process (tests build several apps)
        # A throwaway engine: a prefork parent must not hold connections its children inherit.
        engine = make_engine(settings.resolved_database_url)
        try:
            with make_session_factory(engine)() as session:
                items = pending_documents(session)
        finally:
            engine.dispose()
        if items:
            # Some of these probably still have a message queued: the duplicate is a no-op.
            sent = publish(app, items)
            log.info("re-queued pending documents", extra={"count": sent, "pending": len(items)})

    def close_container(**_: Any) -> None:
        holder.close()

    worker_ready.connect(requeue_pending, weak=False)
    worker_process_shutdown.connect(close_container, weak=False)
    worker_shutdown.connect(close_container, weak=False)
    return app


def _queued_messages(app: Celery) -> int:
    """Messages waiting in the ingestion queue (not those a worker holds); 0 when the queue
    does not exist yet or the broker cannot say."""
    try:
        with app.connection_for_write() as connection:
            refusals = connection.channel_errors + connection.connection_errors
            try:
                declared = connection.default_channel.queue_declare(queue=QUEUE, passive=True)
            except refusals as exc:  # e.g. AMQP 404: the queue was never declared
                log.info("queue depth unknown", extra={"error": type(exc).__name__})
                return 0
            return int(declared.message_count)
    except (KombuError, OSError) as exc:
        log.info("queue depth unknown", extra={"error": type(exc).__name__})
        return 0


def publish(app: Celery, items: Sequence[WorkItem]) -> int:
    """Send one message per item; return how many were sent before a broker error (if any).

    A failure is logged, not raised: the documents are committed as pending and the next
    worker start re-publishes them, while an exception here would fail a request whose work
    was in fact accepted."""
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for tenant_id, document_id in items:
                app.send_task(
                    TASK_NAME, args=(tenant_id, document_id), queue=QUEUE, producer=producer
                )
                sent += 1
    except (KombuError, OSError) as exc:
        log.error(
            "broker unavailable; documents stay pending until a worker starts",
            extra={"unsent": len(items) - sent, "error": type(exc).__name__},
        )
    return sent


class CeleryDispatcher:
    """The ``JobRunner`` of a process that only publishes; workers run ``shipyard worker``."""

    def __init__(self, settings: Settings) -> None:
        self._app = make_celery(settings)

    @property
    def app(self) -> Celery:
        return self._app

    def dispatch(self, job_id: str, items: Sequence[WorkItem]) -> None:
        sent = publish(self._app, items)
        log.info("job dispatched", extra={"job_id": job_id, "messages": sent})

    def start(self) -> None:
        """Nothing to start: the workers are separate processes."""

    def stop(self) -> None:
        self._app.close()  # release the pooled broker connections
