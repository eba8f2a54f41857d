"""``shipyard spec validate`` and ``shipyard spec schema`` through Typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

from spec_helpers import EXAMPLE_PROJECT, VALID_SPEC, line_with
from typer.testing import CliRunner

from shipyard.cli.spec_cmd import app

runner = CliRunner()


def test_validate_example_project() -> None:
    result = runner.invoke(app, ["validate", str(EXAMPLE_PROJECT)])

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ok: 1 task(s) valid"


def test_validate_single_file_and_project_file(project: Path) -> None:
    for path in (project / "tasks" / "ticket-triage.yaml", project / "shipyard.yaml"):
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 0, result.output
        assert "ok: 1 task(s) valid" in result.stdout


def test_validate_reports_file_line_field(project: Path) -> None:
    text = VALID_SPEC.replace("version: 1", "version: 0").replace("kind: classify", "kind: x")
    spec_file = project / "tasks" / "ticket-triage.yaml"
    spec_file.write_text(text)

    result = runner.invoke(app, ["validate", str(project)])

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{spec_file}:2: version: ")
    assert lines[1].startswith(f"{spec_file}:{line_with(text, 'kind:')}: kind: unknown task kind")
    assert "invalid: 2 problem(s)" in result.stderr


def test_validate_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope")])

    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_validate_folder_without_project_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path)])

    assert result.exit_code == 1
    assert "shipyard.yaml: (document): file not found" in result.stdout


def test_schema_commands() -> None:
    spec = json.loads(runner.invoke(app, ["schema"]).stdout)
    project = json.loads(runner.invoke(app, ["schema", "--project-schema"]).stdout)

    assert spec["title"] == "Shipyard task spec"
    assert "evaluation" in spec["properties"]
    assert project["title"] == "Shipyard project"
    assert "tasks_dir" in project["properties"]
