"""Repositories. Tenant-owned data is only reachable through a tenant-scoped repository, so
no caller can forget the tenant filter: another tenant's row simply does not exist here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from shipyard.storage.tables import ApiKey, AuditEvent, Evaluation, ModelArtifact, Run, Tenant

_RUNS = cast(Table, Run.__table__)
_INSERT_RUN = insert(_RUNS)


class TenantRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def by_slug(self, slug: str) -> Tenant | None:
        if "\x00" in slug:  # never a slug, and PostgreSQL refuses NUL in text
            return None
        return self._session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()

    def by_id(self, tenant_id: str) -> Tenant | None:
        return self._session.get(Tenant, tenant_id)

    def add(self, tenant: Tenant) -> None:
        self._session.add(tenant)

    def lock(self, tenant_id: str) -> None:
        """Hold the tenant row until the caller's transaction ends, so that a check-then-write
        about the tenant (its budget, its first key) runs one at a time. A no-op UPDATE: the row
        lock on PostgreSQL, the database's write lock on SQLite (whose reads so far held no
        snapshot, so what follows sees every committed write)."""
        self._session.execute(update(Tenant).where(Tenant.id == tenant_id).values(slug=Tenant.slug))

    def all(self) -> Sequence[Tenant]:
        return self._session.execute(select(Tenant).order_by(Tenant.slug)).scalars().all()


class KeyRepository:
    """Keys are looked up by their public id before the tenant is known (authentication)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, key_id: str) -> ApiKey | None:
        return self._session.get(ApiKey, key_id)

    def with_tenant_slug(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key and its tenant's slug in one query (authentication runs per request)."""
        row = self._session.execute(
            select(ApiKey, Tenant.slug)
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .where(ApiKey.id == key_id)
        ).first()
        return (row[0], row[1]) if row else None

    def with_tenant(self, key_id: str) -> tuple[ApiKey, Tenant] | None:
        """The key and its tenant in one query (authentication runs per request)."""
        row = self._session.execute(
            select(ApiKey, Tenant)
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .where(ApiKey.id == key_id)
        ).first()
        return (row[0], row[1]) if row else None

    def add(self, key: ApiKey) -> None:
        self._session.add(key)

    def in_tenant(self, key_id: str, tenant_id: str) -> ApiKey | None:
        """A key, only if it belongs to ``tenant_id`` (another tenant's key does not exist)."""
        if "\x00" in key_id:  # never a key id, and PostgreSQL refuses NUL in text
            return None
        return self._session.execute(
            select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id)
        ).scalar_one_or_none()

    def for_tenant(self, tenant_id: str | None) -> Sequence[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.created_at)
        if tenant_id is not None:
            query = query.where(ApiKey.tenant_id == tenant_id)
        return self._session.execute(query).scalars().all()


@dataclass(frozen=True)
class RunFilter:
    task: str | None = None
    status: str | None = None
    key_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class RunRepository:
    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def add(self, run: Run) -> None:
        if run.tenant_id != self._tenant_id:
            raise ValueError("run belongs to another tenant")
        # A Core insert: runs are written on every request and never updated in this session.
        self._session.execute(_INSERT_RUN, {c.key: getattr(run, c.key) for c in _RUNS.columns})

    def get(self, run_id: str) -> Run | None:
        return self._session.execute(
            select(Run).where(Run.id == run_id, Run.tenant_id == self._tenant_id)
        ).scalar_one_or_none()

    def page(
        self, where: RunFilter, *, limit: int, after: tuple[datetime, str] | None
    ) -> Sequence[Run]:
        """Newest first; keyset pagination on (created_at, id) so pages never shift."""
        query = select(Run).where(Run.tenant_id == self._tenant_id)
        if where.task:
            query = query.where(Run.task == where.task)
        if where.status:
            query = query.where(Run.status == where.status)
        if where.key_id:
            query = query.where(Run.key_id == where.key_id)
        if where.created_after:
            query = query.where(Run.created_at >= where.created_after)
        if where.created_before:
            query = query.where(Run.created_at < where.created_before)
        if after is not None:
            created, run_id = after
            query = query.where(
                (Run.created_at < created) | ((Run.created_at == created) & (Run.id < run_id))
            )
        query = query.order_by(Run.created_at.desc(), Run.id.desc()).limit(limit)
        return self._session.execute(query).scalars().all()


class ArtifactRepository:
    """Trained models are platform-level (a task spec is shared by the project's tenants)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, artifact: ModelArtifact) -> None:
        self._session.add(artifact)

    def latest(self, task: str, version: int) -> ModelArtifact | None:
        return self._session.execute(
            select(ModelArtifact)
            .where(ModelArtifact.task == task, ModelArtifact.task_version == version)
            .order_by(ModelArtifact.id.desc())
            .limit(1)
        ).scalar_one_or_none()


class EvaluationRepository:
    """Evaluations are platform-level, like the task specs and models they measure."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, evaluation: Evaluation) -> None:
        self._session.add(evaluation)

    def latest(
        self, task: str, *, dataset_sha256: str | None = None, passed_only: bool = False
    ) -> Evaluation | None:
        query = select(Evaluation).where(Evaluation.task == task)
        if passed_only:
            query = query.where(Evaluation.passed.is_(True))
        if dataset_sha256 is not None:
            query = query.where(Evaluation.dataset_sha256 == dataset_sha256)
        query = query.order_by(Evaluation.created_at.desc(), Evaluation.id.desc()).limit(1)
        return self._session.execute(query).scalar_one_or_none()

    def for_task(self, task: str | None, *, limit: int) -> Sequence[Evaluation]:
        query = select(Evaluation).order_by(Evaluation.created_at.desc(), Evaluation.id.desc())
        if task is not None:
            query = query.where(Evaluation.task == task)
        return self._session.execute(query.limit(limit)).scalars().all()


class AuditRepository:
    """A tenant's own audit events (platform events without a tenant are not listed)."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def page(
        self, *, limit: int, before_seq: int | None, action: str | None
    ) -> Sequence[AuditEvent]:
        """Newest first; ``before_seq`` continues from the last page."""
        query = select(AuditEvent).where(AuditEvent.tenant_id == self._tenant_id)
        if before_seq is not None:
            query = query.where(AuditEvent.seq < before_seq)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        query = query.order_by(AuditEvent.seq.desc()).limit(limit)
        return self._session.execute(query).scalars().all()
