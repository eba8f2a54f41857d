"""The ``shipyard`` command end to end on a copy of the tiny project (SQLite default)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.cli.conftest import invoke
from tests.conftest import TINY_LABELS


def test_train_printed_the_artifact_and_audit_records_it(project: Path) -> None:
    code, output = invoke(project, "audit", "verify")
    assert code == 0, output
    assert "intact" in output
    database = sqlite3.connect(project / ".shipyard" / "shipyard.db")
    actions = [row[0] for row in database.execute("select action from audit_events")]
    database.close()
    assert actions.count("model.trained") == 2


def test_run_prints_the_stored_run(project: Path) -> None:
    code, output = invoke(project, "run", "triage", "--input", '{"text": "my card is lost"}')
    assert code == 0, output
    body = json.loads(output)
    assert body["output"]["label"] in TINY_LABELS
    assert body["status"] in ("ok", "needs_review")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "triage", "--input", "{not json"], "not valid JSON"),
        (["run", "triage", "--input", "[1]"], "JSON object"),
        (["run", "nope", "--input", '{"text": "x"}'], "no task"),
        (["run", "triage", "--input", '{"txt": "x"}'], "input.text"),
        (["keys", "create", "--name", "x", "--role", "superuser"], "unknown role"),
        (["keys", "create", "--name", "x", "--role", "caller", "--expires-in", "soon"], "30d"),
        (["keys", "revoke", "nosuchkey"], "no key"),
        (["train", "nope"], "unknown task"),
    ],
)
def test_usage_errors_exit_2_with_one_line_reason(
    project: Path, args: list[str], message: str
) -> None:
    code, output = invoke(project, *args)
    assert code == 2, output
    assert message in output
    assert "Traceback" not in output


def test_missing_project_exits_2(tmp_path: Path) -> None:
    code, output = invoke(tmp_path, "db", "upgrade")
    assert code == 2
    assert "shipyard.yaml" in output


def test_keys_create_list_revoke(project: Path) -> None:
    code, output = invoke(
        project, "keys", "create", "--name", "crm", "--role", "caller", "--expires-in", "30d"
    )
    assert code == 0, output
    token = next(line for line in output.splitlines() if line.startswith("sy_"))
    key_id = token.split("_")[1]
    code, listing = invoke(project, "keys", "list")
    assert code == 0
    assert key_id in listing
    assert token.split("_", 2)[2] not in listing
    code, output = invoke(project, "keys", "revoke", key_id)
    assert code == 0
    code, listing = invoke(project, "keys", "list")
    assert "revoked" in listing


def test_tenants_create_and_duplicate(project: Path) -> None:
    assert invoke(project, "tenants", "create", "acme")[0] == 0
    code, output = invoke(project, "tenants", "create", "acme")
    assert code == 2
    assert "already exists" in output


def test_audit_verify_exits_1_naming_the_tampered_event(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    database = sqlite3.connect(copy / ".shipyard" / "shipyard.db")
    database.execute("update audit_events set actor = 'mallory' where seq = 2")
    database.commit()
    database.close()
    code, output = invoke(copy, "audit", "verify")
    assert code == 1
    assert "seq=2" in output
