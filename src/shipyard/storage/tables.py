"""The relational schema. Every tenant-owned row carries ``tenant_id``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[str]: JSON,
        list[dict[str, Any]]: JSON,
        datetime: UtcDateTime,
    }


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # A disabled tenant's keys and tokens are refused; its data stays.
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public key id, in the token
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64))  # HMAC-SHA256 of the token, hex
    roles: Mapped[list[str]] = mapped_column(JSON)
    # Access groups for knowledge retrieval; every key also holds the implicit "everyone".
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)  # audit actor
    # The key this one replaced by rotation (the old one stays valid for the overlap).
    rotated_from: Mapped[str | None] = mapped_column(String(32), nullable=True)


class RoleBinding(Base):
    """Roles and access groups granted to people who sign in with OIDC: to one user (the
    token's ``sub``) or to every member of a group named in the token's groups claim."""

    __tablename__ = "role_bindings"
    __table_args__ = (
        UniqueConstraint("tenant_id", "subject_type", "subject", name="uq_role_bindings"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    subject_type: Mapped[str] = mapped_column(String(16))  # "user" or "group"
    subject: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(JSON)
    groups: Mapped[list[str]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_tenant_created", "tenant_id", "created_at"),
        Index("ix_runs_tenant_task_status", "tenant_id", "task", "status"),
        # Retention: old runs stay as purged rows for ever; this keeps the search for expired
        # ones proportional to the runs still holding payloads (migration 0011).
        Index(
            "ix_runs_unpurged",
            "task",
            "tenant_id",
            "created_at",
            postgresql_where=text("purged_at IS NULL"),
            sqlite_where=text("purged_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    key_id: Mapped[str | None] = mapped_column(String(32))
    task: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    input: Mapped[dict[str, Any]] = mapped_column(JSON)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    confidence: Mapped[float | None] = mapped_column(Float)
    model: Mapped[str] = mapped_column(String(200))
    artifact: Mapped[str | None] = mapped_column(String(64))
    latency_ms: Mapped[float] = mapped_column(Float)
    model_latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Knowledge runs: the access groups the run retrieved with. A reader needs all of them
    # to see the output, which may quote documents of those groups.
    access_groups: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # Chat-model runs: tokens billed and their cost (None: not a chat run, or no price).
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cost: Mapped[float | None] = mapped_column(Float, nullable=True)
    trace_id: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Set when retention removed the input and output (the audit event keeps their hash).
    purged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # PII policy redact: findings per entity type (no values) and, when the task names
    # reveal_roles, the placeholder -> original map sealed by governance/pii.py.
    pii_entities: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)
    pii_vault: Mapped[str | None] = mapped_column(Text, nullable=True)


class ModelArtifact(Base):
    """A trained model registered for one task version; the newest one is served."""

    __tablename__ = "model_artifacts"
    __table_args__ = (Index("ix_model_artifacts_task", "task", "task_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(64))
    task_version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    training_data_sha256: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditEvent(Base):
    """Append-only, hash-chained. ``seq`` orders the chain; ``hash`` covers every column."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    at: Mapped[str] = mapped_column(String(40))  # ISO 8601 UTC, hashed as stored
    tenant_id: Mapped[str | None] = mapped_column(String(36), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the chain's last sequence number and hash.

    Appenders update this row first, which takes the write lock on SQLite and a row lock on
    PostgreSQL, so concurrent appends are serialised and the chain never forks.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed copy of the chain head at one moment (see ``governance.checkpoints``)."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[str] = mapped_column(String(40))  # the head event's ``at``; "" for no events
    signature: Mapped[str] = mapped_column(String(200))  # base64 Ed25519 signature
    key_id: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Evaluation(Base):
    """One evaluation of a task version's model on a dataset, with its per-case results."""

    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_task_created", "task", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    task: Mapped[str] = mapped_column(String(64))
    task_version: Mapped[int] = mapped_column(Integer)
    artifact: Mapped[str | None] = mapped_column(String(64))
    dataset_path: Mapped[str] = mapped_column(String(500))
    dataset_sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)  # gates, regression, details
    cases: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    passed: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Collection(Base):
    """A tenant's named set of documents that tasks retrieve from."""

    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_collections_tenant_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Documents older than this lose their text, chunks, vectors and stored upload.
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Document(Base):
    """One source document of a collection. ``source`` identifies it across re-ingestion
    (a file name or the caller's key); a new content hash under the same source replaces it.

    Status: ``pending`` (accepted, durable, waiting for a worker), ``indexed`` or ``rejected``;
    ``purged`` is a retention tombstone (no chunks, upload, title or metadata; see
    ``services.retention``).
    """

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("tenant_id", "collection_id", "source", name="uq_documents_source"),
        Index("ix_documents_content", "tenant_id", "collection_id", "content_sha256"),
        Index("ix_documents_job", "job_id", "status"),
        Index("ix_documents_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    collection_id: Mapped[str] = mapped_column(ForeignKey("collections.id"))
    source: Mapped[str] = mapped_column(String(500))
    title: Mapped[str] = mapped_column(String(500))
    media_type: Mapped[str | None] = mapped_column(String(100))
    content_sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    groups: Mapped[list[str]] = mapped_column(JSON)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    status: Mapped[str] = mapped_column(String(16))
    reason_code: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)  # e.g. "injection"
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # processing starts, for poison
    job_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    indexed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Job(Base):
    """Durable background work. Progress of an ingestion job is counted from its documents,
    so a redelivered message can never count a document twice."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # queued, running, done, failed
    total: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class UsageReservation(Base):
    """The worst case of a metered run in flight, held from its budget check until the run is
    stored (which books its real usage and deletes this row in one transaction) or until it
    expires (a process that died mid-run): concurrent runs are checked against each other."""

    __tablename__ = "usage_reservations"
    __table_args__ = (Index("ix_usage_reservations_tenant", "tenant_id", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the run's id
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    task: Mapped[str] = mapped_column(String(64))
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class UsageDay(Base):
    """Tokens and cost per tenant, task and UTC day, added to in the transaction that stores
    each run: a budget check reads at most 31 rows per task instead of summing every run."""

    __tablename__ = "usage_days"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    task: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    runs: Mapped[int] = mapped_column(Integer, default=0)
