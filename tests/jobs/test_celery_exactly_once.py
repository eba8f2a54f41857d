"""A Celery worker killed mid-job loses nothing and indexes nothing twice.

1,000 documents are submitted through the Celery dispatcher, a real worker process is
SIGKILLed part-way through, and a second worker finishes the job. Afterwards every document
is indexed with exactly the chunks a fresh in-process parse gives, and the message that was
in flight at the kill came back (acks_late), on Redis and on RabbitMQ.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from shipyard.bootstrap import Container, build
from shipyard.errors import ConfigError
from shipyard.jobs.celery_app import CeleryDispatcher
from shipyard.jobs.setup import make_runner
from shipyard.settings import Settings
from tests.conftest import write_tiny_project
from tests.jobs import (
    UNIQUE_DOCUMENT,
    UNIQUE_QUERY,
    admin,
    expected_chunks,
    status_counts,
    uploads,
)

pytestmark = pytest.mark.celery

DOCUMENTS = 1000
KILL_AFTER = 150  # indexed documents before the first worker is killed
VISIBILITY_TIMEOUT = 5  # Redis: seconds until the killed worker's message is handed out again
FINISH_TIMEOUT = 600
SECRET_KEY = "test-secret-key-" + "x" * 32
BROKERS = [
    pytest.param("redis://127.0.0.1:6379/7", id="redis"),  # db 7: this test's own
    pytest.param("amqp://guest:guest@127.0.0.1:5672//", id="rabbitmq"),
]
# The Typer command behind `shipyard worker`, run as a module. Not the solo pool: on RabbitMQ
# it stalls up to 10 s between some tasks at prefetch 1 (a minute of work took eight).
_WORKER_COMMAND = [sys.executable, "-m", "shipyard.cli.worker_cmd", "--pool", "prefork"]
_WORKER_COMMAND += ["--concurrency", "1", "--loglevel", "INFO"]
_RECEIVED = re.compile(r"Task shipyard\.ingest_document\[([0-9a-f-]+)\] received")
_SUCCEEDED = re.compile(r"Task shipyard\.ingest_document\[([0-9a-f-]+)\] succeeded")


def _require(broker: str) -> None:
    parts = urlsplit(broker)
    try:
        socket.create_connection((parts.hostname or "", parts.port or 0), timeout=2).close()
    except OSError as exc:
        pytest.skip(f"broker {parts.scheme}://{parts.hostname}:{parts.port} unreachable: {exc}")


def _empty_broker(dispatcher: CeleryDispatcher, broker: str) -> None:
    """Drop what earlier runs left: queued messages, and on Redis unacknowledged ones too."""
    if broker.startswith("redis://"):
        import redis

        redis.Redis.from_url(broker).flushdb()
    dispatcher.app.control.purge()


class Worker:
    """``shipyard worker`` as a real process in its own process group, logging to a file."""

    def __init__(self, name: str, project: Path, env: dict[str, str], logs: Path) -> None:
        self.log_path = logs / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [*_WORKER_COMMAND, "--project", str(project)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # no warm shutdown, no acks
        self.process.wait(timeout=30)
        self._log.close()

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"{self.log_path.stem} exited with {self.process.returncode}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def _workers(project: Path, env: dict[str, str], logs: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        yield started
    except BaseException:
        for worker in started:
            tail = "\n".join(worker.log().splitlines()[-60:])
            print(f"----- {worker.log_path.name} (last 60 lines) -----\n{tail}")
        raise
    finally:
        for worker in started:
            worker.kill()


def _wait(condition: Any, worker: Worker, timeout: float, interval: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        worker.check_alive()
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - started


def _container(broker: str, project: Path, state: Path, database: str) -> Container:
    container = build(
        Settings(
            project_dir=project,
            data_dir=state,
            database_url=database,
            secret_key=SECRET_KEY,
            jobs="celery",
            broker_url=broker,
            broker_visibility_timeout=VISIBILITY_TIMEOUT,
        )
    )
    container.upgrade_database()
    return container


def _worker_env(broker: str, state: Path, database: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SHIPYARD_")}
    return env | {
        "SHIPYARD_DATABASE_URL": database,
        "SHIPYARD_DATA_DIR": str(state),
        "SHIPYARD_SECRET_KEY": SECRET_KEY,
        "SHIPYARD_JOBS": "celery",
        "SHIPYARD_BROKER_URL": broker,
        "SHIPYARD_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "ORT_DISABLE_TELEMETRY": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
    }


@pytest.mark.parametrize("broker", BROKERS)
def test_each_document_is_indexed_exactly_once_across_a_worker_kill(
    broker: str, tmp_path: Path
) -> None:
    _require(broker)
    project = write_tiny_project(tmp_path / "project")
    state, database = tmp_path / "state", f"sqlite:///{tmp_path / 'shipyard.db'}"
    container = _container(broker, project, state, database)
    dispatcher = make_runner(container)
    assert isinstance(dispatcher, CeleryDispatcher)
    _empty_broker(dispatcher, broker)
    try:
        _kill_a_worker_mid_job_and_check(
            container, broker, project, _worker_env(broker, state, database), tmp_path
        )
    finally:
        _empty_broker(dispatcher, broker)  # leave no duplicates behind for the next run
        dispatcher.stop()
        container.close()


def _kill_a_worker_mid_job_and_check(
    container: Container, broker: str, project: Path, env: dict[str, str], logs: Path
) -> None:
    principal = admin(container)
    container.knowledge.create_collection(principal, "handbook")
    batch = uploads(DOCUMENTS)
    began = time.monotonic()
    view, results = container.ingestion.submit(principal, "handbook", batch)
    submitted = time.monotonic() - began
    assert [result.status for result in results] == ["queued"] * DOCUMENTS

    def indexed() -> int:
        return status_counts(container).get("indexed", 0)

    with _workers(project, env, logs) as workers:
        first = Worker("worker-1", project, env, logs)
        workers.append(first)
        to_kill = _wait(lambda: indexed() >= KILL_AFTER, first, 300, 0.2, f"{KILL_AFTER} indexed")
        first.kill()
        killed_at = time.monotonic()
        at_kill = indexed()
        assert KILL_AFTER <= at_kill < DOCUMENTS, "the kill must interrupt the job"
        in_flight = set(_RECEIVED.findall(first.log())) - set(_SUCCEEDED.findall(first.log()))
        assert len(in_flight) <= 1, "prefetch 1 with one slot reserves one message at most"

        # A supervisor restarts the worker after a few seconds; by then Redis hands out the
        # killed worker's unacknowledged message again (RabbitMQ does at once).
        time.sleep(max(0.0, killed_at + VISIBILITY_TIMEOUT + 1 - time.monotonic()))
        second = Worker("worker-2", project, env, logs)
        workers.append(second)
        to_finish = _wait(
            lambda: status_counts(container) == {"indexed": DOCUMENTS},
            second,
            FINISH_TIMEOUT,
            1.0,
            "every document indexed",
        )
        # The message that was in flight at the kill is delivered again (acks_late); the
        # re-queue of pending documents at start-up would hide its loss, so look for it.
        _wait(
            lambda: in_flight <= set(_SUCCEEDED.findall(second.log())),
            second,
            120,
            1.0,
            f"redelivery of {in_flight}",
        )

    total = 0
    with container.sessions() as session:
        for upload, result in zip(batch, results, strict=True):
            assert result.document_id is not None
            stored = container.knowledge.document(principal, "handbook", result.document_id)
            count = container.knowledge_index.count_chunks(
                session, principal.tenant_id, result.document_id
            )
            assert stored.status == "indexed", upload.source
            assert count == stored.chunk_count == expected_chunks(container, upload), upload.source
            total += count
        # No stray rows anywhere: chunks, their full-text rows and their group rows.
        for table in ("kb_chunks", "kb_chunks_fts", "kb_chunk_groups"):
            rows = session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            assert rows == total, table
    assert container.ingestion.job(principal, view.job.id).status == "done"
    hits = container.knowledge.search(principal, ["handbook"], UNIQUE_QUERY, k=3)
    assert hits, "the unique sentence must be found"
    assert hits[0].source == f"doc-{UNIQUE_DOCUMENT:04d}.txt"
    print(
        f"\n[{urlsplit(broker).scheme}] submit {submitted:.1f}s; worker-1 indexed {at_kill} "
        f"in {to_kill:.1f}s before SIGKILL; {len(in_flight)} message(s) in flight at the "
        f"kill, redelivered to worker-2; worker-2 finished in {to_finish:.1f}s; "
        f"total {time.monotonic() - began:.1f}s; {total} chunks"
    )


def test_a_broker_outage_at_submit_leaves_the_documents_pending(tmp_path: Path) -> None:
    """Publishing fails fast and quietly: the work is committed and a worker start resumes it."""
    container = _container(
        "redis://127.0.0.1:1/0",  # nothing listens on port 1
        write_tiny_project(tmp_path / "project"),
        tmp_path / "state",
        f"sqlite:///{tmp_path / 'shipyard.db'}",
    )
    principal = admin(container)
    container.knowledge.create_collection(principal, "handbook")
    dispatcher = make_runner(container)
    began = time.monotonic()
    _view, results = container.ingestion.submit(principal, "handbook", uploads(3))
    assert time.monotonic() - began < 30
    assert [result.status for result in results] == ["queued"] * 3
    assert status_counts(container) == {"pending": 3}
    dispatcher.stop()
    container.close()


def test_celery_needs_a_broker_url() -> None:
    with pytest.raises(ConfigError, match="SHIPYARD_BROKER_URL"):
        CeleryDispatcher(Settings(jobs="celery", broker_url=None))
