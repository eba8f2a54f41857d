"""A small, valid project in a temporary folder; tests break one thing at a time."""

from __future__ import annotations

from pathlib import Path

import pytest
from spec_helpers import ROWS, VALID_SPEC, ProblemsOf

from shipyard.errors import FieldProblem, SpecInvalid
from shipyard.spec import load_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A valid project folder with one task and small data files."""
    (tmp_path / "shipyard.yaml").write_text("name: demo\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "categories.json").write_text('["card_arrival", "billing", "other"]')
    (data / "train.csv").write_text(ROWS)
    (data / "dev.csv").write_text(ROWS)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "ticket-triage.yaml").write_text(VALID_SPEC)
    return tmp_path


@pytest.fixture
def problems_of(project: Path) -> ProblemsOf:
    """Write ``text`` as the project's only task spec and return the problems loading it."""

    def run(text: str) -> list[FieldProblem]:
        (project / "tasks" / "ticket-triage.yaml").write_text(text)
        with pytest.raises(SpecInvalid) as info:
            load_project(project)
        return info.value.problems

    return run
