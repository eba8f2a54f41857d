"""The knowledge index protocol: chunk storage with keyword (BM25) and dense search.

Two implementations share one contract test suite: SQLite (FTS5 + an in-memory vector
matrix) and PostgreSQL (full-text search + pgvector HNSW). Every method runs inside the
caller's session, so replacing a document's chunks commits or rolls back together with the
document row. Access control is part of every search: a chunk is a candidate only when its
document shares a group with the scope, and that filter is in the query itself, never applied
to a top-k that was computed without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from shipyard.knowledge.types import Chunk, DocumentRef, Hit, Scope


class KnowledgeIndex(Protocol):
    def replace_document(
        self,
        session: Session,
        document: DocumentRef,
        chunks: Sequence[Chunk],
        embeddings: NDArray[np.float32],
    ) -> None:
        """Make ``chunks`` the document's only chunks (``embeddings`` row i is chunk i)."""
        ...

    def set_groups(self, session: Session, document: DocumentRef) -> None:
        """Apply a document's new access groups to its existing chunks."""
        ...

    def delete_document(self, session: Session, tenant_id: str, document_id: str) -> int:
        """Remove every chunk and vector of the document; return how many chunks went."""
        ...

    def delete_collection(self, session: Session, tenant_id: str, collection_id: str) -> int: ...

    def keyword_search(self, session: Session, scope: Scope, query: str, k: int) -> list[Hit]:
        """Best ``k`` chunks by BM25-style relevance; ``Hit.score`` higher is better."""
        ...

    def dense_search(
        self, session: Session, scope: Scope, vector: NDArray[np.float32], k: int
    ) -> list[Hit]:
        """Best ``k`` chunks by cosine similarity to the (L2-normalised) ``vector``."""
        ...

    def count_chunks(self, session: Session, tenant_id: str, document_id: str) -> int: ...
