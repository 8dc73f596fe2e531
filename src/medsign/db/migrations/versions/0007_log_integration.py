"""evidence log: the database numbers the leaves; Merkle nodes written by integration

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
    _sequence()


def _sequence() -> None:
    """Each new event takes the next leaf index inside the database, in the INSERT itself:
    no statement of its own per append. PostgreSQL: a BEFORE trigger bumps the head row's
    counter (whose lock then serialises appenders until commit, as before) and sets the
    index. SQLite has one writer at a time, so the INSERT's own ``MAX(leaf_index) + 1`` is
    the next index and nothing more is needed; there the head's ``size`` column is unused.
    A row inserted with another index behind medsign's back breaks density, which
    `medsign log audit` reports."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION medsign_evidence_sequence() RETURNS trigger LANGUAGE plpgsql AS $$"
            " DECLARE next_index bigint; BEGIN"
            " UPDATE evidence_log_head SET size = size + 1 WHERE id = 1"
            " RETURNING size - 1 INTO next_index;"
            " IF next_index IS NULL THEN"
            " RAISE EXCEPTION 'medsign: the evidence log has no head row'; END IF;"
            " NEW.leaf_index := next_index; RETURN NEW; END $$"
        )
        op.execute(
            "CREATE TRIGGER evidence_events_sequence BEFORE INSERT ON evidence_events"
            " FOR EACH ROW EXECUTE FUNCTION medsign_evidence_sequence()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS evidence_events_sequence ON evidence_events")
        op.execute("DROP FUNCTION IF EXISTS medsign_evidence_sequence()")
    else:
        op.execute(
            "UPDATE evidence_log_head SET size ="
            " (SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM evidence_events)"
        )
    with op.batch_alter_table("evidence_log_head", schema=None) as batch_op:
        batch_op.drop_column("integrated_size")
