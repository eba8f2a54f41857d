"""Retention purges exactly the runs and documents past their period, on SQLite and
PostgreSQL (pgvector): old run payloads are emptied, old documents become tombstones without
chunks, vectors or stored upload; recent data, other tasks, collections and tenants stay
untouched; every batch is audited and the chain still verifies; a second purge does nothing.

Data is written through the services, then its timestamps are moved back with an UPDATE.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from shipyard.access.principal import Principal
from shipyard.access.roles import Role
from shipyard.api.app import create_app
from shipyard.bootstrap import Container
from shipyard.errors import InvalidInput
from shipyard.jobs.periodic import PeriodicJob
from shipyard.jobs.retention import make_retention_scheduler
from shipyard.knowledge.blobs import sha256_hex
from shipyard.services.ingestion import Upload
from shipyard.services.retention import PurgeReport, RetentionService, ids_digest
from shipyard.settings import Settings
from shipyard.storage.tables import AuditEvent, AuditHead, Document, Run
from tests.conftest import ASK_SPEC, make_container, new_admin

DAYS = 30
OLD = timedelta(days=DAYS + 10)
SECRET_WORD = "quokkaberry"  # only in the document that expires
KEPT_WORD = "marmotfield"  # only in the recent document
SHARED_TEXT = "# Parking\n\nVisitors park on level two; the gate code changes every Monday."


def write_retention_project(source: Path, target: Path) -> Path:
    """The tiny project, with ``ask`` keeping runs DAYS days and ``ask-keep`` forever."""
    shutil.copytree(source, target)
    with (target / "tasks" / "ask.yaml").open("a") as spec:
        spec.write(f"retention_days: {DAYS}\n")
    (target / "tasks" / "ask-keep.yaml").write_text(ASK_SPEC.replace("name: ask", "name: ask-keep"))
    return target


@pytest.fixture(scope="module")
def container(
    backend: str,
    tiny_project: Path,
    fresh_database: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Container]:
    project = write_retention_project(
        tiny_project, tmp_path_factory.mktemp(f"retention-{backend}") / "project"
    )
    built = make_container(project, tmp_path_factory.mktemp("state"), fresh_database(backend))
    yield built
    built.close()


def make_runs(container: Container, principal: Principal, task: str, count: int) -> list[Run]:
    return [
        container.runs.create(principal, task, {"question": f"{task} question {n} {uuid.uuid4()}"})
        for n in range(count)
    ]


def age_runs(container: Container, runs: list[Run]) -> None:
    with container.sessions.begin() as session:
        session.execute(
            update(Run)
            .where(Run.id.in_([run.id for run in runs]))
            .values(created_at=datetime.now(UTC) - OLD)
        )


def ingest(
    container: Container, principal: Principal, collection: str, docs: dict[str, str]
) -> dict[str, str]:
    """Submit and index documents; return source -> document id."""
    uploads = [
        Upload(source, text.encode(), "text/markdown", metadata={"author": "ann", "note": text})
        for source, text in docs.items()
    ]
    _job, accepted = container.ingestion.submit(principal, collection, uploads)
    ids = {}
    for item in accepted:
        assert item.status == "queued", item
        assert item.document_id is not None
        assert container.ingestion.process(principal.tenant_id, item.document_id) == "indexed"
        ids[item.source] = item.document_id
    return ids


def age_documents(container: Container, ids: list[str]) -> None:
    old = datetime.now(UTC) - OLD
    with container.sessions.begin() as session:
        session.execute(
            update(Document).where(Document.id.in_(ids)).values(created_at=old, indexed_at=old)
        )


def load_runs(container: Container, ids: list[str]) -> dict[str, Run]:
    with container.sessions() as session:
        return {r.id: r for r in session.execute(select(Run).where(Run.id.in_(ids))).scalars()}


def load_documents(container: Container, ids: list[str]) -> dict[str, Document]:
    with container.sessions() as session:
        rows = session.execute(select(Document).where(Document.id.in_(ids))).scalars()
        return {d.id: d for d in rows}


def retention_events(container: Container, after_seq: int = 0) -> list[AuditEvent]:
    with container.sessions() as session:
        return list(
            session.execute(
                select(AuditEvent)
                .where(AuditEvent.action == "retention.purged", AuditEvent.seq > after_seq)
                .order_by(AuditEvent.seq)
            ).scalars()
        )


def head_seq(container: Container) -> int:
    with container.sessions() as session:
        return int(session.execute(select(AuditHead.seq)).scalar_one())


def counts(report: PurgeReport) -> dict[tuple[str, str, str], int]:
    return {(item.kind, item.target, item.tenant): item.count for item in report.items}


def searchable(container: Container, principal: Principal, collection: str, word: str) -> bool:
    passages = container.knowledge.search(principal, [collection], word, k=10, mode="keyword")
    return any(word in passage.hit.text for passage in passages)


@dataclass
class Scenario:
    a: Principal
    b: Principal
    old_runs: list[Run]  # ask, tenants a (3) and b (2): purged
    recent_runs: list[Run]  # ask, tenant a: kept
    other_task_runs: list[Run]  # ask-keep, old: kept
    old_docs: dict[str, str]  # a/handbook (retention), old: purged
    recent_docs: dict[str, str]  # a/handbook, recent: kept
    keep_docs: dict[str, str]  # a/keep (no retention), old: kept; shares bytes with old_docs
    b_docs: dict[str, str]  # b/handbook (no retention), old: kept


@pytest.fixture(scope="module")
def scenario(container: Container) -> Scenario:
    a, b = new_admin(container), new_admin(container)
    old_runs = make_runs(container, a, "ask", 3) + make_runs(container, b, "ask", 2)
    recent_runs = make_runs(container, a, "ask", 2)
    other_task_runs = make_runs(container, a, "ask-keep", 2)
    age_runs(container, old_runs + other_task_runs)

    container.knowledge.create_collection(a, "handbook", retention_days=DAYS)
    container.knowledge.create_collection(a, "keep")
    container.knowledge.create_collection(b, "handbook")
    old_docs = ingest(
        container,
        a,
        "handbook",
        {
            "secret.md": f"# Secret\n\nThe {SECRET_WORD} budget is reviewed in March.",
            "parking.md": SHARED_TEXT,
            "old-notes.md": "# Notes\n\nThe canteen opens at eight and closes at three.",
        },
    )
    recent_docs = ingest(
        container, a, "handbook", {"recent.md": f"# Recent\n\nThe {KEPT_WORD} plan is new."}
    )
    keep_docs = ingest(container, a, "keep", {"parking-copy.md": SHARED_TEXT})
    b_docs = ingest(container, b, "handbook", {"b.md": f"# B\n\nTenant b {SECRET_WORD} notes."})
    age_documents(container, [*old_docs.values(), *keep_docs.values(), *b_docs.values()])
    return Scenario(
        a, b, old_runs, recent_runs, other_task_runs, old_docs, recent_docs, keep_docs, b_docs
    )


def test_purge_removes_exactly_what_expired(container: Container, scenario: Scenario) -> None:
    s = scenario
    originals = {run.id: dict(run.input) for run in s.old_runs}
    all_runs = [*s.old_runs, *s.recent_runs, *s.other_task_runs]
    all_docs = [*s.old_docs.values(), *s.recent_docs.values()]
    all_docs += [*s.keep_docs.values(), *s.b_docs.values()]
    before_runs = load_runs(container, [run.id for run in all_runs])
    before_docs = load_documents(container, all_docs)
    old_digests = {before_docs[i].content_sha256 for i in s.old_docs.values()}
    assert all(container.blobs.exists(s.a.tenant_id, digest) for digest in old_digests)
    assert searchable(container, s.a, "handbook", SECRET_WORD)
    service = RetentionService(
        container.sessions,
        container.project,
        container.knowledge_index,
        container.blobs,
        batch_size=2,
    )

    # A dry run counts and changes nothing.
    seq = head_seq(container)
    dry = service.purge(dry_run=True)
    expected = {
        ("runs", "ask", s.a.tenant_slug): 3,
        ("runs", "ask", s.b.tenant_slug): 2,
        ("documents", "handbook", s.a.tenant_slug): 3,
    }
    assert counts(dry) == expected
    assert dry.dry_run
    assert head_seq(container) == seq
    assert load_runs(container, list(originals))[s.old_runs[0].id].input == s.old_runs[0].input
    assert {d.status for d in load_documents(container, all_docs).values()} == {"indexed"}

    report = service.purge()

    assert counts(report) == expected
    assert report.total("runs") == 5
    assert report.total("documents") == 3
    runs = load_runs(container, [run.id for run in all_runs])
    for run in s.old_runs:
        purged = runs[run.id]
        assert purged.input == {}
        assert purged.output is None
        assert purged.error is None
        assert purged.purged_at is not None
        assert (purged.task, purged.status) == (run.task, run.status)  # the row stays
    for run in [*s.recent_runs, *s.other_task_runs]:
        kept = runs[run.id]
        assert kept.purged_at is None
        assert kept.input == before_runs[run.id].input
        assert kept.output == before_runs[run.id].output

    documents = load_documents(container, all_docs)
    for source, document_id in s.old_docs.items():
        tombstone, was = documents[document_id], before_docs[document_id]
        assert tombstone.status == "purged"
        assert (tombstone.id, tombstone.source) == (was.id, source)
        assert (tombstone.content_sha256, tombstone.size_bytes) == (
            was.content_sha256,
            was.size_bytes,
        )
        assert (tombstone.created_at, tombstone.indexed_at) == (was.created_at, was.indexed_at)
        assert tombstone.title == source
        assert tombstone.meta == {}
        assert tombstone.flags == []
        assert tombstone.chunk_count == 0
        with container.sessions() as session:
            assert container.knowledge_index.count_chunks(session, s.a.tenant_id, document_id) == 0
    for document_id in [*s.recent_docs.values(), *s.keep_docs.values(), *s.b_docs.values()]:
        kept = documents[document_id]
        assert kept.status == "indexed"
        assert kept.meta == before_docs[document_id].meta
        assert kept.chunk_count == before_docs[document_id].chunk_count > 0

    # Search never finds purged text; recent documents, other collections and tenants still do.
    assert not searchable(container, s.a, "handbook", SECRET_WORD)
    for mode in ("hybrid", "dense"):
        hits = container.knowledge.search(s.a, ["handbook"], f"{SECRET_WORD} budget", mode=mode)
        assert not set(s.old_docs.values()) & {p.hit.document_id for p in hits}
    assert searchable(container, s.a, "handbook", KEPT_WORD)
    assert searchable(container, s.a, "keep", "Visitors")
    assert searchable(container, s.b, "handbook", SECRET_WORD)

    # Stored uploads: gone, except bytes a live document of another collection shares.
    shared = sha256_hex(SHARED_TEXT.encode())
    for digest in old_digests - {shared}:
        assert not container.blobs.exists(s.a.tenant_id, digest)
    assert container.blobs.exists(s.a.tenant_id, shared)
    recent_digest = before_docs[s.recent_docs["recent.md"]].content_sha256
    assert container.blobs.exists(s.a.tenant_id, recent_digest)

    # Listing shows the tombstones.
    listed = container.knowledge.documents(s.a, "handbook", status="purged")
    assert {d.id for d in listed} == set(s.old_docs.values())
    assert container.knowledge.collection(s.a, "handbook").counts == {"purged": 3, "indexed": 1}

    # Audit: one event per tenant and batch, naming what and how many; the chain verifies.
    events = retention_events(container, seq)
    run_events = [e for e in events if e.subject_type == "task"]
    doc_events = [e for e in events if e.subject_type == "collection"]
    assert sum(e.data["count"] for e in run_events if e.tenant_id == s.a.tenant_id) == 3
    assert sum(e.data["count"] for e in run_events if e.tenant_id == s.b.tenant_id) == 2
    assert all(e.data["count"] <= 2 and e.subject_id == "ask" for e in run_events)
    assert sum(e.data["count"] for e in doc_events) == 3
    assert len(doc_events) == 2
    assert {e.tenant_id for e in doc_events} == {s.a.tenant_id}
    assert all(e.actor == "system:retention" and e.data["cutoff"] for e in events)
    # Batches are per tenant: a's three runs took two, b's two runs one. Each event hashes
    # the sorted ids of its batch.
    assert sorted(e.data["count"] for e in run_events if e.tenant_id == s.a.tenant_id) == [1, 2]
    b_ids = [run.id for run in s.old_runs if run.tenant_id == s.b.tenant_id]
    b_events = [e for e in run_events if e.tenant_id == s.b.tenant_id]
    assert [e.data["ids_sha256"] for e in b_events] == [ids_digest(b_ids)]
    verified = container.audit.verify()
    assert verified.ok, verified

    # The run.created event still identifies each purged run's original input.
    with container.sessions() as session:
        created = {
            e.subject_id: e.data["input_sha256"]
            for e in session.execute(
                select(AuditEvent).where(
                    AuditEvent.action == "run.created", AuditEvent.subject_id.in_(list(originals))
                )
            ).scalars()
        }
    for run_id, original in originals.items():
        digest = hashlib.sha256(
            json.dumps(original, sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
        assert created[run_id] == digest

    # Idempotent: a second purge finds nothing and audits nothing.
    seq = head_seq(container)
    again = service.purge()
    assert again.items == []
    assert head_seq(container) == seq


def test_purged_run_reads_through_the_api(container: Container, scenario: Scenario) -> None:
    container.retention.purge()
    _key, token = container.access.create_key(
        scenario.a.tenant_slug,
        name="reader",
        roles=frozenset({Role.ADMIN}),
        expires_at=None,
        actor="tests",
    )
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(container, load_models=False, run_jobs=False)) as client:
        purged = client.get(f"/v1/runs/{scenario.old_runs[0].id}", headers=headers)
        kept = client.get(f"/v1/runs/{scenario.recent_runs[0].id}", headers=headers)
        document_id = scenario.old_docs["secret.md"]
        document = client.get(f"/v1/collections/handbook/documents/{document_id}", headers=headers)

    assert purged.status_code == 200, purged.text
    body = purged.json()
    assert body["input"] == {}
    assert body["output"] is None
    assert body["purged_at"] is not None
    assert body["status"] == scenario.old_runs[0].status
    assert kept.json()["purged_at"] is None
    assert kept.json()["input"] != {}
    assert document.status_code == 200, document.text
    assert document.json()["status"] == "purged"
    assert document.json()["metadata"] == {}


def test_reingesting_a_purged_source_works(container: Container, scenario: Scenario) -> None:
    container.retention.purge()
    text = f"# Secret\n\nThe {SECRET_WORD} budget is reviewed in March."

    ids = ingest(container, scenario.a, "handbook", {"secret.md": text})

    assert ids["secret.md"] == scenario.old_docs["secret.md"]  # the same document, again live
    document = load_documents(container, [ids["secret.md"]])[ids["secret.md"]]
    assert document.status == "indexed"
    assert document.meta["author"] == "ann"
    assert container.blobs.exists(scenario.a.tenant_id, document.content_sha256)
    assert searchable(container, scenario.a, "handbook", SECRET_WORD)
    # Freshly indexed, so the next purge leaves it alone.
    assert counts(container.retention.purge(dry_run=True)) == {}


def test_concurrent_purges_purge_each_run_once(container: Container) -> None:
    principal = new_admin(container)
    runs = make_runs(container, principal, "ask", 6)
    age_runs(container, runs)
    seq = head_seq(container)
    services = [
        RetentionService(
            container.sessions,
            container.project,
            container.knowledge_index,
            container.blobs,
            batch_size=1,
        )
        for _ in range(2)
    ]
    reports: list[PurgeReport] = []
    errors: list[BaseException] = []

    def purge(service: RetentionService) -> None:
        try:
            reports.append(service.purge())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=purge, args=(service,)) for service in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    mine = [i for r in reports for i in r.items if i.tenant_id == principal.tenant_id]
    assert sum(item.count for item in mine) == 6
    events = [e for e in retention_events(container, seq) if e.tenant_id == principal.tenant_id]
    assert sum(e.data["count"] for e in events) == 6
    assert all(
        run.purged_at is not None for run in load_runs(container, [r.id for r in runs]).values()
    )
    assert container.audit.verify().ok


def test_collection_retention_is_validated_and_audited(container: Container) -> None:
    principal = new_admin(container)
    with pytest.raises(InvalidInput) as error:
        container.knowledge.create_collection(principal, "bad", retention_days=0)
    assert error.value.problems[0].field == "retention_days"

    created = container.knowledge.create_collection(principal, "notes", retention_days=7)
    changed = container.knowledge.set_retention(principal, "notes", None)

    assert created.retention_days == 7
    assert changed.collection.retention_days is None
    with container.sessions() as session:
        event = session.execute(
            select(AuditEvent).where(
                AuditEvent.action == "collection.retention_changed",
                AuditEvent.subject_id == created.id,
            )
        ).scalar_one()
    assert event.data == {"name": "notes", "before": 7, "after": None}


def test_collection_retention_over_the_api(container: Container) -> None:
    principal = new_admin(container)
    _key, token = container.access.create_key(
        principal.tenant_slug,
        name="operator",
        roles=frozenset({Role.OPERATOR}),
        expires_at=None,
        actor="tests",
    )
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(container, load_models=False, run_jobs=False)) as client:
        created = client.post(
            "/v1/collections", json={"name": "wiki", "retention_days": 90}, headers=headers
        )
        patched = client.patch("/v1/collections/wiki", json={"retention_days": 14}, headers=headers)
        got = client.get("/v1/collections/wiki", headers=headers)
        bad = client.patch("/v1/collections/wiki", json={"retention_days": 0}, headers=headers)
        missing = client.patch("/v1/collections/wiki", json={}, headers=headers)
        unknown = client.patch("/v1/collections/nope", json={"retention_days": 3}, headers=headers)
        cleared = client.patch(
            "/v1/collections/wiki", json={"retention_days": None}, headers=headers
        )

    assert created.status_code == 201
    assert created.json()["retention_days"] == 90
    assert patched.status_code == 200
    assert patched.json()["retention_days"] == 14
    assert got.json()["retention_days"] == 14
    for response in (bad, missing):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "retention_days" in response.text
    assert unknown.status_code == 404
    assert cleared.status_code == 200
    assert cleared.json()["retention_days"] is None


# -- scheduling ------------------------------------------------------------------------------
def test_scheduler_survives_a_failing_purge() -> None:
    def boom() -> PurgeReport:
        raise RuntimeError("database down")

    scheduler = PeriodicJob("retention", boom, interval=3600)

    assert scheduler.run_once() is None  # logged, not raised
    scheduler.start()
    scheduler.stop()  # the thread ends without ever having purged


def test_scheduler_is_off_for_celery_or_interval_zero(container: Container) -> None:
    settings = container.settings
    assert make_retention_scheduler(container) is not None
    for update_ in ({"retention_interval_seconds": 0}, {"jobs": "celery"}):
        container.settings = settings.model_copy(update=update_)
        try:
            assert make_retention_scheduler(container) is None
        finally:
            container.settings = settings


def test_celery_app_schedules_the_purge_task(tmp_path: Path) -> None:
    from shipyard.jobs.celery_app import RETENTION_TASK, make_celery

    settings = Settings(
        project_dir=tmp_path, broker_url="memory://", jobs="celery", retention_interval_seconds=600
    )
    app = make_celery(settings)
    try:
        assert RETENTION_TASK in app.tasks
        entry = app.conf.beat_schedule["shipyard-retention"]
        assert entry["task"] == RETENTION_TASK
        assert entry["schedule"] == 600.0
    finally:
        app.close()
    off = make_celery(settings.model_copy(update={"retention_interval_seconds": 0}))
    try:
        assert "shipyard-retention" not in off.conf.beat_schedule
    finally:
        off.close()


class _BrokenRunPurge(RetentionService):
    """A purge whose run step fails (a database error, say) for every task."""

    def _runs(self, task: str, cutoff: datetime) -> dict[str, int]:
        raise RuntimeError("simulated failure")


def test_one_failing_task_does_not_stop_the_other_purges(container: Container) -> None:
    principal = new_admin(container)
    runs = make_runs(container, principal, "ask", 2)
    age_runs(container, runs)
    container.knowledge.create_collection(principal, "isolated", retention_days=DAYS)
    ids = ingest(container, principal, "isolated", {"old.md": "# Old\n\nExpired notes."})
    age_documents(container, list(ids.values()))
    service = _BrokenRunPurge(
        container.sessions, container.project, container.knowledge_index, container.blobs
    )
    report = service.purge()
    assert report.failed == ["task ask"]
    assert load_documents(container, list(ids.values()))[ids["old.md"]].status == "purged"
    assert all(run.purged_at is None for run in load_runs(container, [r.id for r in runs]).values())
