"""Classification metrics: label quality, calibration and selective (abstaining) prediction.

All functions are pure and return plain Python numbers, so results can be stored as JSON and
compared across versions. Functions that take ``labels`` refuse a label outside it: silently
dropping unknown labels would make the confusion matrix disagree with the case count.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from typing import Any

from shipyard.evaluation.metrics._checks import f1, probabilities, ratio, same_length


def _check_labels(
    what: str, labels: Sequence[str], expected: Sequence[str], predicted: Sequence[str]
) -> None:
    if not labels:
        raise ValueError(f"{what}: labels must not be empty")
    if len(set(labels)) != len(labels):
        raise ValueError(f"{what}: labels must be unique")
    unknown = (set(expected) | set(predicted)) - set(labels)
    if unknown:
        raise ValueError(f"{what}: labels not in the label list: {sorted(unknown)}")


def accuracy(expected: Sequence[str], predicted: Sequence[str]) -> float:
    """Share of cases whose predicted label equals the expected one."""
    n = same_length("accuracy", expected=expected, predicted=predicted)
    return sum(e == p for e, p in zip(expected, predicted, strict=True)) / n


def per_class(
    expected: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support (expected count) per label; x/0 is 0.0."""
    same_length("per_class", expected=expected, predicted=predicted)
    _check_labels("per_class", labels, expected, predicted)
    pairs = Counter(zip(expected, predicted, strict=True))
    support, guessed = Counter(expected), Counter(predicted)
    report: dict[str, dict[str, float]] = {}
    for label in labels:
        hits = pairs[(label, label)]
        precision, recall = ratio(hits, guessed[label]), ratio(hits, support[label])
        report[label] = {
            "precision": precision,
            "recall": recall,
            "f1": f1(precision, recall),
            "support": support[label],
        }
    return report


def macro_f1(expected: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> float:
    """Unweighted mean F1 over the labels that occur (expected or predicted).

    A label that is neither expected nor predicted has no defined F1; counting it as 0 would
    punish a model for classes the evaluation set does not contain. This equals scikit-learn's
    default macro F1 (over the union of labels seen).
    """
    report = per_class(expected, predicted, labels)
    seen = set(expected) | set(predicted)
    scores = [report[label]["f1"] for label in labels if label in seen]
    return sum(scores) / len(scores)


def confusion_matrix(
    expected: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> list[list[int]]:
    """Counts with rows = expected label, columns = predicted label, both in ``labels`` order."""
    same_length("confusion_matrix", expected=expected, predicted=predicted)
    _check_labels("confusion_matrix", labels, expected, predicted)
    pairs = Counter(zip(expected, predicted, strict=True))
    return [[pairs[(row, column)] for column in labels] for row in labels]


def confused_pairs(
    expected: Sequence[str], predicted: Sequence[str], top: int = 10
) -> list[dict[str, Any]]:
    """The ``top`` most frequent (expected, predicted) mistakes; ties sorted by the names."""
    same_length("confused_pairs", expected=expected, predicted=predicted)
    if top < 0:
        raise ValueError("confused_pairs: top must be >= 0")
    mistakes = Counter((e, p) for e, p in zip(expected, predicted, strict=True) if e != p)
    ranked = sorted(mistakes.items(), key=lambda item: (-item[1], item[0]))
    return [{"expected": e, "predicted": p, "count": count} for (e, p), count in ranked[:top]]


def reliability_bins(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 15
) -> list[dict[str, Any]]:
    """Equal-width confidence bins on [0, 1] with each bin's mean confidence and accuracy.

    Bin i covers [i/bins, (i+1)/bins); the last bin also holds 1.0. Empty bins are kept (count
    0, confidence and accuracy None) so a reliability diagram always has ``bins`` bars.
    """
    same_length("reliability_bins", confidences=confidences, correct=correct)
    if bins < 1:
        raise ValueError("reliability_bins: bins must be >= 1")
    values = probabilities("reliability_bins", confidences)
    edges = [index / bins for index in range(bins + 1)]
    members: list[list[int]] = [[] for _ in range(bins)]
    for case, value in enumerate(values):
        # Search the reported edges rather than floor(value * bins), which misplaces
        # values such as 0.57 (0.57 * 100 == 56.99999999999999).
        index = min(bisect_right(edges, value) - 1, bins - 1)
        members[index].append(case)
    report: list[dict[str, Any]] = []
    for index, cases in enumerate(members):
        count = len(cases)
        report.append(
            {
                "lower": edges[index],
                "upper": edges[index + 1],
                "count": count,
                "confidence": sum(values[c] for c in cases) / count if count else None,
                "accuracy": sum(bool(correct[c]) for c in cases) / count if count else None,
            }
        )
    return report


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 15
) -> float:
    """Case-weighted mean gap |accuracy - mean confidence| over equal-width bins.

    0 means the stated confidence can be taken at face value, which the review threshold
    relies on.
    """
    report = reliability_bins(confidences, correct, bins)
    n = len(confidences)
    gaps: list[float] = [
        row["count"] / n * abs(float(row["accuracy"]) - float(row["confidence"]))
        for row in report
        if row["count"]
    ]
    return sum(gaps)


def selective(
    confidences: Sequence[float], correct: Sequence[bool], threshold: float
) -> dict[str, Any]:
    """Coverage and accuracy when only cases with confidence >= ``threshold`` are answered.

    The rest go to human review; ``selective_accuracy`` is None when nothing is answered.
    """
    n = same_length("selective", confidences=confidences, correct=correct)
    values = probabilities("selective", confidences)
    answered = [bool(ok) for value, ok in zip(values, correct, strict=True) if value >= threshold]
    return {
        "coverage": len(answered) / n,
        "selective_accuracy": sum(answered) / len(answered) if answered else None,
        "answered": len(answered),
    }


def coverage_curve(
    confidences: Sequence[float], correct: Sequence[bool], points: int = 21
) -> list[dict[str, Any]]:
    """Coverage and selective accuracy at ``points`` evenly spaced thresholds 0.0 .. 1.0."""
    if points < 2:
        raise ValueError("coverage_curve: points must be >= 2")
    curve: list[dict[str, Any]] = []
    for index in range(points):
        threshold = index / (points - 1)
        result = selective(confidences, correct, threshold)
        curve.append(
            {
                "threshold": threshold,
                "coverage": result["coverage"],
                "accuracy": result["selective_accuracy"],
            }
        )
    return curve


def out_of_scope(
    expected: Sequence[str],
    predicted: Sequence[str],
    confidences: Sequence[float],
    *,
    oos_label: str,
    threshold: float | None,
) -> dict[str, Any]:
    """How well out-of-scope cases are kept away from every in-scope label.

    A case is flagged out-of-scope when its predicted label is ``oos_label`` or (with a
    threshold) its confidence is below it, because such a case is abstained on. An in-scope
    case counts as correct only when it has the right label AND was not abstained on.
    In-scope accuracy is None without in-scope rows; the three oos rates are None without
    out-of-scope rows (the dataset cannot measure them); precision is 0.0 when nothing is
    flagged although oos rows exist.
    """
    same_length("out_of_scope", expected=expected, predicted=predicted, confidences=confidences)
    values = probabilities("out_of_scope", confidences)
    flagged = [
        p == oos_label or (threshold is not None and c < threshold)
        for p, c in zip(predicted, values, strict=True)
    ]
    truly = [e == oos_label for e in expected]
    in_scope = truly.count(False)
    oos = truly.count(True)
    right = sum(
        e == p and not f
        for e, p, f, t in zip(expected, predicted, flagged, truly, strict=True)
        if not t
    )
    caught = sum(f and t for f, t in zip(flagged, truly, strict=True))
    precision = ratio(caught, sum(flagged)) if oos else None
    recall = caught / oos if oos else None
    return {
        "in_scope_accuracy": right / in_scope if in_scope else None,
        "oos_recall": recall,
        "oos_precision": precision,
        "oos_f1": f1(precision, recall) if precision is not None and recall is not None else None,
        "in_scope": in_scope,
        "oos": oos,
    }


def classify_metrics(
    expected: Sequence[str],
    predicted: Sequence[str],
    confidences: Sequence[float],
    *,
    labels: Sequence[str],
    review_threshold: float | None,
    oos_label: str | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Every classification metric: (gateable scalars, details for the report).

    Labels seen in the data (and ``oos_label``) but missing from ``labels`` are appended in
    sorted order, so nothing is dropped. A scalar that is undefined on this dataset (for
    example ``selective_accuracy`` when nothing clears the threshold) is left out of the
    scalars rather than reported as a made-up number; a gate on it then fails as missing.
    """
    same_length("classify_metrics", expected=expected, predicted=predicted, confidences=confidences)
    known = list(dict.fromkeys(labels))
    extra = (set(expected) | set(predicted) | ({oos_label} if oos_label else set())) - set(known)
    known += sorted(extra)
    correct = [e == p for e, p in zip(expected, predicted, strict=True)]
    scalars: dict[str, float] = {
        "accuracy": accuracy(expected, predicted),
        "macro_f1": macro_f1(expected, predicted, known),
        "ece": expected_calibration_error(confidences, correct),
    }
    details: dict[str, Any] = {
        "labels": known,
        "per_class": per_class(expected, predicted, known),
        "confusion": confusion_matrix(expected, predicted, known),
        "reliability": reliability_bins(confidences, correct),
        "coverage_curve": coverage_curve(confidences, correct),
        "confused_pairs": confused_pairs(expected, predicted),
        "review_threshold": review_threshold,
    }
    optional: dict[str, Any] = {}
    if review_threshold is not None:
        chosen = selective(confidences, correct, review_threshold)
        optional |= {k: chosen[k] for k in ("coverage", "selective_accuracy")}
    if oos_label is not None:
        scope = out_of_scope(
            expected, predicted, confidences, oos_label=oos_label, threshold=review_threshold
        )
        details["out_of_scope"] = scope
        optional |= {k: v for k, v in scope.items() if k not in {"in_scope", "oos"}}
    scalars |= {name: float(value) for name, value in optional.items() if value is not None}
    return scalars, details
