"""Celery: documents accepted while the broker was down are re-published by the scheduled
sweep (not only at the next worker start); fresh ones, still on their way, are left alone.
Kombu's in-memory transport stands in for the broker's queue; the database is real."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from shipyard.jobs.celery_app import QUEUE, SWEEP_TASK, make_celery
from shipyard.settings import Settings
from shipyard.storage.tables import Document
from tests.conftest import make_container, write_tiny_project
from tests.jobs import admin, uploads


def test_the_sweep_republishes_only_documents_pending_for_long(
    backend: str, fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    project = write_tiny_project(tmp_path / "project")
    state, database = tmp_path / "state", fresh_database(backend)
    container = make_container(project, state, database)
    principal = admin(container)
    container.knowledge.create_collection(principal, "handbook")
    # No dispatcher: accepted and committed, but no message was ever sent.
    _view, results = container.ingestion.submit(principal, "handbook", uploads(4))
    ids = [result.document_id for result in results]
    stale = ids[:3]
    with container.sessions.begin() as session:
        session.execute(
            update(Document)
            .where(Document.id.in_(stale))
            .values(updated_at=datetime.now(UTC) - timedelta(hours=2))
        )
    container.close()

    settings = Settings(
        project_dir=project,
        data_dir=state,
        database_url=database,
        secret_key="test-secret-key-" + "x" * 32,
        broker_url="memory://",
        jobs="celery",
        pending_sweep_seconds=600,
    )
    app = make_celery(settings)
    app.control.purge()  # the in-memory broker lives as long as the process: start empty
    try:
        entry = app.conf.beat_schedule["shipyard-pending-sweep"]
        assert (entry["task"], entry["schedule"]) == (SWEEP_TASK, 600.0)
        assert app.tasks[SWEEP_TASK].run() == 3
        published = []
        with app.connection_for_read() as connection:
            queue = connection.SimpleQueue(QUEUE)
            while len(published) < 4:
                try:
                    message = queue.get(timeout=0.5)
                except queue.Empty:
                    break
                args, _kwargs, _embed = message.decode()
                published.append(args[1])
                message.ack()
            queue.close()
        assert sorted(published) == sorted(stale)  # the fresh one is still on its way
        # While messages wait in the queue, workers are behind, not stranded: no duplicates.
        assert app.tasks[SWEEP_TASK].run() == 3
        assert app.tasks[SWEEP_TASK].run() == 0
    finally:
        app.close()
    off = make_celery(settings.model_copy(update={"pending_sweep_seconds": 0}))
    try:
        assert "shipyard-pending-sweep" not in off.conf.beat_schedule
    finally:
        off.close()
