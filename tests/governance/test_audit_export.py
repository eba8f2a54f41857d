"""Exporting the audit chain as JSON lines, and checking such a file without the database:
edits, gaps and reordering are caught by line; increments chain onto each other."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from shipyard.bootstrap import Container
from shipyard.cli.main import app
from shipyard.errors import ConfigError
from shipyard.governance.audit_export import check_lines
from tests.cli.conftest import invoke, runner
from tests.governance.test_audit_checkpoints import add_keys, chain  # noqa: F401


def _export(container: Container, after_seq: int = 0) -> list[str]:
    lines: list[str] = []
    container.audit.export(lines.append, after_seq)
    return lines


def test_an_export_checks_out_on_its_own(chain: Container) -> None:  # noqa: F811
    lines = _export(chain)
    result = check_lines(lines)
    assert result.ok
    assert (result.events, result.first_seq) == (4, 1)  # the tenant and three keys
    assert result.last_hash == chain.audit.verify().head_hash
    first = json.loads(lines[0])
    assert first["action"] == "tenant.created"
    assert {"seq", "prev_hash", "hash", "data", "actor"} <= set(first)


def test_edits_gaps_and_reordering_are_caught_by_line(chain: Container) -> None:  # noqa: F811
    lines = _export(chain)
    edited = json.loads(lines[2])
    edited["actor"] = "someone-else"
    tampered = [*lines[:2], json.dumps(edited) + "\n", *lines[3:]]
    cases = {
        "line edited": (tampered, 3),
        "sequence gap": ([*lines[:1], *lines[2:]], 2),
        "genesis": ([_with(lines[0], prev_hash="1" * 64)], 1),
        "link": ([lines[0], _with(lines[1], prev_hash="2" * 64, rehash=True)], 2),
    }
    for expected, (broken, line) in cases.items():
        result = check_lines(broken)
        assert not result.ok, expected
        assert result.line == line, expected
        assert expected in (result.reason or ""), (expected, result.reason)
    with pytest.raises(ConfigError):
        check_lines(["\n"])
    assert check_lines(["not json"]).reason is not None


def _with(line: str, *, rehash: bool = False, **changes: str) -> str:
    from shipyard.governance.audit import event_hash
    from shipyard.governance.audit_export import FIELDS
    from shipyard.storage.tables import AuditEvent

    record = {**json.loads(line), **changes}
    if rehash:  # a forger who recomputes the hash still breaks the link to the line before
        record["hash"] = event_hash(AuditEvent(**{name: record[name] for name in FIELDS}))
    return json.dumps(record)


def test_increments_chain_onto_each_other(chain: Container) -> None:  # noqa: F811
    first = _export(chain)
    add_keys(chain, 2, "later")
    increment = _export(chain, after_seq=len(first))
    assert [json.loads(line)["seq"] for line in increment] == [5, 6]
    alone = check_lines(increment)
    assert alone.ok
    assert alone.first_seq == 5
    assert check_lines([*first, *increment]).ok
    assert not check_lines([*first, *increment[1:]]).ok


def test_cli_export_and_verify_export(
    tiny_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    shutil.copytree(tiny_project, project)
    monkeypatch.setenv("SHIPYARD_SECRET_KEY", "test-secret-key-" + "x" * 32)
    assert invoke(project, "db", "upgrade")[0] == 0
    out = tmp_path / "audit.jsonl"
    code, output = invoke(project, "audit", "export", "--out", str(out))
    assert code == 0, output
    assert "exported" in output
    code, output = verify_export(out)
    assert code == 0, output
    assert "intact" in output
    lines = out.read_text().splitlines()
    record = json.loads(lines[0])
    record["actor"] = "forged"
    out.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    code, output = verify_export(out)
    assert code == 1
    assert "line 1" in output
    assert verify_export(tmp_path / "missing")[0] == 2
    assert invoke(project, "audit", "export", "--out", str(tmp_path / "no" / "dir.jsonl"))[0] == 2


def verify_export(file: Path) -> tuple[int, str]:
    """The check needs no project: only the file (it runs where the archive is)."""
    result = runner.invoke(app, ["audit", "verify-export", str(file)])
    return result.exit_code, result.output
