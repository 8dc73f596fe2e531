from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.identity.support import Services, build_services, last_code

from medsign.clock import FixedClock
from medsign.db.session import Database
from medsign.db.tables import IntentAttemptRow, OneTimeCodeRow, SMSMessageRow
from medsign.errors import (
    InputError,
    OTPExhaustedError,
    OTPExpiredError,
    OTPUsedError,
    OTPWrongError,
    StaffStateError,
    TooManyRequestsError,
)
from medsign.evidence import list_events
from medsign.intent.otp import CODE_LIFETIME, MAX_CODES_PER_HOUR


@pytest.fixture
def services(database: Database, clock: FixedClock, tmp_path: Path) -> Services:
    return build_services(database, clock, tmp_path)


@pytest.fixture
def staff_id(services: Services) -> str:
    staff_id, _, _ = services.add_staff("O001", phone="13800138000")
    return staff_id


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_issue_sends_text_and_stores_only_a_digest(services: Services, staff_id: str) -> None:
    code_id = services.codes.issue_code(staff_id, "intent", "chl_1")
    text = services.last_sms()
    assert re.fullmatch(
        r"【示例人民医院】您正在确认电子签名，验证码 \d{6}，5分钟内有效。如非本人操作请忽略。", text
    )
    code = last_code(services)
    with services.database.session() as session:
        row = session.get(OneTimeCodeRow, code_id)
        assert row is not None
        assert code not in row.code_digest and len(row.code_digest) == 64
        assert row.expires_at == services.clock.now() + CODE_LIFETIME
        sms = session.scalars(select(SMSMessageRow)).one()
        assert sms.provider == "development" and sms.phone_masked == "138****8000"
    event = list_events(services.database, event_type="otp:issue")[0]
    assert code not in str(event.record) and "13800138000" not in str(event.record)


def test_verify_consumes_once(services: Services, staff_id: str) -> None:
    code_id = services.codes.issue_code(staff_id, "intent", "chl_1")
    code = last_code(services)
    assert services.codes.verify_code(staff_id, "intent", "chl_1", code, client="t") == code_id
    with pytest.raises(OTPUsedError):
        services.codes.verify_code(staff_id, "intent", "chl_1", code)
    with services.database.session() as session:
        outcomes = [a.outcome for a in session.scalars(select(IntentAttemptRow))]
    assert outcomes == ["confirmed", "used"]


def test_wrong_codes_exhaust(services: Services, staff_id: str) -> None:
    services.codes.issue_code(staff_id, "intent", "chl_1")
    code = last_code(services)
    remaining = []
    for _ in range(4):
        with pytest.raises(OTPWrongError) as info:
            services.codes.verify_code(staff_id, "intent", "chl_1", other_code(code))
        remaining.append(info.value.extra["remaining_tries"])
    assert remaining == [4, 3, 2, 1]
    with pytest.raises(OTPExhaustedError):
        services.codes.verify_code(staff_id, "intent", "chl_1", other_code(code))
    # Exhausted: even the right code no longer works.
    with pytest.raises(OTPExhaustedError):
        services.codes.verify_code(staff_id, "intent", "chl_1", code)
    for malformed in ("", "12345", "abcdef", "1234567"):
        with pytest.raises(OTPExhaustedError):
            services.codes.verify_code(staff_id, "intent", "chl_1", malformed)


def test_malformed_codes_count_as_wrong(services: Services, staff_id: str) -> None:
    services.codes.issue_code(staff_id, "enrolment", "enr_1")
    with pytest.raises(OTPWrongError) as info:
        services.codes.verify_code(staff_id, "enrolment", "enr_1", "１２３４５６")
    assert info.value.extra["remaining_tries"] == 4
    assert list_events(services.database, event_type="otp:verify")[0].record["outcome"] == "wrong"


def test_expiry(services: Services, staff_id: str) -> None:
    services.codes.issue_code(staff_id, "intent", "chl_1")
    code = last_code(services)
    services.clock.advance(CODE_LIFETIME)
    with pytest.raises(OTPExpiredError):
        services.codes.verify_code(staff_id, "intent", "chl_1", code)
    with pytest.raises(OTPExpiredError):
        services.codes.verify_code(staff_id, "intent", "chl_never", code)


def test_new_code_replaces_the_previous_one(services: Services, staff_id: str) -> None:
    services.codes.issue_code(staff_id, "intent", "chl_1")
    first = last_code(services)
    services.clock.advance(dt.timedelta(seconds=1))
    services.codes.issue_code(staff_id, "intent", "chl_1")
    second = last_code(services)
    if first != second:
        with pytest.raises(OTPWrongError):
            services.codes.verify_code(staff_id, "intent", "chl_1", first)
    services.codes.verify_code(staff_id, "intent", "chl_1", second)
    # Codes of other subjects are untouched.
    services.codes.issue_code(staff_id, "intent", "chl_2")
    services.codes.issue_code(staff_id, "intent", "chl_3")
    with services.database.session() as session:
        open_subjects = session.scalars(
            select(OneTimeCodeRow.subject_id).where(
                OneTimeCodeRow.expires_at > services.clock.now(),
                OneTimeCodeRow.consumed_at.is_(None),
            )
        ).all()
    assert sorted(open_subjects) == ["chl_2", "chl_3"]


def test_code_in_callers_transaction_is_sent_after_commit(
    services: Services, staff_id: str
) -> None:
    with services.database.session() as session:
        services.codes.issue_code(staff_id, "intent", "chl_tx", session=session)
        with services.database.session() as peek:
            assert peek.scalars(select(SMSMessageRow)).all() == []
    assert len(services.last_sms()) > 0
    with pytest.raises(RuntimeError), services.database.session() as session:
        services.codes.issue_code(staff_id, "intent", "chl_rolled_back", session=session)
        raise RuntimeError("caller fails")
    with services.database.session() as session:
        assert len(session.scalars(select(SMSMessageRow)).all()) == 1
        assert (
            session.scalar(
                select(OneTimeCodeRow).where(OneTimeCodeRow.subject_id == "chl_rolled_back")
            )
            is None
        )


def test_refusals(services: Services, staff_id: str) -> None:
    with pytest.raises(InputError):
        services.codes.issue_code(staff_id, "login", "x")
    for n in range(MAX_CODES_PER_HOUR):
        services.codes.issue_code(staff_id, "intent", f"chl_{n}")
    with pytest.raises(TooManyRequestsError):
        services.codes.issue_code(staff_id, "intent", "chl_more")
    services.clock.advance(dt.timedelta(hours=1, seconds=1))
    services.codes.issue_code(staff_id, "intent", "chl_more")
    services.staff.freeze(services.organization_id, "O001", actor="a")
    with pytest.raises(StaffStateError):
        services.codes.issue_code(staff_id, "intent", "chl_frozen")


def test_parallel_wrong_tries_all_count(services: Services, staff_id: str) -> None:
    code_id = services.codes.issue_code(staff_id, "intent", "chl_p")
    code = last_code(services)
    barrier = threading.Barrier(3)

    def attempt() -> None:
        barrier.wait()
        with contextlib.suppress(OTPWrongError, OTPExhaustedError):
            services.codes.verify_code(staff_id, "intent", "chl_p", other_code(code))

    threads = [threading.Thread(target=attempt) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with services.database.session() as session:
        row = session.get(OneTimeCodeRow, code_id)
        assert row is not None and row.attempts == 3
