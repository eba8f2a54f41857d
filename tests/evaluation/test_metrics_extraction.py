"""Extraction metrics and the shared text normalisation, against hand-computed values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.evaluation.metrics import exact_match, extract_metrics, normalize, token_f1


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("The  Cat's hat!", "cats hat"),
        ("an apple, a pear", "apple pear"),
        ("Theater", "theater"),
        ("\u201cHello\u201d \u2014 world", "hello world"),
        (None, ""),
        ("  ", ""),
    ],
)
def test_normalize(raw: str | None, normalised: str) -> None:
    assert normalize(raw) == normalised


def test_token_f1_and_exact_match_hand_computed() -> None:
    # "paris" vs "paris france": 1 common, P = 1/2, R = 1 -> F1 = 2/3
    assert token_f1("Paris", "Paris, France") == pytest.approx(2 / 3)
    assert exact_match("The Acme Corp.", "acme corp") == 1.0
    assert exact_match("Acme", "Acme Inc") == 0.0
    # repeated tokens are matched occurrence by occurrence: "x x y" vs "x y"
    # common = min(2,1) + 1 = 2, P = 2/2, R = 2/3 -> F1 = 0.8
    assert token_f1("x x y", "x y") == pytest.approx(0.8)
    assert token_f1(None, "") == 1.0
    assert token_f1("", "x") == 0.0


FIELDS = ["name", "city"]
EXPECTED = [{"name": "The Acme Corp.", "city": "Paris"}, {"name": "Globex", "city": None}]
PREDICTED = [{"name": "acme corp", "city": "Paris France"}, {"name": "Globex Inc", "city": ""}]


def test_extract_metrics_hand_computed() -> None:
    # name: case 1 exact (EM 1, F1 1; tokens common 2, gold 2, predicted 2)
    #       case 2 "globex" vs "globex inc" (EM 0, F1 2/3; 1, 1, 2)
    # city: case 1 "paris" vs "paris france" (EM 0, F1 2/3; 1, 1, 2)
    #       case 2 None vs "" both missing (EM 1, F1 1; 0, 0, 0)
    # per field: EM 1/2, F1 (1 + 2/3) / 2 = 5/6
    # micro EM = 2/4; micro F1 pools tokens: common 4, gold 4, predicted 6
    #   -> P = 4/6, R = 1 -> F1 = 2 * (2/3) / (5/3) = 0.8
    scalars, details = extract_metrics(EXPECTED, PREDICTED, FIELDS)
    assert scalars == pytest.approx(
        {
            "exact_match_micro": 0.5,
            "exact_match_macro": 0.5,
            "token_f1_micro": 0.8,
            "token_f1_macro": 5 / 6,
        }
    )
    assert details["fields"] == FIELDS
    assert details["per_field"]["name"] == pytest.approx(
        {"exact_match": 0.5, "token_f1": 5 / 6, "cases": 2}
    )


def test_absent_key_counts_as_missing() -> None:
    # city absent from the expected row and empty in the prediction: a match.
    scalars, details = extract_metrics([{"name": "x"}], [{"name": "x", "city": ""}], FIELDS)
    assert details["per_field"]["city"] == {"exact_match": 1.0, "token_f1": 1.0, "cases": 1}
    assert scalars["token_f1_micro"] == 1.0
    # predicted a value the text does not have: a miss.
    scalars, _ = extract_metrics([{"name": "x"}], [{"name": "x", "city": "Rome"}], FIELDS)
    assert scalars["exact_match_macro"] == 0.5


def test_empty_input_and_no_fields_are_value_errors() -> None:
    with pytest.raises(ValueError, match="empty input"):
        extract_metrics([], [], FIELDS)
    with pytest.raises(ValueError, match="fields must not be empty"):
        extract_metrics(EXPECTED, PREDICTED, [])


@given(st.text(max_size=40), st.text(max_size=40))
def test_token_f1_is_symmetric_and_bounded(first: str, second: str) -> None:
    assert 0.0 <= token_f1(first, second) <= 1.0
    assert token_f1(first, second) == pytest.approx(token_f1(second, first))
    assert token_f1(first, first) == 1.0
