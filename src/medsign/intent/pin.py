"""The signing PIN: argon2id hash on the staff row, counted tries, growing lock-outs.

Parameters: argon2id, t=2, m=19 MiB, p=1 (OWASP's minimum), a few tens of milliseconds per
check. A six-digit PIN has only 10^6 values, so no work factor protects its hash against
someone holding the database; the pepper does: the PIN is first keyed (HMAC) with a secret
kept outside the database (the data sealer's lookup key, itself sealed under the master
keyring). What protects it online is the lock-out: 5 wrong tries lock it for 1 min, the
next 5 for 5 min, then 30 min, then 24 h (and 24 h from then on) until a correct PIN or an
operator's unlock resets it.

While locked, a try is refused without running argon2, so a locked PIN answers nothing about
the guess. Wrong tries are counted by one ``UPDATE ... SET pin_failures = pin_failures + 1``
committed before the error is raised: parallel wrong tries each count, and a caller's
rollback cannot undo the count.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
from collections.abc import Callable

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from medsign.clock import Clock
from medsign.db import rowcount
from medsign.db.session import Database
from medsign.db.tables import IntentAttemptRow, StaffRow
from medsign.errors import (
    InputError,
    NotFoundError,
    PINLockedError,
    PINNotSetError,
    PINWrongError,
    StaffStateError,
)
from medsign.evidence.events import record_event

log = logging.getLogger(__name__)

MAX_FAILURES = 5
LOCK_STEPS = (
    dt.timedelta(minutes=1),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=30),
    dt.timedelta(hours=24),
)
_PIN = re.compile(r"\d{6}")


def default_hasher() -> PasswordHasher:
    # OWASP's argon2id minimum (19 MiB, t=2, p=1). A six-digit PIN has only 10^6 values, so
    # no work factor stops an offline search of a stolen hash; the pepper below does: the
    # PIN is keyed with a secret that is not in the database before it is hashed.
    return PasswordHasher(
        time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
    )


def lock_duration(level: int) -> dt.timedelta:
    """How long the ``level``-th lock-out (0-based) lasts."""
    return LOCK_STEPS[min(level, len(LOCK_STEPS) - 1)]


def check_pin_strength(pin: str) -> str:
    """Six ASCII digits, not a run, a repeat or a well-known pattern; ``InputError`` otherwise."""
    if not isinstance(pin, str) or not pin.isascii() or not _PIN.fullmatch(pin):
        raise InputError("the PIN must be exactly six digits")
    digits = [int(c) for c in pin]
    steps = {b - a for a, b in itertools.pairwise(digits)}
    if len(set(digits)) <= 2:  # 000000, 111222, 121212, 112211 ...
        raise InputError("the PIN is too easy to guess: use more different digits")
    if steps in ({1}, {-1}) or pin in ("123456", "654321", "012345", "543210"):
        raise InputError("the PIN is too easy to guess: not a run of digits")
    if pin[:3] == pin[3:] or pin in ("123123", "520520", "147258", "369258", "159357"):
        raise InputError("the PIN is too easy to guess")
    return pin


class SigningPINs:
    """Set, verify, change and unlock staff signing PINs."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        hasher: PasswordHasher | None = None,
        pepper: Callable[[str], str] | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        # pepper(pin) keys the PIN with a secret held outside the database (the data
        # sealer's lookup key) before argon2 sees it.
        self._pepper = pepper or (lambda pin: pin)
        # Tests pass a cheap hasher; production uses the parameters stated above.
        self._hasher = hasher or default_hasher()

    def hash_pin(self, pin: str) -> str:
        """Argon2id of a PIN that passed the strength rules (for callers that store it in
        their own transaction, e.g. enrolment)."""
        return self._hasher.hash(self._pepper(check_pin_strength(pin)))

    def set_pin(self, staff_id: str, pin: str, *, actor: str) -> None:
        """Set (or replace) the PIN; resets the failure count and any lock."""
        hashed = self.hash_pin(pin)
        with self._database.session() as session:
            self.store_hash(session, staff_id, hashed, actor=actor)

    def store_hash(self, session: Session, staff_id: str, hashed: str, *, actor: str) -> None:
        now = self._clock.now()
        row = session.get(StaffRow, staff_id)
        if row is None:
            raise NotFoundError(f"no staff member {staff_id}")
        if row.state == "deregistered":
            raise StaffStateError("staff member is deregistered")
        row.pin_hash = hashed
        row.pin_set_at = now
        row.pin_failures = 0
        row.pin_lock_level = 0
        row.pin_locked_until = None
        row.updated_at = now
        record_event(session, now, "pin:set", staff_id=staff_id, actor=actor)

    def verify_pin(
        self, staff_id: str, pin: str, *, client: str, challenge_id: str | None = None
    ) -> None:
        """Return if ``pin`` is the staff member's PIN; raise ``PINWrongError``
        (``remaining_tries``), ``PINLockedError`` (``locked_until``) or ``PINNotSetError``.

        Every call leaves an ``intent_attempts`` row and an ``intent:attempt`` event.
        """
        now = self._clock.now()
        with self._database.session() as session:
            row = session.get(StaffRow, staff_id)
            if row is None:
                raise NotFoundError(f"no staff member {staff_id}")
            state, hashed, locked_until = row.state, row.pin_hash, row.pin_locked_until
        if state != "active":
            self._record(staff_id, "refused", client, challenge_id)
            raise StaffStateError(f"staff member is {state}")
        if hashed is None:
            self._record(staff_id, "not-set", client, challenge_id)
            raise PINNotSetError(
                "no signing PIN is set", public="no signing PIN is set: enrol first"
            )
        if locked_until is not None and locked_until > now:
            self._record(staff_id, "locked", client, challenge_id)
            raise _locked(locked_until)
        if self._matches(hashed, pin):
            self._succeed(staff_id, pin, hashed, client, challenge_id)
            return
        self._fail(staff_id, client, challenge_id)

    def _matches(self, hashed: str, pin: str) -> bool:
        if not isinstance(pin, str) or len(pin) > 64:
            return False
        try:
            return self._hasher.verify(hashed, self._pepper(pin))
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError):
            log.error("stored PIN hash is unusable")
            return False

    def _succeed(
        self, staff_id: str, pin: str, hashed: str, client: str, challenge_id: str | None
    ) -> None:
        now = self._clock.now()
        rehashed = (
            self._hasher.hash(self._pepper(pin))
            if self._hasher.check_needs_rehash(hashed)
            else None
        )
        with self._database.session() as session:
            values: dict[str, object] = {
                "pin_failures": 0,
                "pin_lock_level": 0,
                "pin_locked_until": None,
            }
            if rehashed is not None:
                values["pin_hash"] = rehashed
            # A parallel wrong try may have locked the PIN while argon2 ran; the lock wins.
            result = session.execute(
                update(StaffRow)
                .where(
                    StaffRow.id == staff_id,
                    (StaffRow.pin_locked_until.is_(None)) | (StaffRow.pin_locked_until <= now),
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if rowcount(result) == 1:
                self._record_in(session, staff_id, "confirmed", client, challenge_id)
                return
            until = session.scalar(select(StaffRow.pin_locked_until).where(StaffRow.id == staff_id))
            self._record_in(session, staff_id, "locked", client, challenge_id)
        raise _locked(until or now)

    def _fail(self, staff_id: str, client: str, challenge_id: str | None) -> None:
        now = self._clock.now()
        with self._database.session() as session:
            failures, level = session.execute(
                update(StaffRow)
                .where(StaffRow.id == staff_id)
                .values(pin_failures=StaffRow.pin_failures + 1)
                .returning(StaffRow.pin_failures, StaffRow.pin_lock_level)
            ).one()
            # The row stays write-locked until commit, so the check below sees every
            # concurrent increment that came before it and none after.
            if failures >= MAX_FAILURES:
                until = now + lock_duration(level)
                session.execute(
                    update(StaffRow)
                    .where(StaffRow.id == staff_id)
                    .values(pin_failures=0, pin_lock_level=level + 1, pin_locked_until=until)
                    .execution_options(synchronize_session=False)
                )
                self._record_in(session, staff_id, "wrong-locked", client, challenge_id)
                record_event(
                    session,
                    now,
                    "pin:lock",
                    staff_id=staff_id,
                    level=level + 1,
                    until=until.isoformat(),
                )
                locked_until: dt.datetime | None = until
            else:
                self._record_in(session, staff_id, "wrong", client, challenge_id)
                locked_until = None
        if locked_until is not None:
            raise _locked(locked_until)
        raise PINWrongError("wrong PIN", remaining_tries=MAX_FAILURES - failures)

    def change_pin(self, staff_id: str, old_pin: str, new_pin: str, *, client: str) -> None:
        """Replace the PIN; the old one must verify first (and a wrong one counts)."""
        check_pin_strength(new_pin)
        self.verify_pin(staff_id, old_pin, client=client)
        self.set_pin(staff_id, new_pin, actor=f"staff:{staff_id}")

    def unlock_pin(self, staff_id: str, *, actor: str) -> None:
        """Operator action: clear the lock and the count (the PIN itself stays)."""
        now = self._clock.now()
        with self._database.session() as session:
            row = session.get(StaffRow, staff_id)
            if row is None:
                raise NotFoundError(f"no staff member {staff_id}")
            row.pin_failures = 0
            row.pin_lock_level = 0
            row.pin_locked_until = None
            row.updated_at = now
            record_event(session, now, "pin:unlock", staff_id=staff_id, actor=actor)

    def _record(self, staff_id: str, outcome: str, client: str, challenge_id: str | None) -> None:
        with self._database.session() as session:
            self._record_in(session, staff_id, outcome, client, challenge_id)

    def _record_in(
        self,
        session: Session,
        staff_id: str,
        outcome: str,
        client: str,
        challenge_id: str | None,
    ) -> None:
        now = self._clock.now()
        session.add(
            IntentAttemptRow(
                challenge_id=challenge_id,
                staff_id=staff_id,
                method="pin",
                outcome=outcome,
                client=client[:200],
                at=now,
            )
        )
        record_event(
            session,
            now,
            "intent:attempt",
            staff_id=staff_id,
            method="pin",
            challenge_id=challenge_id,
            outcome=outcome,
        )


def _locked(until: dt.datetime) -> PINLockedError:
    return PINLockedError(
        "PIN locked",
        public="the PIN is locked after too many wrong tries",
        locked_until=until.isoformat().replace("+00:00", "Z"),
    )
