"""Accept documents durably, then parse, chunk, embed and index each one exactly once.

``submit`` stores every upload (raw bytes on disk, a ``pending`` document row, a job row) in
one transaction before anything is dispatched, so nothing accepted is lost when a process
dies. ``process`` is idempotent: it indexes a document only while the row is still pending
with the content it read, so a redelivered or duplicated message is a no-op and a document's
chunks are replaced in the same transaction that marks it indexed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shipyard.access.principal import Principal
from shipyard.access.roles import Operation, authorize
from shipyard.errors import Conflict, FieldProblem, InvalidInput, NotFound
from shipyard.governance import audit
from shipyard.knowledge.blobs import BlobStore, sha256_hex
from shipyard.knowledge.chunking import ChunkingOptions, chunk_document
from shipyard.knowledge.groups import normalise_groups
from shipyard.knowledge.index import KnowledgeIndex
from shipyard.knowledge.injection import looks_like_injection
from shipyard.knowledge.parsing import ParseLimits, parse_document
from shipyard.knowledge.types import DocumentRef, DocumentRejected
from shipyard.observability.metrics import Metrics
from shipyard.storage.db import SessionFactory
from shipyard.storage.knowledge_repositories import (
    CollectionRepository,
    DocumentRepository,
    JobRepository,
    drop_unreferenced_blobs,
)
from shipyard.storage.tables import Document, Job

log = logging.getLogger("shipyard.ingestion")

MAX_SOURCE_CHARS = 500
FINAL_STATUSES = frozenset({"indexed", "rejected"})
# Rejections that say nothing about the file itself: sending the same bytes again retries.
TRANSIENT_REJECTIONS = frozenset({"failed", "lost", "gave_up"})
MAX_ATTEMPTS = 10
"""Processing starts per document before it is given up: a file that kills the worker
process (parser crash, out of memory) would otherwise be redelivered forever. Duplicate
deliveries (a worker restart re-publishes pending work) also count, hence the headroom."""


class Encoder(Protocol):
    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


Dispatch = Callable[[str, Sequence[tuple[str, str]]], None]
"""Hands (tenant_id, document_id) pairs of a committed job to a job runner."""


@dataclass(frozen=True)
class Upload:
    source: str  # file name or the caller's own key; identifies the document on re-ingest
    content: bytes
    media_type: str | None = None
    title: str | None = None
    groups: frozenset[str] = frozenset()
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Accepted:
    """What happened to one upload at submission."""

    source: str
    status: str  # queued, unchanged, duplicate, regrouped, rejected
    document_id: str | None
    reason: str | None = None


@dataclass(frozen=True)
class JobView:
    job: Job
    counts: dict[str, int]

    @property
    def processed(self) -> int:
        return sum(self.counts.get(status, 0) for status in FINAL_STATUSES)

    @property
    def status(self) -> str:
        if self.job.status in ("done", "failed"):
            return self.job.status
        if self.counts.get("pending", 0) == 0:
            return "done"
        return "running" if self.processed else "queued"


def _now() -> datetime:
    return datetime.now(UTC)


def check_source(source: str, where: str) -> str:
    source = source.strip()
    if not source or len(source) > MAX_SOURCE_CHARS or any(ord(c) < 32 for c in source):
        raise InvalidInput(
            "invalid document source",
            [FieldProblem(where, f"1-{MAX_SOURCE_CHARS} printable characters")],
        )
    return source


class IngestionService:
    def __init__(
        self,
        sessions: SessionFactory,
        index: KnowledgeIndex,
        blobs: BlobStore,
        encoder: Callable[[], Encoder],
        *,
        max_document_bytes: int,
        metrics: Metrics | None = None,
        chunking: ChunkingOptions | None = None,
    ) -> None:
        self._sessions = sessions
        self._index = index
        self._blobs = blobs
        self._encoder = encoder
        self._limits = ParseLimits(max_bytes=max_document_bytes)
        self._chunking = chunking or ChunkingOptions()
        self._metrics = metrics
        self.dispatch: Dispatch | None = None  # set by the job runner at start-up

    # -- submission ----------------------------------------------------------------------
    def submit(
        self,
        principal: Principal,
        collection: str,
        uploads: Sequence[Upload],
        *,
        field: str = "documents",
    ) -> tuple[JobView, list[Accepted]]:
        """Accept uploads durably; ``field`` names them in error messages (``files``)."""
        authorize(principal.roles, Operation.KNOWLEDGE_WRITE)
        if not uploads:
            raise InvalidInput("no documents", [FieldProblem("documents", "send at least one")])
        seen: set[str] = set()
        for position, upload in enumerate(uploads):
            where = f"{field}[{position}]"
            source = check_source(upload.source, f"{where}.source")
            if source in seen:
                raise InvalidInput(
                    "duplicate source in one request",
                    [FieldProblem(f"{where}.source", f"{source!r} appears twice")],
                )
            seen.add(source)
            normalise_groups(upload.groups, f"{where}.groups")
        job_id = str(uuid.uuid4())
        queued: list[tuple[str, str]] = []
        results: list[Accepted] = []
        replaced: set[str] = set()  # content hashes a changed document no longer uses
        try:
            job = self._commit(principal, collection, uploads, job_id, queued, results, replaced)
        except IntegrityError:
            # Another request added the same new source at the same moment.
            raise Conflict(
                "another upload of the same document is being accepted; send it again"
            ) from None
        # A delete or purge of a document with the same bytes may have removed the file
        # between our write and our commit; now that our rows refer to it, it stays (blobs.py).
        for upload, result in zip(uploads, results, strict=True):
            if result.status == "queued":
                self._blobs.put(principal.tenant_id, upload.content)
        drop_unreferenced_blobs(self._sessions, self._blobs, principal.tenant_id, replaced)
        if queued and self.dispatch is not None:
            try:
                self.dispatch(job_id, queued)
            except Exception:
                # Accepted work is committed; a runner that cannot take it now leaves the
                # documents pending, and they are resumed at the next runner or worker start.
                log.exception("dispatch failed; documents stay pending", extra={"job_id": job_id})
        return JobView(job, {"pending": len(queued)} if queued else {}), results

    def _commit(
        self,
        principal: Principal,
        collection: str,
        uploads: Sequence[Upload],
        job_id: str,
        queued: list[tuple[str, str]],
        results: list[Accepted],
        replaced: set[str],
    ) -> Job:
        with self._sessions.begin() as session:
            found = CollectionRepository(session, principal.tenant_id).named(collection)
            documents = DocumentRepository(session, principal.tenant_id)
            for upload in uploads:
                result = self._accept(
                    session, documents, found.id, job_id, principal, upload, replaced
                )
                results.append(result)
                if result.status == "queued" and result.document_id:
                    queued.append((principal.tenant_id, result.document_id))
            now = _now()
            job = Job(
                id=job_id,
                tenant_id=principal.tenant_id,
                type="ingest",
                status="queued" if queued else "done",
                total=len(queued),
                created_by=principal.actor,
                detail={
                    "collection": collection,
                    "submitted": len(uploads),
                    "outcomes": _tally(results),
                },
                created_at=now,
                updated_at=now,
                finished_at=None if queued else now,
            )
            JobRepository(session, principal.tenant_id).add(job)
            audit.append(
                session,
                actor=principal.actor,
                action="job.created",
                subject_type="job",
                subject_id=job_id,
                tenant_id=principal.tenant_id,
                data={"type": "ingest", "collection": collection, "outcomes": _tally(results)},
            )
        return job

    def _accept(
        self,
        session: Session,
        documents: DocumentRepository,
        collection_id: str,
        job_id: str,
        principal: Principal,
        upload: Upload,
        replaced: set[str],
    ) -> Accepted:
        source = upload.source.strip()
        groups = normalise_groups(upload.groups)
        digest = sha256_hex(upload.content)
        existing = documents.by_source(collection_id, source)
        # A transient rejection is retried; a retention tombstone is ingested afresh.
        retry = existing is not None and (
            existing.reason_code in TRANSIENT_REJECTIONS or existing.status == "purged"
        )
        if existing is not None and existing.content_sha256 == digest and not retry:
            same_groups = sorted(existing.groups) == sorted(groups)
            if existing.status == "pending" and same_groups:
                # Sending it again is how a caller nudges work a runner never took.
                existing.job_id, existing.updated_at = job_id, _now()
                return Accepted(source, "queued", existing.id)
            if existing.status == "rejected" or same_groups:
                return Accepted(source, "unchanged", existing.id, existing.reason)
            existing.groups = sorted(groups)
            existing.updated_at = _now()
            self._index.set_groups(session, _ref(existing))
            return Accepted(source, "regrouped", existing.id)
        if existing is None:
            twin = documents.by_content(collection_id, digest)
            if twin is not None:
                return Accepted(source, "duplicate", twin.id, f"same content as {twin.source!r}")
        if existing is not None:
            replaced.add(existing.content_sha256)
        too_large = len(upload.content) > self._limits.max_bytes
        if not too_large:
            self._blobs.put(principal.tenant_id, upload.content)
        now = _now()
        document = existing or Document(
            id=str(uuid.uuid4()),
            tenant_id=principal.tenant_id,
            collection_id=collection_id,
            source=source,
            created_at=now,
            chunk_count=0,
            flags=[],
        )
        document.title = _printable(upload.title or source)[:500]
        document.media_type = _media_type(upload.media_type)
        document.content_sha256 = digest
        document.size_bytes = len(upload.content)
        if existing is not None and sorted(existing.groups) != sorted(groups):
            # The old chunks stay searchable until the new ones replace them: they must
            # already obey the new groups.
            document.groups = sorted(groups)
            self._index.set_groups(session, _ref(document))
        document.groups = sorted(groups)
        document.meta = dict(upload.metadata)
        document.job_id = job_id
        document.attempts = 0
        document.updated_at = now
        if too_large:
            # Refused at the door: the bytes are not kept, the row says why.
            document.status, document.reason_code = "rejected", "too_large"
            document.reason = f"{len(upload.content)} bytes; the limit is {self._limits.max_bytes}"
        else:
            document.status, document.reason_code, document.reason = "pending", None, None
        if existing is None:
            documents.add(document)
        if too_large:
            self._index.delete_document(session, principal.tenant_id, document.id)
            return Accepted(source, "rejected", document.id, document.reason)
        return Accepted(source, "queued", document.id)

    # -- processing ----------------------------------------------------------------------
    def process(self, tenant_id: str, document_id: str) -> str:
        """Index one accepted document; return its final status. Safe to call any number of
        times, concurrently too: only the first call that finds it pending changes anything."""
        with self._sessions() as session:
            document = DocumentRepository(session, tenant_id).get(document_id)
            if document is None:
                return "gone"  # deleted after it was queued
            if document.status != "pending":
                return document.status
            digest, title = document.content_sha256, document.title
            source, declared = document.source, document.media_type
            ref = _ref(document)
        attempts = self._count_attempt(ref, digest)
        if attempts > MAX_ATTEMPTS:
            reason = f"processing did not finish in {MAX_ATTEMPTS} attempts"
            return self._finish_rejected(ref, digest, "gave_up", reason)
        started = time.perf_counter()
        try:
            content = self._blobs.get(tenant_id, digest)
            parsed = parse_document(source, content, declared_type=declared, limits=self._limits)
            chunks = chunk_document(parsed, self._chunking)
            if not chunks:
                raise DocumentRejected("empty", "no text to index")
            # The title leads every chunk's embedding: passages often omit their subject.
            vectors = self._encoder().encode([f"{parsed.title}\n{c.text}" for c in chunks])
        except DocumentRejected as rejected:
            return self._finish_rejected(ref, digest, rejected.code, rejected.reason)
        except FileNotFoundError:
            return self._finish_rejected(ref, digest, "lost", "the stored upload is missing")
        except Exception as exc:  # a parser bug must not wedge the queue on one file
            log.exception("document processing failed", extra={"document_id": document_id})
            reason = f"internal error while processing ({type(exc).__name__})"
            return self._finish_rejected(ref, digest, "failed", reason)
        flags = ["injection"] if any(looks_like_injection(c.text) for c in chunks) else []
        with self._sessions.begin() as session:
            if not _claim(session, ref, digest):
                return "skipped"
            # Re-read under the claim: the groups may have changed while we parsed.
            current = DocumentRepository(session, tenant_id).get(document_id)
            if current is None:
                return "gone"
            self._index.replace_document(session, _ref(current), chunks, vectors)
            session.execute(
                update(Document)
                .where(Document.id == ref.document_id, Document.tenant_id == tenant_id)
                .values(
                    status="indexed",
                    chunk_count=len(chunks),
                    flags=flags,
                    media_type=parsed.media_type,
                    title=_printable(title if title != source else parsed.title)[:500],
                    indexed_at=_now(),
                    updated_at=_now(),
                )
            )
        if self._metrics is not None:
            self._metrics.documents.labels("indexed").inc()
            self._metrics.chunks.inc(len(chunks))
            self._metrics.ingest_latency.observe(time.perf_counter() - started)
        log.info(
            "document indexed",
            extra={
                "document_id": ref.document_id,
                "chunks": len(chunks),
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        self._maybe_finish_job(tenant_id, document_id)
        return "indexed"

    def _count_attempt(self, ref: DocumentRef, digest: str) -> int:
        """Record that processing starts, committed before the work, so a crash counts."""
        with self._sessions.begin() as session:
            session.execute(
                update(Document)
                .where(
                    Document.id == ref.document_id,
                    Document.tenant_id == ref.tenant_id,
                    Document.status == "pending",
                    Document.content_sha256 == digest,
                )
                .values(attempts=Document.attempts + 1)
            )
            current = DocumentRepository(session, ref.tenant_id).get(ref.document_id)
            return current.attempts if current is not None else 0

    def _finish_rejected(self, ref: DocumentRef, digest: str, code: str, reason: str) -> str:
        with self._sessions.begin() as session:
            if not _claim(session, ref, digest):
                return "skipped"
            # A changed document that no longer parses must not keep serving its old text.
            self._index.delete_document(session, ref.tenant_id, ref.document_id)
            session.execute(
                update(Document)
                .where(Document.id == ref.document_id, Document.tenant_id == ref.tenant_id)
                .values(
                    status="rejected",
                    reason_code=code,
                    reason=reason[:500],
                    chunk_count=0,
                    updated_at=_now(),
                )
            )
        if self._metrics is not None:
            self._metrics.documents.labels("rejected").inc()
        log.info("document rejected", extra={"document_id": ref.document_id, "code": code})
        self._maybe_finish_job(ref.tenant_id, ref.document_id)
        return "rejected"

    def _maybe_finish_job(self, tenant_id: str, document_id: str) -> None:
        with self._sessions.begin() as session:
            document = DocumentRepository(session, tenant_id).get(document_id)
            if document is None or document.job_id is None:
                return
            jobs = JobRepository(session, tenant_id)
            job = jobs.get(document.job_id)
            if job is None or job.status == "done":
                return
            counts = jobs.document_counts(job.id)
            now = _now()
            job.status = "running" if counts.get("pending", 0) else "done"
            job.updated_at = now
            if job.status == "done":
                job.finished_at = now

    # -- jobs ----------------------------------------------------------------------------
    def job(self, principal: Principal, job_id: str) -> JobView:
        authorize(principal.roles, Operation.JOB_READ)
        with self._sessions() as session:
            jobs = JobRepository(session, principal.tenant_id)
            job = jobs.get(job_id)
            if job is None:
                raise NotFound(f"no job {job_id!r}")
            return JobView(job, jobs.document_counts(job_id))

    def jobs(self, principal: Principal, limit: int = 20) -> list[JobView]:
        authorize(principal.roles, Operation.JOB_READ)
        with self._sessions() as session:
            jobs = JobRepository(session, principal.tenant_id)
            return [JobView(job, jobs.document_counts(job.id)) for job in jobs.recent(limit)]


def _ref(document: Document) -> DocumentRef:
    return DocumentRef(
        document.tenant_id, document.collection_id, document.id, frozenset(document.groups)
    )


def _claim(session: Session, ref: DocumentRef, digest: str) -> bool:
    """Take the document for this transaction if it is still pending with the same content.

    The UPDATE takes the row lock (PostgreSQL) or the write lock (SQLite) first, so of two
    workers holding the same message only one gets ``True``; the other sees zero rows."""
    result = session.execute(
        update(Document)
        .where(
            Document.id == ref.document_id,
            Document.tenant_id == ref.tenant_id,
            Document.status == "pending",
            Document.content_sha256 == digest,
        )
        .values(updated_at=_now())
    )
    return bool(getattr(result, "rowcount", 0))


def _media_type(declared: str | None) -> str | None:
    """The bare declared type (``text/html; charset=...`` -> ``text/html``), bounded."""
    if not declared:
        return None
    bare = declared.split(";", 1)[0].strip().lower()
    return bare[:100] if bare and bare.isprintable() else None


def _printable(text: str) -> str:
    """Control characters (NUL above all: PostgreSQL refuses it) have no place in a title."""
    return "".join(char if char >= " " else " " for char in text).strip() or "untitled"


def _tally(results: Sequence[Accepted]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return counts
