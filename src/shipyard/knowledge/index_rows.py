"""Row and parameter helpers both knowledge indexes share (same column names)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.orm import Session

from shipyard.knowledge.types import Hit, Scope


def hit_from_row(row: Row[Any], score: float, retriever: str) -> Hit:
    """A search hit from a ``kb_chunks`` row; ``retriever`` names the score's source."""
    return Hit(
        chunk_id=row.id,
        document_id=row.document_id,
        collection_id=row.collection_id,
        chunk_index=row.chunk_index,
        text=row.text,
        start=row.start_offset,
        end=row.end_offset,
        heading=row.heading,
        score=score,
        scores={retriever: score},
    )


def scope_params(scope: Scope) -> dict[str, Any]:
    """Bound parameters of the tenant/collection/group filter every search query carries."""
    return {
        "tenant": scope.tenant_id,
        "collections": list(dict.fromkeys(scope.collection_ids)),
        "groups": sorted(scope.groups),
    }


_COUNT = text(
    "SELECT count(*) FROM kb_chunks WHERE tenant_id = :tenant AND document_id = :document"
)


def count_document_chunks(session: Session, tenant_id: str, document_id: str) -> int:
    return int(session.execute(_COUNT, {"tenant": tenant_id, "document": document_id}).scalar_one())
