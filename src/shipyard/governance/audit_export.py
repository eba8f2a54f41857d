"""The audit chain as JSON lines, for an archive or a SIEM outside the database, and the check
of such a file on its own.

Every line carries every field the event's hash covers, plus the hash, so a file can be
verified without Shipyard's database: each hash must follow from its line and each line must
link to the one before (an export that starts after ``after_seq`` is anchored at its first
line's ``prev_hash``). Audit data holds ids, counts and hashes, never run inputs or outputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from shipyard.errors import ConfigError
from shipyard.governance.audit import GENESIS_HASH, event_hash, iter_events
from shipyard.storage.tables import AuditEvent

FIELDS = (
    "seq",
    "id",
    "at",
    "tenant_id",
    "actor",
    "action",
    "subject_type",
    "subject_id",
    "data",
    "prev_hash",
    "hash",
)


def export_lines(session: Session, after_seq: int = 0) -> Iterator[str]:
    """Every event after ``after_seq``, oldest first, one JSON object per line."""
    for event in iter_events(session, after_seq):
        record = {name: getattr(event, name) for name in FIELDS}
        yield json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class ExportCheck:
    ok: bool
    events: int
    first_seq: int | None
    last_hash: str | None
    line: int | None = None  # the first bad line (1-based)
    reason: str | None = None


def _event(record: dict[str, Any]) -> AuditEvent:
    missing = [name for name in FIELDS if name not in record]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    return AuditEvent(**{name: record[name] for name in FIELDS})


def check_lines(lines: Iterable[str]) -> ExportCheck:
    """Whether exported lines form an unbroken part of a chain: consecutive ``seq``, each
    ``prev_hash`` the hash before it, each hash what its fields produce. A file from the
    chain's start must begin at seq 1 on the genesis hash."""
    count, first_seq = 0, None
    expected_seq: int | None = None
    expected_prev: str | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = _event(json.loads(line))
        except (ValueError, TypeError) as exc:
            return ExportCheck(False, count, first_seq, expected_prev, number, f"unreadable: {exc}")
        problem = None
        if expected_seq is None:
            first_seq = event.seq
            if event.seq == 1 and event.prev_hash != GENESIS_HASH:
                problem = "the first event does not start from the genesis hash"
        elif event.seq != expected_seq:
            problem = f"sequence gap: expected {expected_seq}, found {event.seq}"
        elif event.prev_hash != expected_prev:
            problem = "previous-hash link does not match the line before"
        if problem is None and event_hash(event) != event.hash:
            problem = "fields do not match the event hash (line edited)"
        if problem is not None:
            return ExportCheck(False, count, first_seq, expected_prev, number, problem)
        expected_seq, expected_prev = event.seq + 1, event.hash
        count += 1
    if count == 0:
        raise ConfigError("the file holds no audit events")
    return ExportCheck(True, count, first_seq, expected_prev)
