"""Minting API keys and describing admin objects for the audit trail.

Shared by the CLI path (``AccessService``) and the admin API (``AdminService``) so that a key
is created, validated and audited the same way whoever creates it.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from shipyard import names
from shipyard.access.keys import hash_token, new_token
from shipyard.access.roles import Role
from shipyard.errors import FieldProblem, InvalidInput
from shipyard.governance import audit
from shipyard.storage.repositories import KeyRepository
from shipyard.storage.tables import ApiKey, RoleBinding, Tenant

MAX_NAME_CHARS = 200


def check_name(value: str, field: str) -> str:
    """A human-readable label: 1-200 characters, no control characters (names reach the audit
    trail, tables in a terminal and logs, where a newline or an escape code could forge lines)."""
    name = value.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise InvalidInput(
            f"{field} must be 1-{MAX_NAME_CHARS} characters",
            [FieldProblem(field, f"must be 1-{MAX_NAME_CHARS} characters")],
        )
    if any(unicodedata.category(char) in {"Cc", "Cf"} for char in name):
        raise InvalidInput(
            f"{field} must not contain control characters",
            [FieldProblem(field, "must not contain control characters")],
        )
    return name


def check_groups(groups: frozenset[str], field: str = "groups") -> frozenset[str]:
    bad = sorted(group for group in groups if not names.GROUP_RE.match(group))
    if bad:
        message = f"invalid access group {bad[0]!r}: use 1-64 letters, digits, '-', '_' or '.'"
        raise InvalidInput(message, [FieldProblem(field, message)])
    return groups


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def key_snapshot(key: ApiKey) -> dict[str, Any]:
    """What the audit trail records of a key (never its hash)."""
    return {
        "id": key.id,
        "name": key.name,
        "roles": list(key.roles),
        "groups": list(key.groups),
        "expires_at": _iso(key.expires_at),
        "revoked_at": _iso(key.revoked_at),
        "rotated_from": key.rotated_from,
    }


def tenant_snapshot(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "slug": tenant.slug,
        "name": tenant.name,
        "disabled_at": _iso(tenant.disabled_at),
    }


def binding_snapshot(binding: RoleBinding) -> dict[str, Any]:
    return {
        "id": binding.id,
        "subject_type": binding.subject_type,
        "subject": binding.subject,
        "roles": list(binding.roles),
        "groups": list(binding.groups),
    }


def audit_change(
    session: Session,
    *,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    tenant_id: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """One admin action in the chain: who, what, and the object before and after."""
    audit.append(
        session,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        tenant_id=tenant_id,
        data={"before": before, "after": after},
    )


def mint_key(
    session: Session,
    secret: bytes,
    tenant: Tenant,
    *,
    name: str,
    roles: frozenset[Role],
    groups: frozenset[str],
    expires_at: datetime | None,
    actor: str,
    rotated_from: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key in the caller's transaction, audited; the token is returned once."""
    name = check_name(name, "name")
    check_groups(groups)
    if not roles:
        raise InvalidInput("at least one role is required", [FieldProblem("roles", "empty")])
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidInput(
            "expiry must be in the future", [FieldProblem("expires_at", "in the past")]
        )
    key_id, token = new_token()
    key = ApiKey(
        id=key_id,
        tenant_id=tenant.id,
        name=name,
        key_hash=hash_token(secret, token),
        roles=sorted(role.value for role in roles),
        groups=sorted(groups),
        created_at=datetime.now(UTC),
        expires_at=expires_at,
        created_by=actor,
        rotated_from=rotated_from,
    )
    audit_change(
        session,
        actor=actor,
        action="key.created",
        subject_type="api_key",
        subject_id=key_id,
        tenant_id=tenant.id,
        before=None,
        after=key_snapshot(key),
    )
    KeyRepository(session).add(key)
    return key, token
