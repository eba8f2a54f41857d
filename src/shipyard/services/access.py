"""Tenants and API keys: create, list, revoke, authenticate. Every change is audited in the
same transaction as the change itself."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shipyard.access.keys import hash_token, new_token, parse_token, token_matches
from shipyard.access.principal import Principal
from shipyard.access.roles import Role
from shipyard.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from shipyard.governance import audit
from shipyard.storage.db import SessionFactory
from shipyard.storage.repositories import KeyRepository, TenantRepository
from shipyard.storage.tables import ApiKey, Tenant

_SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
_GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Writing last_used_at on every request would turn each read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)
# Used when the key id is unknown, so that case costs the same HMAC as a wrong secret.
_DUMMY_HASH = "0" * 64


class AccessService:
    def __init__(self, sessions: SessionFactory, secret_key: bytes) -> None:
        self._sessions = sessions
        self._secret = secret_key

    # -- tenants -------------------------------------------------------------------------
    def ensure_tenant(self, slug: str, *, actor: str = "system") -> Tenant:
        try:
            with self._sessions.begin() as session:
                existing = TenantRepository(session).by_slug(slug)
                if existing is not None:
                    return existing
                return self._create_tenant(session, slug, actor)
        except IntegrityError:
            # Another process (a second replica starting) created it first.
            with self._sessions() as session:
                tenant = TenantRepository(session).by_slug(slug)
            if tenant is None:
                raise
            return tenant

    def create_tenant(self, slug: str, *, actor: str) -> Tenant:
        with self._sessions.begin() as session:
            if TenantRepository(session).by_slug(slug) is not None:
                raise Conflict(f"tenant {slug!r} already exists")
            return self._create_tenant(session, slug, actor)

    def _create_tenant(self, session: Session, slug: str, actor: str) -> Tenant:
        if not _SLUG_RE.match(slug):
            raise InvalidInput(
                "tenant slug must be 2-63 lowercase letters, digits or '-', starting with a letter"
            )
        tenant = Tenant(id=str(uuid.uuid4()), slug=slug, name=slug, created_at=datetime.now(UTC))
        audit.append(
            session,
            actor=actor,
            action="tenant.created",
            subject_type="tenant",
            subject_id=tenant.id,
            tenant_id=tenant.id,
            data={"slug": slug},
        )
        TenantRepository(session).add(tenant)
        return tenant

    def tenants(self) -> Sequence[Tenant]:
        with self._sessions() as session:
            return TenantRepository(session).all()

    # -- keys ----------------------------------------------------------------------------
    def create_key(
        self,
        tenant_slug: str,
        *,
        name: str,
        roles: frozenset[Role],
        expires_at: datetime | None,
        actor: str,
        groups: frozenset[str] = frozenset(),
    ) -> tuple[ApiKey, str]:
        """Create a key; the token is returned once and never stored."""
        bad = sorted(group for group in groups if not _GROUP_RE.match(group))
        if bad:
            raise InvalidInput(
                f"invalid access group {bad[0]!r}: use 1-64 letters, digits, '-', '_' or '.'"
            )
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise InvalidInput("expiry must be in the future")
        with self._sessions.begin() as session:
            tenant = TenantRepository(session).by_slug(tenant_slug)
            if tenant is None:
                raise NotFound(
                    f"no tenant {tenant_slug!r}; create it with `shipyard tenants create`"
                )
            key_id, token = new_token()
            key = ApiKey(
                id=key_id,
                tenant_id=tenant.id,
                name=name,
                key_hash=hash_token(self._secret, token),
                roles=sorted(role.value for role in roles),
                groups=sorted(groups),
                created_at=datetime.now(UTC),
                expires_at=expires_at,
            )
            audit.append(
                session,
                actor=actor,
                action="key.created",
                subject_type="api_key",
                subject_id=key_id,
                tenant_id=tenant.id,
                data={
                    "name": name,
                    "roles": key.roles,
                    "groups": key.groups,
                    "expires_at": expires_at.isoformat() if expires_at else None,
                },
            )
            KeyRepository(session).add(key)
        return key, token

    def keys(self, tenant_slug: str | None = None) -> Sequence[ApiKey]:
        with self._sessions() as session:
            tenant_id = None
            if tenant_slug is not None:
                tenant = TenantRepository(session).by_slug(tenant_slug)
                if tenant is None:
                    raise NotFound(f"no tenant {tenant_slug!r}")
                tenant_id = tenant.id
            return KeyRepository(session).for_tenant(tenant_id)

    def revoke_key(self, key_id: str, *, actor: str) -> ApiKey:
        with self._sessions.begin() as session:
            key = KeyRepository(session).get(key_id)
            if key is None:
                raise NotFound(f"no key {key_id!r}")
            if key.revoked_at is None:
                key.revoked_at = datetime.now(UTC)
                audit.append(
                    session,
                    actor=actor,
                    action="key.revoked",
                    subject_type="api_key",
                    subject_id=key.id,
                    tenant_id=key.tenant_id,
                    data={"name": key.name},
                )
            return key

    def authenticate(self, token: str) -> Principal:
        key_id = parse_token(token)
        with self._sessions() as session:
            found = KeyRepository(session).with_tenant_slug(key_id) if key_id else None
            key = found[0] if found else None
            valid = token_matches(self._secret, token, key.key_hash if key else _DUMMY_HASH)
            now = datetime.now(UTC)
            if found is None or key is None or not valid:
                raise Unauthenticated("invalid API key")
            if key.revoked_at is not None:
                raise Unauthenticated("API key revoked")
            if key.expires_at is not None and key.expires_at <= now:
                raise Unauthenticated("API key expired")
            principal = Principal(
                tenant_id=key.tenant_id,
                tenant_slug=found[1],
                key_id=key.id,
                name=key.name,
                roles=frozenset(Role(role) for role in key.roles),
                groups=frozenset(key.groups),
            )
            if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
                key.last_used_at = now
                session.commit()
        return principal
