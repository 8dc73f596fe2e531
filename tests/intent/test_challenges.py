from __future__ import annotations

import datetime as dt
import hashlib
import threading

import pytest

from medsign.clock import FixedClock
from medsign.db.session import Database
from medsign.db.tables import OrganizationRow, StaffRow
from medsign.intent.challenges import (
    BoundItem,
    IntentBindingError,
    IntentChallenges,
    IntentExpiredError,
    IntentNotConfirmedError,
    IntentUsedError,
    binding_digest,
)

ITEMS = [BoundItem(f"sig_{i}", "sha256", hashlib.sha256(bytes([i])).digest()) for i in range(3)]


@pytest.fixture
def staffed(database: Database, clock: FixedClock) -> Database:
    now = clock.now()
    with database.session() as s:
        s.add(OrganizationRow(id="org_1", code="h", name="H", demo=False, created_at=now))
        s.flush()
        s.add(
            StaffRow(
                id="stf_1",
                organization_id="org_1",
                employee_no="E1",
                name="x",
                created_at=now,
                updated_at=now,
            )
        )
    return database


def start(db: Database, intents: IntentChallenges, now: dt.datetime) -> str:
    with db.session() as s:
        return intents.start(
            s, now, staff_id="stf_1", application_id=None, method="pin", items=ITEMS
        ).id


def test_binding_is_order_and_content_sensitive() -> None:
    assert binding_digest(ITEMS) != binding_digest(list(reversed(ITEMS)))
    changed = [*ITEMS[:2], BoundItem("sig_2", "sha256", b"\x00" * 32)]
    assert binding_digest(ITEMS) != binding_digest(changed)


def test_proof_is_single_use_and_bound(staffed: Database, clock: FixedClock) -> None:
    intents = IntentChallenges()
    now = clock.now()
    cid = start(staffed, intents, now)
    with pytest.raises(IntentNotConfirmedError), staffed.session() as s:
        intents.consume(s, now, challenge_id=cid, staff_id="stf_1", items=ITEMS)
    with staffed.session() as s:
        intents.mark_confirmed(s, intents.get(s, cid), now)
    with pytest.raises(IntentBindingError), staffed.session() as s:
        intents.consume(s, now, challenge_id=cid, staff_id="stf_1", items=ITEMS[:2])
    with staffed.session() as s:
        intents.consume(s, now, challenge_id=cid, staff_id="stf_1", items=ITEMS)
    with pytest.raises(IntentUsedError), staffed.session() as s:
        intents.consume(s, now, challenge_id=cid, staff_id="stf_1", items=ITEMS)


def test_proof_goes_stale(staffed: Database, clock: FixedClock) -> None:
    intents = IntentChallenges(proof_ttl=dt.timedelta(minutes=2))
    now = clock.now()
    cid = start(staffed, intents, now)
    with staffed.session() as s:
        intents.mark_confirmed(s, intents.get(s, cid), now)
    with pytest.raises(IntentExpiredError), staffed.session() as s:
        intents.consume(
            s, now + dt.timedelta(minutes=3), challenge_id=cid, staff_id="stf_1", items=ITEMS
        )


def test_challenge_expires_and_fails_after_attempts(staffed: Database, clock: FixedClock) -> None:
    intents = IntentChallenges(ttl=dt.timedelta(minutes=5), max_attempts=2)
    now = clock.now()
    cid = start(staffed, intents, now)
    with pytest.raises(IntentExpiredError), staffed.session() as s:
        intents.check_open(intents.get(s, cid), now + dt.timedelta(minutes=6))
    for _ in range(2):
        with staffed.session() as s:
            intents.record_failure(s, intents.get(s, cid), now)
    with pytest.raises(IntentExpiredError), staffed.session() as s:
        intents.check_open(intents.get(s, cid), now)


def test_concurrent_consumers_sign_once(staffed: Database, clock: FixedClock) -> None:
    intents = IntentChallenges()
    now = clock.now()
    cid = start(staffed, intents, now)
    with staffed.session() as s:
        intents.mark_confirmed(s, intents.get(s, cid), now)
    outcomes: list[str] = []

    def consume() -> None:
        try:
            with staffed.session() as s:
                intents.consume(s, now, challenge_id=cid, staff_id="stf_1", items=ITEMS)
            outcomes.append("ok")
        except IntentUsedError:
            outcomes.append("used")
        except Exception as exc:  # SQLite may report the loser as a busy database
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 1, outcomes
