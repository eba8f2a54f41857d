"""Audit use cases: verify the chain."""

from __future__ import annotations

from shipyard.governance import audit
from shipyard.storage.db import SessionFactory


class AuditService:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    def verify(self) -> audit.VerifyResult:
        with self._sessions() as session:
            return audit.verify(session)
