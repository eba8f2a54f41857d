"""usage per tenant, task and day (budget checks without scanning runs)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 21:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_days",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("task", sa.String(length=64), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("tenant_id", "task", "day"),
    )
    # Runs stored before this migration count too (the UTC day of each run).
    if op.get_bind().dialect.name == "postgresql":
        day = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    else:
        day = "substr(created_at, 1, 10)"  # stored as UTC ISO text
    op.execute(
        "INSERT INTO usage_days (tenant_id, task, day, cost, tokens, runs) "  # noqa: S608
        f"SELECT tenant_id, task, {day}, coalesce(sum(cost), 0), "
        "coalesce(sum(coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0)), 0), "
        "count(*) FROM runs WHERE cost IS NOT NULL OR prompt_tokens IS NOT NULL "
        f"GROUP BY tenant_id, task, {day}"
    )


def downgrade() -> None:
    op.drop_table("usage_days")
