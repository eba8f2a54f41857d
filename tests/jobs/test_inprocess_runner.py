"""The in-process runner: accepted work survives a crash, and a document is indexed once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from shipyard.jobs.inprocess import InProcessRunner
from shipyard.jobs.setup import make_runner
from shipyard.services.ingestion import Encoder, IngestionService
from tests.conftest import make_container, write_tiny_project
from tests.jobs import admin, expected_chunks, status_counts, uploads


def test_documents_accepted_before_a_crash_are_indexed_once_after_restart(
    backend: str, fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    project = write_tiny_project(tmp_path / "project")
    state, database = tmp_path / "state", fresh_database(backend)
    first = make_container(project, state, database)
    principal = admin(first)
    first.knowledge.create_collection(principal, "handbook")
    batch = uploads(12)
    # No runner: submit commits the work and dispatches nothing, as if the process died
    # right after answering the request.
    assert first.ingestion.dispatch is None
    view, results = first.ingestion.submit(principal, "handbook", batch)
    assert {result.status for result in results} == {"queued"}
    assert status_counts(first) == {"pending": len(batch)}
    first.close()

    second = make_container(project, state, database)
    runner = make_runner(second)
    assert isinstance(runner, InProcessRunner)
    runner.start()  # resumes everything still pending
    try:
        assert runner.wait_idle(timeout=300)
    finally:
        runner.stop()
    assert status_counts(second) == {"indexed": len(batch)}
    with second.sessions() as session:
        for upload, result in zip(batch, results, strict=True):
            assert result.document_id is not None
            stored = second.knowledge.document(principal, "handbook", result.document_id)
            chunks = second.knowledge_index.count_chunks(
                session, principal.tenant_id, result.document_id
            )
            assert chunks == stored.chunk_count == expected_chunks(second, upload) > 0
    assert second.ingestion.job(principal, view.job.id).status == "done"
    second.close()


class _MeetingEncoder:
    """Lets two workers embed only once both have read the document as pending, so both
    reach the claim: the race the claim exists for, every time rather than by luck."""

    def __init__(self, inner: Callable[[], Encoder], parties: int) -> None:
        self._inner = inner
        self._barrier = threading.Barrier(parties, timeout=60)

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self._barrier.wait()
        return self._inner().encode(texts)


def test_concurrent_and_repeated_processing_index_a_document_once(
    backend: str, fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    container = make_container(
        write_tiny_project(tmp_path / "project"), tmp_path / "state", fresh_database(backend)
    )
    principal = admin(container)
    container.knowledge.create_collection(principal, "handbook")
    (upload,) = uploads(1, start=7)  # a multi-chunk document
    _view, (result,) = container.ingestion.submit(principal, "handbook", [upload])
    assert result.document_id is not None
    document_id = result.document_id
    encoder = _MeetingEncoder(container.embedder, parties=2)
    racing = IngestionService(
        container.sessions,
        container.knowledge_index,
        container.blobs,
        lambda: encoder,
        max_document_bytes=container.settings.max_document_bytes,
    )
    outcomes: list[str] = []
    failures: list[BaseException] = []

    def work() -> None:
        try:
            outcomes.append(racing.process(principal.tenant_id, document_id))
        except BaseException as exc:  # surfaced below; a thread would swallow it
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures
    assert sorted(outcomes) == ["indexed", "skipped"]

    expected = expected_chunks(container, upload)
    assert expected >= 2

    def chunks() -> int:
        with container.sessions() as session:
            return container.knowledge_index.count_chunks(session, principal.tenant_id, document_id)

    assert chunks() == expected
    # Later duplicates (a redelivered message) change nothing.
    for _ in range(2):
        assert container.ingestion.process(principal.tenant_id, document_id) == "indexed"
        assert chunks() == expected
    stored = container.knowledge.document(principal, "handbook", document_id)
    assert (stored.status, stored.chunk_count) == ("indexed", expected)
    container.close()
