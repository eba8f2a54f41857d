"""The HTML report: self-contained, escaped, and robust to missing optional parts."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from shipyard.evaluation.report_html import render_html

HOSTILE = "<script>alert('x')</script> & \"q\""


def build_report(n_labels: int = 6, cases_per_label: int = 10) -> dict[str, Any]:
    labels = [f"label_{i}" for i in range(n_labels)]
    confusion = [[0] * n_labels for _ in range(n_labels)]
    cases: list[dict[str, Any]] = []
    for i in range(n_labels):
        for k in range(cases_per_label):
            j = i if k < cases_per_label - 2 else (i + k) % n_labels
            confusion[i][j] += 1
            confidence = round(0.5 + 0.05 * k, 3)
            cases.append(
                {
                    "line": len(cases) + 2,
                    "input": {"text": f"case {len(cases)} " + "word " * 60},
                    "expected": {"label": labels[i]},
                    "output": {"label": labels[j], "confidence": confidence},
                    "confidence": confidence,
                    "correct": i == j,
                }
            )
    metrics = {"accuracy": 0.928, "macro_f1": 0.925, "ece": 0.012, "coverage": 0.91}
    return {
        "task": "ticket-triage",
        "version": 2,
        "kind": "classify",
        "artifact": "a" * 64,
        "dataset": {"path": "data/dev.csv", "sha256": "b" * 64, "rows": len(cases)},
        "created_at": "2026-11-25T19:30:00+00:00",
        "duration_seconds": 12.3,
        "cases_per_second": 81.5,
        "metrics": metrics,
        "gates": [
            {"metric": "accuracy", "op": ">=", "threshold": 0.92, "value": 0.928, "passed": True},
            {"metric": "ece", "op": "<=", "threshold": 0.05, "value": 0.012, "passed": True},
        ],
        "regression": [
            {
                "metric": "accuracy",
                "previous": 0.93,
                "value": 0.928,
                "max_drop": 0.01,
                "drop": 0.002,
                "passed": True,
            }
        ],
        "previous": {"version": 1, "artifact": "c" * 64, "metrics": {"accuracy": 0.93}},
        "passed": True,
        "details": {
            "labels": labels,
            "per_class": {
                name: {
                    "precision": 0.9,
                    "recall": 0.8 - i / 100,
                    "f1": 0.85 - i / 100,
                    "support": 10,
                }
                for i, name in enumerate(labels)
            },
            "confusion": confusion,
            "reliability": [
                {
                    "lower": k / 10,
                    "upper": (k + 1) / 10,
                    "count": k,
                    "confidence": None,
                    "accuracy": None,
                }
                if k < 3
                else {
                    "lower": k / 10,
                    "upper": (k + 1) / 10,
                    "count": k * 3,
                    "confidence": k / 10 + 0.05,
                    "accuracy": k / 10,
                }
                for k in range(10)
            ],
            "coverage_curve": [
                {"threshold": t / 10, "coverage": 1 - t / 12, "accuracy": 0.9 + t / 120}
                for t in range(10)
            ],
            "confused_pairs": [{"expected": labels[0], "predicted": labels[1], "count": 2}],
            "review_threshold": 0.47,
            "out_of_scope": {
                "in_scope_accuracy": 0.95,
                "oos_recall": 0.87,
                "oos_precision": 0.9,
                "oos_f1": 0.88,
                "in_scope": 300,
                "oos": 100,
            },
        },
        "cases": cases,
    }


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.ids |= {value for name, value in attrs if name == "id" and value}


def parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    collector.close()
    return collector


def assert_self_contained(page: str) -> None:
    lowered = page.lower()
    for needle in ("http://", "https://", "<link", "<script", "@import", "url("):
        assert needle not in lowered, needle


def test_full_report_has_every_section() -> None:
    page = render_html(build_report())
    parsed = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert {"metrics", "regression", "out-of-scope", "confusion", "calibration"} <= parsed.ids
    assert {"pairs", "classes", "cases"} <= parsed.ids
    assert parsed.tags.count("svg") == 3
    assert ">PASS<" in page
    assert "≥ 0.920" in page
    assert "≤ 0.050" in page
    assert "0.928" in page
    assert "-0.002" in page  # accuracy against the previous version
    assert "aaaaaaaaaaaa" in page
    assert "a" * 13 not in page.replace('title="' + "a" * 64, "")
    assert "87.0%" in page  # out-of-scope recall
    assert_self_contained(page)


def test_per_class_weakest_first_and_cases_truncated() -> None:
    page = render_html(build_report())
    classes = page[page.index('id="classes"') : page.index('id="cases"')]
    order = re.findall(r"<td>(label_\d+)</td>", classes)
    assert order == [f"label_{i}" for i in reversed(range(6))]
    cases = page[page.index('id="cases"') :]
    assert "12 misclassified" in cases
    assert "word " * 60 not in cases
    assert "…" in cases


def test_case_table_is_capped() -> None:
    page = render_html(build_report(n_labels=30, cases_per_label=10))
    assert "60 misclassified" in page
    report = build_report(n_labels=120, cases_per_label=10)
    page = render_html(report)
    assert "Showing the first 200; 40 omitted." in page
    cases = page[page.index('id="cases"') :]
    assert cases.count("<tr>") == 201  # header row + 200


def test_minimal_report_renders() -> None:
    report = {
        "task": "t",
        "version": 1,
        "metrics": {"accuracy": 0.5},
        "gates": [{"metric": "accuracy", "op": ">=", "threshold": 0.9, "passed": False}],
        "passed": False,
    }
    page = render_html(report)
    parsed = parse(page)
    assert parsed.ids == {"metrics"}
    assert "svg" not in parsed.tags
    assert ">FAIL<" in page
    assert "0.500" in page
    assert_self_contained(page)


@pytest.mark.parametrize(
    "report",
    [
        {},
        {"task": None, "metrics": None, "gates": None, "details": None, "cases": None},
        {"task": "t", "details": {"labels": ["a"], "confusion": "nonsense", "reliability": [1]}},
        {"task": "t", "details": {"labels": ["a", "b"], "confusion": [[1]], "per_class": []}},
        {"task": "t", "metrics": {"x": "text", "y": float("nan"), "z": True}, "cases": [None]},
        {"task": "t", "details": {"coverage_curve": [{"coverage": 1}], "review_threshold": "x"}},
    ],
)
def test_malformed_parts_are_skipped(report: dict[str, Any]) -> None:
    page = render_html(report)
    assert page.endswith("</html>")
    assert_self_contained(page)


def test_fail_badge() -> None:
    report = build_report()
    report["passed"] = False
    report["gates"][0]["passed"] = False
    page = render_html(report)
    assert ">FAIL<" in page
    assert ">PASS<" not in page
    assert "Failed: accuracy" in page


def test_hostile_strings_are_escaped() -> None:
    report = build_report()
    report["task"] = HOSTILE
    report["dataset"]["path"] = HOSTILE
    report["metrics"][HOSTILE] = 0.5
    report["details"]["labels"][0] = HOSTILE
    report["details"]["per_class"][HOSTILE] = {"f1": 0.1}
    report["details"]["confused_pairs"][0]["expected"] = HOSTILE
    wrong = next(case for case in report["cases"] if not case["correct"])
    wrong["input"]["text"] = HOSTILE
    wrong["output"]["label"] = HOSTILE
    page = render_html(report)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;q&quot;" in page
    assert_self_contained(page)


def test_many_labels_stay_small() -> None:
    report = build_report(n_labels=150, cases_per_label=20)
    page = render_html(report)
    assert len(page.encode()) < 2_000_000
    assert "150 labels: axis labels are hidden" in page
    assert "label_149 → " in page  # hover titles carry the labels
    assert_self_contained(page)


def test_dense_matrix_limits_hover_titles() -> None:
    n = 150
    report = {"task": "t", "details": {"labels": [f"l{i}" for i in range(n)]}}
    report["details"]["confusion"] = [[1] * n for _ in range(n)]
    page = render_html(report)
    assert page.count("<title>") <= 6001 + 2 * n
    assert len(page.encode()) < 3_000_000
