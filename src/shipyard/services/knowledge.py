"""Collections, documents and search: the knowledge base as callers see it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shipyard.access.principal import Principal
from shipyard.access.roles import Operation, allowed, authorize
from shipyard.errors import Conflict, FieldProblem, InvalidInput, NotFound
from shipyard.governance import audit
from shipyard.knowledge.blobs import BlobStore
from shipyard.knowledge.groups import caller_groups, normalise_groups
from shipyard.knowledge.index import KnowledgeIndex
from shipyard.knowledge.injection import looks_like_injection
from shipyard.knowledge.retrieval import MODES, Mode, SearchRequest, search
from shipyard.knowledge.types import DocumentRef, Passage, Scope
from shipyard.observability.metrics import Metrics
from shipyard.services.ids import is_uuid
from shipyard.services.ingestion import Encoder
from shipyard.services.retention import check_retention_days
from shipyard.storage.db import SessionFactory
from shipyard.storage.knowledge_repositories import (
    COLLECTION_NAME,
    CollectionRepository,
    DocumentRepository,
    drop_unreferenced_blobs,
)
from shipyard.storage.tables import Collection, Document

MAX_K = 50
MAX_QUERY_CHARS = 2000


@dataclass(frozen=True)
class CollectionView:
    collection: Collection
    counts: dict[str, int]


def _lock_documents(session: Session, tenant_id: str, document_ids: list[str]) -> None:
    """Write-lock document rows (row locks on PostgreSQL, the write lock on SQLite)."""
    if document_ids:
        session.execute(
            update(Document)
            .where(Document.tenant_id == tenant_id, Document.id.in_(document_ids))
            .values(updated_at=datetime.now(UTC))
        )


class KnowledgeService:
    def __init__(
        self,
        sessions: SessionFactory,
        index: KnowledgeIndex,
        blobs: BlobStore,
        encoder: Callable[[], Encoder],
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._sessions = sessions
        self._index = index
        self._blobs = blobs
        self._encoder = encoder

    # -- collections ---------------------------------------------------------------------
    def create_collection(
        self,
        principal: Principal,
        name: str,
        description: str = "",
        retention_days: int | None = None,
    ) -> Collection:
        authorize(principal.roles, Operation.KNOWLEDGE_WRITE)
        if not COLLECTION_NAME.match(name):
            raise InvalidInput(
                "invalid collection name",
                [FieldProblem("name", "1-63 lowercase letters, digits or '-', starting a letter")],
            )
        collection = Collection(
            id=str(uuid.uuid4()),
            tenant_id=principal.tenant_id,
            name=name,
            description=description[:2000],
            created_at=datetime.now(UTC),
            retention_days=check_retention_days(retention_days),
        )
        try:
            with self._sessions.begin() as session:
                repository = CollectionRepository(session, principal.tenant_id)
                if repository.by_name(name) is not None:
                    raise Conflict(f"collection {name!r} already exists")
                repository.add(collection)
                audit.append(
                    session,
                    actor=principal.actor,
                    action="collection.created",
                    subject_type="collection",
                    subject_id=collection.id,
                    tenant_id=principal.tenant_id,
                    data={"name": name, "retention_days": collection.retention_days},
                )
        except IntegrityError:
            raise Conflict(f"collection {name!r} already exists") from None
        return collection

    def set_retention(
        self, principal: Principal, name: str, retention_days: int | None
    ) -> CollectionView:
        """Set (or with None, clear) how many days the collection's documents are kept."""
        authorize(principal.roles, Operation.KNOWLEDGE_WRITE)
        days = check_retention_days(retention_days)
        with self._sessions.begin() as session:
            found = CollectionRepository(session, principal.tenant_id).named(name)
            before, found.retention_days = found.retention_days, days
            audit.append(
                session,
                actor=principal.actor,
                action="collection.retention_changed",
                subject_type="collection",
                subject_id=found.id,
                tenant_id=principal.tenant_id,
                data={"name": name, "before": before, "after": days},
            )
            counts = DocumentRepository(session, principal.tenant_id).count_by_status(found.id)
        return CollectionView(found, counts)

    def collections(self, principal: Principal) -> list[CollectionView]:
        authorize(principal.roles, Operation.KNOWLEDGE_READ)
        with self._sessions() as session:
            documents = DocumentRepository(session, principal.tenant_id)
            visible = self._visible_groups(principal)
            return [
                CollectionView(found, documents.count_by_status(found.id, visible))
                for found in CollectionRepository(session, principal.tenant_id).all()
            ]

    def collection(self, principal: Principal, name: str) -> CollectionView:
        authorize(principal.roles, Operation.KNOWLEDGE_READ)
        with self._sessions() as session:
            found = CollectionRepository(session, principal.tenant_id).named(name)
            counts = DocumentRepository(session, principal.tenant_id).count_by_status(
                found.id, self._visible_groups(principal)
            )
            return CollectionView(found, counts)

    def delete_collection(self, principal: Principal, name: str) -> int:
        """Delete the collection with every document, chunk and vector; return documents."""
        authorize(principal.roles, Operation.KNOWLEDGE_WRITE)
        with self._sessions.begin() as session:
            collections = CollectionRepository(session, principal.tenant_id)
            found = collections.named(name)
            documents = DocumentRepository(session, principal.tenant_id)
            doomed = documents.all_in_collection(found.id)
            digests = {document.content_sha256 for document in doomed}
            _lock_documents(session, principal.tenant_id, [d.id for d in doomed])
            self._index.delete_collection(session, principal.tenant_id, found.id)
            for document in doomed:
                documents.delete(document)
            session.flush()
            collections.delete(found)
            audit.append(
                session,
                actor=principal.actor,
                action="collection.deleted",
                subject_type="collection",
                subject_id=found.id,
                tenant_id=principal.tenant_id,
                data={"name": name, "documents": len(doomed)},
            )
        self._drop_unreferenced(principal.tenant_id, digests)
        return len(doomed)

    # -- documents -----------------------------------------------------------------------
    def documents(
        self,
        principal: Principal,
        collection: str,
        *,
        status: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> list[Document]:
        authorize(principal.roles, Operation.KNOWLEDGE_READ)
        limit = max(1, min(limit, 200))
        with self._sessions() as session:
            found = CollectionRepository(session, principal.tenant_id).named(collection)
            return DocumentRepository(session, principal.tenant_id).in_collection(
                found.id,
                limit=limit,
                after_id=after,
                status=status,
                groups=self._visible_groups(principal),
            )

    def document(self, principal: Principal, collection: str, document_id: str) -> Document:
        authorize(principal.roles, Operation.KNOWLEDGE_READ)
        with self._sessions() as session:
            return self._document(session, principal, collection, document_id)

    def _document(
        self, session: Session, principal: Principal, collection: str, document_id: str
    ) -> Document:
        found = CollectionRepository(session, principal.tenant_id).by_name(collection)
        document = (
            DocumentRepository(session, principal.tenant_id).get(document_id)
            if found is not None and is_uuid(document_id)
            else None
        )
        visible = self._visible_groups(principal)
        if (
            found is None
            or document is None
            or document.collection_id != found.id
            or (visible is not None and not visible.intersection(document.groups))
        ):
            # A document outside the caller's groups does not exist for the caller.
            raise NotFound(f"no document {document_id!r} in collection {collection!r}")
        return document

    def set_groups(
        self, principal: Principal, collection: str, document_id: str, groups: Iterable[str]
    ) -> Document:
        authorize(principal.roles, Operation.KNOWLEDGE_WRITE)
        new_groups = normalise_groups(groups)
        with self._sessions.begin() as session:
            document = self._document(session, principal, collection, document_id)
            _lock_documents(session, principal.tenant_id, [document.id])
            before = list(document.groups)
            document.groups = sorted(new_groups)
            document.updated_at = datetime.now(UTC)
            self._index.set_groups(
                session,
                DocumentRef(principal.tenant_id, document.collection_id, document.id, new_groups),
            )
            audit.append(
                session,
                actor=principal.actor,
                action="document.groups_changed",
                subject_type="document",
                subject_id=document.id,
                tenant_id=principal.tenant_id,
                data={"before": before, "after": document.groups},
            )
        return document

    def delete_document(self, principal: Principal, collection: str, document_id: str) -> None:
        authorize(principal.roles, Operation.KNOWLEDGE_WRITE)
        with self._sessions.begin() as session:
            document = self._document(session, principal, collection, document_id)
            digest = document.content_sha256
            # Lock the row first: an indexing transaction holding the claim finishes before
            # the chunks are deleted, so none of its chunks outlive the document.
            _lock_documents(session, principal.tenant_id, [document.id])
            removed = self._index.delete_document(session, principal.tenant_id, document.id)
            DocumentRepository(session, principal.tenant_id).delete(document)
            audit.append(
                session,
                actor=principal.actor,
                action="document.deleted",
                subject_type="document",
                subject_id=document.id,
                tenant_id=principal.tenant_id,
                data={"collection": collection, "source": document.source, "chunks": removed},
            )
        self._drop_unreferenced(principal.tenant_id, {digest})

    def _drop_unreferenced(self, tenant_id: str, digests: set[str]) -> None:
        drop_unreferenced_blobs(self._sessions, self._blobs, tenant_id, digests)

    @staticmethod
    def _visible_groups(principal: Principal) -> frozenset[str] | None:
        """Writers manage every document of the tenant; readers see their groups' only."""
        if allowed(principal.roles, Operation.KNOWLEDGE_WRITE):
            return None
        return caller_groups(principal.groups)

    # -- search --------------------------------------------------------------------------
    def search(
        self,
        principal: Principal,
        collections: Sequence[str],
        query: str,
        *,
        k: int = 5,
        mode: str = "hybrid",
        candidates: int = 50,
    ) -> list[Passage]:
        authorize(principal.roles, Operation.KNOWLEDGE_READ)
        return self.retrieve(
            principal.tenant_id,
            caller_groups(principal.groups),
            collections,
            query,
            k=k,
            mode=mode,
            candidates=candidates,
            missing_is_error=True,
        )

    def retrieve(
        self,
        tenant_id: str,
        groups: frozenset[str],
        collections: Sequence[str],
        query: str,
        *,
        k: int = 5,
        mode: str = "hybrid",
        candidates: int = 50,
        missing_is_error: bool = False,
    ) -> list[Passage]:
        """Search as a tenant with the given access groups (tasks call this at run time)."""
        problems = []
        if not query.strip():
            problems.append(FieldProblem("query", "must not be empty"))
        elif len(query) > MAX_QUERY_CHARS:
            problems.append(FieldProblem("query", f"at most {MAX_QUERY_CHARS} characters"))
        if not 1 <= k <= MAX_K:
            problems.append(FieldProblem("k", f"between 1 and {MAX_K}"))
        if mode not in MODES:
            problems.append(FieldProblem("mode", f"one of {', '.join(MODES)}"))
        if problems:
            raise InvalidInput("invalid search", problems)
        checked_mode: Mode = mode  # type: ignore[assignment]
        started = time.perf_counter()
        vector = self._encoder().encode([query])[0] if checked_mode in ("hybrid", "dense") else None
        with self._sessions() as session:
            found = CollectionRepository(session, tenant_id).by_names(collections)
            missing = [name for name in collections if name not in found]
            if missing and missing_is_error:
                raise NotFound(f"no collection {missing[0]!r}")
            scope = Scope(tenant_id, tuple(c.id for c in found.values()), groups)
            hits = search(
                self._index,
                session,
                SearchRequest(scope, query, vector, k, max(candidates, k), checked_mode),
            )
            documents = DocumentRepository(session, tenant_id).by_ids(
                sorted({hit.document_id for hit in hits})
            )
        if self._metrics is not None:
            self._metrics.search_latency.labels(checked_mode).observe(time.perf_counter() - started)
        names = {c.id: c.name for c in found.values()}
        passages = []
        for hit in hits:
            document = documents.get(hit.document_id)
            if document is None or document.status == "purged":  # deleted or purged meanwhile
                continue
            if not groups.intersection(document.groups):
                # The index filtered by groups already; this second check costs nothing
                # and keeps a stale chunk from ever outliving a change of the document's groups.
                continue
            passages.append(
                Passage(
                    hit,
                    document.title,
                    document.source,
                    names.get(hit.collection_id, ""),
                    looks_like_injection(hit.text),
                )
            )
        return passages
