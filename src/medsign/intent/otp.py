"""SMS one-time codes: six digits, five minutes, five tries, one use.

A code is stored only as a keyed digest (HMAC under the data keyring's lookup key, bound to
the code's id), so a database dump does not reveal it and 10^6 guesses cannot be precomputed
without the key. Issuing a code for a subject kills the previous open ones for that subject;
changing the phone number, freezing or deregistering kills all open codes of that person.

Tries are counted in their own transaction, committed before the error reaches the caller:
a caller whose transaction rolls back on the error cannot undo the count.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from medsign.clock import Clock
from medsign.db import rowcount
from medsign.db.session import Database
from medsign.db.tables import IntentAttemptRow, OneTimeCodeRow, OrganizationRow, StaffRow
from medsign.errors import (
    InputError,
    OTPExhaustedError,
    OTPExpiredError,
    OTPUsedError,
    OTPWrongError,
    StaffStateError,
    TooManyRequestsError,
)
from medsign.evidence.events import record_event
from medsign.ids import new_id
from medsign.keys.sealing import DataSealer, sealing_context

log = logging.getLogger(__name__)

CODE_LIFETIME = dt.timedelta(minutes=5)
MAX_ATTEMPTS = 5
PURPOSES = frozenset({"enrolment", "intent"})
# Per person, whatever the purpose: stops a caller from turning medsign into an SMS cannon.
MAX_CODES_PER_HOUR = 10
DIGEST_CONTEXT = "otp"

_TEXTS = {
    "enrolment": "【{org}】您正在进行电子签名实名认证，验证码 {code}，5分钟内有效。"
    "如非本人操作请忽略。",
    "intent": "【{org}】您正在确认电子签名，验证码 {code}，5分钟内有效。如非本人操作请忽略。",
}


class CodeSender(Protocol):
    """What ``OneTimeCodes`` needs from an SMS provider (``medsign.identity.providers``)."""

    def send(self, phone: str, text: str) -> None: ...


def invalidate_codes(session: Session, staff_id: str, at: dt.datetime) -> int:
    """Expire every open code of a staff member at ``at``, in the caller's transaction."""
    result = session.execute(
        update(OneTimeCodeRow)
        .where(
            OneTimeCodeRow.staff_id == staff_id,
            OneTimeCodeRow.consumed_at.is_(None),
            OneTimeCodeRow.expires_at > at,
        )
        .values(expires_at=at)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


class OneTimeCodes:
    def __init__(
        self,
        database: Database,
        sealer: DataSealer,
        clock: Clock,
        sender: CodeSender,
    ) -> None:
        self._database = database
        self._sealer = sealer
        self._clock = clock
        self._sender = sender

    def _digest(self, code_id: str, code: str) -> str:
        return self._sealer.lookup_digest(f"{code_id}:{code}", context=DIGEST_CONTEXT)

    # -- issue ----------------------------------------------------------------------------------

    def issue_code(
        self,
        staff_id: str,
        purpose: str,
        subject_id: str,
        *,
        session: Session | None = None,
    ) -> str:
        """Create a code for ``subject_id`` and text it to the staff member's registered phone.

        With ``session`` the code is written in the caller's transaction and the SMS goes out
        only after that transaction commits (a rolled-back code is never sent). Returns the
        code's id; the code itself exists only in the SMS.
        """
        if purpose not in PURPOSES:
            raise InputError(f"unknown code purpose {purpose!r}")
        code_id = new_id("otp")
        code = f"{secrets.randbelow(10**6):06d}"
        # Computed before any write: the first use of the lookup key may read it from the
        # database in another connection, which must not wait on this transaction (SQLite).
        digest = self._digest(code_id, code)
        if session is None:
            with self._database.session() as own:
                phone, text = self._write_code(
                    own, staff_id, purpose, subject_id, code_id, code, digest
                )
            self._send(phone, text)
            return code_id
        phone, text = self._write_code(
            session, staff_id, purpose, subject_id, code_id, code, digest
        )

        def after_commit(_session: Session) -> None:
            self._send(phone, text)

        event.listen(session, "after_commit", after_commit, once=True)
        return code_id

    def _write_code(
        self,
        session: Session,
        staff_id: str,
        purpose: str,
        subject_id: str,
        code_id: str,
        code: str,
        digest: str,
    ) -> tuple[str, str]:
        now = self._clock.now()
        staff = session.get(StaffRow, staff_id)
        if staff is None or staff.state != "active":
            raise StaffStateError("codes are only sent to active staff members")
        if staff.phone_sealed is None:
            raise StaffStateError("staff member has no registered mobile number")
        recent = session.scalar(
            select(func.count())
            .select_from(OneTimeCodeRow)
            .where(
                OneTimeCodeRow.staff_id == staff_id,
                OneTimeCodeRow.created_at > now - dt.timedelta(hours=1),
            )
        )
        if int(recent or 0) >= MAX_CODES_PER_HOUR:
            raise TooManyRequestsError(
                "too many codes sent to this person within an hour", retry_after=3600
            )
        session.execute(
            update(OneTimeCodeRow)
            .where(
                OneTimeCodeRow.subject_id == subject_id,
                OneTimeCodeRow.purpose == purpose,
                OneTimeCodeRow.consumed_at.is_(None),
                OneTimeCodeRow.expires_at > now,
            )
            .values(expires_at=now)
            .execution_options(synchronize_session=False)
        )
        session.add(
            OneTimeCodeRow(
                id=code_id,
                staff_id=staff_id,
                purpose=purpose,
                subject_id=subject_id,
                code_digest=digest,
                attempts=0,
                max_attempts=MAX_ATTEMPTS,
                expires_at=now + CODE_LIFETIME,
                consumed_at=None,
                created_at=now,
            )
        )
        record_event(
            session,
            now,
            "otp:issue",
            otp_id=code_id,
            staff_id=staff_id,
            purpose=purpose,
            subject_id=subject_id,
        )
        organization = session.get(OrganizationRow, staff.organization_id)
        phone = self._sealer.open_text(
            staff.phone_sealed,
            context=sealing_context(StaffRow.__tablename__, "phone_sealed", staff_id),
        )
        text = _TEXTS[purpose].format(
            org=organization.name if organization else "medsign", code=code
        )
        return phone, text

    def _send(self, phone: str, text: str) -> None:
        self._sender.send(phone, text)

    # -- verify -------------------------------------------------------------------------------

    def verify_code(
        self,
        staff_id: str,
        purpose: str,
        subject_id: str,
        code: str,
        *,
        client: str = "",
    ) -> str:
        """Check ``code`` against the newest code sent for ``subject_id``; consume it.

        Returns the code's id, or raises ``OTPWrongError`` (``remaining_tries``),
        ``OTPExhaustedError`` (the last try was used, now or before), ``OTPExpiredError``
        (also when none was sent or it was replaced) or ``OTPUsedError``.
        """
        now = self._clock.now()
        with self._database.session() as session:
            row = session.scalar(
                select(OneTimeCodeRow)
                .where(
                    OneTimeCodeRow.staff_id == staff_id,
                    OneTimeCodeRow.purpose == purpose,
                    OneTimeCodeRow.subject_id == subject_id,
                )
                .order_by(OneTimeCodeRow.created_at.desc(), OneTimeCodeRow.expires_at.desc())
                .limit(1)
            )
            snapshot = (
                None
                if row is None
                else (
                    row.id,
                    row.code_digest,
                    row.consumed_at,
                    row.attempts,
                    row.max_attempts,
                    row.expires_at,
                )
            )
        if snapshot is None:
            self._record(staff_id, purpose, subject_id, None, "expired", client)
            raise OTPExpiredError(
                "no code was sent for this subject", public="no valid code; request a new one"
            )
        code_id, stored, consumed_at, attempts, max_attempts, expires_at = snapshot
        precheck = self._closed_reason(consumed_at, attempts, max_attempts, expires_at, now)
        if precheck is not None:
            self._record(staff_id, purpose, subject_id, code_id, precheck, client)
            raise _error_for(precheck)
        well_formed = len(code) == 6 and code.isascii() and code.isdigit()
        if well_formed and hmac.compare_digest(stored, self._digest(code_id, code)):
            with self._database.session() as session:
                taken = session.execute(
                    update(OneTimeCodeRow)
                    .where(
                        OneTimeCodeRow.id == code_id,
                        OneTimeCodeRow.consumed_at.is_(None),
                        OneTimeCodeRow.attempts < OneTimeCodeRow.max_attempts,
                        OneTimeCodeRow.expires_at > now,
                    )
                    .values(consumed_at=now)
                    .execution_options(synchronize_session=False)
                )
                if rowcount(taken) == 1:
                    self._record_in(
                        session, staff_id, purpose, subject_id, code_id, "confirmed", client
                    )
                    return code_id
            # Someone else consumed, exhausted or replaced it in between.
            self._record(staff_id, purpose, subject_id, code_id, "used", client)
            raise OTPUsedError("code was used or replaced concurrently")
        with self._database.session() as session:
            counted = session.execute(
                update(OneTimeCodeRow)
                .where(OneTimeCodeRow.id == code_id, OneTimeCodeRow.consumed_at.is_(None))
                .values(attempts=OneTimeCodeRow.attempts + 1)
                .returning(OneTimeCodeRow.attempts, OneTimeCodeRow.max_attempts)
            ).one_or_none()
            if counted is None:
                outcome = "used"
                remaining = 0
            else:
                remaining = max(int(counted[1]) - int(counted[0]), 0)
                outcome = "exhausted" if remaining == 0 else "wrong"
            self._record_in(session, staff_id, purpose, subject_id, code_id, outcome, client)
        if outcome == "wrong":
            raise OTPWrongError("wrong code", remaining_tries=remaining)
        raise _error_for(outcome)

    @staticmethod
    def _closed_reason(
        consumed_at: dt.datetime | None,
        attempts: int,
        max_attempts: int,
        expires_at: dt.datetime,
        now: dt.datetime,
    ) -> str | None:
        if consumed_at is not None:
            return "used"
        if attempts >= max_attempts:
            return "exhausted"
        if expires_at <= now:
            return "expired"
        return None

    def _record(
        self,
        staff_id: str,
        purpose: str,
        subject_id: str,
        code_id: str | None,
        outcome: str,
        client: str,
    ) -> None:
        with self._database.session() as session:
            self._record_in(session, staff_id, purpose, subject_id, code_id, outcome, client)

    def _record_in(
        self,
        session: Session,
        staff_id: str,
        purpose: str,
        subject_id: str,
        code_id: str | None,
        outcome: str,
        client: str,
    ) -> None:
        now = self._clock.now()
        if purpose == "intent":
            session.add(
                IntentAttemptRow(
                    challenge_id=subject_id,
                    staff_id=staff_id,
                    method="sms",
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
                method="sms",
                challenge_id=subject_id,
                otp_id=code_id,
                outcome=outcome,
            )
        else:
            record_event(
                session,
                now,
                "otp:verify",
                staff_id=staff_id,
                purpose=purpose,
                subject_id=subject_id,
                otp_id=code_id,
                outcome=outcome,
            )


_ERRORS: dict[str, Callable[[], Exception]] = {
    "used": lambda: OTPUsedError("code already used", public="this code was already used"),
    "exhausted": lambda: OTPExhaustedError(
        "too many wrong codes", public="too many wrong codes; request a new one"
    ),
    "expired": lambda: OTPExpiredError(
        "code expired", public="the code expired; request a new one"
    ),
}


def _error_for(outcome: str) -> Exception:
    return _ERRORS[outcome]()
