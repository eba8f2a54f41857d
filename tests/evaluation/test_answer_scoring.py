"""Scoring of kind ``answer`` against hand-computed values."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.evaluation.answer_scoring import (
    answer_correct,
    contains_answer,
    gold_answers,
    score_answer,
)
from shipyard.evaluation.scoring import CaseResult


def case(expected: dict[str, Any], output: dict[str, Any]) -> CaseResult:
    return CaseResult(1, {"question": "q"}, expected, output, output.get("confidence"), False)


def test_contains_answer_uses_squad_normalisation() -> None:
    assert contains_answer("The Normans were in France.", ["france"])
    assert not contains_answer("The Normans were in Francia.", ["France"])
    assert not contains_answer("anything", [""])


def test_gold_answers_accept_lists_and_strings() -> None:
    assert gold_answers({"answer": ["a", " ", "b"]}) == ["a", "b"]
    assert gold_answers({"answer": "x"}) == ["x"]
    assert gold_answers({"answer": ""}) == []


def test_correctness() -> None:
    answerable = {"answer": ["27 days"], "answerable": True}
    unanswerable = {"answer": [], "answerable": False}
    assert answer_correct(answerable, {"answer": "You get 27 days.", "answerable": True})
    assert not answer_correct(answerable, {"answer": "", "answerable": False})
    assert answer_correct(unanswerable, {"answer": "", "answerable": False})
    assert not answer_correct(unanswerable, {"answer": "x", "answerable": True})


def test_metrics_by_hand() -> None:
    cases = [
        # answered, contains the gold answer, cites the gold document
        case(
            {"answer": ["27 days"], "answerable": True, "citations": "vacation.md"},
            {"answer": "27 days", "answerable": True, "citations": [{"source": "vacation.md"}]},
        ),
        # answered wrongly, cites another document
        case(
            {"answer": ["150 euros"], "answerable": True, "citations": "expenses.md"},
            {"answer": "second class", "answerable": True, "citations": [{"source": "x.md"}]},
        ),
        # abstained on an answerable question
        case(
            {"answer": ["one hour"], "answerable": True, "citations": "it.md"},
            {"answer": "", "answerable": False, "citations": []},
        ),
        # abstained correctly
        case(
            {"answer": [], "answerable": False, "citations": ""},
            {"answer": "", "answerable": False},
        ),
        # answered an unanswerable question
        case(
            {"answer": [], "answerable": False, "citations": ""},
            {"answer": "maybe", "answerable": True, "citations": [{"source": "y.md"}]},
        ),
    ]
    metrics, details = score_answer(None, cases)  # type: ignore[arg-type]
    assert metrics["coverage"] == pytest.approx(3 / 5)
    assert metrics["exact_match"] == pytest.approx(1 / 3)
    assert metrics["answer_recall"] == pytest.approx(1 / 3)
    assert metrics["token_f1"] == pytest.approx(1 / 3)
    assert metrics["citation_recall"] == pytest.approx(1 / 3)
    assert metrics["answered_accuracy"] == pytest.approx(1 / 3)
    # Abstained twice, one of them on the one... two unanswerable questions.
    assert metrics["abstain_precision"] == pytest.approx(1 / 2)
    assert metrics["abstain_recall"] == pytest.approx(1 / 2)
    assert details == {"answerable": 3, "unanswerable": 2, "abstained": 2}
