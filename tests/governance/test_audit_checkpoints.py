"""Signed checkpoints catch a truncated chain whose head row was rewritten to match."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, delete, select, update

from shipyard.access.roles import Role
from shipyard.bootstrap import Container
from shipyard.governance import audit, checkpoints
from shipyard.storage.tables import AuditCheckpoint, AuditEvent, AuditHead
from tests.cli.conftest import invoke
from tests.conftest import make_container

KEY = Ed25519PrivateKey.generate()
KEY_ID = checkpoints.key_id(KEY.public_key())


def add_keys(container: Container, count: int, prefix: str = "k") -> None:
    for index in range(count):
        container.access.create_key(
            "default",
            name=f"{prefix}{index}",
            roles=frozenset({Role.CALLER}),
            expires_at=None,
            actor="tests",
        )


@pytest.fixture
def chain(
    backend: str, tiny_project: Path, tmp_path: Path, fresh_database: Callable[[str], str]
) -> Iterator[Container]:
    container = make_container(tiny_project, tmp_path, fresh_database(backend))
    add_keys(container, 3)
    yield container
    container.close()


def truncate_consistently(container: Container, keep: int) -> None:
    """Delete events after ``keep`` and point audit_head at the new last one."""
    with container.sessions.begin() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.seq > keep))
        last = session.execute(select(AuditEvent.hash).where(AuditEvent.seq == keep)).scalar_one()
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=keep, hash=last))


def test_checkpoint_then_verify_ok(chain: Container) -> None:
    cp = chain.audit.checkpoint(KEY)
    assert cp.seq == 4  # tenant + 3 keys
    assert cp.key_id == checkpoints.key_id(KEY.public_key())
    add_keys(chain, 2, "later")  # the chain may grow past a checkpoint
    assert chain.audit.verify_checkpoints(chain.audit.checkpoints(), KEY.public_key()) == []


def test_truncation_with_rewritten_head_fails_the_checkpoint(chain: Container) -> None:
    chain.audit.checkpoint(KEY)
    truncate_consistently(chain, keep=2)
    assert chain.audit.verify().ok  # the chain alone cannot tell
    problems = chain.audit.verify_checkpoints(chain.audit.checkpoints(), KEY.public_key())
    assert [(p.seq, p.key_id) for p in problems] == [(4, checkpoints.key_id(KEY.public_key()))]
    assert "truncated" in problems[0].reason


def test_rewrite_past_a_checkpoint_fails(chain: Container) -> None:
    chain.audit.checkpoint(KEY)
    truncate_consistently(chain, keep=2)
    add_keys(chain, 2, "forged")  # rebuild seq 3 and 4 with different events
    assert chain.audit.verify().ok
    problems = chain.audit.verify_checkpoints(chain.audit.checkpoints(), KEY.public_key())
    assert len(problems) == 1
    assert "rewritten" in problems[0].reason


def test_tampered_signature_fails(chain: Container) -> None:
    chain.audit.checkpoint(KEY)
    forged = base64.b64encode(b"\0" * 64).decode()
    with chain.sessions.begin() as session:
        session.execute(update(AuditCheckpoint).values(signature=forged))
    problems = chain.audit.verify_checkpoints(chain.audit.checkpoints(), KEY.public_key())
    assert len(problems) == 1
    assert "signature" in problems[0].reason


def test_wrong_public_key_fails(chain: Container) -> None:
    chain.audit.checkpoint(KEY)
    other = Ed25519PrivateKey.generate().public_key()
    problems = chain.audit.verify_checkpoints(chain.audit.checkpoints(), other)
    assert len(problems) == 1
    assert "another key" in problems[0].reason


def test_exported_file_survives_a_wiped_table(chain: Container) -> None:
    chain.audit.checkpoint(KEY)
    text = checkpoints.export_lines(chain.audit.checkpoints(), KEY.public_key())
    assert json.loads(text)["public_key"] == checkpoints.public_key_b64(KEY.public_key())
    with chain.sessions.begin() as session:
        session.execute(delete(AuditCheckpoint))
    [(cp, public_key)] = checkpoints.parse_lines(text)
    assert chain.audit.verify_checkpoints([cp], public_key) == []
    truncate_consistently(chain, keep=1)
    assert len(chain.audit.verify_checkpoints([cp], public_key)) == 1


def test_key_formats_load() -> None:
    pem = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    raw = KEY.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    for text in (pem, base64.b64encode(raw).decode()):
        loaded = checkpoints.load_private_key(text)
        assert checkpoints.key_id(loaded.public_key()) == checkpoints.key_id(KEY.public_key())
    with pytest.raises(checkpoints.ConfigError):
        checkpoints.load_private_key("not a key")


# --- CLI (SQLite, default database in the project's state folder) -------------------------


def test_cli_exit_codes(
    tiny_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    shutil.copytree(tiny_project, project)
    monkeypatch.delenv("SHIPYARD_AUDIT_SIGNING_KEY", raising=False)
    monkeypatch.setenv("SHIPYARD_SECRET_KEY", "test-secret-key-" + "x" * 32)
    assert invoke(project, "db", "upgrade")[0] == 0

    code, output = invoke(project, "audit", "checkpoint")
    assert code == 2
    assert "SHIPYARD_AUDIT_SIGNING_KEY" in output

    raw = KEY.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    monkeypatch.setenv("SHIPYARD_AUDIT_SIGNING_KEY", base64.b64encode(raw).decode())
    code, output = invoke(project, "audit", "checkpoint")
    assert code == 0, output
    assert "seq=1" in output
    assert base64.b64encode(raw).decode() not in output

    exported = tmp_path / "checkpoints.jsonl"
    assert invoke(project, "audit", "export-checkpoints", "--out", str(exported))[0] == 0
    code, output = invoke(project, "audit", "verify", "--checkpoints", str(exported))
    assert code == 0, output
    assert "checkpoints verified: 2" in output

    code, output = invoke(project, "audit", "verify", "--checkpoints", str(tmp_path / "nope"))
    assert code == 2

    # Truncate to an empty chain and rewrite the head: the chain passes, the file does not.
    engine = create_engine(f"sqlite:///{project / '.shipyard' / 'shipyard.db'}")
    with engine.begin() as connection:
        connection.execute(delete(AuditEvent))
        connection.execute(update(AuditHead).values(seq=0, hash=audit.GENESIS_HASH))
    engine.dispose()
    monkeypatch.delenv("SHIPYARD_AUDIT_SIGNING_KEY")
    assert invoke(project, "audit", "verify")[0] == 0  # the chain alone passes
    code, output = invoke(project, "audit", "verify", "--checkpoints", str(exported))
    assert code == 1
    assert "seq=1" in output
    assert KEY_ID in output
    assert "truncated" in output
