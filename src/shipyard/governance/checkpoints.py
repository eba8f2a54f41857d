"""Signed checkpoints of the audit chain head.

The hash chain alone proves rows were not edited in place, but someone with write access to the
database can delete the newest events and rewrite ``audit_head`` to match: the shorter chain is
internally consistent. A checkpoint is the head (seq, hash, at) signed with an Ed25519 key kept
outside the database; verifying it later shows that the chain still contains that exact event.
Exported checkpoints (JSON lines, kept elsewhere) survive even a wiped checkpoints table.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shipyard.errors import ConfigError
from shipyard.governance.audit import GENESIS_HASH
from shipyard.storage.tables import AuditCheckpoint, AuditEvent, AuditHead


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str
    signature: str  # base64
    key_id: str
    created_at: str  # ISO 8601 UTC


@dataclass(frozen=True)
class CheckpointProblem:
    seq: int
    key_id: str
    reason: str

    def __str__(self) -> str:
        return f"checkpoint seq={self.seq} key={self.key_id}: {self.reason}"


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


def public_key_b64(public_key: Ed25519PublicKey) -> str:
    return base64.b64encode(_raw_public(public_key)).decode()


def _raw_32(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def load_private_key(text: str) -> Ed25519PrivateKey:
    """PKCS8 PEM or base64 of the raw 32-byte seed. Errors never quote the key material."""
    if "-----BEGIN" in text:
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError):
            key = None
        if isinstance(key, Ed25519PrivateKey):
            return key
        raise ConfigError("audit signing key: not an unencrypted Ed25519 PKCS8 PEM key")
    raw = _raw_32(text)
    if raw is None:
        raise ConfigError("audit signing key: expected PEM or base64 of 32 raw bytes")
    return Ed25519PrivateKey.from_private_bytes(raw)


def load_public_key(text: str) -> Ed25519PublicKey:
    """SubjectPublicKeyInfo PEM or base64 of the raw 32 bytes."""
    if "-----BEGIN" in text:
        try:
            key = serialization.load_pem_public_key(text.encode())
        except (ValueError, TypeError):
            key = None
        if isinstance(key, Ed25519PublicKey):
            return key
        raise ConfigError("public key: not an Ed25519 PEM public key")
    raw = _raw_32(text)
    if raw is None:
        raise ConfigError("public key: expected PEM or base64 of 32 raw bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def message(seq: int, hash_: str, at: str) -> bytes:
    # Canonical JSON (as for event hashes), so any verifier can rebuild the signed bytes.
    body = {"seq": seq, "hash": hash_, "at": at}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _to_checkpoint(row: AuditCheckpoint) -> Checkpoint:
    return Checkpoint(
        row.seq,
        row.hash,
        row.at,
        row.signature,
        row.key_id,
        row.created_at.isoformat(timespec="microseconds"),
    )


def sign_head(session: Session, private_key: Ed25519PrivateKey) -> Checkpoint:
    """Sign the current head and store the checkpoint in the caller's transaction."""
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one_or_none()
    if head is None:
        raise ConfigError("the audit chain has no head row; run `shipyard db upgrade`")
    at = ""
    if head.seq > 0:
        at = session.execute(select(AuditEvent.at).where(AuditEvent.seq == head.seq)).scalar_one()
    signature = base64.b64encode(private_key.sign(message(head.seq, head.hash, at))).decode()
    row = AuditCheckpoint(
        seq=head.seq,
        hash=head.hash,
        at=at,
        signature=signature,
        key_id=key_id(private_key.public_key()),
        created_at=datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    return _to_checkpoint(row)


def head_is_signed(session: Session, public_key: Ed25519PublicKey) -> bool:
    """Whether the newest checkpoint of this key already signs the current head. Takes the
    head's lock first (a no-op UPDATE, held to the end of the caller's transaction), so that
    several processes on the same schedule sign a head once, and no event is appended
    between this look and the signature."""
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one_or_none()
    if head is None:
        return False
    newest = session.execute(
        select(AuditCheckpoint.seq, AuditCheckpoint.hash)
        .where(AuditCheckpoint.key_id == key_id(public_key))
        .order_by(AuditCheckpoint.id.desc())
        .limit(1)
    ).first()
    return newest is not None and (newest.seq, newest.hash) == (head.seq, head.hash)


def stored_checkpoints(session: Session) -> list[Checkpoint]:
    rows = session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.id)).scalars()
    return [_to_checkpoint(row) for row in rows]


def verify_checkpoints(
    session: Session, checkpoints: list[Checkpoint], public_key: Ed25519PublicKey
) -> list[CheckpointProblem]:
    """Every problem found, one per failing checkpoint (the first reason for each)."""
    problems: list[CheckpointProblem] = []
    expected_id = key_id(public_key)
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one_or_none()
    head_seq = head.seq if head else 0
    for cp in checkpoints:

        def problem(reason: str, cp: Checkpoint = cp) -> None:
            problems.append(CheckpointProblem(cp.seq, cp.key_id, reason))

        try:
            signature = base64.b64decode(cp.signature, validate=True)
            public_key.verify(signature, message(cp.seq, cp.hash, cp.at))
        except (InvalidSignature, binascii.Error, ValueError):
            detail = "" if cp.key_id == expected_id else " (signed by another key)"
            problem(f"signature does not verify under public key {expected_id}{detail}")
            continue
        # The signature is good, so (seq, hash, at) is what the chain really held; the chain
        # must still hold it, whatever audit_head now says.
        if cp.seq == 0:
            if cp.hash != GENESIS_HASH:
                problem("checkpoint of an empty chain with a non-genesis hash")
            continue
        event = session.execute(
            select(AuditEvent.hash, AuditEvent.at).where(AuditEvent.seq == cp.seq)
        ).first()
        if event is None:
            problem("the chain no longer has this event (truncated)")
        elif (event.hash, event.at) != (cp.hash, cp.at):
            problem("the chain's event at this seq differs from the signed one (rewritten)")
        elif cp.seq > head_seq:
            problem(f"the head (seq {head_seq}) is behind this checkpoint (rolled back)")
    return problems


def export_lines(checkpoints: list[Checkpoint], public_key: Ed25519PublicKey) -> str:
    # The public key rides on every line so a file is self-describing; a verifier that has the
    # key from elsewhere should still pass it in, since a forger could sign with their own key.
    pub = public_key_b64(public_key)
    return "".join(
        json.dumps({**asdict(cp), "public_key": pub}, sort_keys=True) + "\n" for cp in checkpoints
    )


def parse_lines(text: str) -> list[tuple[Checkpoint, Ed25519PublicKey]]:
    """Parse an exported file; ConfigError names the first bad line."""
    out: list[tuple[Checkpoint, Ed25519PublicKey]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            checkpoint = Checkpoint(
                seq=int(data["seq"]),
                hash=str(data["hash"]),
                at=str(data["at"]),
                signature=str(data["signature"]),
                key_id=str(data["key_id"]),
                created_at=str(data["created_at"]),
            )
            public_key = load_public_key(str(data["public_key"]))
        except (ValueError, KeyError, TypeError, ConfigError) as exc:
            raise ConfigError(f"checkpoints file line {number}: {exc}") from None
        out.append((checkpoint, public_key))
    return out
