"""Role bindings of one tenant (see :class:`~shipyard.storage.tables.RoleBinding`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from shipyard.storage.tables import RoleBinding


class BindingRepository:
    """Tenant-scoped: another tenant's binding does not exist here."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def add(self, binding: RoleBinding) -> None:
        if binding.tenant_id != self._tenant_id:
            raise ValueError("binding belongs to another tenant")
        self._session.add(binding)

    def get(self, binding_id: str) -> RoleBinding | None:
        return self._session.execute(
            select(RoleBinding).where(
                RoleBinding.id == binding_id, RoleBinding.tenant_id == self._tenant_id
            )
        ).scalar_one_or_none()

    def find(self, subject_type: str, subject: str) -> RoleBinding | None:
        return self._session.execute(
            select(RoleBinding).where(
                RoleBinding.tenant_id == self._tenant_id,
                RoleBinding.subject_type == subject_type,
                RoleBinding.subject == subject,
            )
        ).scalar_one_or_none()

    def all(self) -> Sequence[RoleBinding]:
        return (
            self._session.execute(
                select(RoleBinding)
                .where(RoleBinding.tenant_id == self._tenant_id)
                .order_by(RoleBinding.subject_type, RoleBinding.subject)
            )
            .scalars()
            .all()
        )

    def matching(self, user: str, groups: Collection[str]) -> Sequence[RoleBinding]:
        """Bindings of the user ``user`` and of any of the IdP groups ``groups``."""
        who = and_(RoleBinding.subject_type == "user", RoleBinding.subject == user)
        if groups:
            who = or_(
                who,
                and_(RoleBinding.subject_type == "group", RoleBinding.subject.in_(sorted(groups))),
            )
        return (
            self._session.execute(
                select(RoleBinding).where(RoleBinding.tenant_id == self._tenant_id, who)
            )
            .scalars()
            .all()
        )

    def delete(self, binding: RoleBinding) -> None:
        self._session.delete(binding)
