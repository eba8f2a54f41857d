"""Hybrid retrieval: keyword (BM25) and dense candidates fused by reciprocal rank."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from shipyard.knowledge.index import KnowledgeIndex
from shipyard.knowledge.types import Hit, Scope

Mode = Literal["hybrid", "keyword", "dense"]
MODES: tuple[Mode, ...] = ("hybrid", "keyword", "dense")

RRF_K = 60
"""The usual reciprocal-rank constant (Cormack et al. 2009): it damps the head of each list so
one retriever's first place does not drown agreement further down."""


@dataclass(frozen=True)
class SearchRequest:
    scope: Scope
    query: str
    vector: NDArray[np.float32] | None  # the query's embedding (dense and hybrid modes)
    k: int = 5
    candidates: int = 50
    mode: Mode = "hybrid"


def fuse(rankings: Sequence[tuple[str, Sequence[Hit]]], k: int, rrf_k: int = RRF_K) -> list[Hit]:
    """Reciprocal rank fusion of named rankings; each fused hit keeps every retriever's score
    and rank in ``Hit.scores`` so a caller can see why it was chosen."""
    fused: dict[str, float] = {}
    first: dict[str, Hit] = {}
    provenance: dict[str, dict[str, float]] = {}
    for name, hits in rankings:
        for rank, hit in enumerate(hits, start=1):
            fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + 1.0 / (rrf_k + rank)
            first.setdefault(hit.chunk_id, hit)
            detail = provenance.setdefault(hit.chunk_id, {})
            detail[name] = round(hit.score, 6)
            detail[f"{name}_rank"] = rank
    # Ties (A first in one list and second in the other, B the reverse) are common; break
    # them by the best single rank, then by document and position, never by random ids, so
    # the same data always gives the same order.
    best = {
        chunk_id: min(v for key, v in detail.items() if key.endswith("_rank"))
        for chunk_id, detail in provenance.items()
    }
    order = sorted(
        fused,
        key=lambda chunk_id: (
            -round(fused[chunk_id], 12),
            best[chunk_id],
            first[chunk_id].document_id,
            first[chunk_id].chunk_index,
        ),
    )[:k]
    return [
        replace(first[chunk_id], score=round(fused[chunk_id], 6), scores=provenance[chunk_id])
        for chunk_id in order
    ]


def search(index: KnowledgeIndex, session: Session, request: SearchRequest) -> list[Hit]:
    if not request.scope.collection_ids or not request.scope.groups:
        return []
    rankings: list[tuple[str, Sequence[Hit]]] = []
    if request.mode in ("hybrid", "keyword"):
        keyword = index.keyword_search(session, request.scope, request.query, request.candidates)
        rankings.append(("keyword", keyword))
    if request.mode in ("hybrid", "dense"):
        if request.vector is None:
            raise ValueError("dense search needs the query vector")
        dense = index.dense_search(session, request.scope, request.vector, request.candidates)
        rankings.append(("dense", dense))
    if request.mode != "hybrid":
        name, hits = rankings[0]
        return [
            replace(hit, scores={name: round(hit.score, 6), f"{name}_rank": rank})
            for rank, hit in enumerate(hits[: request.k], start=1)
        ]
    return fuse(rankings, request.k)
