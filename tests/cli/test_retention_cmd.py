"""``shipyard retention run [--dry-run]`` and ``collections create --retention-days``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from shipyard.bootstrap import build
from shipyard.settings import Settings
from shipyard.storage.tables import Collection, Document, Run
from tests.cli.conftest import invoke
from tests.governance.test_retention import write_retention_project

OLD = timedelta(days=45)


@pytest.fixture(scope="module")
def project(tiny_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # `ask` keeps runs 30 days and needs no training; nothing here trains a model.
    return write_retention_project(tiny_project, tmp_path_factory.mktemp("cli") / "project")


def _age(project: Path) -> None:
    """Move every run and document of the project's database back by OLD."""
    container = build(Settings(project_dir=project))
    try:
        old = datetime.now(UTC) - OLD
        with container.sessions.begin() as session:
            session.execute(update(Run).values(created_at=old))
            session.execute(update(Document).values(created_at=old, indexed_at=old))
    finally:
        container.close()


def _state(project: Path) -> tuple[list[Run], list[Document], dict[str, int | None]]:
    container = build(Settings(project_dir=project))
    try:
        with container.sessions() as session:
            runs = list(session.execute(select(Run).order_by(Run.task, Run.id)).scalars())
            documents = list(session.execute(select(Document)).scalars())
            retention = {
                c.name: c.retention_days for c in session.execute(select(Collection)).scalars()
            }
        return runs, documents, retention
    finally:
        container.close()


def test_collections_create_takes_a_retention_period(project: Path) -> None:
    code, output = invoke(project, "collections", "create", "minutes", "--retention-days", "0")
    assert code == 2
    assert "--retention-days" in output
    assert "Traceback" not in output

    code, output = invoke(project, "collections", "create", "minutes", "--retention-days", "30")
    assert code == 0, output
    assert _state(project)[2]["minutes"] == 30


def test_retention_run_purges_what_expired(project: Path, tmp_path: Path) -> None:
    for number in range(2):
        code, output = invoke(project, "run", "ask", "--input", f'{{"question": "q{number}?"}}')
        assert code == 0, output
    code, output = invoke(project, "run", "ask-keep", "--input", '{"question": "keep?"}')
    assert code == 0, output
    (tmp_path / "memo.md").write_text("# Memo\n\nThe walrusgate review happens on Fridays.")
    code, output = invoke(project, "collections", "create", "memos", "--retention-days", "30")
    assert code == 0, output
    code, output = invoke(project, "ingest", "memos", str(tmp_path / "memo.md"))
    assert code == 0, output
    _age(project)

    code, output = invoke(project, "retention", "run", "--dry-run")
    assert code == 0, output
    assert "would purge: 2 runs, 1 documents" in output
    runs, documents, _ = _state(project)
    assert all(run.purged_at is None for run in runs)
    assert [document.status for document in documents] == ["indexed"]

    code, output = invoke(project, "retention", "run")
    assert code == 0, output
    assert "purged: 2 runs, 1 documents" in output
    runs, documents, _ = _state(project)
    assert {run.task: run.purged_at is not None for run in runs} == {"ask": True, "ask-keep": False}
    assert all(run.input == {} for run in runs if run.task == "ask")
    assert [document.status for document in documents] == ["purged"]

    code, output = invoke(project, "retention", "run")
    assert code == 0, output
    assert "nothing to purge" in output

    code, output = invoke(project, "audit", "verify")
    assert code == 0, output
    assert "audit chain intact" in output

    code, output = invoke(project, "search", "memos", "walrusgate review", "--json")
    assert code == 0, output
    assert json.loads(output) == []


def test_retention_needs_a_project(tmp_path: Path) -> None:
    code, output = invoke(tmp_path, "retention", "run")
    assert code == 2
    assert "no shipyard.yaml" in output
