"""runs keep the PII entity counts of a redacted input and, where the task allows revealing,
the sealed placeholder -> original map

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pii_entities", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("pii_vault", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("pii_vault")
        batch_op.drop_column("pii_entities")
