"""The TSA's key use is recorded per serial block, before signing: every token's serial lies
in a recorded reservation of the TSA key, restarts never reuse a serial, and a process that
stops after reserving leaves the reservation on record and its serials unused."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

import pytest

from medsign.clock import FixedClock
from medsign.crypto import KeyAlgorithm, SignatureScheme
from medsign.errors import KeyUseError, NotFoundError
from medsign.ids import KeyId
from medsign.keys import (
    KeyStore,
    SigningAllowance,
    SoftwareKeyStore,
    key_uses,
    reservation_covering,
    reservation_digest,
)
from medsign.keys.base import Claim
from medsign.tsa import TimestampAuthority, TSACredentials, parse_token
from medsign.tsa.authority import RESERVATION_SECONDS, TSA_ACTOR, TSA_PURPOSE
from tests.tsa.conftest import TimeStampResp, TSAFactory, tsa_credentials
from tests.tsa.test_authority import request, status, token_of


def imprint(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(4, "big")).digest()


def authority(runtime: Any, credentials: TSACredentials, **kwargs: Any) -> TimestampAuthority:
    """A TSA on the installation's database: a new one is what a restarted process has."""
    store = kwargs.pop("keystore", runtime.keystore)
    return TimestampAuthority(runtime.database, store, runtime.clock, lambda: credentials, **kwargs)


class _Watched:
    """An allowance that checks, at each signature, that a committed reservation row of its
    key covers the serial being signed."""

    def __init__(self, inner: SigningAllowance, database: Any, log: list[int]) -> None:
        self._inner = inner
        self._database = database
        self._log = log
        self.key_id = inner.key_id
        self.scheme = inner.scheme
        self.numbers = inner.numbers
        self.valid_until = inner.valid_until

    def take(self) -> int:
        return self._inner.take()

    def _check(self, number: int) -> None:
        use = reservation_covering(self._database, self.key_id, number)  # a fresh session
        assert use.uses == len(self.numbers)
        self._log.append(number)

    def sign_digest(self, number: int, digest: bytes) -> bytes:
        self._check(number)
        return self._inner.sign_digest(number, digest)

    def sign_digests(self, items: Sequence[tuple[int, bytes]]) -> list[bytes]:
        for number, _ in items:
            self._check(number)
        return self._inner.sign_digests(items)


class _WatchingStore:
    """The installation's key store, with every allowance watched (or, with ``crash``,
    failing as a process that dies right after its reservation committed)."""

    def __init__(self, inner: KeyStore, database: Any, *, crash: bool = False) -> None:
        self._inner = inner
        self._database = database
        self._crash = crash
        self.signed: list[int] = []
        self.kind = inner.kind

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def reserve(
        self,
        key_id: KeyId,
        scheme: SignatureScheme,
        count: int,
        *,
        actor: str,
        purpose: str,
        seconds: float,
        claim: Claim,
    ) -> SigningAllowance:
        allowance = self._inner.reserve(
            key_id, scheme, count, actor=actor, purpose=purpose, seconds=seconds, claim=claim
        )
        if self._crash:
            raise SystemExit("the process dies")
        return _Watched(allowance, self._database, self.signed)


@pytest.fixture(scope="module")
def credentials(runtime: Any) -> TSACredentials:
    """A TSA key of these tests' own, apart from the installation's."""
    return tsa_credentials(runtime, KeyAlgorithm.EC_P256)


def test_every_token_is_covered_by_a_reservation_written_before_it(runtime: Any) -> None:
    credentials = tsa_credentials(runtime, KeyAlgorithm.EC_P256)  # its rows alone are counted
    store = _WatchingStore(runtime.keystore, runtime.database)
    tsa = authority(runtime, credentials, keystore=store, serial_block=4)
    tokens = [tsa.stamp(imprint(i), "sha256") for i in range(6)]
    tokens += tsa.stamp_many([imprint(i) for i in range(6, 13)], "sha256")
    tokens.append(token_of(tsa.respond(request(b"over the wire", cert_req=True))))
    serials = [parse_token(token).serial for token in tokens]
    assert len(set(serials)) == len(serials) == 14
    assert sorted(store.signed) == sorted(serials)  # each checked against a committed row
    uses = [u for u in key_uses(runtime.database, credentials.key_id) if u.reservation]
    assert len(uses) == 4  # 14 tokens in blocks of 4; a batch crosses blocks
    for use in uses:
        assert (use.uses, use.actor, use.purpose) == (4, TSA_ACTOR, TSA_PURPOSE)
        assert use.serial_last is not None and use.serial_first is not None
        assert use.serial_last - use.serial_first + 1 == 4
        assert use.valid_until == use.at + dt.timedelta(seconds=RESERVATION_SECONDS)
        assert bytes.fromhex(use.digest_hex) == reservation_digest(use)
    for serial in serials:
        reservation_covering(runtime.database, credentials.key_id, serial)
    # No row records a single TSA signature any more: the reservations are all there is.
    assert all(u.reservation for u in key_uses(runtime.database, credentials.key_id))
    # A serial outside every reservation is not one of ours.
    with pytest.raises(NotFoundError):
        reservation_covering(runtime.database, credentials.key_id, max(serials) + 10**6)


def test_a_restart_never_reuses_a_serial(runtime: Any, credentials: TSACredentials) -> None:
    first = authority(runtime, credentials)
    before = [parse_token(first.stamp(imprint(i), "sha256")).serial for i in range(3)]
    # A new process on the same database: the first one's block is never used again.
    second = authority(runtime, credentials)
    after = [parse_token(second.stamp(imprint(i), "sha256")).serial for i in range(3)]
    first_block = reservation_covering(runtime.database, credentials.key_id, before[0])
    assert first_block.serial_last is not None
    assert min(after) > first_block.serial_last
    # Both keep going, interleaved, without a collision.
    more = [parse_token(tsa.stamp(imprint(0), "sha256")).serial for tsa in (first, second) * 3]
    everything = before + after + more
    assert len(set(everything)) == len(everything)


def test_the_reservation_survives_a_crash_before_its_block_is_used(
    runtime: Any, credentials: TSACredentials
) -> None:
    crashing = _WatchingStore(runtime.keystore, runtime.database, crash=True)
    tsa = authority(runtime, credentials, keystore=crashing)
    with pytest.raises(SystemExit):
        tsa.stamp(imprint(0), "sha256")
    newest = key_uses(runtime.database, credentials.key_id, limit=1)[0]
    assert newest.reservation and newest.uses == tsa.serials.block
    assert newest.serial_first is not None and newest.serial_last is not None
    # The restarted TSA skips the abandoned block entirely.
    serial = parse_token(authority(runtime, credentials).stamp(imprint(1), "sha256")).serial
    assert serial > newest.serial_last


def test_an_expired_reservation_is_replaced(runtime: Any) -> None:
    own = tsa_credentials(runtime, KeyAlgorithm.EC_P256)
    store_clock = FixedClock(runtime.clock.now())
    store = SoftwareKeyStore(runtime.database, runtime.keystore.keyring, store_clock)
    tsa = authority(runtime, own, keystore=store)
    first = parse_token(tsa.stamp(imprint(0), "sha256")).serial
    store_clock.advance(dt.timedelta(seconds=RESERVATION_SECONDS))
    second = parse_token(tsa.stamp(imprint(1), "sha256")).serial
    uses = key_uses(runtime.database, own.key_id)
    assert len(uses) == 2  # the second token needed a new reservation
    assert reservation_covering(runtime.database, own.key_id, first) == uses[1]
    assert reservation_covering(runtime.database, own.key_id, second) == uses[0]


def test_a_destroyed_tsa_key_stops_the_tsa(runtime: Any, make_tsa: TSAFactory) -> None:
    own = tsa_credentials(runtime, KeyAlgorithm.EC_P256)
    tsa = authority(runtime, own)
    tsa.stamp(imprint(0), "sha256")
    runtime.keystore.destroy(own.key_id)
    with pytest.raises(KeyUseError, match="destroyed"):
        tsa.stamp(imprint(1), "sha256")
    assert status(tsa.respond(request())) == ("rejection", {"system_failure"})
    assert len(key_uses(runtime.database, own.key_id)) == 1
    # The installation's own TSA is untouched.
    assert TimeStampResp.load(make_tsa().respond(request()))["status"]["status"].native == (
        "granted"
    )
