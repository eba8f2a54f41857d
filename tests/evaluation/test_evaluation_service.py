"""Evaluations end to end on the tiny project: metrics, gates, regression, storage, API."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from shipyard.bootstrap import Container
from shipyard.errors import DataInvalid, InvalidInput
from shipyard.storage.tables import Evaluation
from tests.conftest import TINY_LABELS, TenantKeys


def test_evaluation_reports_metrics_gates_and_cases(
    trained_container: Container, tiny_project: Path
) -> None:
    report = trained_container.evaluations.evaluate("triage", actor="tests")
    rows = len((tiny_project / "data" / "dev.csv").read_text().splitlines()) - 1
    assert report["dataset"]["rows"] == rows
    assert len(report["cases"]) == report["dataset"]["rows"]
    correct = sum(case["correct"] for case in report["cases"])
    assert report["metrics"]["accuracy"] == pytest.approx(correct / len(report["cases"]))
    assert {"macro_f1", "ece", "coverage", "selective_accuracy"} <= set(report["metrics"])
    assert report["gates"] == [
        {
            "metric": "accuracy",
            "op": ">=",
            "threshold": 0.5,
            "value": report["metrics"]["accuracy"],
            "passed": True,
        }
    ]
    assert report["passed"] is True
    assert report["artifact"] == trained_container.runtime.runner("triage").artifact
    assert report["details"]["labels"][: len(TINY_LABELS)] == TINY_LABELS


def test_a_gate_that_cannot_pass_fails_the_evaluation(trained_container: Container) -> None:
    report = trained_container.evaluations.evaluate("triage-strict", actor="tests")
    assert report["passed"] is False
    assert report["gates"][0]["passed"] is False


def test_regression_against_the_previous_evaluation(trained_container: Container) -> None:
    first = trained_container.evaluations.evaluate("triage", actor="tests")
    second = trained_container.evaluations.evaluate("triage", actor="tests")
    assert second["previous"]["id"] == first["id"]
    assert second["regression"][0]["drop"] == pytest.approx(0.0)
    assert second["passed"]
    # Pretend the previous version was better: the same model now "dropped" accuracy.
    with trained_container.sessions.begin() as session:
        session.execute(
            update(Evaluation)
            .where(Evaluation.id == second["id"])
            .values(metrics={**second["metrics"], "accuracy": second["metrics"]["accuracy"] + 0.05})
        )
    third = trained_container.evaluations.evaluate("triage", actor="tests")
    assert third["regression"][0]["passed"] is False
    assert third["passed"] is False
    # A failed evaluation never becomes the baseline: running again does not "pass".
    fourth = trained_container.evaluations.evaluate("triage", actor="tests")
    assert fourth["previous"]["id"] == second["id"]
    assert fourth["passed"] is False


def test_evaluations_are_stored_listed_and_audited(trained_container: Container) -> None:
    report = trained_container.evaluations.evaluate("triage", actor="tests")
    listed = trained_container.evaluations.list("triage", limit=5)
    assert listed[0]["id"] == report["id"]
    assert listed[0]["metrics"] == report["metrics"]
    assert trained_container.audit.verify().ok


def test_another_dataset_uses_the_same_mapping(
    trained_container: Container, tiny_project: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.csv"
    lines = (tiny_project / "data" / "dev.csv").read_text().splitlines()
    other.write_text("\n".join(lines[:7]) + "\n")
    report = trained_container.evaluations.evaluate("triage", dataset=other, actor="tests")
    assert report["dataset"]["rows"] == 6


def test_bad_rows_are_reported_with_line_numbers(
    trained_container: Container, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,category\nhello,card_arrival\n,pin_blocked\nhi,\n")
    with pytest.raises(DataInvalid) as caught:
        trained_container.evaluations.evaluate("triage", dataset=bad, actor="tests")
    assert [(p.field, p.line) for p in caught.value.problems] == [("text", 3), ("category", 4)]


def test_a_gate_on_an_unknown_metric_is_a_usage_error(
    trained_container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = trained_container.project.tasks["triage"]
    assert spec.evaluation is not None
    gates = spec.evaluation.model_copy(update={"gates": {"bleu": ">= 0.3"}})
    monkeypatch.setitem(
        trained_container.project.tasks,  # type: ignore[index]
        "triage",
        spec.model_copy(update={"evaluation": gates}),
    )
    with pytest.raises(InvalidInput, match="bleu"):
        trained_container.evaluations.evaluate("triage", actor="tests")


def test_evaluations_api(
    client: TestClient, trained_container: Container, tenant: TenantKeys
) -> None:
    report = trained_container.evaluations.evaluate("triage", actor="tests")
    response = client.get("/v1/tasks/triage/evaluations", headers=tenant.auth("reviewer"))
    assert response.status_code == 200
    first = response.json()[0]
    assert first["id"] == report["id"]
    assert "cases" not in first
    assert client.get("/v1/tasks/nope/evaluations", headers=tenant.auth()).status_code == 404
    assert client.get("/v1/tasks/triage/evaluations").status_code == 401


def test_coverage_counts_review_labels_as_not_answered(trained_container: Container) -> None:
    report = trained_container.evaluations.evaluate("triage", actor="tests")
    cases = report["cases"]
    answered = [
        c for c in cases if c["confidence"] >= 0.2 and c["output"]["label"] != "pin_blocked"
    ]
    assert any(c["output"]["label"] == "pin_blocked" for c in cases)
    assert report["metrics"]["coverage"] == pytest.approx(len(answered) / len(cases))
    accuracy = sum(c["correct"] for c in answered) / len(answered)
    assert report["metrics"]["selective_accuracy"] == pytest.approx(accuracy)


def test_unknown_expected_labels_are_bad_rows(trained_container: Container, tmp_path: Path) -> None:
    data = tmp_path / "typo.csv"
    data.write_text("text,category\nwhere is my card,card_arrival\nmy pin,pin_blokced\n")
    with pytest.raises(DataInvalid) as caught:
        trained_container.evaluations.evaluate("triage", dataset=data, actor="tests")
    assert [(p.field, p.line) for p in caught.value.problems] == [("label", 3)]


def test_a_max_drop_on_an_unknown_metric_is_refused_before_predicting(
    trained_container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = trained_container.project.tasks["triage"]
    assert spec.evaluation is not None
    typo = spec.evaluation.model_copy(update={"max_drop": {"acuracy": 0.01}})
    monkeypatch.setitem(
        trained_container.project.tasks,  # type: ignore[index]
        "triage",
        spec.model_copy(update={"evaluation": typo}),
    )
    monkeypatch.setattr(trained_container.runtime, "runner", None)  # must not be reached
    with pytest.raises(InvalidInput, match=r"max_drop\.acuracy"):
        trained_container.evaluations.evaluate("triage", actor="tests")
