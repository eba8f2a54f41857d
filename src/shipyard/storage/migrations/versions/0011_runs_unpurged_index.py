"""partial index on runs not yet purged: the retention purge finds expired runs without
walking every run it purged before

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_UNPURGED = sa.text("purged_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_runs_unpurged",
        "runs",
        ["task", "tenant_id", "created_at"],
        postgresql_where=_UNPURGED,
        sqlite_where=_UNPURGED,
    )


def downgrade() -> None:
    op.drop_index("ix_runs_unpurged", table_name="runs")
