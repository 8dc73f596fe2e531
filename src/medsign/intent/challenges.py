"""Intention challenges and proofs.

A challenge names exactly which items (request id, digest algorithm, digest) the signer is
asked to sign; its binding digest is SHA-256 over their RFC 8785 canonical list. Confirming
it (PIN, SMS code or passkey, checked by ``pin``/``otp``/``passkeys``) makes it a proof, which
the signing step consumes once, inside the same transaction that stores the signatures, after
recomputing the binding from the rows it is about to sign. A proof is therefore fresh,
single-use and bound to exactly what is signed: nothing else can ride on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import rfc8785
from sqlalchemy import update
from sqlalchemy.orm import Session

from medsign.db.tables import IntentChallengeRow
from medsign.errors import IntentError, NotFoundError
from medsign.ids import new_id

METHODS = ("pin", "sms", "passkey")
OPEN, CONFIRMED, CONSUMED, FAILED = "open", "confirmed", "consumed", "failed"


class IntentExpiredError(IntentError):
    code = "intent-expired"
    title = "The intention challenge has expired"


class IntentUsedError(IntentError):
    code = "intent-used"
    title = "The intention proof was already used"
    status = 409


class IntentBindingError(IntentError):
    code = "intent-binding"
    title = "The intention proof does not match what is being signed"


class IntentNotConfirmedError(IntentError):
    code = "intent-not-confirmed"
    title = "The intention has not been confirmed"


@dataclass(frozen=True)
class BoundItem:
    request_id: str
    digest_algorithm: str
    digest: bytes


@dataclass(frozen=True)
class Challenge:
    id: str
    staff_id: str
    application_id: str | None
    method: str
    request_ids: tuple[str, ...]
    binding_digest: str
    state: str
    expires_at: dt.datetime
    created_at: dt.datetime

    @classmethod
    def from_row(cls, row: IntentChallengeRow) -> Challenge:
        return cls(
            row.id,
            row.staff_id,
            row.application_id,
            row.method,
            tuple(json.loads(row.request_ids)),
            row.binding_digest,
            row.state,
            row.expires_at,
            row.created_at,
        )


def binding_digest(items: Sequence[BoundItem]) -> str:
    listed = [
        {"id": i.request_id, "alg": i.digest_algorithm, "digest": i.digest.hex()} for i in items
    ]
    return hashlib.sha256(rfc8785.dumps(listed)).hexdigest()


class IntentChallenges:
    def __init__(
        self,
        *,
        ttl: dt.timedelta = dt.timedelta(minutes=5),
        proof_ttl: dt.timedelta = dt.timedelta(minutes=2),
        max_attempts: int = 5,
    ) -> None:
        self.ttl = ttl
        self.proof_ttl = proof_ttl
        self.max_attempts = max_attempts

    def start(
        self,
        session: Session,
        now: dt.datetime,
        *,
        staff_id: str,
        application_id: str | None,
        method: str,
        items: Sequence[BoundItem],
    ) -> Challenge:
        if method not in METHODS:
            from medsign.errors import InputError

            raise InputError(f"method must be one of {', '.join(METHODS)}")
        row = IntentChallengeRow(
            id=new_id("int"),
            staff_id=staff_id,
            application_id=application_id,
            method=method,
            request_ids=json.dumps([i.request_id for i in items]),
            binding_digest=binding_digest(items),
            state=OPEN,
            attempts=0,
            expires_at=now + self.ttl,
            created_at=now,
        )
        session.add(row)
        session.flush()
        return Challenge.from_row(row)

    def get(
        self,
        session: Session,
        challenge_id: str,
        *,
        staff_id: str | None = None,
        application_id: str | None = None,
    ) -> IntentChallengeRow:
        row = session.get(IntentChallengeRow, challenge_id)
        if (
            row is None
            or (staff_id is not None and row.staff_id != staff_id)
            or (application_id is not None and row.application_id != application_id)
        ):
            raise NotFoundError(f"no intention challenge {challenge_id}")
        return row

    def check_open(self, row: IntentChallengeRow, now: dt.datetime) -> None:
        if row.state == CONSUMED:
            raise IntentUsedError(f"challenge {row.id} was already used")
        if row.state == FAILED:
            raise IntentExpiredError(f"challenge {row.id} failed after too many attempts")
        if row.expires_at <= now:
            raise IntentExpiredError(f"challenge {row.id} expired")

    def record_failure(self, session: Session, row: IntentChallengeRow, now: dt.datetime) -> None:
        session.execute(
            update(IntentChallengeRow)
            .where(IntentChallengeRow.id == row.id)
            .values(attempts=IntentChallengeRow.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        session.refresh(row)
        if row.attempts >= self.max_attempts and row.state == OPEN:
            row.state = FAILED

    def mark_confirmed(self, session: Session, row: IntentChallengeRow, now: dt.datetime) -> None:
        self.check_open(row, now)
        row.state = CONFIRMED
        row.confirmed_at = now
        session.flush()

    def consume(
        self,
        session: Session,
        now: dt.datetime,
        *,
        challenge_id: str,
        staff_id: str,
        items: Sequence[BoundItem],
    ) -> Challenge:
        """Use the proof once, for exactly ``items``; raises unless fresh and matching."""
        row = self.get(session, challenge_id, staff_id=staff_id)
        if row.state == CONSUMED:
            raise IntentUsedError(f"challenge {row.id} was already used")
        if row.state != CONFIRMED or row.confirmed_at is None:
            raise IntentNotConfirmedError(f"challenge {row.id} is {row.state}")
        if row.confirmed_at + self.proof_ttl <= now or row.expires_at + self.proof_ttl <= now:
            raise IntentExpiredError(f"the proof of challenge {row.id} is no longer fresh")
        if binding_digest(items) != row.binding_digest:
            raise IntentBindingError(f"challenge {row.id} was confirmed for other content")
        # The guarded update is what makes the proof single-use across processes.
        result = session.execute(
            update(IntentChallengeRow)
            .where(IntentChallengeRow.id == row.id, IntentChallengeRow.state == CONFIRMED)
            .values(state=CONSUMED, consumed_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise IntentUsedError(f"challenge {row.id} was used concurrently")
        session.refresh(row)
        return Challenge.from_row(row)
