"""Reservations (``KeyStore.reserve``) in the software store: one key-use row written before
the signatures it allows, an allowance that signs in memory within its count, numbers and
time, and that stops when the key is destroyed."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from medsign.clock import FixedClock
from medsign.crypto import PublicKey, verify_digest
from medsign.crypto.types import KeyAlgorithm, SignatureScheme
from medsign.db import Database
from medsign.db.tables import KeyUseRow
from medsign.errors import InputError, KeyUseError, NotFoundError
from medsign.ids import KeyId
from medsign.keys import (
    AllowanceSpentError,
    KeyRef,
    SoftwareKeyStore,
    key_uses,
    reservation_covering,
    reservation_digest,
)
from medsign.keys.usage import reservation_description
from medsign.tsa import SerialAllocator

P256 = SignatureScheme.ECDSA_SHA256


def digest_of(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(4, "big")).digest()


def counter(database: Database, name: str = "test") -> SerialAllocator:
    serials = SerialAllocator(database, name=name)
    serials.ensure_counter()
    return serials


def use_rows(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(KeyUseRow)) or 0)


@pytest.fixture
def key(store: SoftwareKeyStore) -> KeyRef:
    return store.generate(KeyAlgorithm.EC_P256, label="tsa")


def test_the_row_is_written_before_any_signature(
    store: SoftwareKeyStore, database: Database, clock: FixedClock, key: KeyRef
) -> None:
    serials = counter(database)
    allowance = store.reserve(
        key.id, P256, 5, actor="tsa", purpose="timestamp", seconds=60, claim=serials.claim
    )
    # Nothing signed yet, and the reservation is already on record, committed.
    [use] = key_uses(database, key.id)
    assert use.reservation
    assert (use.uses, use.serial_first, use.serial_last) == (5, 1, 5)
    assert allowance.numbers == range(1, 6)
    assert use.at == clock.now()
    assert use.valid_until == allowance.valid_until == clock.now() + dt.timedelta(seconds=60)
    assert (use.actor, use.purpose, use.scheme) == ("tsa", "timestamp", P256)
    assert bytes.fromhex(use.digest_hex) == reservation_digest(use)
    assert "reserved uses=5 serials=1..5" in use.describe()
    # The digest is over the documented canonical JSON.
    description = reservation_description(
        key_id=key.id,
        scheme=P256,
        actor="tsa",
        purpose="timestamp",
        uses=5,
        serial_first=1,
        serial_last=5,
        at=clock.now(),
        valid_until=clock.now() + dt.timedelta(seconds=60),
    )
    assert description.startswith(b'{"actor":"tsa","at":"2026-11-23T08:00:00.000000Z",')
    assert hashlib.sha256(description).hexdigest() == use.digest_hex

    public = PublicKey.from_der(key.public_key_der)
    for i in range(5):
        number = allowance.take()
        assert number == i + 1
        assert reservation_covering(database, key.id, number) == use
        signature = allowance.sign_digest(number, digest_of(i))
        verify_digest(public, P256, digest_of(i), signature)
    assert use_rows(database) == 1  # the signatures themselves write nothing


def test_count_used_up_is_refused(store: SoftwareKeyStore, database: Database, key: KeyRef) -> None:
    serials = counter(database)
    allowance = store.reserve(
        key.id, P256, 2, actor="tsa", purpose="timestamp", seconds=60, claim=serials.claim
    )
    first, second = allowance.take(), allowance.take()
    with pytest.raises(AllowanceSpentError, match="used up"):
        allowance.take()
    allowance.sign_digests([(first, digest_of(1)), (second, digest_of(2))])
    # Each number signs once, and only a number taken from this allowance signs.
    with pytest.raises(KeyUseError, match="sign once"):
        allowance.sign_digests([(first, digest_of(1))])
    with pytest.raises(KeyUseError, match="has signed already"):
        allowance.sign_digest(second, digest_of(3))
    with pytest.raises(KeyUseError, match="not taken"):
        allowance.sign_digest(99, digest_of(3))
    with pytest.raises(InputError):
        allowance.sign_digest(first, b"short")
    assert use_rows(database) == 1
    with pytest.raises(NotFoundError):
        reservation_covering(database, key.id, 3)


def test_time_limit(
    store: SoftwareKeyStore, database: Database, clock: FixedClock, key: KeyRef
) -> None:
    serials = counter(database)
    allowance = store.reserve(
        key.id, P256, 10, actor="tsa", purpose="timestamp", seconds=30, claim=serials.claim
    )
    number = allowance.take()
    clock.advance(dt.timedelta(seconds=30))
    with pytest.raises(AllowanceSpentError, match="expired"):
        allowance.take()
    with pytest.raises(AllowanceSpentError, match="expired"):
        allowance.sign_digest(number, digest_of(0))


def test_destroyed_key_stops_the_allowance_and_refuses_a_new_one(
    store: SoftwareKeyStore, database: Database, key: KeyRef
) -> None:
    serials = counter(database)
    allowance = store.reserve(
        key.id, P256, 10, actor="tsa", purpose="timestamp", seconds=60, claim=serials.claim
    )
    number = allowance.take()
    store.destroy(key.id)
    with pytest.raises(KeyUseError, match="destroyed"):
        allowance.sign_digest(number, digest_of(0))
    with pytest.raises(KeyUseError, match="destroyed"):
        allowance.take()
    with pytest.raises(KeyUseError, match="destroyed"):
        store.reserve(
            key.id, P256, 10, actor="tsa", purpose="timestamp", seconds=60, claim=serials.claim
        )
    assert use_rows(database) == 1  # the refused reservation left no row
    # ... and claimed no numbers: the claim rolled back with it.
    assert serials.next() == 11


def test_destroy_in_another_process_is_seen_at_the_next_reservation(
    store: SoftwareKeyStore, database: Database, clock: FixedClock, key: KeyRef
) -> None:
    serials = counter(database)
    allowance = store.reserve(
        key.id, P256, 10, actor="tsa", purpose="timestamp", seconds=60, claim=serials.claim
    )
    other = SoftwareKeyStore(database, store.keyring, clock)
    other.destroy(key.id)
    # This process learns of it when it reserves again (at the latest after ``seconds``).
    allowance.sign_digest(allowance.take(), digest_of(0))
    with pytest.raises(KeyUseError, match="destroyed"):
        store.reserve(
            key.id, P256, 10, actor="tsa", purpose="timestamp", seconds=60, claim=serials.claim
        )


def test_refused_requests_leave_no_row(
    store: SoftwareKeyStore, database: Database, key: KeyRef
) -> None:
    serials = counter(database)
    rsa = store.generate(KeyAlgorithm.RSA_2048, label="rsa")

    def reserve(key_id: str = key.id, scheme: SignatureScheme = P256, **overrides: object) -> None:
        arguments: dict[str, object] = {
            "actor": "tsa",
            "purpose": "timestamp",
            "seconds": 60,
            "claim": serials.claim,
        }
        count = overrides.pop("count", 10)
        arguments.update(overrides)
        store.reserve(KeyId(key_id), scheme, count, **arguments)  # type: ignore[arg-type]

    with pytest.raises(KeyUseError, match="does not fit"):
        reserve(rsa.id)
    with pytest.raises(KeyUseError, match="use sign_message"):
        reserve(scheme=SignatureScheme.ED25519)
    with pytest.raises(NotFoundError):
        reserve("key_nope")
    for count in (0, -1, 10**9, True):
        with pytest.raises(InputError):
            reserve(count=count)
    for seconds in (0, -5, 10**6):
        with pytest.raises(InputError):
            reserve(seconds=seconds)
    with pytest.raises(InputError):
        reserve(actor="")

    def failing_claim(connection: Connection, count: int) -> int:
        serials.claim(connection, count)
        raise KeyUseError("no numbers today")

    with pytest.raises(KeyUseError, match="no numbers today"):
        reserve(claim=failing_claim)
    assert use_rows(database) == 0
    assert serials.next() == 1  # every claim above rolled back


def test_allowances_share_one_sequence_of_numbers(
    store: SoftwareKeyStore, database: Database, key: KeyRef
) -> None:
    serials = counter(database)
    reserve: Callable[[], object] = lambda: store.reserve(  # noqa: E731
        key.id, P256, 4, actor="tsa", purpose="timestamp", seconds=60, claim=serials.claim
    )
    reserve()
    reserve()
    uses = key_uses(database, key.id)
    assert [(u.serial_first, u.serial_last) for u in uses] == [(5, 8), (1, 4)]


def test_threads_take_distinct_numbers(
    store: SoftwareKeyStore, database: Database, key: KeyRef
) -> None:
    serials = counter(database)
    allowance = store.reserve(
        key.id, P256, 400, actor="tsa", purpose="timestamp", seconds=60, claim=serials.claim
    )
    public = PublicKey.from_der(key.public_key_der)
    taken: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for i in range(100):
            number = allowance.take()
            verify_digest(public, P256, digest_of(i), allowance.sign_digest(number, digest_of(i)))
            with lock:
                taken.append(number)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == list(range(1, 401))
    with pytest.raises(AllowanceSpentError):
        allowance.take()


def test_sm2_and_rsa_keys_reserve_too(
    store: SoftwareKeyStore, database: Database, require_sm2: None
) -> None:
    serials = counter(database)
    for algorithm in (KeyAlgorithm.SM2, KeyAlgorithm.RSA_2048):
        ref = store.generate(algorithm, label=str(algorithm))
        scheme = algorithm.family.default_scheme
        allowance = store.reserve(
            ref.id, scheme, 2, actor="tsa", purpose="timestamp", seconds=60, claim=serials.claim
        )
        public = PublicKey.from_der(ref.public_key_der)
        digest = digest_of(7)
        verify_digest(public, scheme, digest, allowance.sign_digest(allowance.take(), digest))
