"""What every key store shares: request checks before a signature, and the key-use record.

Both stores go through :func:`load_for_signing` and :func:`record_key_use` so the rules (which
scheme fits which key, destroyed keys never sign, every signature leaves a row) cannot drift
between the software store and the HSM.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from medsign.clock import Clock
from medsign.crypto.types import KeyAlgorithm, SignatureScheme
from medsign.db import Database
from medsign.db.tables import KeyRow, KeyUseRow
from medsign.errors import InputError, KeyUseError, NotFoundError
from medsign.ids import KeyId
from medsign.keys.base import KeyRef

ACTIVE = "active"
DESTROYED = "destroyed"
DIGEST_SIZE = 32
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


@dataclass(frozen=True)
class KeyUse:
    """One recorded signature: who asked, for what, over which digest."""

    id: int
    key_id: KeyId
    actor: str
    purpose: str
    scheme: SignatureScheme
    digest_hex: str
    at: dt.datetime


def key_ref(row: KeyRow) -> KeyRef:
    return KeyRef(
        id=KeyId(row.id),
        store=row.store,
        algorithm=KeyAlgorithm(row.algorithm),
        label=row.label,
        public_key_der=row.public_key_der,
    )


def load_key_row(session: Session, key_id: str, store: str) -> KeyRow:
    row = session.get(KeyRow, key_id)
    # A key held by another store is as unknown to this one as a missing key.
    if row is None or row.store != store:
        raise NotFoundError(f"no {store} key {key_id}")
    return row


def parse_scheme(scheme: SignatureScheme | str) -> SignatureScheme:
    try:
        return SignatureScheme(scheme)
    except ValueError as exc:
        raise InputError(f"unknown signature scheme {scheme!r}") from exc


def parse_algorithm(algorithm: KeyAlgorithm | str) -> KeyAlgorithm:
    try:
        return KeyAlgorithm(algorithm)
    except ValueError as exc:
        raise InputError(f"unknown key algorithm {algorithm!r}") from exc


def check_label(label: str) -> str:
    if not isinstance(label, str) or not 1 <= len(label) <= 200:
        raise InputError("key label must be 1 to 200 characters")
    return label


def load_for_signing(
    session: Session,
    key_id: str,
    store: str,
    scheme: SignatureScheme,
    digest: bytes,
    *,
    actor: str,
    purpose: str,
) -> KeyRow:
    """The active key row for a signing request, after every check that needs no key."""
    if not isinstance(digest, bytes) or len(digest) != DIGEST_SIZE:
        raise InputError(f"digest must be {DIGEST_SIZE} bytes")
    if not actor or len(actor) > 200:
        raise InputError("actor must be 1 to 200 characters")
    if not purpose or len(purpose) > 64:
        raise InputError("purpose must be 1 to 64 characters")
    row = load_key_row(session, key_id, store)
    if row.state != ACTIVE:
        raise KeyUseError(f"key {key_id} is {row.state}")
    algorithm = KeyAlgorithm(row.algorithm)
    if scheme.family is not algorithm.family:
        raise KeyUseError(f"scheme {scheme} does not fit a {algorithm} key")
    return row


def record_key_use(
    session: Session,
    clock: Clock,
    key_id: str,
    scheme: SignatureScheme,
    digest: bytes,
    *,
    actor: str,
    purpose: str,
) -> None:
    session.add(
        KeyUseRow(
            key_id=key_id,
            actor=actor,
            purpose=purpose,
            scheme=str(scheme),
            digest_hex=digest.hex(),
            at=clock.now(),
        )
    )


def key_uses(
    database: Database, key_id: str | None = None, *, limit: int = DEFAULT_LIMIT
) -> list[KeyUse]:
    """Recorded key uses, newest first, optionally for one key."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be between 1 and {MAX_LIMIT}")
    query = select(KeyUseRow).order_by(KeyUseRow.id.desc()).limit(limit)
    if key_id is not None:
        query = query.where(KeyUseRow.key_id == key_id)
    with database.session() as session:
        rows = session.scalars(query).all()
        return [
            KeyUse(
                id=row.id,
                key_id=KeyId(row.key_id),
                actor=row.actor,
                purpose=row.purpose,
                scheme=SignatureScheme(row.scheme),
                digest_hex=row.digest_hex,
                at=row.at,
            )
            for row in rows
        ]
