"""Classification metrics against hand-computed values, plus a few properties."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import f1_score

from shipyard.evaluation.metrics import (
    accuracy,
    classify_metrics,
    confused_pairs,
    confusion_matrix,
    coverage_curve,
    expected_calibration_error,
    macro_f1,
    out_of_scope,
    per_class,
    reliability_bins,
    selective,
)

EXPECTED = ["a", "a", "a", "b", "b", "c"]
PREDICTED = ["a", "a", "b", "b", "c", "c"]
LABELS = ["a", "b", "c"]


def test_accuracy_hand_computed() -> None:
    # Correct at positions 0, 1, 3, 5 -> 4 / 6.
    assert accuracy(EXPECTED, PREDICTED) == pytest.approx(4 / 6)


def test_per_class_hand_computed() -> None:
    # a: tp=2, predicted 2, support 3 -> P=1, R=2/3, F1=2*1*(2/3)/(1+2/3)=0.8
    # b: tp=1, predicted 2, support 2 -> P=R=F1=0.5
    # c: tp=1, predicted 2, support 1 -> P=0.5, R=1, F1=2*0.5*1/1.5=2/3
    # d: never expected nor predicted -> all 0.0 (no division by zero)
    report = per_class(EXPECTED, PREDICTED, [*LABELS, "d"])
    assert report["a"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    )
    assert report["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert report["c"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1}
    )
    assert report["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_macro_f1_averages_only_labels_that_occur() -> None:
    # (0.8 + 0.5 + 2/3) / 3 = 59/90; the unused label "d" is not averaged in.
    assert macro_f1(EXPECTED, PREDICTED, LABELS) == pytest.approx(59 / 90)
    assert macro_f1(EXPECTED, PREDICTED, [*LABELS, "d"]) == pytest.approx(59 / 90)


def test_confusion_matrix_rows_expected_columns_predicted() -> None:
    # expected a -> predicted a,a,b; expected b -> b,c; expected c -> c
    assert confusion_matrix(EXPECTED, PREDICTED, LABELS) == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert confusion_matrix(EXPECTED, PREDICTED, ["c", "b", "a"]) == [
        [1, 0, 0],
        [1, 1, 0],
        [0, 1, 2],
    ]


def test_unknown_label_is_refused_not_dropped() -> None:
    with pytest.raises(ValueError, match=r"not in the label list: \['c'\]"):
        confusion_matrix(EXPECTED, PREDICTED, ["a", "b"])


def test_confused_pairs_most_frequent_first_ties_by_name() -> None:
    # mistakes: x->y twice, y->z twice, y->x once, z->y once
    expected = ["x", "x", "y", "y", "y", "z", "z"]
    predicted = ["y", "y", "x", "z", "z", "y", "z"]
    assert confused_pairs(expected, predicted, top=3) == [
        {"expected": "x", "predicted": "y", "count": 2},
        {"expected": "y", "predicted": "z", "count": 2},
        {"expected": "y", "predicted": "x", "count": 1},
    ]
    assert confused_pairs(["a"], ["a"]) == []


CONF = [0.9, 0.9, 0.6, 0.6, 0.2]
OK = [True, False, True, True, False]


def test_reliability_bins_and_ece_hand_computed() -> None:
    # 5 bins of width 0.2. 0.9 x2 -> [0.8, 1.0]: conf 0.9, acc 0.5, gap 0.4
    # 0.6 x2 -> [0.6, 0.8): conf 0.6, acc 1.0, gap 0.4; 0.2 -> [0.2, 0.4): conf 0.2, acc 0
    # ECE = 2/5*0.4 + 2/5*0.4 + 1/5*0.2 = 0.36
    rows = reliability_bins(CONF, OK, bins=5)
    assert [row["count"] for row in rows] == [0, 1, 0, 2, 2]
    assert rows[0] == {"lower": 0.0, "upper": 0.2, "count": 0, "confidence": None, "accuracy": None}
    assert rows[4]["confidence"] == pytest.approx(0.9)
    assert rows[4]["accuracy"] == pytest.approx(0.5)
    assert expected_calibration_error(CONF, OK, bins=5) == pytest.approx(0.36)


def test_bin_edges_are_exact() -> None:
    # 1.0 belongs to the last bin; 0.57 with 100 bins is in [0.57, 0.58) although
    # 0.57 * 100 == 56.99999999999999.
    assert reliability_bins([1.0], [True], bins=4)[3]["count"] == 1
    assert reliability_bins([0.0], [True], bins=4)[0]["count"] == 1
    assert reliability_bins([0.57], [True], bins=100)[57]["count"] == 1


def test_confidence_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="not in"):
        expected_calibration_error([1.2], [True])
    with pytest.raises(ValueError, match="not in"):
        selective([math.nan], [True], 0.5)


def test_selective_hand_computed() -> None:
    # threshold 0.6 answers 0.9, 0.9, 0.6, 0.6: coverage 4/5, accuracy 3/4
    assert selective(CONF, OK, 0.6) == {"coverage": 0.8, "selective_accuracy": 0.75, "answered": 4}
    assert selective(CONF, OK, 0.95) == {"coverage": 0.0, "selective_accuracy": None, "answered": 0}


def test_coverage_curve_hand_computed() -> None:
    # t=0: all 5, 3 correct; t=0.5: 4 answered, 3 correct; t=1: none answered
    assert coverage_curve(CONF, OK, points=3) == [
        {"threshold": 0.0, "coverage": 1.0, "accuracy": 0.6},
        {"threshold": 0.5, "coverage": 0.8, "accuracy": 0.75},
        {"threshold": 1.0, "coverage": 0.0, "accuracy": None},
    ]


OOS_EXPECTED = ["a", "b", "oos", "oos", "a"]
OOS_PREDICTED = ["a", "b", "oos", "a", "oos"]
OOS_CONF = [0.9, 0.3, 0.8, 0.9, 0.7]


def test_out_of_scope_with_threshold_hand_computed() -> None:
    # flagged: row 1 (0.3 < 0.5), rows 2 and 4 (predicted oos) -> 3 flagged
    # in scope: rows 0, 1, 4; right and not abstained: row 0 only -> 1/3
    # oos rows 2, 3; caught: row 2 -> recall 1/2, precision 1/3, F1 = (2/6)/(5/6) = 0.4
    result = out_of_scope(OOS_EXPECTED, OOS_PREDICTED, OOS_CONF, oos_label="oos", threshold=0.5)
    assert result == pytest.approx(
        {
            "in_scope_accuracy": 1 / 3,
            "oos_recall": 0.5,
            "oos_precision": 1 / 3,
            "oos_f1": 0.4,
            "in_scope": 3,
            "oos": 2,
        }
    )


def test_out_of_scope_without_threshold_and_without_oos_rows() -> None:
    # flagged rows 2, 4; in scope right: rows 0, 1 -> 2/3; caught row 2: P = R = F1 = 1/2
    result = out_of_scope(OOS_EXPECTED, OOS_PREDICTED, OOS_CONF, oos_label="oos", threshold=None)
    assert result["in_scope_accuracy"] == pytest.approx(2 / 3)
    assert (result["oos_precision"], result["oos_recall"], result["oos_f1"]) == (0.5, 0.5, 0.5)
    none = out_of_scope(["a"], ["oos"], [0.9], oos_label="oos", threshold=None)
    assert none["oos_recall"] is None
    assert none["oos_precision"] is None
    assert none["in_scope_accuracy"] == 0.0


def test_classify_metrics_aggregates_and_is_json() -> None:
    # accuracy: rows 0, 1, 2 correct -> 3/5. labels become a, b, oos (oos appended).
    # F1: a: P=1/2 R=1/2 -> 0.5; b: 1.0; oos: P=1/2 R=1/2 -> 0.5 -> macro 2/3
    # threshold 0.5 answers rows 0, 2, 3, 4 -> coverage 0.8; correct among them 0, 2 -> 0.5
    scalars, details = classify_metrics(
        OOS_EXPECTED,
        OOS_PREDICTED,
        OOS_CONF,
        labels=["a", "b"],
        review_threshold=0.5,
        oos_label="oos",
    )
    correct = [e == p for e, p in zip(OOS_EXPECTED, OOS_PREDICTED, strict=True)]
    assert scalars == pytest.approx(
        {
            "accuracy": 0.6,
            "macro_f1": 2 / 3,
            "ece": expected_calibration_error(OOS_CONF, correct),
            "coverage": 0.8,
            "selective_accuracy": 0.5,
            "in_scope_accuracy": 1 / 3,
            "oos_recall": 0.5,
            "oos_precision": 1 / 3,
            "oos_f1": 0.4,
        }
    )
    assert all(type(value) is float for value in scalars.values())
    assert details["labels"] == ["a", "b", "oos"]
    assert set(details) == {
        "labels",
        "per_class",
        "confusion",
        "reliability",
        "coverage_curve",
        "confused_pairs",
        "review_threshold",
        "out_of_scope",
    }
    assert json.loads(json.dumps(details)) == details


def test_classify_metrics_leaves_out_undefined_and_unrequested_scalars() -> None:
    scalars, details = classify_metrics(
        ["a", "b"], ["a", "a"], [0.9, 0.8], labels=["a", "b"], review_threshold=None
    )
    assert set(scalars) == {"accuracy", "macro_f1", "ece"}
    assert "out_of_scope" not in details
    high, _ = classify_metrics(["a"], ["a"], [0.4], labels=["a"], review_threshold=0.5)
    assert high["coverage"] == 0.0
    assert "selective_accuracy" not in high


@pytest.mark.parametrize(
    "call",
    [
        lambda: accuracy([], []),
        lambda: macro_f1([], [], ["a"]),
        lambda: expected_calibration_error([], []),
        lambda: classify_metrics([], [], [], labels=["a"], review_threshold=None),
    ],
)
def test_empty_input_is_a_value_error(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="empty input"):
        call()


def test_mismatched_lengths_are_a_value_error() -> None:
    with pytest.raises(ValueError, match="same length"):
        accuracy(["a"], ["a", "b"])


pairs = st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("abcd")), min_size=1)


@given(pairs)
def test_accuracy_in_unit_interval(rows: list[tuple[str, str]]) -> None:
    expected, predicted = zip(*rows, strict=True)
    assert 0.0 <= accuracy(expected, predicted) <= 1.0


@given(pairs)
def test_confusion_matrix_sums_to_n_and_agrees_with_sklearn(rows: list[tuple[str, str]]) -> None:
    expected, predicted = (list(column) for column in zip(*rows, strict=True))
    matrix = confusion_matrix(expected, predicted, list("abcd"))
    assert sum(map(sum, matrix)) == len(rows)
    assert matrix == sk_confusion_matrix(expected, predicted, labels=list("abcd")).tolist()
    assert macro_f1(expected, predicted, list("abcd")) == pytest.approx(
        f1_score(expected, predicted, average="macro", zero_division=0)
    )


@given(st.lists(st.integers(min_value=1, max_value=4), min_size=10, max_size=10))
def test_ece_of_perfectly_calibrated_data_is_zero(sizes: list[int]) -> None:
    # Bin k of 10 holds 20*m cases at confidence (2k+1)/20, of which exactly that share is right.
    confidences: list[float] = []
    correct: list[bool] = []
    for k, m in enumerate(sizes):
        confidence, group = (2 * k + 1) / 20, 20 * m
        right = (2 * k + 1) * m
        confidences += [confidence] * group
        correct += [True] * right + [False] * (group - right)
    assert expected_calibration_error(confidences, correct, bins=10) == pytest.approx(0, abs=1e-9)


def test_ece_of_sampled_calibrated_data_is_small() -> None:
    rng = random.Random(7)
    confidences = [rng.random() for _ in range(20_000)]
    correct = [rng.random() < c for c in confidences]
    assert expected_calibration_error(confidences, correct) < 0.02


@settings(max_examples=50)
@given(
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=1), st.booleans()), min_size=1, max_size=50
    ),
    st.integers(min_value=2, max_value=30),
)
def test_coverage_never_increases_with_threshold(
    rows: list[tuple[float, bool]], points: int
) -> None:
    confidences, correct = zip(*rows, strict=True)
    curve = coverage_curve(confidences, correct, points=points)
    coverages = [point["coverage"] for point in curve]
    assert coverages == sorted(coverages, reverse=True)
    assert curve[0]["coverage"] == 1.0
