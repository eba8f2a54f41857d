"""A document whose processing never finishes is given up after a few attempts, and a file
rejected for a transient reason is retried when it is sent again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import update

from shipyard.services.ingestion import MAX_ATTEMPTS, Upload
from shipyard.storage.tables import Document
from tests.conftest import make_container, write_tiny_project
from tests.jobs import admin


def test_poison_document_is_given_up_then_retried_on_resend(
    fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    project = write_tiny_project(tmp_path / "project")
    container = make_container(project, tmp_path / "state", fresh_database("sqlite"))
    principal = admin(container)
    container.knowledge.create_collection(principal, "handbook")
    upload = Upload(source="a.txt", content=b"The cafeteria opens at seven every weekday.")
    _view, results = container.ingestion.submit(principal, "handbook", [upload])
    document_id = results[0].document_id
    assert document_id is not None
    # As if the worker process had died MAX_ATTEMPTS times while processing it.
    with container.sessions.begin() as session:
        session.execute(
            update(Document).where(Document.id == document_id).values(attempts=MAX_ATTEMPTS)
        )
    assert container.ingestion.process(principal.tenant_id, document_id) == "rejected"
    document = container.knowledge.document(principal, "handbook", document_id)
    assert document.reason_code == "gave_up"

    _view, again = container.ingestion.submit(principal, "handbook", [upload])
    assert again[0].status == "queued"
    assert container.ingestion.process(principal.tenant_id, document_id) == "indexed"
    document = container.knowledge.document(principal, "handbook", document_id)
    assert document.attempts == 1
    assert document.chunk_count == 1
    container.close()
