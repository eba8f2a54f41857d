"""Retention: purge runs and knowledge documents older than their task's or collection's
``retention_days``.

A purged run keeps its row (id, task, status, tokens, timestamps) but loses its input, output
and error; ``purged_at`` says when. A purged document becomes a tombstone (status ``purged``):
its chunks and vectors leave the index, its stored upload is deleted once no other live
document of the tenant uses the same bytes, and its text-derived title, metadata and flags are
cleared; id, source, content hash, size, groups and timestamps stay.

Work is done in batches (``batch_size`` rows per transaction, so a large backlog never holds a
long lock). Each batch appends one ``retention.purged`` audit event per tenant in the same
transaction as the change, naming the task or collection, the count, the cut-off and a SHA-256
of the sorted ids. The chain stays verifiable: ``run.created`` events hold only a hash of the
input, never the payload retention deletes. Safe to run in several processes at once: every
purge is a conditional update, so a row is purged (and counted) exactly once.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.orm import Session

from shipyard.errors import FieldProblem, InvalidInput
from shipyard.governance import audit
from shipyard.knowledge.blobs import BlobStore
from shipyard.knowledge.index import KnowledgeIndex
from shipyard.spec import Project
from shipyard.storage import retention as store
from shipyard.storage.db import SessionFactory
from shipyard.storage.knowledge_repositories import drop_unreferenced_blobs
from shipyard.storage.tables import Collection

log = logging.getLogger("shipyard.retention")

ACTOR = "system:retention"
ACTION = "retention.purged"
BATCH_SIZE = 500
MAX_RETENTION_DAYS = 36_500  # a hundred years: beyond that, keep forever (None)


def check_retention_days(days: int | None, where: str = "retention_days") -> int | None:
    """A retention period in days (at least 1), or None for keeping forever."""
    if days is not None and (isinstance(days, bool) or not 1 <= days <= MAX_RETENTION_DAYS):
        raise InvalidInput(
            "invalid retention period",
            [FieldProblem(where, f"whole days from 1 to {MAX_RETENTION_DAYS}, or null")],
        )
    return days


@dataclass(frozen=True)
class PurgeItem:
    """What was (or, in a dry run, would be) purged for one task or collection and tenant."""

    kind: Literal["runs", "documents"]
    target: str  # the task name or the collection name
    tenant_id: str
    tenant: str  # the tenant's slug
    retention_days: int
    cutoff: datetime
    count: int


@dataclass(frozen=True)
class PurgeReport:
    dry_run: bool
    started_at: datetime
    items: list[PurgeItem] = field(default_factory=list)
    # Tasks or collections whose purge failed; the others were still purged.
    failed: list[str] = field(default_factory=list)

    def total(self, kind: Literal["runs", "documents"]) -> int:
        return sum(item.count for item in self.items if item.kind == kind)


def ids_digest(ids: Sequence[str]) -> str:
    """SHA-256 (hex) of the sorted ids, one per line: what a batch's audit event records."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


class RetentionService:
    def __init__(
        self,
        sessions: SessionFactory,
        project: Project,
        index: KnowledgeIndex,
        blobs: BlobStore,
        *,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._sessions = sessions
        self._project = project
        self._index = index
        self._blobs = blobs
        self._batch_size = batch_size

    def purge(self, *, dry_run: bool = False, now: datetime | None = None) -> PurgeReport:
        """Purge everything past its retention (``dry_run``: only count it)."""
        now = now or datetime.now(UTC)
        counts: dict[tuple[str, str, str], int] = defaultdict(int)
        policies: dict[tuple[str, str], tuple[int, datetime]] = {}
        failed: list[str] = []
        for task in sorted(self._project.tasks.values(), key=lambda t: t.name):
            if task.retention_days is None:
                continue
            # One failing task must not keep every later task and collection from purging.
            try:
                cutoff = now - timedelta(days=task.retention_days)
                policies[("runs", task.name)] = (task.retention_days, cutoff)
                found = (
                    self._count_runs(task.name, cutoff)
                    if dry_run
                    else self._runs(task.name, cutoff)
                )
            except Exception:
                log.exception("retention purge failed", extra={"task": task.name})
                failed.append(f"task {task.name}")
                continue
            for tenant_id, count in found.items():
                counts[("runs", task.name, tenant_id)] += count
        with self._sessions() as session:
            collections = store.collections_with_retention(session)
        for collection in collections:
            days = collection.retention_days or 0
            try:
                cutoff = now - timedelta(days=days)
                policies[("documents", collection.id)] = (days, cutoff)
                count = (
                    self._count_documents(collection, cutoff)
                    if dry_run
                    else self._documents(collection, cutoff)
                )
            except Exception:
                log.exception("retention purge failed", extra={"collection_id": collection.id})
                failed.append(f"collection {collection.id}")
                continue
            if count:
                counts[("documents", collection.id, collection.tenant_id)] += count
        report = self._report(dry_run, now, counts, policies, {c.id: c.name for c in collections})
        return replace(report, failed=failed)

    # -- runs ----------------------------------------------------------------------------
    def _count_runs(self, task: str, cutoff: datetime) -> dict[str, int]:
        with self._sessions() as session:
            return store.count_expired_runs(session, task, cutoff)

    def _runs(self, task: str, cutoff: datetime) -> dict[str, int]:
        with self._sessions() as session:
            tenants = store.tenant_ids(session)
        purged: dict[str, int] = {}
        for tenant_id in tenants:
            count = self._tenant_runs(tenant_id, task, cutoff)
            if count:
                purged[tenant_id] = count
        return purged

    def _tenant_runs(self, tenant_id: str, task: str, cutoff: datetime) -> int:
        total = 0
        while True:
            with self._sessions.begin() as session:
                ids = store.expired_run_ids(session, tenant_id, task, cutoff, self._batch_size)
                if not ids:
                    return total
                # Another purge may have taken some of these meanwhile: only what this
                # UPDATE changed is counted and audited.
                now = datetime.now(UTC)
                done = store.purge_runs(session, tenant_id, task, ids, cutoff, now)
                if done:
                    self._audit(session, tenant_id, "task", task, {"task": task}, done, cutoff)
            total += len(done)
            log.info("runs purged", extra={"task": task, "count": len(done)})

    # -- documents -----------------------------------------------------------------------
    def _count_documents(self, collection: Collection, cutoff: datetime) -> int:
        with self._sessions() as session:
            return store.count_expired_documents(session, collection, cutoff)

    def _documents(self, collection: Collection, cutoff: datetime) -> int:
        total = 0
        while True:
            with self._sessions.begin() as session:
                ids = store.expired_document_ids(session, collection, cutoff, self._batch_size)
                if not ids:
                    break
                now = datetime.now(UTC)
                done = store.tombstone_documents(session, collection, ids, cutoff, now)
                for document_id, _digest in done:
                    self._index.delete_document(session, collection.tenant_id, document_id)
                if done:
                    self._audit(
                        session,
                        collection.tenant_id,
                        "collection",
                        collection.id,
                        {"collection": collection.name},
                        [document_id for document_id, _ in done],
                        cutoff,
                    )
            # After the commit: a crash in between leaves an orphan file, never a live
            # document without its upload. Bytes another live document shares are kept.
            digests = {digest for _, digest in done}
            drop_unreferenced_blobs(self._sessions, self._blobs, collection.tenant_id, digests)
            total += len(done)
            log.info("documents purged", extra={"collection": collection.id, "count": len(done)})
        return total

    # -- shared --------------------------------------------------------------------------
    @staticmethod
    def _audit(
        session: Session,
        tenant_id: str,
        subject_type: str,
        subject_id: str,
        target: dict[str, str],
        ids: list[str],
        cutoff: datetime,
    ) -> None:
        audit.append(
            session,
            actor=ACTOR,
            action=ACTION,
            subject_type=subject_type,
            subject_id=subject_id,
            tenant_id=tenant_id,
            data={
                **target,
                "count": len(ids),
                "cutoff": cutoff.isoformat(),
                "ids_sha256": ids_digest(ids),
            },
        )

    def _report(
        self,
        dry_run: bool,
        now: datetime,
        counts: dict[tuple[str, str, str], int],
        policies: dict[tuple[str, str], tuple[int, datetime]],
        collection_names: dict[str, str],
    ) -> PurgeReport:
        with self._sessions() as session:
            slugs = store.tenant_slugs(session, {tenant for _, _, tenant in counts})
        items = []
        for (kind, target, tenant_id), count in sorted(counts.items()):
            days, cutoff = policies[(kind, target)]
            items.append(
                PurgeItem(
                    "runs" if kind == "runs" else "documents",
                    collection_names.get(target, target) if kind == "documents" else target,
                    tenant_id,
                    slugs.get(tenant_id, tenant_id),
                    days,
                    cutoff,
                    count,
                )
            )
        return PurgeReport(dry_run, now, items)
