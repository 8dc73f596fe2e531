"""What every key store shares: request checks before a signature, and the key-use record.

Both stores apply the same rules (which scheme fits which key, destroyed keys never sign, every
signature leaves a row) through :func:`check_signing_request` and :func:`check_key_state`, so
they cannot drift between the software store and the HSM. :func:`load_for_signing` and
:func:`record_key_use` work in an ORM session; :func:`load_signing_key` and
:func:`insert_key_use` are the same steps on a plain connection, for the hot path of the
software store (one short transaction, no unit-of-work bookkeeping).

The key-use record is written in the transaction of the signature it records: a signature is
never handed out without its row, and a refused request (any check failing, or the signature
failing) leaves none. A message signed whole (Ed25519, ``sign_message``) is recorded by its
SHA-256, so every row names what was signed in 32 bytes whichever method signed it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import String, bindparam, insert, select
from sqlalchemy.engine import Connection
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
# Messages signed whole are notes and cosignature messages of a few hundred bytes; the bound
# keeps one call from hashing and signing arbitrary amounts of data.
MAX_MESSAGE_SIZE = 64 * 1024
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


@dataclass(frozen=True)
class KeyUse:
    """One recorded signature: who asked, for what, over which digest.

    ``digest_hex`` is the digest signed, or for a message signed whole its SHA-256.
    """

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


def parse_digest_scheme(scheme: SignatureScheme | str) -> SignatureScheme:
    """``parse_scheme`` for ``sign_digest``: a scheme that signs messages has no digest."""
    parsed = parse_scheme(scheme)
    if not parsed.signs_digest:
        raise KeyUseError(f"{parsed} signs the message itself, not a digest: use sign_message")
    return parsed


def parse_message_scheme(scheme: SignatureScheme | str) -> SignatureScheme:
    """``parse_scheme`` for ``sign_message``: digest schemes keep using ``sign_digest``."""
    parsed = parse_scheme(scheme)
    if parsed.signs_digest:
        raise KeyUseError(f"{parsed} signs a digest, not the message: use sign_digest")
    return parsed


def parse_algorithm(algorithm: KeyAlgorithm | str) -> KeyAlgorithm:
    try:
        return KeyAlgorithm(algorithm)
    except ValueError as exc:
        raise InputError(f"unknown key algorithm {algorithm!r}") from exc


def check_label(label: str) -> str:
    if not isinstance(label, str) or not 1 <= len(label) <= 200:
        raise InputError("key label must be 1 to 200 characters")
    return label


@dataclass(frozen=True)
class SigningKey:
    """The columns of a key row that signing needs, read on a plain connection."""

    id: str
    store: str
    algorithm: str
    state: str
    public_key_der: bytes
    wrapped_key: bytes | None
    master_version: int | None
    token_object_id: str | None


_SIGNING_KEY_QUERY = select(
    KeyRow.id,
    KeyRow.store,
    KeyRow.algorithm,
    KeyRow.state,
    KeyRow.public_key_der,
    KeyRow.wrapped_key,
    KeyRow.master_version,
    KeyRow.token_object_id,
).where(KeyRow.id == bindparam("key_id"))

# The table, not the mapped class: a plain Core insert with no ORM bookkeeping.
_KEY_USE_INSERT = insert(KeyUseRow.__table__)  # type: ignore[arg-type]


_KEY_USES = KeyUseRow.__table__
# The key-use row, written only if the key row is still exactly the one a cached key was
# unwrapped from: same store, active, same algorithm, same master version and wrapped blob.
# One statement instead of a read and an insert, and on SQLite it takes the write lock first.
_KEY_USE_IF_CURRENT = (
    insert(_KEY_USES)  # type: ignore[arg-type]
    .from_select(
        ["key_id", "actor", "purpose", "scheme", "digest_hex", "at"],
        select(
            KeyRow.id,
            bindparam("actor", type_=String()),
            bindparam("purpose", type_=String()),
            bindparam("scheme", type_=String()),
            bindparam("digest_hex", type_=String()),
            bindparam("at", type_=_KEY_USES.c.at.type),
        ).where(
            KeyRow.id == bindparam("key_id"),
            KeyRow.store == bindparam("store"),
            KeyRow.state == ACTIVE,
            KeyRow.algorithm == bindparam("algorithm"),
            KeyRow.master_version == bindparam("version"),
            KeyRow.wrapped_key == bindparam("blob"),
        ),
    )
    # Without it psycopg reports -1 for INSERT ... SELECT; the count decides the path taken.
    .execution_options(preserve_rowcount=True)
)


def check_signing_request(digest: bytes, *, actor: str, purpose: str) -> None:
    """Every check on a signing request that needs no key row."""
    if not isinstance(digest, bytes) or len(digest) != DIGEST_SIZE:
        raise InputError(f"digest must be {DIGEST_SIZE} bytes")
    _check_actor_and_purpose(actor, purpose)


def check_message_request(message: bytes, *, actor: str, purpose: str) -> bytes:
    """:func:`check_signing_request` for a message signed whole; returns the digest to record
    (SHA-256 of the message)."""
    if not isinstance(message, bytes):
        raise InputError("the message to sign must be bytes")
    if len(message) > MAX_MESSAGE_SIZE:
        raise InputError(f"the message to sign is over {MAX_MESSAGE_SIZE} bytes")
    _check_actor_and_purpose(actor, purpose)
    return hashlib.sha256(message).digest()


def _check_actor_and_purpose(actor: str, purpose: str) -> None:
    if not isinstance(actor, str) or not actor or len(actor) > 200:
        raise InputError("actor must be 1 to 200 characters")
    if not isinstance(purpose, str) or not purpose or len(purpose) > 64:
        raise InputError("purpose must be 1 to 64 characters")


def check_key_state(key_id: str, state: str, algorithm_name: str, scheme: SignatureScheme) -> None:
    """Destroyed (or otherwise inactive) keys never sign; the scheme must fit the key."""
    if state != ACTIVE:
        raise KeyUseError(f"key {key_id} is {state}")
    algorithm = KeyAlgorithm(algorithm_name)
    if scheme.family is not algorithm.family:
        raise KeyUseError(f"scheme {scheme} does not fit a {algorithm} key")


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
    check_signing_request(digest, actor=actor, purpose=purpose)
    row = load_key_row(session, key_id, store)
    check_key_state(key_id, row.state, row.algorithm, scheme)
    return row


def load_signing_key(
    connection: Connection,
    key_id: str,
    store: str,
    scheme: SignatureScheme,
    digest: bytes,
    *,
    actor: str,
    purpose: str,
) -> SigningKey:
    """As :func:`load_for_signing`, on a plain connection (one indexed primary-key read)."""
    check_signing_request(digest, actor=actor, purpose=purpose)
    found = connection.execute(_SIGNING_KEY_QUERY, {"key_id": key_id}).first()
    # A key held by another store is as unknown to this one as a missing key.
    if found is None or found.store != store:
        raise NotFoundError(f"no {store} key {key_id}")
    key = SigningKey(
        id=found.id,
        store=found.store,
        algorithm=found.algorithm,
        state=found.state,
        public_key_der=found.public_key_der,
        wrapped_key=found.wrapped_key,
        master_version=found.master_version,
        token_object_id=found.token_object_id,
    )
    check_key_state(key_id, key.state, key.algorithm, scheme)
    return key


def _key_use_values(
    clock: Clock, key_id: str, scheme: SignatureScheme, digest: bytes, actor: str, purpose: str
) -> dict[str, object]:
    return {
        "key_id": key_id,
        "actor": actor,
        "purpose": purpose,
        "scheme": str(scheme),
        "digest_hex": digest.hex(),
        "at": clock.now(),
    }


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
    """Write the key-use row in the session's transaction (a Core insert: no ORM object)."""
    session.execute(_KEY_USE_INSERT, _key_use_values(clock, key_id, scheme, digest, actor, purpose))


def insert_key_use_if_current(
    connection: Connection,
    clock: Clock,
    key_id: str,
    scheme: SignatureScheme,
    digest: bytes,
    *,
    actor: str,
    purpose: str,
    store: str,
    algorithm: KeyAlgorithm,
    master_version: int,
    wrapped_key: bytes,
) -> bool:
    """Insert the key-use row if the key row is active and unchanged; False if it is not.

    The caller has run :func:`check_signing_request` and checked the scheme against
    ``algorithm``. On False nothing was written and the caller takes the full path
    (:func:`load_signing_key`), which raises the precise error or finds the new blob.
    """
    values = _key_use_values(clock, key_id, scheme, digest, actor, purpose)
    values.update(store=store, algorithm=str(algorithm), version=master_version, blob=wrapped_key)
    count = connection.execute(_KEY_USE_IF_CURRENT, values).rowcount
    if count not in (0, 1):
        # A driver that cannot count would make the caller record the use twice (or not at
        # all); fail instead, and the caller's transaction rolls back.
        raise KeyUseError(f"cannot tell whether the use of key {key_id} was recorded")
    return count == 1


def insert_key_use(
    connection: Connection,
    clock: Clock,
    key_id: str,
    scheme: SignatureScheme,
    digest: bytes,
    *,
    actor: str,
    purpose: str,
) -> None:
    """Write the key-use row in the connection's current transaction."""
    connection.execute(
        _KEY_USE_INSERT, _key_use_values(clock, key_id, scheme, digest, actor, purpose)
    )


def insert_key_uses(
    connection: Connection,
    clock: Clock,
    key_id: str,
    scheme: SignatureScheme,
    digests: list[bytes],
    *,
    actor: str,
    purpose: str,
) -> None:
    """Write one key-use row per digest in one statement of the current transaction."""
    connection.execute(
        _KEY_USE_INSERT,
        [_key_use_values(clock, key_id, scheme, d, actor, purpose) for d in digests],
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
