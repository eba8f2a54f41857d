"""Role bindings: which roles and access groups people who sign in with OIDC hold, and the
principal a verified token maps to. Every change is audited (before/after) in the same
transaction as the change itself."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shipyard.access.grants import ensure_can_grant
from shipyard.access.oidc import Identity
from shipyard.access.principal import Principal
from shipyard.access.roles import Operation, Role, authorize
from shipyard.errors import Conflict, FieldProblem, InvalidInput, NotFound, Unauthenticated
from shipyard.services.ids import is_uuid
from shipyard.services.key_records import audit_change, binding_snapshot, check_groups
from shipyard.storage.bindings import BindingRepository
from shipyard.storage.db import SessionFactory
from shipyard.storage.repositories import TenantRepository
from shipyard.storage.tables import RoleBinding, Tenant

SUBJECT_TYPES = ("user", "group")
MAX_SUBJECT_CHARS = 200
# One message for an unknown and a disabled tenant: a token learns nothing about tenants.
TENANT_REFUSED = "invalid token: unknown or disabled tenant"


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", [FieldProblem(field, message)])


def check_subject(subject_type: str, subject: str) -> None:
    if subject_type not in SUBJECT_TYPES:
        raise _invalid("subject_type", "must be 'user' or 'group'")
    # Compared exactly with the token's sub or group names: no trimming, no control characters.
    if not subject or len(subject) > MAX_SUBJECT_CHARS or subject != subject.strip():
        raise _invalid("subject", f"must be 1-{MAX_SUBJECT_CHARS} characters, no outer spaces")
    if any(unicodedata.category(char) in {"Cc", "Cf"} for char in subject):
        raise _invalid("subject", "must not contain control characters")


class BindingService:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    def create_binding(
        self,
        tenant_slug: str,
        *,
        subject_type: str,
        subject: str,
        roles: frozenset[Role],
        groups: frozenset[str],
        actor: str,
        granter: Principal | None = None,
    ) -> RoleBinding:
        """Bind roles and access groups to a user (``sub``) or an IdP group. With a
        ``granter`` (an API caller) nothing beyond the granter's own rights can be granted;
        without one (the CLI) it acts with full rights."""
        check_subject(subject_type, subject)
        check_groups(groups, "groups")
        if not roles and not groups:
            raise _invalid("roles", "grant at least one role or access group")
        if granter is not None:
            authorize(granter.roles, Operation.BINDING_MANAGE)
            ensure_can_grant(granter, roles, groups)
        try:
            with self._sessions.begin() as session:
                tenant = self._tenant(session, tenant_slug, granter)
                bindings = BindingRepository(session, tenant.id)
                if bindings.find(subject_type, subject) is not None:
                    raise Conflict(
                        f"{subject_type} {subject!r} already has a binding in {tenant_slug!r}; "
                        "delete it first"
                    )
                binding = RoleBinding(
                    id=str(uuid.uuid4()),
                    tenant_id=tenant.id,
                    subject_type=subject_type,
                    subject=subject,
                    roles=sorted(role.value for role in roles),
                    groups=sorted(groups),
                    created_by=actor,
                    created_at=datetime.now(UTC),
                )
                audit_change(
                    session,
                    actor=actor,
                    action="binding.created",
                    subject_type="role_binding",
                    subject_id=binding.id,
                    tenant_id=tenant.id,
                    before=None,
                    after=binding_snapshot(binding),
                )
                bindings.add(binding)
        except IntegrityError:  # created concurrently
            raise Conflict(f"{subject_type} {subject!r} already has a binding") from None
        return binding

    def bindings(self, tenant_slug: str) -> Sequence[RoleBinding]:
        with self._sessions() as session:
            tenant = self._tenant(session, tenant_slug, None)
            return BindingRepository(session, tenant.id).all()

    def delete_binding(self, tenant_slug: str, binding_id: str, *, actor: str) -> RoleBinding:
        with self._sessions.begin() as session:
            tenant = self._tenant(session, tenant_slug, None)
            bindings = BindingRepository(session, tenant.id)
            binding = bindings.get(binding_id) if is_uuid(binding_id) else None
            if binding is None:
                raise NotFound(f"no binding {binding_id!r}")
            audit_change(
                session,
                actor=actor,
                action="binding.deleted",
                subject_type="role_binding",
                subject_id=binding.id,
                tenant_id=tenant.id,
                before=binding_snapshot(binding),
                after=None,
            )
            bindings.delete(binding)
        return binding

    def principal_for(self, identity: Identity) -> Principal:
        """The principal a verified token maps to: the union of the roles and access groups
        of the tenant's bindings for the user and for each of the user's IdP groups."""
        with self._sessions() as session:
            tenant = TenantRepository(session).by_slug(identity.tenant)
            if tenant is None or tenant.disabled_at is not None:
                raise Unauthenticated(TENANT_REFUSED)
            found = BindingRepository(session, tenant.id).matching(
                identity.subject, identity.groups
            )
        if not found:
            raise Unauthenticated("no role bindings for this user")
        valid = {role.value for role in Role}
        return Principal(
            tenant_id=tenant.id,
            tenant_slug=tenant.slug,
            key_id=identity.user_id,
            name=identity.subject,
            roles=frozenset(Role(r) for b in found for r in b.roles if r in valid),
            groups=frozenset(g for b in found for g in b.groups),
            subject=identity.subject,
        )

    @staticmethod
    def _tenant(session: Session, slug: str, granter: Principal | None) -> Tenant:
        tenant = TenantRepository(session).by_slug(slug)
        # A principal manages bindings of its own tenant only (the CLI, with no granter, any).
        other = granter is not None and granter.tenant_slug != slug
        if tenant is None or other:
            raise NotFound(f"no tenant {slug!r}")
        return tenant
