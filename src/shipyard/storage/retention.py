"""Queries behind retention: find expired runs and documents, and purge one batch of them.

Every purge is a conditional UPDATE (``purged_at IS NULL`` for runs, ``status`` not yet
``purged`` for documents), re-checking the cut-off too, so two purges running at once never
purge a row twice: the second finds the row taken and its UPDATE skips it. Platform-level on
purpose (the purge serves every tenant); callers audit each batch per tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.orm import Session

from shipyard.storage.tables import Collection, Document, Run, Tenant

PURGED = "purged"
# Documents in flight are left alone: a pending document has just been (re)submitted.
_NOT_PURGEABLE = (PURGED, "pending")
RETENTION_REASON_CODE = "retention"
RETENTION_REASON = "removed by the collection's retention policy"


# -- runs ----------------------------------------------------------------------------------
def _expired_run(task: str, cutoff: datetime) -> ColumnElement[bool]:
    return and_(Run.task == task, Run.created_at < cutoff, Run.purged_at.is_(None))


def tenant_ids(session: Session) -> list[str]:
    return [
        str(tenant_id)
        for tenant_id in session.execute(select(Tenant.id).order_by(Tenant.id)).scalars()
    ]


def expired_run_ids(
    session: Session, tenant_id: str, task: str, cutoff: datetime, limit: int
) -> list[str]:
    """Ids of up to ``limit`` of a tenant's runs of ``task`` created before ``cutoff`` and not
    yet purged, oldest first (the partial index ``ix_runs_unpurged`` serves it)."""
    rows = session.execute(
        select(Run.id)
        .where(Run.tenant_id == tenant_id, _expired_run(task, cutoff))
        .order_by(Run.created_at, Run.id)
        .limit(limit)
    ).scalars()
    return list(rows)


def count_expired_runs(session: Session, task: str, cutoff: datetime) -> dict[str, int]:
    """Expired, unpurged runs of ``task`` per tenant id (a dry run)."""
    rows = session.execute(
        select(Run.tenant_id, func.count())
        .where(_expired_run(task, cutoff))
        .group_by(Run.tenant_id)
    ).all()
    return {str(tenant_id): int(count) for tenant_id, count in rows}


def purge_runs(
    session: Session, tenant_id: str, task: str, ids: Sequence[str], cutoff: datetime, now: datetime
) -> list[str]:
    """Empty the input, output, error and sealed PII originals of those runs that are still
    expired and unpurged; return the ids of the runs this call purged."""
    if not ids:
        return []
    result = session.execute(
        update(Run)
        .where(Run.tenant_id == tenant_id, Run.id.in_(list(ids)), _expired_run(task, cutoff))
        .values(input={}, output=None, error=None, pii_vault=None, purged_at=now)
        .returning(Run.id)
        .execution_options(synchronize_session=False)
    )
    return [str(run_id) for run_id in result.scalars()]


# -- documents -----------------------------------------------------------------------------
def collections_with_retention(session: Session) -> list[Collection]:
    """Every tenant's collections that have a retention period."""
    return list(
        session.execute(
            select(Collection)
            .where(Collection.retention_days.is_not(None))
            .order_by(Collection.tenant_id, Collection.name)
        ).scalars()
    )


def _expired_document(collection: Collection, cutoff: datetime) -> ColumnElement[bool]:
    # The age of a document is that of its indexed content, or of the row if never indexed.
    return and_(
        Document.tenant_id == collection.tenant_id,
        Document.collection_id == collection.id,
        Document.status.not_in(_NOT_PURGEABLE),
        func.coalesce(Document.indexed_at, Document.created_at) < cutoff,
    )


def expired_document_ids(
    session: Session, collection: Collection, cutoff: datetime, limit: int
) -> list[str]:
    rows = session.execute(
        select(Document.id)
        .where(_expired_document(collection, cutoff))
        .order_by(Document.id)
        .limit(limit)
    ).scalars()
    return list(rows)


def count_expired_documents(session: Session, collection: Collection, cutoff: datetime) -> int:
    return int(
        session.execute(
            select(func.count()).where(_expired_document(collection, cutoff))
        ).scalar_one()
    )


def tombstone_documents(
    session: Session, collection: Collection, ids: Sequence[str], cutoff: datetime, now: datetime
) -> list[tuple[str, str]]:
    """Turn those documents that are still expired into tombstones: status ``purged``, no
    text-derived title, metadata or flags (id, source, content hash, size, groups and the
    timestamps stay). The UPDATE also locks the rows, so an indexing transaction cannot slip
    chunks in before the caller deletes them. Returns (document id, content hash) of each."""
    if not ids:
        return []
    values: dict[Any, Any] = {
        Document.status: PURGED,
        Document.title: Document.source,
        Document.meta: {},
        Document.flags: [],
        Document.chunk_count: 0,
        Document.reason_code: RETENTION_REASON_CODE,
        Document.reason: RETENTION_REASON,
        Document.updated_at: now,
    }
    result = session.execute(
        update(Document)
        .where(Document.id.in_(list(ids)), _expired_document(collection, cutoff))
        .values(values)
        .returning(Document.id, Document.content_sha256)
        .execution_options(synchronize_session=False)
    )
    return [(str(document_id), str(digest)) for document_id, digest in result.all()]


def tenant_slugs(session: Session, tenant_ids: set[str]) -> dict[str, str]:
    if not tenant_ids:
        return {}
    rows = session.execute(select(Tenant.id, Tenant.slug).where(Tenant.id.in_(tenant_ids))).all()
    return {str(tenant_id): str(slug) for tenant_id, slug in rows}
