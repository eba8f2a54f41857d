"""Audit use cases: verify the chain; sign, list and verify checkpoints of its head."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shipyard.governance import audit, audit_export, checkpoints
from shipyard.governance.checkpoints import Checkpoint, CheckpointProblem
from shipyard.storage.db import SessionFactory


class AuditService:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    def verify(self) -> audit.VerifyResult:
        with self._sessions() as session:
            return audit.verify(session)

    def checkpoint(self, private_key: Ed25519PrivateKey) -> Checkpoint:
        with self._sessions.begin() as session:
            return checkpoints.sign_head(session, private_key)

    def checkpoint_if_moved(self, private_key: Ed25519PrivateKey) -> Checkpoint | None:
        """A new checkpoint, unless this key's newest one already signs the current head (the
        schedule then adds nothing: an idle chain does not pile up identical checkpoints)."""
        with self._sessions.begin() as session:
            if checkpoints.head_is_signed(session, private_key.public_key()):
                return None
            return checkpoints.sign_head(session, private_key)

    def export(self, write: Callable[[str], object], after_seq: int = 0) -> int:
        """Write the chain after ``after_seq`` as JSON lines; the number of events."""
        count = 0
        with self._sessions() as session:
            for line in audit_export.export_lines(session, after_seq):
                write(line)
                count += 1
        return count

    def checkpoints(self) -> list[Checkpoint]:
        with self._sessions() as session:
            return checkpoints.stored_checkpoints(session)

    def verify_checkpoints(
        self, items: list[Checkpoint], public_key: Ed25519PublicKey
    ) -> list[CheckpointProblem]:
        with self._sessions() as session:
            return checkpoints.verify_checkpoints(session, items, public_key)
