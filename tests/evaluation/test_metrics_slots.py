"""Slot precision/recall/F1 (kind extract), against hand-computed values."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.evaluation.extract_scoring import extract_correct, extract_metric_names
from shipyard.evaluation.metrics.slots import slot_metrics
from shipyard.evaluation.scoring import SCORING
from shipyard.spec import load_project
from tests.conftest import ROOT

FIELDS = ["people", "time", "name"]
EXPECTED: list[dict[str, Any]] = [
    {"people": "4", "time": "7pm", "name": ""},
    {"people": "two of us", "time": "", "name": ""},
    {"people": "", "time": "19:30", "name": None},
    {"people": "", "time": "", "name": ""},
]
PREDICTED: list[dict[str, Any]] = [
    {"people": "4", "time": "7 pm", "name": None},  # time: "7 pm" != "7pm" -> FP and FN
    {"people": "Two of us.", "time": None, "name": None},  # normalised match
    {"people": "3", "time": "19:30", "name": None},  # people: FP only
    {"people": None, "time": None, "name": None},  # nothing to find, nothing found: right
]


def test_counts_precision_recall_and_f1_by_hand() -> None:
    metrics, details = slot_metrics(EXPECTED, PREDICTED, FIELDS)
    # people: TP 2, FP 1, FN 0 -> P 2/3, R 1, F1 0.8
    people = details["per_field"]["people"]
    assert (people["tp"], people["fp"], people["fn"]) == (2, 1, 0)
    assert metrics["people_precision"] == pytest.approx(2 / 3)
    assert metrics["people_recall"] == 1.0
    assert metrics["people_f1"] == pytest.approx(0.8)
    # time: TP 1, FP 1, FN 1 -> P = R = F1 = 0.5
    assert metrics["time_f1"] == pytest.approx(0.5)
    # name: no gold and no prediction anywhere -> undefined, not 0 or 1
    assert "name_f1" not in metrics
    assert metrics["macro_f1"] == pytest.approx((0.8 + 0.5) / 2)
    # pooled: TP 3, FP 2, FN 1 -> P 3/5, R 3/4, F1 2/3
    assert metrics["micro_precision"] == pytest.approx(0.6)
    assert metrics["micro_recall"] == pytest.approx(0.75)
    assert metrics["micro_f1"] == pytest.approx(2 / 3)
    # rows 2 and 4 have every field right
    assert metrics["exact_match"] == 0.5


def test_nothing_anywhere_leaves_the_pooled_scores_undefined() -> None:
    metrics, _ = slot_metrics([{"a": ""}], [{"a": None}], ["a"])
    assert metrics == {"exact_match": 1.0}


def test_empty_input_is_refused() -> None:
    with pytest.raises(ValueError, match="no cases"):
        slot_metrics([], [], FIELDS)


def test_a_case_is_correct_only_with_every_field_right() -> None:
    assert extract_correct(EXPECTED[1], PREDICTED[1])
    assert not extract_correct(EXPECTED[0], PREDICTED[0])
    assert extract_correct({"time": ""}, {"time": None, "confidence": 0.3})


def test_extract_is_registered_with_empty_expected_values_allowed() -> None:
    spec = load_project(ROOT / "examples" / "booking-extract").tasks["booking-fields"]
    scoring = SCORING["extract"]
    assert scoring.empty_expected
    names = extract_metric_names(spec)
    assert {"micro_f1", "exact_match", "token_f1_micro", "last_name_f1"} <= names
    assert "confidence_f1" not in names
    assert spec.evaluation is not None
    assert set(spec.evaluation.gates) <= names
