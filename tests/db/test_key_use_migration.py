"""Migration 0005 adds reservations to ``key_uses``; rows written before it keep meaning one
signature each."""

from __future__ import annotations

import datetime as dt

from alembic import command
from sqlalchemy import text

from medsign.db.session import Database, alembic_config
from medsign.keys import key_uses


def test_existing_key_uses_stay_single_signatures(database_url: str) -> None:
    database = Database(database_url)
    try:
        command.upgrade(alembic_config(database.url), "0004")
        at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO keys (id, store, algorithm, label, public_key_der, state,"
                    " created_at) VALUES ('key_old', 'software', 'ec-p256', 'old', :der,"
                    " 'destroyed', :at)"
                ),
                {"der": b"\x30", "at": at},
            )
            connection.execute(
                text(
                    "INSERT INTO key_uses (key_id, actor, purpose, scheme, digest_hex, at)"
                    " VALUES ('key_old', 'tsa', 'timestamp', 'ecdsa-sha256', :digest, :at)"
                ),
                {"digest": "ab" * 32, "at": at},
            )
        database.upgrade()
        [use] = key_uses(database, "key_old")
        assert not use.reservation
        assert (use.uses, use.serial_first, use.serial_last, use.valid_until) == (
            None,
            None,
            None,
            None,
        )
        assert use.describe() == "digest=" + "ab" * 32
    finally:
        database.dispose()
