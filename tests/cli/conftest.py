"""CLI tests run on their own trained copy of the tiny project (one per test module)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli.main import app

runner = CliRunner()


def invoke(project: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--project", str(project)])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def project(tiny_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("cli") / "project"
    shutil.copytree(tiny_project, target)
    code, output = invoke(target, "train")
    assert code == 0, output
    return target
