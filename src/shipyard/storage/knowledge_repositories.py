"""Tenant-scoped repositories for collections, documents and jobs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session, sessionmaker

from shipyard import names
from shipyard.errors import NotFound
from shipyard.storage.tables import Collection, Document, Job

MAX_SCANNED_ROWS = 5_000
COLLECTION_NAME = names.COLLECTION_RE


class CollectionRepository:
    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def add(self, collection: Collection) -> None:
        if collection.tenant_id != self._tenant_id:
            raise ValueError("collection belongs to another tenant")
        self._session.add(collection)

    def by_name(self, name: str) -> Collection | None:
        if not COLLECTION_NAME.match(name):
            return None  # never stored; and PostgreSQL refuses some bytes (NUL) outright
        return self._session.execute(
            select(Collection).where(
                Collection.tenant_id == self._tenant_id, Collection.name == name
            )
        ).scalar_one_or_none()

    def named(self, name: str) -> Collection:
        """The collection called ``name``, or NotFound (as for any object of another tenant)."""
        found = self.by_name(name)
        if found is None:
            raise NotFound(f"no collection {name!r}")
        return found

    def by_names(self, names: Sequence[str]) -> dict[str, Collection]:
        valid = [name for name in names if COLLECTION_NAME.match(name)]
        rows = self._session.execute(
            select(Collection).where(
                Collection.tenant_id == self._tenant_id, Collection.name.in_(valid)
            )
        ).scalars()
        return {row.name: row for row in rows}

    def all(self) -> Sequence[Collection]:
        return (
            self._session.execute(
                select(Collection)
                .where(Collection.tenant_id == self._tenant_id)
                .order_by(Collection.name)
            )
            .scalars()
            .all()
        )

    def delete(self, collection: Collection) -> None:
        self._session.delete(collection)


class DocumentRepository:
    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def add(self, document: Document) -> None:
        if document.tenant_id != self._tenant_id:
            raise ValueError("document belongs to another tenant")
        self._session.add(document)

    def get(self, document_id: str, *, lock: bool = False) -> Document | None:
        query = select(Document).where(
            Document.id == document_id, Document.tenant_id == self._tenant_id
        )
        if lock:
            query = query.with_for_update()
        return self._session.execute(query).scalar_one_or_none()

    def by_ids(self, document_ids: Sequence[str]) -> dict[str, Document]:
        rows = self._session.execute(
            select(Document).where(
                Document.tenant_id == self._tenant_id, Document.id.in_(list(document_ids))
            )
        ).scalars()
        return {row.id: row for row in rows}

    def by_source(self, collection_id: str, source: str) -> Document | None:
        return self._session.execute(
            select(Document).where(
                Document.tenant_id == self._tenant_id,
                Document.collection_id == collection_id,
                Document.source == source,
            )
        ).scalar_one_or_none()

    def by_content(self, collection_id: str, sha256: str) -> Document | None:
        return self._session.execute(
            select(Document)
            .where(
                Document.tenant_id == self._tenant_id,
                Document.collection_id == collection_id,
                Document.content_sha256 == sha256,
                Document.status != "purged",  # a retention tombstone holds no content
            )
            .limit(1)
        ).scalar_one_or_none()

    def in_collection(
        self,
        collection_id: str,
        *,
        limit: int,
        after_id: str | None = None,
        status: str | None = None,
        groups: frozenset[str] | None = None,
    ) -> list[Document]:
        """A page ordered by id. With ``groups``, only documents sharing one of them (the JSON
        list is checked here, in Python, after the page: listing is metadata, not content,
        and the page is then filled up from further rows)."""
        found: list[Document] = []
        cursor = after_id
        scanned = 0
        # A reader who may see few documents must not make one request scan the whole
        # collection: stop after a bounded number of rows (the caller pages on with `after`).
        while len(found) < limit and scanned < MAX_SCANNED_ROWS:
            query = select(Document).where(
                Document.tenant_id == self._tenant_id, Document.collection_id == collection_id
            )
            if status:
                query = query.where(Document.status == status)
            if cursor:
                query = query.where(Document.id > cursor)
            rows = (
                self._session.execute(query.order_by(Document.id).limit(limit * 2)).scalars().all()
            )
            if not rows:
                break
            scanned += len(rows)
            for row in rows:
                if groups is None or groups.intersection(row.groups):
                    found.append(row)
                    if len(found) == limit:
                        break
            cursor = rows[-1].id
        return found

    def all_in_collection(self, collection_id: str) -> Sequence[Document]:
        """Every document of the collection (deleting a collection)."""
        return (
            self._session.execute(
                select(Document).where(
                    Document.tenant_id == self._tenant_id, Document.collection_id == collection_id
                )
            )
            .scalars()
            .all()
        )

    def count_by_status(
        self, collection_id: str, groups: frozenset[str] | None = None
    ) -> dict[str, int]:
        """Documents per status; with ``groups``, only those sharing one of them (a reader
        must not learn how many documents it cannot see). Counted per distinct group list,
        of which a collection has few, so the rows are not read one by one."""
        scope = (Document.tenant_id == self._tenant_id, Document.collection_id == collection_id)
        if groups is None:
            rows = self._session.execute(
                select(Document.status, func.count()).where(*scope).group_by(Document.status)
            ).all()
            return {str(status): int(count) for status, count in rows}
        as_text = cast(Document.groups, Text)  # PostgreSQL's json has no equality to group by
        counts: dict[str, int] = {}
        for status, listed, count in self._session.execute(
            select(Document.status, as_text, func.count())
            .where(*scope)
            .group_by(Document.status, as_text)
        ).all():
            if groups.intersection(json.loads(listed)):
                counts[str(status)] = counts.get(str(status), 0) + int(count)
        return counts

    def delete(self, document: Document) -> None:
        self._session.delete(document)


class JobRepository:
    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def add(self, job: Job) -> None:
        if job.tenant_id != self._tenant_id:
            raise ValueError("job belongs to another tenant")
        self._session.add(job)

    def get(self, job_id: str) -> Job | None:
        return self._session.execute(
            select(Job).where(Job.id == job_id, Job.tenant_id == self._tenant_id)
        ).scalar_one_or_none()

    def recent(self, limit: int) -> Sequence[Job]:
        return (
            self._session.execute(
                select(Job)
                .where(Job.tenant_id == self._tenant_id)
                .order_by(Job.created_at.desc(), Job.id.desc())
                .limit(limit)
            )
            .scalars()
            .all()
        )

    def document_counts(self, job_id: str) -> dict[str, int]:
        rows = self._session.execute(
            select(Document.status, func.count())
            .where(Document.tenant_id == self._tenant_id, Document.job_id == job_id)
            .group_by(Document.status)
        ).all()
        return {str(status): int(count) for status, count in rows}


def pending_documents(
    session: Session, limit: int = 10_000, accepted_before: datetime | None = None
) -> list[tuple[str, str]]:
    """(tenant_id, document_id) of every accepted document not yet processed, oldest first
    (with ``accepted_before``: only those waiting since before then): what a restarted runner
    resumes and what the sweep re-publishes. Platform-level on purpose (a worker serves every
    tenant); it returns ids only."""
    query = select(Document.tenant_id, Document.id).where(Document.status == "pending")
    if accepted_before is not None:
        query = query.where(Document.updated_at < accepted_before)
    rows = session.execute(query.order_by(Document.updated_at, Document.id).limit(limit)).all()
    return [(tenant_id, document_id) for tenant_id, document_id in rows]


class BlobDeleter(Protocol):
    def set_aside(self, tenant_id: str, digest: str) -> Path | None: ...

    def restore(self, tenant_id: str, digest: str, aside: Path) -> None: ...

    def discard(self, aside: Path) -> None: ...


def _referenced(
    sessions: sessionmaker[Session], tenant_id: str, digests: Iterable[str]
) -> set[str]:
    """Those of ``digests`` some live document of the tenant still refers to."""
    with sessions() as session:
        return set(
            session.execute(
                select(Document.content_sha256).where(
                    Document.tenant_id == tenant_id,
                    Document.content_sha256.in_(list(digests)),
                    Document.status != "purged",  # retention tombstones keep only the hash
                )
            ).scalars()
        )


def drop_unreferenced_blobs(
    sessions: sessionmaker[Session], blobs: BlobDeleter, tenant_id: str, digests: set[str]
) -> None:
    """Delete stored uploads that no document of the tenant refers to any more. Runs after
    the commit that dropped the reference: a crash in between leaves an orphan file, never a
    document without its upload. A file is set aside before the second look at the
    references, so an upload of the same bytes committed meanwhile keeps it (see blobs.py)."""
    if not digests:
        return
    candidates = digests - _referenced(sessions, tenant_id, digests)
    aside = {
        digest: moved
        for digest in sorted(candidates)
        if (moved := blobs.set_aside(tenant_id, digest)) is not None
    }
    if not aside:
        return
    needed = _referenced(sessions, tenant_id, aside)
    for digest, moved in aside.items():
        if digest in needed:
            blobs.restore(tenant_id, digest, moved)
        else:
            blobs.discard(moved)
