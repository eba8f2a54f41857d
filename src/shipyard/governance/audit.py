"""Append-only, hash-chained audit trail.

Each event's hash covers its own fields and the previous event's hash, so editing, deleting or
reordering any stored row breaks every later link. ``verify`` walks the chain in ``seq`` order
and names the first event whose stored values no longer produce its stored hash.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from shipyard.errors import ConfigError
from shipyard.storage.tables import AuditEvent, AuditHead

GENESIS_HASH = "0" * 64

# Core statements built once, with bind parameters, so SQLAlchemy's compiled cache serves
# every append: this runs on every request.
_HEAD = cast(Table, AuditHead.__table__)
_EVENTS = cast(Table, AuditEvent.__table__)
_BUMP_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(seq=_HEAD.c.seq + 1)
    .returning(_HEAD.c.seq, _HEAD.c.hash)
)
_SET_HEAD_HASH = update(_HEAD).where(_HEAD.c.id == 1).values(hash=bindparam("new_hash"))
_INSERT_EVENT = insert(_EVENTS)
_VERIFY_BATCH = 1000


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(event: AuditEvent) -> str:
    body = {
        "seq": event.seq,
        "id": event.id,
        "at": event.at,
        "tenant_id": event.tenant_id,
        "actor": event.actor,
        "action": event.action,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "data": event.data,
        "prev_hash": event.prev_hash,
    }
    return hashlib.sha256(_canonical(body).encode()).hexdigest()


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    tenant_id: str | None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one event to the chain inside the caller's transaction.

    The caller commits, so the event lands atomically with the change it records.
    """
    # Bumping the head row first serialises appenders (SQLite write lock, PostgreSQL row lock);
    # RETURNING hands back the new sequence number and the previous hash in the same step.
    bumped = session.execute(_BUMP_HEAD).first()
    if bumped is None:
        raise ConfigError("the audit chain has no head row; run `shipyard db upgrade`")
    seq, prev_hash = bumped
    event = AuditEvent(
        seq=seq,
        id=str(uuid.uuid4()),
        at=datetime.now(UTC).isoformat(timespec="microseconds"),
        tenant_id=tenant_id,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        data=data or {},
        prev_hash=prev_hash,
    )
    event.hash = event_hash(event)
    session.execute(_INSERT_EVENT, {c.key: getattr(event, c.key) for c in _EVENTS.columns})
    session.execute(_SET_HEAD_HASH, {"new_hash": event.hash})
    return event


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    head_hash: str
    first_bad_seq: int | None = None
    first_bad_id: str | None = None
    reason: str | None = None


def iter_events(session: Session, after_seq: int = 0) -> Iterator[AuditEvent]:
    """Every event after ``after_seq`` in ``seq`` order, read in batches (detached as it goes,
    so a long chain does not pile up in the session)."""
    last = after_seq
    while True:
        batch = (
            session.execute(
                select(AuditEvent)
                .where(AuditEvent.seq > last)
                .order_by(AuditEvent.seq)
                .limit(_VERIFY_BATCH)
            )
            .scalars()
            .all()
        )
        if not batch:
            return
        yield from batch
        last = batch[-1].seq
        session.expunge_all()


def verify(session: Session) -> VerifyResult:
    expected_prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    for event in iter_events(session):
        problem = None
        if event.seq != expected_seq:
            problem = f"sequence gap: expected {expected_seq}, found {event.seq}"
        elif event.prev_hash != expected_prev:
            problem = "previous-hash link does not match the preceding event"
        elif event_hash(event) != event.hash:
            problem = "stored fields do not match the event hash (row edited)"
        if problem:
            return VerifyResult(False, count, expected_prev, event.seq, event.id, problem)
        expected_prev = event.hash
        expected_seq += 1
        count += 1
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one_or_none()
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
    if head_seq != count or head_hash != expected_prev:
        return VerifyResult(
            False,
            count,
            expected_prev,
            count + 1,
            None,
            f"chain ends at event {count} but the head records event {head_seq}: "
            "events were deleted from the end",
        )
    return VerifyResult(True, count, expected_prev)
