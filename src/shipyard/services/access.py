"""Tenants and API keys: create, list, revoke, authenticate. Every change is audited in the
same transaction as the change itself."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shipyard import names
from shipyard.access.keys import parse_token, token_matches
from shipyard.access.oidc import OidcVerifier
from shipyard.access.principal import Principal
from shipyard.access.roles import Role
from shipyard.errors import Conflict, FieldProblem, InvalidInput, NotFound, Unauthenticated
from shipyard.services.bindings import BindingService
from shipyard.services.key_records import (
    audit_change,
    check_name,
    key_snapshot,
    mint_key,
    tenant_snapshot,
)
from shipyard.storage.db import SessionFactory
from shipyard.storage.repositories import KeyRepository, TenantRepository
from shipyard.storage.tables import ApiKey, Tenant

# Writing last_used_at on every request would turn each read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)
# Used when the key id is unknown, so that case costs the same HMAC as a wrong secret.
_DUMMY_HASH = "0" * 64


class AccessService:
    def __init__(
        self,
        sessions: SessionFactory,
        secret_key: bytes,
        oidc: OidcVerifier | None = None,
        bindings: BindingService | None = None,
    ) -> None:
        self._sessions = sessions
        self._secret = secret_key
        self._oidc = oidc
        # OIDC principals get their roles from role bindings.
        self._bindings = bindings or BindingService(sessions)

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

    def create_tenant(self, slug: str, *, actor: str, name: str | None = None) -> Tenant:
        try:
            with self._sessions.begin() as session:
                return self.create_tenant_in(session, slug, actor=actor, name=name)
        except IntegrityError:  # created by a concurrent request between check and insert
            raise Conflict(f"tenant {slug!r} already exists") from None

    def create_tenant_in(
        self, session: Session, slug: str, *, actor: str, name: str | None = None
    ) -> Tenant:
        """Create a tenant in the caller's transaction (the admin API adds its first key)."""
        if TenantRepository(session).by_slug(slug) is not None:
            raise Conflict(f"tenant {slug!r} already exists")
        return self._create_tenant(session, slug, actor, name)

    def _create_tenant(
        self, session: Session, slug: str, actor: str, name: str | None = None
    ) -> Tenant:
        if not names.SLUG_RE.match(slug):
            message = "must be 2-63 lowercase letters, digits or '-', starting with a letter"
            raise InvalidInput(f"tenant slug {message}", [FieldProblem("slug", message)])
        tenant = Tenant(
            id=str(uuid.uuid4()),
            slug=slug,
            name=check_name(name or slug, "name"),
            created_at=datetime.now(UTC),
        )
        audit_change(
            session,
            actor=actor,
            action="tenant.created",
            subject_type="tenant",
            subject_id=tenant.id,
            tenant_id=tenant.id,
            before=None,
            after=tenant_snapshot(tenant),
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
        with self._sessions.begin() as session:
            tenant = TenantRepository(session).by_slug(tenant_slug)
            if tenant is None:
                raise NotFound(
                    f"no tenant {tenant_slug!r}; create it with `shipyard tenants create`"
                )
            return mint_key(
                session,
                self._secret,
                tenant,
                name=name,
                roles=roles,
                groups=groups,
                expires_at=expires_at,
                actor=actor,
            )

    def ensure_admin_key(self, tenant_slug: str, *, name: str, actor: str) -> str | None:
        """A first admin key (admin + platform-admin) for the tenant, unless it has an active
        admin key already; the token, or None. Checked and created under the tenant's lock, so
        two ``serve`` processes starting together on a new database print one key, not two."""
        with self._sessions.begin() as session:
            tenant = TenantRepository(session).by_slug(tenant_slug)
            if tenant is None:
                raise NotFound(f"no tenant {tenant_slug!r}")
            TenantRepository(session).lock(tenant.id)
            admins = {Role.ADMIN.value, Role.PLATFORM_ADMIN.value}
            if any(
                admins & set(key.roles) and key.revoked_at is None
                for key in KeyRepository(session).for_tenant(tenant.id)
            ):
                return None
            _key, token = mint_key(
                session,
                self._secret,
                tenant,
                name=name,
                roles=frozenset({Role.ADMIN, Role.PLATFORM_ADMIN}),
                groups=frozenset(),
                expires_at=None,
                actor=actor,
            )
            return token

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
                before = key_snapshot(key)
                key.revoked_at = datetime.now(UTC)
                audit_change(
                    session,
                    actor=actor,
                    action="key.revoked",
                    subject_type="api_key",
                    subject_id=key.id,
                    tenant_id=key.tenant_id,
                    before=before,
                    after=key_snapshot(key),
                )
            return key

    def authenticate(self, token: str) -> Principal:
        """An API key (``sy_...``) or, when OIDC is configured, a JWT (``a.b.c``)."""
        key_id = parse_token(token)
        if key_id is None and self._oidc is not None and token.count(".") == 2:
            return self._bindings.principal_for(self._oidc.verify(token))
        with self._sessions() as session:
            found = KeyRepository(session).with_tenant(key_id) if key_id else None
            key = found[0] if found else None
            valid = token_matches(self._secret, token, key.key_hash if key else _DUMMY_HASH)
            now = datetime.now(UTC)
            if found is None or key is None or not valid:
                raise Unauthenticated("invalid API key")
            if key.revoked_at is not None:
                raise Unauthenticated("API key revoked")
            if key.expires_at is not None and key.expires_at <= now:
                raise Unauthenticated("API key expired")
            if found[1].disabled_at is not None:
                raise Unauthenticated("API key's tenant is disabled")
            principal = Principal(
                tenant_id=key.tenant_id,
                tenant_slug=found[1].slug,
                key_id=key.id,
                name=key.name,
                roles=frozenset(Role(role) for role in key.roles),
                groups=frozenset(key.groups),
            )
            if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
                key.last_used_at = now
                session.commit()
        return principal
