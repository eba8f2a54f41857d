"""usage_reservations: the worst case of metered runs in flight, so concurrent runs cannot
overshoot a budget together

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 06:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_reservations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("task", sa.String(length=64), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_usage_reservations_tenant", "usage_reservations", ["tenant_id", "expires_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_usage_reservations_tenant", table_name="usage_reservations")
    op.drop_table("usage_reservations")
