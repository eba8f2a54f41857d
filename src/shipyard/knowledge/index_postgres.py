"""The knowledge index on PostgreSQL: full-text search (tsvector) and pgvector HNSW.

One table, ``kb_chunks``, holds each chunk's text, offsets, access groups (``text[]``), its
embedding (``vector``) and a generated ``tsvector``. The scope (tenant, collections, groups)
is a WHERE clause of every search statement.

Writers of the same document must be serialised by the caller (e.g. by updating the document's
row first in the same transaction); two concurrent ``replace_document`` calls would otherwise
each delete the old chunks and both insert new ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from uuid import uuid4

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.orm import Session

from shipyard.knowledge.dimensions import EMBEDDING_DIM, check_embeddings
from shipyard.knowledge.index_rows import count_document_chunks, hit_from_row, scope_params
from shipyard.knowledge.types import Chunk, DocumentRef, Hit, Scope

# Letters and digits of any script (not "_"): they cannot carry tsquery operators
# (& | ! <-> : * ' ( )), so joining them with " | " is always a valid to_tsquery input, and
# "Zürich" stays one word.
_WORD = re.compile(r"[^\W_]+")
_MAX_QUERY_TOKENS = 64
_EF_SEARCH_DEFAULT = "40"  # pgvector's own default, used when the setting was never set
_EF_SEARCH_MAX = 1000  # pgvector rejects larger values

_COLUMNS = "id, document_id, collection_id, chunk_index, text, start_offset, end_offset, heading"
_IN_SCOPE = (
    "tenant_id = :tenant AND collection_id = ANY(CAST(:collections AS text[])) "
    "AND groups && CAST(:groups AS text[])"
)
_KEYWORD_SQL = text(
    f"SELECT {_COLUMNS}, ts_rank_cd(tsv, q) AS rank "  # noqa: S608 (constant fragments)
    "FROM kb_chunks, to_tsquery('english', :tsquery) AS q "
    f"WHERE {_IN_SCOPE} AND tsv @@ q ORDER BY rank DESC, id LIMIT :k"
)
_DENSE_SQL = text(
    f"SELECT {_COLUMNS}, embedding <=> CAST(:vector AS vector) AS distance "  # noqa: S608
    f"FROM kb_chunks WHERE {_IN_SCOPE} ORDER BY distance LIMIT :k"
)
_SCOPE_SIZE_SQL = text(
    f"SELECT count(*) FROM (SELECT 1 FROM kb_chunks WHERE {_IN_SCOPE} LIMIT :k) AS s"  # noqa: S608
)
_INSERT_CHUNK = text(
    "INSERT INTO kb_chunks (id, tenant_id, collection_id, document_id, chunk_index, text, "
    "start_offset, end_offset, heading, groups, embedding) VALUES (:id, :tenant, :collection, "
    ":document, :chunk_index, :text, :start, :end, :heading, CAST(:groups AS text[]), "
    "CAST(:embedding AS vector))"
)
_DELETE_DOCUMENT = text(
    "WITH gone AS (DELETE FROM kb_chunks WHERE tenant_id = :tenant AND document_id = :key "
    "RETURNING 1) SELECT count(*) FROM gone"
)
_DELETE_COLLECTION = text(
    "WITH gone AS (DELETE FROM kb_chunks WHERE tenant_id = :tenant AND collection_id = :key "
    "RETURNING 1) SELECT count(*) FROM gone"
)
_CURRENT_SETTINGS = text(
    "SELECT current_setting('hnsw.ef_search', true), current_setting('enable_indexscan'), "
    "current_setting('enable_seqscan')"
)
_SET_CONFIG = text("SELECT set_config(:name, :value, true)")


def tsquery_text(query: str) -> str | None:
    """``to_tsquery`` input that ORs the query's words, or ``None`` when it has none."""
    tokens = list(dict.fromkeys(_WORD.findall(query)))[:_MAX_QUERY_TOKENS]
    return " | ".join(tokens) or None


def _vector_literal(vector: NDArray[np.float32]) -> str:
    # pgvector's text form; repr of a float32 widened to float64 round-trips exactly.
    return "[" + ",".join(repr(value) for value in vector.tolist()) + "]"


def _set_local(session: Session, name: str, value: str) -> None:
    session.execute(_SET_CONFIG, {"name": name, "value": value})


class PostgresIndex:
    """``KnowledgeIndex`` on PostgreSQL with pgvector; works inside the caller's transaction."""

    def replace_document(
        self,
        session: Session,
        document: DocumentRef,
        chunks: Sequence[Chunk],
        embeddings: NDArray[np.float32],
    ) -> None:
        vectors = check_embeddings(len(chunks), embeddings)
        self.delete_document(session, document.tenant_id, document.document_id)
        if not chunks:
            return
        groups = sorted(document.groups)
        session.execute(
            _INSERT_CHUNK,
            [
                {
                    "id": uuid4().hex,
                    "tenant": document.tenant_id,
                    "collection": document.collection_id,
                    "document": document.document_id,
                    "chunk_index": chunk.index,
                    "text": chunk.text,
                    "start": chunk.start,
                    "end": chunk.end,
                    "heading": chunk.heading,
                    "groups": groups,
                    "embedding": _vector_literal(vector),
                }
                for chunk, vector in zip(chunks, vectors, strict=True)
            ],
        )

    def set_groups(self, session: Session, document: DocumentRef) -> None:
        session.execute(
            text(
                "UPDATE kb_chunks SET groups = CAST(:groups AS text[]) "
                "WHERE tenant_id = :tenant AND document_id = :document"
            ),
            {
                "groups": sorted(document.groups),
                "tenant": document.tenant_id,
                "document": document.document_id,
            },
        )

    def delete_document(self, session: Session, tenant_id: str, document_id: str) -> int:
        params = {"tenant": tenant_id, "key": document_id}
        return int(session.execute(_DELETE_DOCUMENT, params).scalar_one())

    def delete_collection(self, session: Session, tenant_id: str, collection_id: str) -> int:
        params = {"tenant": tenant_id, "key": collection_id}
        return int(session.execute(_DELETE_COLLECTION, params).scalar_one())

    def keyword_search(self, session: Session, scope: Scope, query: str, k: int) -> list[Hit]:
        tsquery = tsquery_text(query)
        if tsquery is None or k <= 0 or not scope.collection_ids or not scope.groups:
            return []
        rows = session.execute(_KEYWORD_SQL, {**scope_params(scope), "tsquery": tsquery, "k": k})
        return [hit_from_row(row, float(row.rank), "keyword") for row in rows]

    def dense_search(
        self, session: Session, scope: Scope, vector: NDArray[np.float32], k: int
    ) -> list[Hit]:
        """Nearest chunks by cosine distance, with the scope in the same statement.

        pgvector 0.6's HNSW scan yields only ``hnsw.ef_search`` candidates and PostgreSQL
        applies the WHERE clause to those afterwards, so a restrictive scope (a group that
        owns few chunks among many nearer ones) can leave fewer than ``k`` rows even though
        more are visible. So ``ef_search`` is raised to ``max(40, 4k)`` for the query, and if
        the result is still short while the scope holds more rows, the query runs again with
        index scans disabled: an exact, filtered scan. The settings are transaction-local
        (``set_config(..., true)``) and are put back before returning, so later statements in
        the caller's transaction plan normally. If a statement fails the transaction is
        aborted, and its rollback discards the settings with it.
        """
        if k <= 0 or not scope.collection_ids or not scope.groups:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(EMBEDDING_DIM)
        if not np.any(query):
            return []  # cosine distance to a zero vector is undefined
        params = {**scope_params(scope), "vector": _vector_literal(query), "k": k}
        ef_search, index_scan, seq_scan = session.execute(_CURRENT_SETTINGS).one()
        # NULL when pgvector's library is not loaded in this backend yet and nobody set it.
        restore = {"hnsw.ef_search": ef_search or _EF_SEARCH_DEFAULT}
        _set_local(session, "hnsw.ef_search", str(min(max(40, 4 * k), _EF_SEARCH_MAX)))
        rows = session.execute(_DENSE_SQL, params).all()
        if len(rows) < k and session.execute(_SCOPE_SIZE_SQL, params).scalar_one() > len(rows):
            # Sequential scans back on too: if the caller disabled them, PostgreSQL would pick
            # the (equally "disabled") HNSW scan again instead of an exact plan.
            _set_local(session, "enable_indexscan", "off")
            _set_local(session, "enable_seqscan", "on")
            restore |= {"enable_indexscan": index_scan, "enable_seqscan": seq_scan}
            rows = session.execute(_DENSE_SQL, params).all()
        for name, value in restore.items():
            _set_local(session, name, value)
        return [hit_from_row(row, 1.0 - float(row.distance), "dense") for row in rows]

    def count_chunks(self, session: Session, tenant_id: str, document_id: str) -> int:
        return count_document_chunks(session, tenant_id, document_id)
