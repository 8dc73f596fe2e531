"""evidence log: Merkle nodes written by integration, not by every append

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evidence_log_head", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("integrated_size", sa.BigInteger(), nullable=False, server_default="0")
        )
    # Until now every append wrote its nodes: the whole log is integrated.
    op.execute(sa.text("UPDATE evidence_log_head SET integrated_size = size"))


def downgrade() -> None:
    with op.batch_alter_table("evidence_log_head", schema=None) as batch_op:
        batch_op.drop_column("integrated_size")
