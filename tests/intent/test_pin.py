from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Literal

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from tests.identity.support import Services, build_services

from medsign.clock import FixedClock
from medsign.db.session import Database
from medsign.db.tables import IntentAttemptRow, StaffRow
from medsign.errors import (
    InputError,
    PINLockedError,
    PINNotSetError,
    PINWrongError,
    StaffStateError,
)
from medsign.evidence import list_events
from medsign.intent.pin import SigningPINs, check_pin_strength, default_hasher, lock_duration

PIN = "258036"


@pytest.fixture
def services(database: Database, clock: FixedClock, tmp_path: Path) -> Services:
    return build_services(database, clock, tmp_path)


@pytest.fixture
def staff_id(services: Services) -> str:
    staff_id, _, _ = services.add_staff("P001")
    services.pins.set_pin(staff_id, PIN, actor="test")
    return staff_id


def wrong(services: Services, staff_id: str, times: int) -> list[Exception]:
    errors: list[Exception] = []
    for _ in range(times):
        with pytest.raises((PINWrongError, PINLockedError)) as info:
            services.pins.verify_pin(staff_id, "975310", client="test")
        errors.append(info.value)
    return errors


@pytest.mark.parametrize(
    "pin",
    [
        "000000",
        "123456",
        "654321",
        "111222",
        "121212",
        "345678",
        "123123",
        "12345",
        "1234567",
        "12345a",
        "１２３４５６",
        "",
    ],
)
def test_trivial_or_malformed_pins_are_refused(pin: str) -> None:
    with pytest.raises(InputError):
        check_pin_strength(pin)


def test_default_parameters_are_the_stated_ones() -> None:
    hasher = default_hasher()
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (2, 19 * 1024, 1)
    assert hasher.type.name == "ID"


def test_set_and_verify(services: Services, staff_id: str) -> None:
    services.pins.verify_pin(staff_id, PIN, client="ward-3", challenge_id="chl_1")
    with services.database.session() as session:
        row = session.get(StaffRow, staff_id)
        assert row is not None and row.pin_hash is not None
        assert row.pin_hash.startswith("$argon2id$") and PIN not in row.pin_hash
        attempts = session.scalars(select(IntentAttemptRow)).all()
    assert [(a.method, a.outcome, a.client, a.challenge_id) for a in attempts] == [
        ("pin", "confirmed", "ward-3", "chl_1")
    ]
    events = list_events(services.database, event_type="intent:attempt")
    assert events[0].record["outcome"] == "confirmed"
    assert PIN not in events[0].record.values()
    assert services.staff.get_by_id(staff_id).pin_set


def test_not_set(services: Services) -> None:
    staff_id, _, _ = services.add_staff("P002")
    with pytest.raises(PINNotSetError):
        services.pins.verify_pin(staff_id, PIN, client="t")


def test_wrong_tries_lock_with_growing_back_off(services: Services, staff_id: str) -> None:
    errors = wrong(services, staff_id, 5)
    assert [e.extra.get("remaining_tries") for e in errors[:4]] == [4, 3, 2, 1]
    assert isinstance(errors[4], PINLockedError)
    assert errors[4].code == "pin-locked"
    first_until = dt.datetime.fromisoformat(errors[4].extra["locked_until"].replace("Z", "+00:00"))
    assert first_until == services.clock.now() + lock_duration(0)
    # Locked: even the right PIN is refused, and argon2 is not consulted.
    calls: list[str] = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            calls.append(str(password))
            return super().verify(hash, password)

    services.pins = SigningPINs(
        services.database,
        services.clock,
        hasher=CountingHasher(time_cost=1, memory_cost=8, parallelism=1),
    )
    with pytest.raises(PINLockedError):
        services.pins.verify_pin(staff_id, PIN, client="t")
    assert calls == []
    services.clock.advance(lock_duration(0))
    errors = wrong(services, staff_id, 5)
    assert isinstance(errors[-1], PINLockedError)
    second_until = dt.datetime.fromisoformat(
        errors[-1].extra["locked_until"].replace("Z", "+00:00")
    )
    assert second_until == services.clock.now() + dt.timedelta(minutes=5)
    services.clock.advance(dt.timedelta(minutes=5))
    services.pins.verify_pin(staff_id, PIN, client="t")  # success resets the level
    errors = wrong(services, staff_id, 5)
    until = dt.datetime.fromisoformat(errors[-1].extra["locked_until"].replace("Z", "+00:00"))
    assert until == services.clock.now() + lock_duration(0)
    assert [lock_duration(n) for n in (2, 3, 9)] == [
        dt.timedelta(minutes=30),
        dt.timedelta(hours=24),
        dt.timedelta(hours=24),
    ]
    assert len(calls) == 11  # 5 wrong, 1 right, 5 wrong: none while locked
    outcomes = [
        e.record["outcome"] for e in list_events(services.database, event_type="intent:attempt")
    ]
    assert outcomes.count("locked") == 1 and outcomes.count("wrong-locked") == 3


def test_admin_unlock(services: Services, staff_id: str) -> None:
    wrong(services, staff_id, 5)
    services.pins.unlock_pin(staff_id, actor="admin:adm_1")
    services.pins.verify_pin(staff_id, PIN, client="t")
    assert [e.type for e in list_events(services.database, event_type="pin:unlock")] == [
        "pin:unlock"
    ]


def test_change_pin_needs_the_old_one(services: Services, staff_id: str) -> None:
    with pytest.raises(PINWrongError):
        services.pins.change_pin(staff_id, "975310", "192837", client="t")
    with pytest.raises(InputError):
        services.pins.change_pin(staff_id, PIN, "111111", client="t")
    services.pins.change_pin(staff_id, PIN, "192837", client="t")
    services.pins.verify_pin(staff_id, "192837", client="t")
    with pytest.raises(PINWrongError):
        services.pins.verify_pin(staff_id, PIN, client="t")


def test_frozen_staff_cannot_use_the_pin(services: Services, staff_id: str) -> None:
    services.staff.freeze(services.organization_id, "P001", actor="a")
    with pytest.raises(StaffStateError):
        services.pins.verify_pin(staff_id, PIN, client="t")


def test_parallel_wrong_tries_all_count(services: Services, staff_id: str) -> None:
    barrier = threading.Barrier(4)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        barrier.wait()
        try:
            services.pins.verify_pin(staff_id, "975310", client="thread")
        except (PINWrongError, PINLockedError) as exc:
            with lock:
                outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["pin-wrong"] * 4
    with services.database.session() as session:
        row = session.get(StaffRow, staff_id)
        assert row is not None and row.pin_failures == 4
    errors = wrong(services, staff_id, 1)
    assert isinstance(errors[0], PINLockedError)


def test_rehash_on_stronger_parameters(services: Services, staff_id: str) -> None:
    stronger = SigningPINs(
        services.database,
        services.clock,
        hasher=PasswordHasher(time_cost=2, memory_cost=16, parallelism=1),
    )
    stronger.verify_pin(staff_id, PIN, client="t")
    with services.database.session() as session:
        row = session.get(StaffRow, staff_id)
        assert row is not None and row.pin_hash is not None and "t=2" in row.pin_hash


def test_pepper_keeps_the_hash_useless_without_the_secret(services: Services) -> None:
    from argon2 import PasswordHasher
    from argon2.exceptions import VerifyMismatchError
    from tests.identity.support import cheap_hasher

    pins = SigningPINs(
        services.database, services.clock, hasher=cheap_hasher(), pepper=lambda pin: "keyed:" + pin
    )
    hashed = pins.hash_pin("246813")
    with pytest.raises(VerifyMismatchError):
        PasswordHasher().verify(hashed, "246813")
    assert PasswordHasher().verify(hashed, "keyed:246813")
