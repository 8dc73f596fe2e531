"""key-use reservations: one row for up to N signatures with serials a..b

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import medsign.db.base

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: every existing row keeps meaning one signature.
    with op.batch_alter_table("key_uses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("uses", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("serial_first", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("serial_last", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("valid_until", medsign.db.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("key_uses", schema=None) as batch_op:
        batch_op.drop_column("valid_until")
        batch_op.drop_column("serial_last")
        batch_op.drop_column("serial_first")
        batch_op.drop_column("uses")
