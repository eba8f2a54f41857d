"""governance: role bindings for OIDC principals, key rotation and authorship, tenant
suspension, retention marks on runs and collections

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "role_bindings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "subject_type", "subject", name="uq_role_bindings"),
    )
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("rotated_from", sa.String(length=32), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_column("retention_days")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("purged_at")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("rotated_from")
        batch_op.drop_column("created_by")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("disabled_at")
    op.drop_table("role_bindings")
