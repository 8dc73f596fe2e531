"""Operator (admin) API tokens: shown once, stored as SHA-256 only.

The token carries 256 random bits, so a plain hash (no slow KDF) is enough: there is nothing
to brute-force, and lookup by hash avoids comparing secrets at all.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select

from medsign.clock import Clock
from medsign.db.session import Database
from medsign.db.tables import AdminTokenRow
from medsign.errors import AccessError, NotFoundError
from medsign.ids import new_id

TOKEN_PREFIX = "msadm_"  # noqa: S105 (a public prefix, not a secret)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_admin_token(database: Database, clock: Clock, *, name: str) -> tuple[str, str]:
    """Return (token id, token). The token is never stored or shown again."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = new_id("adm")
    with database.session() as session:
        session.add(
            AdminTokenRow(id=token_id, name=name, token_sha256=_hash(token), created_at=clock.now())
        )
    return token_id, token


def verify_admin_token(database: Database, token: str) -> str:
    """Return the id of the admin token, or raise AccessError."""
    if not token.startswith(TOKEN_PREFIX):
        raise AccessError("admin token missing or malformed")
    with database.session() as session:
        row = session.scalar(
            select(AdminTokenRow).where(AdminTokenRow.token_sha256 == _hash(token))
        )
        if row is None or row.revoked_at is not None:
            raise AccessError("admin token not recognised")
        return row.id


def revoke_admin_token(database: Database, clock: Clock, token_id: str) -> None:
    with database.session() as session:
        row = session.get(AdminTokenRow, token_id)
        if row is None:
            raise NotFoundError(f"no admin token {token_id}")
        row.revoked_at = clock.now()
