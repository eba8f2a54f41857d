"""The knowledge index on SQLite: FTS5 (BM25) for keywords, an in-process matrix for vectors.

Chunks live in ``kb_chunks`` (text, offsets and a float32 embedding BLOB), their access groups
in ``kb_chunk_groups`` and their text in the FTS5 table ``kb_chunks_fts`` under the same rowid.

Dense search is an exact cosine scan. Reading 100k BLOBs per query would dominate its cost, so
each (database, tenant, collection) is cached in memory as a matrix and reused while the
collection's ``kb_revisions.revision`` is unchanged; every write sets a new revision, so a
write from any process invalidates every process's copy on its next query.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from uuid import uuid4

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, TextClause, bindparam, text
from sqlalchemy.orm import Session

from shipyard.knowledge.dimensions import EMBEDDING_DIM, check_embeddings
from shipyard.knowledge.index_rows import count_document_chunks, hit_from_row, scope_params
from shipyard.knowledge.stopwords import STOPWORDS
from shipyard.knowledge.types import Chunk, DocumentRef, Hit, Scope

# Letters and digits only: punctuation, quotes and FTS5 operators never reach MATCH.
_WORD = re.compile(r"[^\W_]+")
_MAX_QUERY_TOKENS = 64
_BATCH = 500  # rowids per IN list, far below SQLite's bound-parameter limit

_COLUMNS = (
    "c.id, c.document_id, c.collection_id, c.chunk_index, c.text, c.start_offset, "
    "c.end_offset, c.heading"
)
_IN_SCOPE = (
    "c.tenant_id = :tenant AND c.collection_id IN :collections AND EXISTS ("
    "SELECT 1 FROM kb_chunk_groups g WHERE g.chunk_rowid = c.rowid AND g.grp IN :groups)"
)
_KEYWORD_SQL = text(
    f"SELECT {_COLUMNS}, bm25(kb_chunks_fts) AS bm25_score "  # noqa: S608 (constant fragments)
    "FROM kb_chunks_fts JOIN kb_chunks c ON c.rowid = kb_chunks_fts.rowid "
    f"WHERE kb_chunks_fts MATCH :match AND {_IN_SCOPE} "
    "ORDER BY bm25_score, c.rowid LIMIT :k"
).bindparams(bindparam("collections", expanding=True), bindparam("groups", expanding=True))
# The scope is checked again when fetching the winners: a rowid freed and reused by another
# write between the revision check and this read must not leak a chunk from outside it.
_FETCH_SQL = text(
    f"SELECT c.rowid AS rowid, {_COLUMNS} FROM kb_chunks c "  # noqa: S608 (constant fragments)
    f"WHERE c.rowid IN :rowids AND {_IN_SCOPE}"
).bindparams(
    bindparam("rowids", expanding=True),
    bindparam("collections", expanding=True),
    bindparam("groups", expanding=True),
)
_INSERT_CHUNK = text(
    "INSERT INTO kb_chunks (id, tenant_id, collection_id, document_id, chunk_index, text, "
    "start_offset, end_offset, heading, embedding) VALUES (:id, :tenant, :collection, "
    ":document, :chunk_index, :text, :start, :end, :heading, :embedding)"
)
_DOCUMENT_ROWS = text(
    "SELECT rowid, collection_id FROM kb_chunks WHERE tenant_id = :tenant AND document_id = :key"
)
_COLLECTION_ROWS = text(
    "SELECT rowid, collection_id FROM kb_chunks WHERE tenant_id = :tenant AND collection_id = :key"
)
_DELETE_FTS, _DELETE_GROUPS, _DELETE_CHUNKS = (
    text(sql).bindparams(bindparam("rowids", expanding=True))
    for sql in (
        "DELETE FROM kb_chunks_fts WHERE rowid IN :rowids",
        "DELETE FROM kb_chunk_groups WHERE chunk_rowid IN :rowids",
        "DELETE FROM kb_chunks WHERE rowid IN :rowids",
    )
)
_BUMP_REVISION = text(
    "INSERT INTO kb_revisions (tenant_id, collection_id, revision) "
    "VALUES (:tenant, :collection, :revision) "
    "ON CONFLICT (tenant_id, collection_id) DO UPDATE SET revision = excluded.revision"
)


def fts5_match(query: str) -> str | None:
    """A MATCH expression that ORs the query's words as quoted strings, or ``None`` if empty.

    Stopwords are left out when anything else remains: OR-ing "what", "the" and "of" matches
    nearly every chunk, which BM25 then scores and sorts for nothing (measured at 100k chunks:
    about 270 ms with them, about 80 ms without)."""
    words = list(dict.fromkeys(_WORD.findall(query)))
    content = [word for word in words if word.lower() not in STOPWORDS]
    tokens = (content or words)[:_MAX_QUERY_TOKENS]
    return " OR ".join(f'"{token}"' for token in tokens) or None


def _rows(session: Session, query: TextClause, tenant_id: str, key: str) -> list[tuple[int, str]]:
    """(rowid, collection_id) of the chunks ``query`` selects for one tenant."""
    rows = session.execute(query, {"tenant": tenant_id, "key": key})
    return [(rowid, collection) for rowid, collection in rows]


def _batches(values: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(values), _BATCH):
        yield list(values[start : start + _BATCH])


@dataclass(frozen=True)
class _Slice:
    """One collection's vectors as of one revision."""

    revision: int | None
    rowids: NDArray[np.int64]  # ascending
    vectors: NDArray[np.float32]  # (len(rowids), EMBEDDING_DIM), rows of norm 1
    members: dict[str, NDArray[np.int64]]  # group -> positions of the rows carrying it

    def top(
        self, query: NDArray[np.float32], groups: Iterable[str], k: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Scores and rowids of the best ``k`` rows among those the groups may see."""
        visible = np.zeros(len(self.rowids), dtype=bool)
        for group in groups:
            positions = self.members.get(group)
            if positions is not None:
                visible[positions] = True
        # Access is decided before ranking, so hidden rows can never crowd out visible ones.
        candidates = np.flatnonzero(visible)
        scores = (self.vectors @ query)[candidates]
        if len(candidates) > k:
            best = np.argpartition(-scores, k - 1)[:k]
            candidates, scores = candidates[best], scores[best]
        return scores, self.rowids[candidates]


def _revisions(session: Session, tenant_id: str, collections: Sequence[str]) -> dict[str, int]:
    rows = session.execute(
        text(
            "SELECT collection_id, revision FROM kb_revisions "
            "WHERE tenant_id = :tenant AND collection_id IN :collections"
        ).bindparams(bindparam("collections", expanding=True)),
        {"tenant": tenant_id, "collections": list(collections)},
    )
    return {row.collection_id: row.revision for row in rows}


def _load_slice(
    session: Session, tenant_id: str, collection_id: str, revision: int | None
) -> _Slice:
    params = {"tenant": tenant_id, "collection": collection_id}
    rows = session.execute(
        text(
            "SELECT rowid, embedding FROM kb_chunks "
            "WHERE tenant_id = :tenant AND collection_id = :collection ORDER BY rowid"
        ),
        params,
    ).all()
    rowids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    raw = np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4")
    vectors = raw.reshape(len(rows), EMBEDDING_DIM).astype(np.float32)  # native-order copy
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors /= np.where(norms > 0, norms, 1.0)  # cosine = dot product from here on
    grouped: dict[str, list[int]] = {}
    for grp, rowid in session.execute(
        text(
            "SELECT g.grp, g.chunk_rowid FROM kb_chunk_groups g "
            "JOIN kb_chunks c ON c.rowid = g.chunk_rowid "
            "WHERE c.tenant_id = :tenant AND c.collection_id = :collection"
        ),
        params,
    ):
        grouped.setdefault(grp, []).append(rowid)
    return _Slice(revision, rowids, vectors, {g: _positions(rowids, i) for g, i in grouped.items()})


def _positions(rowids: NDArray[np.int64], wanted: list[int]) -> NDArray[np.int64]:
    """Positions of ``wanted`` in the sorted ``rowids``, skipping absent ones: the two loading
    SELECTs are separate reads, so a chunk committed between them may have groups but no row."""
    ids = np.asarray(wanted, dtype=np.int64)
    positions = np.searchsorted(rowids, ids)
    found = positions < len(rowids)
    found[found] = rowids[positions[found]] == ids[found]
    return positions[found]


class _VectorCache:
    """Process-wide slices keyed by (database URL, tenant, collection).

    A lock per key makes concurrent first queries load a collection once without making
    queries on other collections wait for that load.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._slices: dict[tuple[str, str, str], _Slice] = {}

    def get(
        self, session: Session, tenant_id: str, collection_id: str, revision: int | None
    ) -> _Slice:
        key = (_database_key(session), tenant_id, collection_id)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            cached = self._slices.get(key)
            if cached is not None and cached.revision == revision:
                return cached
            loaded = _load_slice(session, tenant_id, collection_id, revision)
            # Outside a snapshot a write may land mid-load; keep the slice only if it did not.
            if _revisions(session, tenant_id, [collection_id]).get(collection_id) == revision:
                self._slices[key] = loaded
            return loaded

    def forget(self, session: Session, tenant_id: str, collection_id: str) -> None:
        self._slices.pop((_database_key(session), tenant_id, collection_id), None)


def _database_key(session: Session) -> str:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    return engine.url.render_as_string(hide_password=True)


_CACHE = _VectorCache()


class SqliteIndex:
    """``KnowledgeIndex`` on SQLite; every method works inside the caller's transaction."""

    def replace_document(
        self,
        session: Session,
        document: DocumentRef,
        chunks: Sequence[Chunk],
        embeddings: NDArray[np.float32],
    ) -> None:
        vectors = check_embeddings(len(chunks), embeddings).astype("<f4")
        old = _rows(session, _DOCUMENT_ROWS, document.tenant_id, document.document_id)
        self._remove(session, old)
        ids = [uuid4().hex for _ in chunks]
        if chunks:
            session.execute(
                _INSERT_CHUNK,
                [
                    {
                        "id": chunk_id,
                        "tenant": document.tenant_id,
                        "collection": document.collection_id,
                        "document": document.document_id,
                        "chunk_index": chunk.index,
                        "text": chunk.text,
                        "start": chunk.start,
                        "end": chunk.end,
                        "heading": chunk.heading,
                        "embedding": vector.tobytes(),
                    }
                    for chunk_id, chunk, vector in zip(ids, chunks, vectors, strict=True)
                ],
            )
            inserted = session.execute(
                text(
                    "SELECT id, rowid FROM kb_chunks "
                    "WHERE tenant_id = :tenant AND document_id = :document"
                ),
                {"tenant": document.tenant_id, "document": document.document_id},
            )
            rowid_of: dict[str, int] = dict(inserted.all())  # not dict(Result): it has keys()
            session.execute(
                text("INSERT INTO kb_chunks_fts (rowid, text) VALUES (:rowid, :text)"),
                [
                    {"rowid": rowid_of[chunk_id], "text": chunk.text}
                    for chunk_id, chunk in zip(ids, chunks, strict=True)
                ],
            )
            self._insert_groups(session, [rowid_of[i] for i in ids], document.groups)
        touched = {collection for _, collection in old} | {document.collection_id}
        self._bump(session, document.tenant_id, touched)

    def set_groups(self, session: Session, document: DocumentRef) -> None:
        rows = _rows(session, _DOCUMENT_ROWS, document.tenant_id, document.document_id)
        rowids = [rowid for rowid, _ in rows]
        for batch in _batches(rowids):
            session.execute(_DELETE_GROUPS, {"rowids": batch})
        self._insert_groups(session, rowids, document.groups)
        self._bump(session, document.tenant_id, {collection for _, collection in rows})

    def delete_document(self, session: Session, tenant_id: str, document_id: str) -> int:
        rows = _rows(session, _DOCUMENT_ROWS, tenant_id, document_id)
        self._remove(session, rows)
        self._bump(session, tenant_id, {collection for _, collection in rows})
        return len(rows)

    def delete_collection(self, session: Session, tenant_id: str, collection_id: str) -> int:
        rows = _rows(session, _COLLECTION_ROWS, tenant_id, collection_id)
        self._remove(session, rows)
        self._bump(session, tenant_id, {collection_id})
        _CACHE.forget(session, tenant_id, collection_id)  # other processes reload on revision
        return len(rows)

    def keyword_search(self, session: Session, scope: Scope, query: str, k: int) -> list[Hit]:
        match = fts5_match(query)
        if match is None or k <= 0 or not scope.collection_ids or not scope.groups:
            return []
        rows = session.execute(_KEYWORD_SQL, {**scope_params(scope), "match": match, "k": k})
        # bm25() is lower-is-better in SQLite; negate it so every index ranks higher-is-better.
        return [hit_from_row(row, -float(row.bm25_score), "keyword") for row in rows]

    def dense_search(
        self, session: Session, scope: Scope, vector: NDArray[np.float32], k: int
    ) -> list[Hit]:
        if k <= 0 or not scope.collection_ids or not scope.groups:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(EMBEDDING_DIM)
        norm = float(np.linalg.norm(query))
        if norm == 0.0:
            return []
        query = query / norm
        params = scope_params(scope)
        revisions = _revisions(session, scope.tenant_id, params["collections"])
        score_parts, rowid_parts = [], []
        for collection in params["collections"]:
            slice_ = _CACHE.get(session, scope.tenant_id, collection, revisions.get(collection))
            scores, rowids = slice_.top(query, scope.groups, k)
            score_parts.append(scores)
            rowid_parts.append(rowids)
        scores, rowids = np.concatenate(score_parts), np.concatenate(rowid_parts)
        order = np.argsort(-scores, kind="stable")[:k]
        score_of = {int(rowids[i]): float(scores[i]) for i in order}
        if not score_of:
            return []
        hits = [
            hit_from_row(row, score_of[row.rowid], "dense")
            for batch in _batches(list(score_of))
            for row in session.execute(_FETCH_SQL, {**params, "rowids": batch})
        ]
        return sorted(hits, key=lambda hit: -hit.score)

    def count_chunks(self, session: Session, tenant_id: str, document_id: str) -> int:
        return count_document_chunks(session, tenant_id, document_id)

    @staticmethod
    def _remove(session: Session, rows: Sequence[tuple[int, str]]) -> None:
        """Delete these chunks together with their FTS and group rows."""
        for batch in _batches([rowid for rowid, _ in rows]):
            for statement in (_DELETE_FTS, _DELETE_GROUPS, _DELETE_CHUNKS):
                session.execute(statement, {"rowids": batch})

    @staticmethod
    def _insert_groups(session: Session, rowids: Sequence[int], groups: frozenset[str]) -> None:
        pairs = [{"grp": grp, "rowid": rowid} for rowid in rowids for grp in sorted(groups)]
        if pairs:
            session.execute(
                text("INSERT INTO kb_chunk_groups (grp, chunk_rowid) VALUES (:grp, :rowid)"),
                pairs,
            )

    @staticmethod
    def _bump(session: Session, tenant_id: str, collections: Iterable[str]) -> None:
        # A random revision rather than +1: a rolled-back write may already have been cached
        # under its revision, and a later write must never produce that same number again.
        for collection in sorted(set(collections)):
            session.execute(
                _BUMP_REVISION,
                {"tenant": tenant_id, "collection": collection, "revision": secrets.randbits(62)},
            )
