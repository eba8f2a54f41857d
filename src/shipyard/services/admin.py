"""Administration through the API: tenants (platform admins), the caller's tenant's keys and
audit events. Every change is authorized here, checked against privilege escalation, and
audited with the object before and after, in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError

from shipyard.access.grants import ensure_can_grant, grant_problem
from shipyard.access.principal import Principal
from shipyard.access.roles import Operation, Role, authorize
from shipyard.errors import Conflict, FieldProblem, Forbidden, InvalidInput, NotFound
from shipyard.services.access import AccessService
from shipyard.services.bindings import BindingService
from shipyard.services.key_records import (
    audit_change,
    check_name,
    key_snapshot,
    mint_key,
    tenant_snapshot,
)
from shipyard.storage.db import SessionFactory
from shipyard.storage.repositories import AuditRepository, KeyRepository, TenantRepository
from shipyard.storage.tables import ApiKey, AuditEvent, RoleBinding, Tenant

MAX_ROTATION_OVERLAP = timedelta(days=30)


def _ensure_outranks(
    principal: Principal, roles: Sequence[str], groups: Sequence[str], what: str
) -> None:
    """Taking rights away needs the same standing as granting them."""
    problem = grant_problem(principal, frozenset(Role(r) for r in roles), frozenset(groups))
    if problem is not None:
        raise Forbidden(f"you cannot {what}: {problem}")


class AdminService:
    def __init__(
        self,
        sessions: SessionFactory,
        access: AccessService,
        bindings: BindingService,
        secret: bytes,
    ) -> None:
        self._sessions = sessions
        self._access = access
        self._bindings = bindings
        self._secret = secret

    # -- tenants (platform-wide) -----------------------------------------------------------
    def tenants(self, principal: Principal) -> Sequence[Tenant]:
        authorize(principal.roles, Operation.TENANT_MANAGE)
        return self._access.tenants()

    def tenant(self, principal: Principal, slug: str) -> Tenant:
        authorize(principal.roles, Operation.TENANT_MANAGE)
        with self._sessions() as session:
            found = TenantRepository(session).by_slug(slug)
        if found is None:
            raise NotFound(f"no tenant {slug!r}")
        return found

    def create_tenant(
        self,
        principal: Principal,
        slug: str,
        *,
        name: str | None,
        admin_key_name: str | None,
    ) -> tuple[Tenant, tuple[ApiKey, str] | None]:
        """A tenant, and optionally its first admin key (created in the same transaction, so
        a new tenant is never left without a way in)."""
        authorize(principal.roles, Operation.TENANT_MANAGE)
        try:
            return self._create_tenant(principal, slug, name, admin_key_name)
        except IntegrityError:  # created by a concurrent request between check and insert
            raise Conflict(f"tenant {slug!r} already exists") from None

    def _create_tenant(
        self, principal: Principal, slug: str, name: str | None, admin_key_name: str | None
    ) -> tuple[Tenant, tuple[ApiKey, str] | None]:
        with self._sessions.begin() as session:
            tenant = self._access.create_tenant_in(session, slug, actor=principal.actor, name=name)
            session.flush()
            first_key = None
            if admin_key_name is not None:
                first_key = mint_key(
                    session,
                    self._secret,
                    tenant,
                    name=admin_key_name,
                    roles=frozenset({Role.ADMIN}),
                    groups=frozenset(),
                    expires_at=None,
                    actor=principal.actor,
                )
        return tenant, first_key

    def update_tenant(
        self, principal: Principal, slug: str, *, name: str | None, disabled: bool | None
    ) -> Tenant:
        authorize(principal.roles, Operation.TENANT_MANAGE)
        with self._sessions.begin() as session:
            tenant = TenantRepository(session).by_slug(slug)
            if tenant is None:
                raise NotFound(f"no tenant {slug!r}")
            # The CLI (the host's operator) may; an API caller must not lock itself out.
            if disabled and tenant.id == principal.tenant_id and principal.actor != "cli":
                raise Conflict("you cannot disable your own tenant: you would lock yourself out")
            before = tenant_snapshot(tenant)
            if name is not None:
                tenant.name = check_name(name, "name")
            if disabled is not None:
                now = datetime.now(UTC)
                tenant.disabled_at = (tenant.disabled_at or now) if disabled else None
            after = tenant_snapshot(tenant)
            if after != before:
                audit_change(
                    session,
                    actor=principal.actor,
                    action="tenant.updated",
                    subject_type="tenant",
                    subject_id=tenant.id,
                    tenant_id=tenant.id,
                    before=before,
                    after=after,
                )
            return tenant

    # -- keys of the caller's tenant -------------------------------------------------------
    def keys(self, principal: Principal) -> Sequence[ApiKey]:
        authorize(principal.roles, Operation.KEY_MANAGE)
        with self._sessions() as session:
            return KeyRepository(session).for_tenant(principal.tenant_id)

    def key(self, principal: Principal, key_id: str) -> ApiKey:
        authorize(principal.roles, Operation.KEY_MANAGE)
        with self._sessions() as session:
            found = KeyRepository(session).in_tenant(key_id, principal.tenant_id)
        if found is None:
            raise NotFound(f"no key {key_id!r}")
        return found

    def create_key(
        self,
        principal: Principal,
        *,
        name: str,
        roles: frozenset[Role],
        groups: frozenset[str],
        expires_at: datetime | None,
    ) -> tuple[ApiKey, str]:
        authorize(principal.roles, Operation.KEY_MANAGE)
        ensure_can_grant(principal, roles, groups)
        with self._sessions.begin() as session:
            tenant = TenantRepository(session).by_id(principal.tenant_id)
            if tenant is None:  # the caller's own tenant: only if deleted under it
                raise NotFound("your tenant no longer exists")
            return mint_key(
                session,
                self._secret,
                tenant,
                name=name,
                roles=roles,
                groups=groups,
                expires_at=expires_at,
                actor=principal.actor,
            )

    def rotate_key(
        self,
        principal: Principal,
        key_id: str,
        *,
        overlap: timedelta,
        expires_at: datetime | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key with the old one's name, roles and groups; the old key keeps working for
        ``overlap`` (so deployments can switch) and then expires. Zero overlap revokes it now.

        The new key lives as long as the old one was meant to, unless ``expires_at`` says
        otherwise. The caller must hold the rights it re-issues (no escalation by rotation)."""
        authorize(principal.roles, Operation.KEY_MANAGE)
        if not timedelta(0) <= overlap <= MAX_ROTATION_OVERLAP:
            message = f"must be between 0 and {MAX_ROTATION_OVERLAP.days} days"
            raise InvalidInput(f"overlap {message}", [FieldProblem("overlap_seconds", message)])
        now = datetime.now(UTC)
        with self._sessions.begin() as session:
            old = KeyRepository(session).in_tenant(key_id, principal.tenant_id)
            if old is None:
                raise NotFound(f"no key {key_id!r}")
            if old.revoked_at is not None or (old.expires_at and old.expires_at <= now):
                raise Conflict(f"key {key_id} is revoked or expired; create a new key instead")
            roles = frozenset(Role(role) for role in old.roles)
            groups = frozenset(old.groups)
            ensure_can_grant(principal, roles, groups)
            tenant = TenantRepository(session).by_id(principal.tenant_id)
            if tenant is None:
                raise NotFound("your tenant no longer exists")
            if expires_at is None and old.expires_at is not None:
                expires_at = now + (old.expires_at - old.created_at)
            new = mint_key(
                session,
                self._secret,
                tenant,
                name=old.name,
                roles=roles,
                groups=groups,
                expires_at=expires_at,
                actor=principal.actor,
                rotated_from=old.id,
            )
            before = key_snapshot(old)
            if overlap == timedelta(0):
                old.revoked_at = now
            else:
                end = now + overlap
                old.expires_at = min(old.expires_at, end) if old.expires_at else end
            audit_change(
                session,
                actor=principal.actor,
                action="key.rotated",
                subject_type="api_key",
                subject_id=old.id,
                tenant_id=old.tenant_id,
                before=before,
                after={**key_snapshot(old), "replaced_by": new[0].id},
            )
        return new

    def revoke_key(self, principal: Principal, key_id: str) -> ApiKey:
        authorize(principal.roles, Operation.KEY_MANAGE)
        with self._sessions() as session:
            key = KeyRepository(session).in_tenant(key_id, principal.tenant_id)
        if key is None:
            raise NotFound(f"no key {key_id!r}")
        # A tenant admin must not lock out a more powerful principal (say, the platform admin).
        _ensure_outranks(principal, key.roles, key.groups, "revoke this key")
        return self._access.revoke_key(key_id, actor=principal.actor)

    # -- role bindings of the caller's tenant (OIDC users and groups) ---------------------
    def bindings(self, principal: Principal) -> Sequence[RoleBinding]:
        authorize(principal.roles, Operation.BINDING_MANAGE)
        return self._bindings.bindings(principal.tenant_slug)

    def create_binding(
        self,
        principal: Principal,
        *,
        subject_type: str,
        subject: str,
        roles: frozenset[Role],
        groups: frozenset[str],
    ) -> RoleBinding:
        # The binding service authorizes the granter and refuses escalation.
        return self._bindings.create_binding(
            principal.tenant_slug,
            subject_type=subject_type,
            subject=subject,
            roles=roles,
            groups=groups,
            actor=principal.actor,
            granter=principal,
        )

    def delete_binding(self, principal: Principal, binding_id: str) -> RoleBinding:
        authorize(principal.roles, Operation.BINDING_MANAGE)
        target = next(
            (b for b in self._bindings.bindings(principal.tenant_slug) if b.id == binding_id), None
        )
        if target is not None:
            _ensure_outranks(principal, target.roles, target.groups, "remove this binding")
        return self._bindings.delete_binding(
            principal.tenant_slug, binding_id, actor=principal.actor
        )

    # -- audit ---------------------------------------------------------------------------
    def audit_events(
        self,
        principal: Principal,
        *,
        limit: int,
        before_seq: int | None = None,
        action: str | None = None,
    ) -> Sequence[AuditEvent]:
        authorize(principal.roles, Operation.AUDIT_READ)
        with self._sessions() as session:
            return AuditRepository(session, principal.tenant_id).page(
                limit=limit, before_seq=before_seq, action=action
            )
