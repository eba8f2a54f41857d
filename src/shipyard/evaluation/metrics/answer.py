"""Answer (retrieval-augmented QA) metrics: retrieval quality, answer overlap, abstention and
citation validity.

Retrieval metrics skip cases with an empty gold set: an unanswerable question has no passage to
find, and it is measured by :func:`abstention` instead. When no case is left, there is nothing to
measure and a ValueError is raised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shipyard.evaluation.metrics._checks import f1, ratio, same_length
from shipyard.evaluation.metrics.text import exact_match, token_f1

__all__ = [
    "abstention",
    "citation_key",
    "citation_validity",
    "exact_match",
    "mean_reciprocal_rank",
    "recall_at_k",
    "token_f1",
]


def _gold_cases(
    what: str, gold_ids: Sequence[set[str]], ranked_ids: Sequence[Sequence[str]]
) -> list[tuple[set[str], Sequence[str]]]:
    same_length(what, gold_ids=gold_ids, ranked_ids=ranked_ids)
    cases = [(gold, ranked) for gold, ranked in zip(gold_ids, ranked_ids, strict=True) if gold]
    if not cases:
        raise ValueError(f"{what}: no case has a gold passage (all gold sets are empty)")
    return cases


def recall_at_k(gold_ids: Sequence[set[str]], ranked_ids: Sequence[Sequence[str]], k: int) -> float:
    """Mean over cases of the share of gold passages found in the top ``k`` retrieved."""
    if k < 1:
        raise ValueError("recall_at_k: k must be >= 1")
    cases = _gold_cases("recall_at_k", gold_ids, ranked_ids)
    return sum(len(gold & set(ranked[:k])) / len(gold) for gold, ranked in cases) / len(cases)


def mean_reciprocal_rank(
    gold_ids: Sequence[set[str]], ranked_ids: Sequence[Sequence[str]], k: int | None = None
) -> float:
    """Mean of 1 / rank of the first gold passage (0 when none is in the top ``k``, or at all)."""
    if k is not None and k < 1:
        raise ValueError("mean_reciprocal_rank: k must be >= 1")
    cases = _gold_cases("mean_reciprocal_rank", gold_ids, ranked_ids)
    total = 0.0
    for gold, ranked in cases:
        window = ranked if k is None else ranked[:k]
        total += next((1 / rank for rank, doc in enumerate(window, start=1) if doc in gold), 0.0)
    return total / len(cases)


def abstention(
    expected_answerable: Sequence[bool], predicted_answerable: Sequence[bool]
) -> dict[str, Any]:
    """Precision, recall and F1 of abstaining, with "unanswerable" as the positive class.

    Precision: of the questions the system declined, the share that were really unanswerable.
    Recall: of the unanswerable questions, the share it declined. All three are None when the
    dataset has no unanswerable question; precision is 0.0 when it never abstained.
    """
    same_length(
        "abstention",
        expected_answerable=expected_answerable,
        predicted_answerable=predicted_answerable,
    )
    truly = [not answerable for answerable in expected_answerable]
    declined = [not answerable for answerable in predicted_answerable]
    hits = sum(t and d for t, d in zip(truly, declined, strict=True))
    unanswerable, abstained = sum(truly), sum(declined)
    precision = ratio(hits, abstained) if unanswerable else None
    recall = hits / unanswerable if unanswerable else None
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1(precision, recall) if precision is not None and recall is not None else None,
        "unanswerable": unanswerable,
        "abstained": abstained,
    }


def citation_key(document_id: object, chunk: object) -> str:
    """The id of one chunk, ``"<document_id>#<chunk>"``; build retrieved ids with it too."""
    return f"{document_id}#{chunk}"


def citation_validity(
    citations: Sequence[Sequence[Mapping[str, Any]]], retrieved_ids: Sequence[set[str]]
) -> float:
    """Share of all citations that point at a chunk retrieved for that same question.

    Each citation is a mapping with ``document_id`` and ``chunk``; retrieved ids are
    :func:`citation_key` strings. Pooled over citations, so cases without citations are
    excluded (not citing is judged by answer and abstention metrics, not here). A citation
    missing either key is invalid. No citation at all -> ValueError (nothing to measure).
    """
    same_length("citation_validity", citations=citations, retrieved_ids=retrieved_ids)
    total = valid = 0
    for cited, retrieved in zip(citations, retrieved_ids, strict=True):
        for citation in cited:
            total += 1
            if "document_id" in citation and "chunk" in citation:
                valid += citation_key(citation["document_id"], citation["chunk"]) in retrieved
    if total == 0:
        raise ValueError("citation_validity: no case has a citation")
    return valid / total
