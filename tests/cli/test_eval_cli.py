"""``shipyard eval``, ``evals``, ``calibrate`` and ``train --if-missing`` on the tiny project."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from shipyard.spec import load_project
from tests.cli.conftest import invoke


def test_eval_passes_and_writes_json_and_html(project: Path, tmp_path: Path) -> None:
    code, output = invoke(
        project,
        "eval",
        "triage",
        "--json",
        str(tmp_path / "r.json"),
        "--html",
        str(tmp_path / "r.html"),
    )
    assert code == 0, output
    assert "all gates pass" in output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] is True
    assert report["task"] == "triage"
    html = (tmp_path / "r.html").read_text()
    assert "<svg" in html
    assert "https://" not in html


def test_eval_exits_1_and_names_the_failed_gate(project: Path) -> None:
    code, output = invoke(project, "eval", "triage-strict")
    assert code == 1
    assert "gate failed: accuracy" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "nope"], "no task"),
        (["eval", "triage", "--dataset", "/nonexistent.csv"], "not found"),
        (["eval", "triage", "--dataset", "/tmp/[/x]/d.csv"], "[/x]"),
        (["eval", "triage", "--json", "/no/such/folder/r.json"], "cannot write"),
    ],
)
def test_eval_usage_errors_exit_2(project: Path, args: list[str], message: str) -> None:
    code, output = invoke(project, *args)
    assert code == 2, output
    assert message in output


def test_eval_bad_rows_exit_2_with_line_numbers(project: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,category\nhello,card_arrival\n,pin_blocked\n")
    code, output = invoke(project, "eval", "triage", "--dataset", str(bad))
    assert code == 2
    assert ":3: text: missing or empty" in output


def test_evals_lists_stored_evaluations(project: Path) -> None:
    invoke(project, "eval", "triage")
    code, output = invoke(project, "evals", "triage")
    assert code == 0
    assert "triage" in output
    assert "pass" in output


def test_train_if_missing_skips_current_models(project: Path) -> None:
    code, output = invoke(project, "train", "--if-missing")
    assert code == 0
    assert "model is current, not retrained" in output
    assert "trained" not in output.replace("not retrained", "")


def test_calibrate_writes_the_threshold_into_the_spec(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "p"
    shutil.copytree(project, copy)
    code, output = invoke(copy, "calibrate", "triage", "--target-accuracy", "0.9")
    assert code == 0, output
    written = load_project(copy).tasks["triage"].policy.review_below
    assert written is not None
    assert f"review_below = {written}" in output
    assert "expected coverage" in output


def test_calibrate_dry_run_leaves_the_spec_alone(project: Path) -> None:
    before = (project / "tasks" / "triage.yaml").read_text()
    code, output = invoke(project, "calibrate", "triage", "--target-accuracy", "0.9", "--dry-run")
    assert code == 0, output
    assert (project / "tasks" / "triage.yaml").read_text() == before


def test_calibrate_rejects_a_target_out_of_range(project: Path) -> None:
    code, output = invoke(project, "calibrate", "triage", "--target-accuracy", "1.5")
    assert code == 2
    assert "target-accuracy" in output
