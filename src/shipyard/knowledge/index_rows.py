"""Row and parameter helpers both knowledge indexes share (same column names)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

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
