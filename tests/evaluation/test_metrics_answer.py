"""Answer metrics (retrieval, abstention, citations) against hand-computed values."""

from __future__ import annotations

import pytest

from shipyard.evaluation.metrics import (
    abstention,
    citation_key,
    citation_validity,
    mean_reciprocal_rank,
    recall_at_k,
)
from shipyard.evaluation.metrics.answer import exact_match, token_f1

GOLD = [{"d1"}, {"d2", "d3"}, set()]
RANKED = [["d4", "d1", "d5"], ["d3", "d9", "d2"], ["d1"]]


def test_recall_at_k_hand_computed() -> None:
    # case 3 has no gold passage and is skipped.
    # k=1: case 1 top [d4] -> 0/1; case 2 [d3] -> 1/2 -> (0 + 0.5) / 2 = 0.25
    # k=2: case 1 finds d1 -> 1; case 2 still 1/2 -> 0.75; k=3: both complete -> 1.0
    assert recall_at_k(GOLD, RANKED, 1) == pytest.approx(0.25)
    assert recall_at_k(GOLD, RANKED, 2) == pytest.approx(0.75)
    assert recall_at_k(GOLD, RANKED, 3) == pytest.approx(1.0)


def test_mean_reciprocal_rank_hand_computed() -> None:
    # first gold at rank 2 and rank 1 -> (1/2 + 1) / 2 = 0.75; cut at k=1 -> (0 + 1) / 2
    assert mean_reciprocal_rank(GOLD, RANKED) == pytest.approx(0.75)
    assert mean_reciprocal_rank(GOLD, RANKED, k=1) == pytest.approx(0.5)
    assert mean_reciprocal_rank([{"x"}], [["y"]]) == 0.0


def test_retrieval_needs_a_case_with_gold() -> None:
    with pytest.raises(ValueError, match="all gold sets are empty"):
        recall_at_k([set()], [["d1"]], 5)
    with pytest.raises(ValueError, match="empty input"):
        mean_reciprocal_rank([], [])
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(GOLD, RANKED, 0)


def test_answer_overlap_reuses_text_normalisation() -> None:
    assert exact_match("The Eiffel Tower", "eiffel tower.") == 1.0
    # "eiffel tower" vs "tower": P = 1, R = 1/2 -> 2/3
    assert token_f1("the Eiffel Tower", "Tower") == pytest.approx(2 / 3)


def test_abstention_hand_computed() -> None:
    # unanswerable: rows 2, 3, 4; abstained: rows 1, 2, 4; both: rows 2, 4
    # precision 2/3, recall 2/3, F1 2/3
    result = abstention([True, True, False, False, False], [True, False, False, True, False])
    assert result == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "unanswerable": 3, "abstained": 3}
    )


def test_abstention_edge_cases() -> None:
    never = abstention([False, True], [True, True])
    assert (never["precision"], never["recall"], never["f1"]) == (0.0, 0.0, 0.0)
    nothing_to_measure = abstention([True], [False])
    assert nothing_to_measure["precision"] is None
    assert nothing_to_measure["recall"] is None
    assert nothing_to_measure["f1"] is None


def test_citation_validity_hand_computed() -> None:
    # case 1: d1#0 retrieved, d2#1 not; case 2: no citations, excluded;
    # case 3: d3#2 retrieved, a citation without chunk is invalid -> 2 of 4 = 0.5
    citations = [
        [{"document_id": "d1", "chunk": 0}, {"document_id": "d2", "chunk": 1}],
        [],
        [{"document_id": "d3", "chunk": 2}, {"document_id": "d9"}],
    ]
    retrieved = [{"d1#0", "d2#0"}, {"x#1"}, {citation_key("d3", 2)}]
    assert citation_validity(citations, retrieved) == 0.5


def test_citation_validity_without_citations_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no case has a citation"):
        citation_validity([[], []], [{"d1#0"}, set()])
