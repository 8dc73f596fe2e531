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

A reservation (``KeyStore.reserve``, used by the TSA) keeps the guarantee at a coarser grain:
one row, committed before any of its signatures is made, records that the key may make up to
``uses`` signatures, each carrying one number of ``serial_first..serial_last`` (claimed in the
same transaction, e.g. a block of TSA serial numbers), until ``valid_until``. The
:class:`Allowance` then signs in memory, each number at most once; numbers left unused (the
process stopped, the time ran out) are never used by anyone. So every signature is covered by
a row written before it, and one carrying a number outside every recorded reservation was not
made by this key store. The row's ``digest_hex`` is the SHA-256 of
:func:`reservation_description`, the canonical JSON of the reservation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import weakref
from collections.abc import Callable, Sequence
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
from medsign.keys.base import AllowanceSpentError, Claim, KeyRef

ACTIVE = "active"
DESTROYED = "destroyed"
DIGEST_SIZE = 32
# Messages signed whole are notes and cosignature messages of a few hundred bytes; the bound
# keeps one call from hashing and signing arbitrary amounts of data.
MAX_MESSAGE_SIZE = 64 * 1024
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
# One reservation covers at most this many signatures and this much time: the bounds keep an
# allowance from outliving, by much, a destroy committed by another process.
MAX_RESERVATION_USES = 100_000
MAX_RESERVATION_SECONDS = 3600.0
MAX_NUMBER = 2**63 - 1  # the serial columns are signed 64-bit
RESERVATION_FORMAT = "medsign/key-reservation/v1"


@dataclass(frozen=True)
class KeyUse:
    """One recorded signature, or one reservation of signatures: who asked, for what, when.

    For a signature (``uses`` is None) ``digest_hex`` is the digest signed, or for a message
    signed whole its SHA-256. For a reservation ``uses`` is how many signatures it allows,
    each carrying one number of ``serial_first..serial_last``, made before ``valid_until``;
    ``digest_hex`` is the SHA-256 of :func:`reservation_description`.
    """

    id: int
    key_id: KeyId
    actor: str
    purpose: str
    scheme: SignatureScheme
    digest_hex: str
    at: dt.datetime
    uses: int | None = None
    serial_first: int | None = None
    serial_last: int | None = None
    valid_until: dt.datetime | None = None

    @property
    def reservation(self) -> bool:
        return self.uses is not None

    def describe(self) -> str:
        """One line for operators: the digest of a signature, or what a reservation allows."""
        if self.uses is None:
            return f"digest={self.digest_hex}"
        until = self.valid_until.isoformat() if self.valid_until is not None else "?"
        return (
            f"reserved uses={self.uses} serials={self.serial_first}..{self.serial_last}"
            f" until={until} digest={self.digest_hex}"
        )


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

# PostgreSQL: FOR SHARE, so a destroy waits for the reservation reading the row to commit
# (SQLite serialises writers anyway and renders no lock clause).
_SIGNING_KEY_QUERY_SHARED = _SIGNING_KEY_QUERY.with_for_update(read=True)

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
    return _read_signing_key(connection, key_id, store, scheme)


def _read_signing_key(
    connection: Connection,
    key_id: str,
    store: str,
    scheme: SignatureScheme,
    *,
    share_lock: bool = False,
) -> SigningKey:
    query = _SIGNING_KEY_QUERY_SHARED if share_lock else _SIGNING_KEY_QUERY
    found = connection.execute(query, {"key_id": key_id}).first()
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


# -- reservations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reservation:
    """What one reservation row records (the allowance is built from it)."""

    key_id: str
    scheme: SignatureScheme
    actor: str
    purpose: str
    numbers: range
    at: dt.datetime
    valid_until: dt.datetime


def reservation_description(
    *,
    key_id: str,
    scheme: SignatureScheme | str,
    actor: str,
    purpose: str,
    uses: int,
    serial_first: int,
    serial_last: int,
    at: dt.datetime,
    valid_until: dt.datetime,
) -> bytes:
    """The canonical description a reservation row's ``digest_hex`` is the SHA-256 of.

    JSON with sorted keys, no whitespace and UTF-8 (for these string and integer members the
    same bytes as RFC 8785); times in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. An auditor
    recomputes it from the row (:func:`reservation_digest`), so the row's fields and its
    digest cannot be edited apart.
    """
    document = {
        "format": RESERVATION_FORMAT,
        "key_id": key_id,
        "scheme": str(scheme),
        "actor": actor,
        "purpose": purpose,
        "uses": uses,
        "serial_first": serial_first,
        "serial_last": serial_last,
        "at": _utc_text(at),
        "valid_until": _utc_text(valid_until),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def _utc_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reservation_digest(use: KeyUse) -> bytes:
    """SHA-256 of the reservation's canonical description, from a listed row."""
    if (
        use.uses is None
        or use.serial_first is None
        or use.serial_last is None
        or use.valid_until is None
    ):
        raise InputError(f"key use {use.id} is a single signature, not a reservation")
    description = reservation_description(
        key_id=use.key_id,
        scheme=use.scheme,
        actor=use.actor,
        purpose=use.purpose,
        uses=use.uses,
        serial_first=use.serial_first,
        serial_last=use.serial_last,
        at=use.at,
        valid_until=use.valid_until,
    )
    return hashlib.sha256(description).digest()


def check_reservation_request(
    count: int, seconds: float, *, actor: str, purpose: str, claim: Claim
) -> None:
    """Every check on a reservation request that needs no key row."""
    if isinstance(count, bool) or not isinstance(count, int):
        raise InputError("the number of reserved signatures must be an integer")
    if not 1 <= count <= MAX_RESERVATION_USES:
        raise InputError(f"a reservation covers 1 to {MAX_RESERVATION_USES} signatures")
    if not isinstance(seconds, int | float) or not 0 < seconds <= MAX_RESERVATION_SECONDS:
        raise InputError(f"a reservation lasts more than 0 and at most {MAX_RESERVATION_SECONDS} s")
    if not callable(claim):
        raise InputError("a reservation needs a claim for its numbers")
    _check_actor_and_purpose(actor, purpose)


def record_reservation(
    connection: Connection,
    clock: Clock,
    key_id: str,
    store: str,
    scheme: SignatureScheme,
    count: int,
    *,
    actor: str,
    purpose: str,
    seconds: float,
    claim: Claim,
    prepare: Callable[[SigningKey], object] | None = None,
) -> Reservation:
    """Claim the numbers, check the key row, and write the reservation's key-use row, all in
    the connection's transaction (the caller commits it before the allowance signs).

    The claim runs first: on SQLite its UPDATE takes the write lock before anything is read.
    The key row is read under a share lock (PostgreSQL), so a destroy commits either before
    (and the reservation is refused) or after the reservation; the store registers the
    allowance before committing, so such a destroy revokes it. ``prepare`` (unwrapping the
    key, finding the token object) runs after the key checks and before the row is written,
    so a key that cannot sign leaves no reservation.
    """
    first = claim(connection, count)
    if isinstance(first, bool) or not isinstance(first, int):
        raise InputError("the claim must return the first number reserved")
    last = first + count - 1
    if first < 0 or last > MAX_NUMBER:
        raise InputError(f"reserved numbers must lie in 0..{MAX_NUMBER}")
    key = _read_signing_key(connection, key_id, store, scheme, share_lock=True)
    if prepare is not None:
        prepare(key)
    at = clock.now()
    until = at + dt.timedelta(seconds=seconds)
    description = reservation_description(
        key_id=key_id,
        scheme=scheme,
        actor=actor,
        purpose=purpose,
        uses=count,
        serial_first=first,
        serial_last=last,
        at=at,
        valid_until=until,
    )
    connection.execute(
        _KEY_USE_INSERT,
        {
            "key_id": key_id,
            "actor": actor,
            "purpose": purpose,
            "scheme": str(scheme),
            "digest_hex": hashlib.sha256(description).hexdigest(),
            "at": at,
            "uses": count,
            "serial_first": first,
            "serial_last": last,
            "valid_until": until,
        },
    )
    return Reservation(
        key_id=key_id,
        scheme=scheme,
        actor=actor,
        purpose=purpose,
        numbers=range(first, last + 1),
        at=at,
        valid_until=until,
    )


class Allowance:
    """The signatures of one committed reservation, made in memory (``SigningAllowance``).

    ``sign`` and ``sign_many`` make the signatures (the store's private key or token object);
    the allowance hands out the reserved numbers in order, lets each taken number sign once,
    and refuses after the time limit (the store's clock) or once revoked by the store.
    """

    def __init__(
        self,
        reservation: Reservation,
        clock: Clock,
        sign: Callable[[bytes], bytes],
        sign_many: Callable[[Sequence[bytes]], list[bytes]],
    ) -> None:
        self._reservation = reservation
        self._clock = clock
        self._sign = sign
        self._sign_many = sign_many
        self._next = reservation.numbers.start
        self._stop = reservation.numbers.stop
        self._until = reservation.valid_until
        self._taken: set[int] = set()
        self._revoked: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        numbers = self._reservation.numbers
        return (
            f"<Allowance {self._reservation.key_id} {numbers.start}..{numbers.stop - 1}"
            f" next={self._next}>"
        )

    @property
    def key_id(self) -> KeyId:
        return KeyId(self._reservation.key_id)

    @property
    def scheme(self) -> SignatureScheme:
        return self._reservation.scheme

    @property
    def numbers(self) -> range:
        return self._reservation.numbers

    @property
    def valid_until(self) -> dt.datetime:
        return self._until

    def revoke(self, reason: str) -> None:
        """Refuse every further number and signature (the key was destroyed)."""
        with self._lock:
            self._revoked = reason
            self._next = self._stop
            self._taken.clear()

    def _check_usable(self) -> None:
        if self._revoked is not None:
            raise KeyUseError(f"key {self._reservation.key_id} {self._revoked}")
        if self._clock.now() >= self._until:
            raise AllowanceSpentError(
                f"the reservation of key {self._reservation.key_id} expired at"
                f" {self._until.isoformat()}"
            )

    def take(self) -> int:
        with self._lock:
            self._check_usable()
            number = self._next
            if number >= self._stop:
                raise AllowanceSpentError(
                    f"the reservation of key {self._reservation.key_id} is used up"
                )
            self._next = number + 1
            self._taken.add(number)
            return number

    def _spend(self, number: int) -> None:
        # Under the lock: a taken number signs once, and only while the allowance is usable.
        try:
            self._taken.remove(number)
        except KeyError:
            raise KeyUseError(
                f"number {number} was not taken from this reservation, or has signed already"
            ) from None

    def sign_digest(self, number: int, digest: bytes) -> bytes:
        if not isinstance(digest, bytes) or len(digest) != DIGEST_SIZE:
            raise InputError(f"digest must be {DIGEST_SIZE} bytes")
        with self._lock:
            self._check_usable()
            self._spend(number)
        return self._sign(digest)

    def sign_digests(self, items: Sequence[tuple[int, bytes]]) -> list[bytes]:
        digests = [digest for _, digest in items]
        for digest in digests:
            if not isinstance(digest, bytes) or len(digest) != DIGEST_SIZE:
                raise InputError(f"digest must be {DIGEST_SIZE} bytes")
        with self._lock:
            self._check_usable()
            numbers = [number for number, _ in items]
            if len(set(numbers)) != len(numbers) or not self._taken.issuperset(numbers):
                raise KeyUseError("every number must be taken from this reservation and sign once")
            self._taken.difference_update(numbers)
        return self._sign_many(digests) if digests else []


class AllowanceRegistry:
    """The live allowances of one store, so destroying a key revokes them at once.

    Weakly held: an allowance its user dropped is simply gone. Another process's allowances
    end with their time limit (and their next reservation finds the key destroyed).
    """

    def __init__(self) -> None:
        self._by_key: dict[str, weakref.WeakSet[Allowance]] = {}
        self._lock = threading.Lock()

    def add(self, allowance: Allowance) -> Allowance:
        with self._lock:
            self._by_key.setdefault(allowance.key_id, weakref.WeakSet()).add(allowance)
        return allowance

    def revoke(self, key_id: str, reason: str) -> None:
        with self._lock:
            allowances = list(self._by_key.pop(key_id, ()))
        for allowance in allowances:
            allowance.revoke(reason)


# -- listing ---------------------------------------------------------------------------------


def _key_use(row: KeyUseRow) -> KeyUse:
    return KeyUse(
        id=row.id,
        key_id=KeyId(row.key_id),
        actor=row.actor,
        purpose=row.purpose,
        scheme=SignatureScheme(row.scheme),
        digest_hex=row.digest_hex,
        at=row.at,
        uses=row.uses,
        serial_first=row.serial_first,
        serial_last=row.serial_last,
        valid_until=row.valid_until,
    )


def key_uses(
    database: Database, key_id: str | None = None, *, limit: int = DEFAULT_LIMIT
) -> list[KeyUse]:
    """Recorded key uses (signatures and reservations), newest first, optionally for one key."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be between 1 and {MAX_LIMIT}")
    query = select(KeyUseRow).order_by(KeyUseRow.id.desc()).limit(limit)
    if key_id is not None:
        query = query.where(KeyUseRow.key_id == key_id)
    with database.session() as session:
        return [_key_use(row) for row in session.scalars(query).all()]


def reservation_covering(database: Database, key_id: str, number: int) -> KeyUse:
    """The reservation of ``key_id`` whose numbers include ``number`` (for the TSA key: the
    serial of a token); ``NotFoundError`` when none does, i.e. this installation never allowed
    that key a signature carrying that number."""
    query = select(KeyUseRow).where(
        KeyUseRow.key_id == key_id,
        KeyUseRow.uses.is_not(None),
        KeyUseRow.serial_first <= number,
        KeyUseRow.serial_last >= number,
    )
    with database.session() as session:
        rows = session.scalars(query.limit(2)).all()
        if not rows:
            raise NotFoundError(f"no reservation of key {key_id} covers number {number}")
        if len(rows) > 1:
            raise KeyUseError(f"more than one reservation of key {key_id} covers number {number}")
        return _key_use(rows[0])
