"""Generation metrics against hand-computed values, plus ROUGE-L properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.evaluation.metrics import rouge_l, schema_valid_rate


def test_rouge_l_hand_computed() -> None:
    # tokens after normalisation: [cat, sat, on, mat] vs [cat, lay, on, mat]
    # LCS = cat on mat = 3 -> P = R = 3/4 -> F = 0.75
    assert rouge_l("The cat sat on the mat.", "the cat lay on a mat") == pytest.approx(0.75)
    # [police, killed, gunman] vs [gunman, police, killed]: LCS = police killed = 2 -> 2/3
    assert rouge_l("police killed the gunman", "the gunman police killed") == pytest.approx(2 / 3)
    # [w, x, y, z] vs [w, y]: LCS 2, P = 1, R = 1/2 -> F = 2/3
    assert rouge_l("w x y z", "w y") == pytest.approx(2 / 3)


def test_rouge_l_empty_texts() -> None:
    assert rouge_l("", "") == 1.0
    assert rouge_l("The.", "") == 1.0  # both empty after normalisation
    assert rouge_l("", "word") == 0.0
    assert rouge_l("alpha", "beta") == 0.0


def test_schema_valid_rate() -> None:
    # 3 of 4 valid
    assert schema_valid_rate([True, False, True, True]) == 0.75
    with pytest.raises(ValueError, match="empty input"):
        schema_valid_rate([])


words = st.lists(st.sampled_from(["x", "y", "z", "w", "the", "v"]), max_size=12).map(" ".join)


@given(words)
def test_rouge_l_of_identical_texts_is_one(text: str) -> None:
    assert rouge_l(text, text) == 1.0


@given(words, words)
def test_rouge_l_is_symmetric_and_bounded(first: str, second: str) -> None:
    assert 0.0 <= rouge_l(first, second) <= 1.0
    assert rouge_l(first, second) == pytest.approx(rouge_l(second, first))
