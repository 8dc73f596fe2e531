from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import x509
from sqlalchemy import select

from medsign.clock import FixedClock
from medsign.db.session import Database
from medsign.db.tables import EnrolmentRow, KeyRow, StaffRow, WebhookDeliveryRow
from medsign.errors import (
    EnrolmentClosedError,
    EnrolmentExpiredError,
    IdentityCheckError,
    InputError,
    NotFoundError,
    OTPExhaustedError,
    OTPWrongError,
    StaffStateError,
    StateError,
    TooManyRequestsError,
)
from medsign.evidence import list_events
from medsign.identity.enrolment import token_digest
from tests.identity.support import EnrolmentEnv, build_enrolment_env, last_code

PIN = "258036"


@pytest.fixture
def env(database: Database, clock: FixedClock, tmp_path: Path) -> EnrolmentEnv:
    return build_enrolment_env(database, clock, tmp_path)


@pytest.fixture
def person(env: EnrolmentEnv) -> tuple[str, str, str]:
    return env.services.add_staff("E100")


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def walk_to_pin(env: EnrolmentEnv, token: str, national_id: str) -> None:
    env.enrolments.send_code(token)
    env.enrolments.verify_code(token, last_code(env.services))
    env.enrolments.confirm_identity(token, national_id)


def test_complete_enrolment(env: EnrolmentEnv, person: tuple[str, str, str]) -> None:
    staff_id, national_id, _ = person
    ticket = env.enrolments.create(env.application_id, env.services.organization_id, "E100")
    assert ticket.url.startswith("https://sign.example.org/m/enrol/")
    token = token_of(ticket.url)
    assert len(token) == 64
    with env.services.database.session() as session:
        row = session.get(EnrolmentRow, ticket.enrolment.id)
        assert row is not None and row.token_digest == hashlib.sha256(token.encode()).hexdigest()
    assert ticket.enrolment.expires_at == env.services.clock.now() + dt.timedelta(minutes=15)
    view = env.enrolments.view(token)
    assert (view.name, view.phone_masked, view.step) == (
        "张三",
        person[2][:3] + "****" + person[2][-4:],
        "start",
    )
    assert env.enrolments.send_code(token).step == "code-sent"
    assert env.enrolments.verify_code(token, last_code(env.services)).step == "code-verified"
    assert env.enrolments.confirm_identity(token, national_id.lower()).step == "identity-confirmed"
    done = env.enrolments.set_pin(token, PIN)
    assert (done.state, done.step) == ("authenticated", "done")
    assert done.certificate_id is not None
    staff = env.services.staff.get_by_id(staff_id)
    assert staff.certificate_id == done.certificate_id and staff.pin_set
    assert staff.enrolled_at == env.services.clock.now()
    certificate = env.authority.get_by_id(done.certificate_id)
    assert certificate.profile == "staff-signing" and certificate.status == "good"
    subject = x509.Certificate.load(certificate.certificate_der).subject.native
    assert subject["common_name"] == "张三" and subject["serial_number"] == "E100"
    assert subject["organizational_unit_name"] == "心内科" and subject["title"] == "主治医师"
    key = env.keystore.get(staff.key_id)
    assert key.algorithm == "sm2" and key.label == f"staff:{staff_id}"
    env.services.pins.verify_pin(staff_id, PIN, client="t")
    # The application sees it; another application does not.
    assert env.enrolments.get(env.application_id, done.id).state == "authenticated"
    with pytest.raises(NotFoundError):
        env.enrolments.get(env.other_application_id, done.id)
    # The token is dead now.
    for step in (env.enrolments.view, env.enrolments.send_code):
        with pytest.raises(EnrolmentClosedError):
            step(token)
    types = [e.type for e in list_events(env.services.database, subject=done.id)]
    assert types == [
        "enrolment:create",
        "otp:issue",
        "enrolment:send-code",
        "otp:verify",
        "enrolment:verify-code",
        "enrolment:confirm-identity",
        "enrolment:complete",
    ]
    everything = json.dumps([e.record for e in list_events(env.services.database)])
    assert national_id not in everything and person[2] not in everything and PIN not in everything


def test_webhooks_reach_the_application(env: EnrolmentEnv, person: tuple[str, str, str]) -> None:
    from medsign.apps.registry import ApplicationRegistry

    registry = ApplicationRegistry(env.services.database, env.services.sealer, env.services.clock)
    registry.edit(env.application_id, webhook_url="https://his.example.org/hook")
    ticket = env.enrolments.create(
        env.application_id, env.services.organization_id, "E100", key_algorithm="ec-p256"
    )
    token = token_of(ticket.url)
    walk_to_pin(env, token, person[1])
    env.enrolments.set_pin(token, PIN)
    with env.services.database.session() as session:
        deliveries = session.scalars(select(WebhookDeliveryRow)).all()
    assert [(d.event_type, d.subject_id) for d in deliveries] == [
        ("enrolment:completed", ticket.enrolment.id)
    ]
    data = json.loads(deliveries[0].payload)["data"]
    assert data["state"] == "authenticated" and data["key_algorithm"] == "ec-p256"


def test_re_enrolment_supersedes_the_certificate(
    env: EnrolmentEnv, person: tuple[str, str, str]
) -> None:
    results = []
    for _ in range(2):
        ticket = env.enrolments.create(
            env.application_id, env.services.organization_id, "E100", key_algorithm="ec-p256"
        )
        token = token_of(ticket.url)
        walk_to_pin(env, token, person[1])
        results.append(env.enrolments.set_pin(token, PIN))
        env.services.clock.advance(dt.timedelta(minutes=2))
    first = env.authority.get_by_id(results[0].certificate_id)
    assert (first.status, first.revocation_reason) == ("revoked", "superseded")
    assert env.authority.get_by_id(results[1].certificate_id).status == "good"
    # Deregistration revokes the current one.
    env.services.staff.deregister(env.services.organization_id, "E100", actor="a")
    second = env.authority.get_by_id(results[1].certificate_id)
    assert (second.status, second.revocation_reason) == ("revoked", "affiliationChanged")


def test_five_wrong_codes_fail_the_enrolment(
    env: EnrolmentEnv, person: tuple[str, str, str]
) -> None:
    ticket = env.enrolments.create(env.application_id, env.services.organization_id, "E100")
    token = token_of(ticket.url)
    env.enrolments.send_code(token)
    code = last_code(env.services)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(4):
        with pytest.raises(OTPWrongError):
            env.enrolments.verify_code(token, wrong)
    with pytest.raises(OTPExhaustedError):
        env.enrolments.verify_code(token, wrong)
    status = env.enrolments.get(env.application_id, ticket.enrolment.id)
    assert (status.state, status.failure_reason) == ("failed", "too-many-wrong-codes")
    with pytest.raises(EnrolmentClosedError):
        env.enrolments.verify_code(token, code)


def test_wrong_national_id_fails(env: EnrolmentEnv, person: tuple[str, str, str]) -> None:
    from tests.identity.support import make_national_id

    ticket = env.enrolments.create(env.application_id, env.services.organization_id, "E100")
    token = token_of(ticket.url)
    env.enrolments.send_code(token)
    env.enrolments.verify_code(token, last_code(env.services))
    with pytest.raises(InputError):  # malformed: a typo, not a failed authentication
        env.enrolments.confirm_identity(token, "123")
    with pytest.raises(IdentityCheckError) as info:
        env.enrolments.confirm_identity(token, make_national_id("19700101"))
    assert person[1] not in info.value.public_message()
    status = env.enrolments.get(env.application_id, ticket.enrolment.id)
    assert (status.state, status.failure_reason) == ("failed", "national-id-mismatch")
    with env.services.database.session() as session:
        staff = session.scalar(select(StaffRow).where(StaffRow.id == person[0]))
        assert staff is not None and staff.certificate_id is None


def test_steps_must_come_in_order(env: EnrolmentEnv, person: tuple[str, str, str]) -> None:
    ticket = env.enrolments.create(env.application_id, env.services.organization_id, "E100")
    token = token_of(ticket.url)
    with pytest.raises(StateError):
        env.enrolments.verify_code(token, "123456")
    with pytest.raises(StateError):
        env.enrolments.confirm_identity(token, person[1])
    with pytest.raises(StateError):
        env.enrolments.set_pin(token, PIN)


def test_expiry_and_unknown_tokens(env: EnrolmentEnv, person: tuple[str, str, str]) -> None:
    ticket = env.enrolments.create(env.application_id, env.services.organization_id, "E100")
    token = token_of(ticket.url)
    env.services.clock.advance(dt.timedelta(minutes=15))
    with pytest.raises(EnrolmentExpiredError):
        env.enrolments.view(token)
    assert env.enrolments.get(env.application_id, ticket.enrolment.id).state == "expired"
    for bad in ("", "x" * 64, "0" * 64, token.upper()):
        with pytest.raises(NotFoundError):
            env.enrolments.view(bad)


def test_sweeper_expires_and_notifies(env: EnrolmentEnv, person: tuple[str, str, str]) -> None:
    from medsign.apps.registry import ApplicationRegistry

    registry = ApplicationRegistry(env.services.database, env.services.sealer, env.services.clock)
    registry.edit(env.application_id, webhook_url="https://his.example.org/hook")
    env.enrolments.create(env.application_id, env.services.organization_id, "E100")
    assert env.enrolments.expire_due() == 0
    env.services.clock.advance(dt.timedelta(minutes=16))
    assert env.enrolments.expire_due() == 1
    with env.services.database.session() as session:
        delivery = session.scalars(select(WebhookDeliveryRow)).one()
    assert delivery.event_type == "enrolment:failed"
    assert json.loads(delivery.payload)["data"]["state"] == "expired"


def test_new_enrolment_supersedes_pending_one(
    env: EnrolmentEnv, person: tuple[str, str, str]
) -> None:
    first = env.enrolments.create(env.application_id, env.services.organization_id, "E100")
    env.enrolments.create(env.application_id, env.services.organization_id, "E100")
    with pytest.raises(EnrolmentExpiredError):
        env.enrolments.view(token_of(first.url))
    status = env.enrolments.get(env.application_id, first.enrolment.id)
    assert (status.state, status.failure_reason) == ("expired", "superseded")


def test_frozen_or_incomplete_staff(env: EnrolmentEnv, person: tuple[str, str, str]) -> None:
    from medsign.identity.staff import StaffInput

    ticket = env.enrolments.create(env.application_id, env.services.organization_id, "E100")
    env.services.staff.freeze(env.services.organization_id, "E100", actor="a")
    with pytest.raises(StaffStateError):
        env.enrolments.create(env.application_id, env.services.organization_id, "E100")
    with pytest.raises(StaffStateError):
        env.enrolments.send_code(token_of(ticket.url))
    env.services.staff.upsert(
        env.services.organization_id, StaffInput(employee_no="E101", name="无证"), actor="a"
    )
    with pytest.raises(StaffStateError):
        env.enrolments.create(env.application_id, env.services.organization_id, "E101")
    with pytest.raises(NotFoundError):
        env.enrolments.create(env.application_id, env.services.organization_id, "E999")
    with pytest.raises(InputError):
        env.enrolments.create(
            env.application_id, env.services.organization_id, "E100", key_algorithm="rsa-3072"
        )


def test_send_code_is_rate_limited(env: EnrolmentEnv, person: tuple[str, str, str]) -> None:
    ticket = env.enrolments.create(env.application_id, env.services.organization_id, "E100")
    token = token_of(ticket.url)
    env.enrolments.send_code(token)
    with pytest.raises(TooManyRequestsError) as info:
        env.enrolments.send_code(token)
    assert 0 < info.value.extra["retry_after"] <= 61
    for _ in range(4):
        env.services.clock.advance(dt.timedelta(seconds=61))
        env.enrolments.send_code(token)
    env.services.clock.advance(dt.timedelta(seconds=61))
    with pytest.raises(TooManyRequestsError):
        env.enrolments.send_code(token)


def test_trivial_pin_is_refused_before_anything_is_made(
    env: EnrolmentEnv, person: tuple[str, str, str]
) -> None:
    ticket = env.enrolments.create(env.application_id, env.services.organization_id, "E100")
    token = token_of(ticket.url)
    walk_to_pin(env, token, person[1])
    with env.services.database.session() as session:
        keys_before = len(session.scalars(select(KeyRow)).all())
    for pin in ("000000", "123456"):
        with pytest.raises(InputError):
            env.enrolments.set_pin(token, pin)
    with env.services.database.session() as session:
        assert len(session.scalars(select(KeyRow)).all()) == keys_before
    assert env.enrolments.view(token).step == "identity-confirmed"


def test_failed_issuance_leaves_nothing_enrolled(
    env: EnrolmentEnv, person: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from medsign.errors import CertificateError

    ticket = env.enrolments.create(env.application_id, env.services.organization_id, "E100")
    token = token_of(ticket.url)
    walk_to_pin(env, token, person[1])

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise CertificateError("issuing CA unavailable")

    monkeypatch.setattr(env.authority, "issue_for_key", broken)
    with pytest.raises(CertificateError):
        env.enrolments.set_pin(token, PIN)
    staff = env.services.staff.get_by_id(person[0])
    assert staff.certificate_id is None and not staff.pin_set and staff.enrolled_at is None
    assert env.enrolments.view(token).step == "identity-confirmed"
    assert [
        e.record["error_code"]
        for e in list_events(env.services.database, event_type="enrolment:issue-fail")
    ] == ["certificate-error"]
    monkeypatch.undo()
    assert env.enrolments.set_pin(token, PIN).state == "authenticated"


def test_failed_recording_revokes_the_fresh_certificate(
    env: EnrolmentEnv, person: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket = env.enrolments.create(env.application_id, env.services.organization_id, "E100")
    token = token_of(ticket.url)
    walk_to_pin(env, token, person[1])
    # Freeze the person between the claim and the final transaction.
    real_issue = env.authority.issue_for_key

    def issue_then_freeze(*args: Any, **kwargs: Any) -> Any:
        record = real_issue(*args, **kwargs)
        env.services.staff.freeze(env.services.organization_id, "E100", actor="a")
        return record

    monkeypatch.setattr(env.authority, "issue_for_key", issue_then_freeze)
    with pytest.raises(StaffStateError):
        env.enrolments.set_pin(token, PIN)
    staff = env.services.staff.get_by_id(person[0])
    assert staff.certificate_id is None
    issued = env.authority.list(profile="staff-signing")
    assert [(c.status, c.revocation_reason) for c in issued] == [
        ("revoked", "cessationOfOperation")
    ]


def test_token_digest_only(env: EnrolmentEnv, person: tuple[str, str, str]) -> None:
    ticket = env.enrolments.create(env.application_id, env.services.organization_id, "E100")
    token = token_of(ticket.url)
    assert env.enrolments.url(env.application_id, ticket.enrolment.id) == ticket.url
    with env.services.database.session() as session:
        row = session.get(EnrolmentRow, ticket.enrolment.id)
        assert (
            row is not None
            and token not in repr(vars(row))
            and row.token_digest == token_digest(token)
        )


def test_identity_check_provider_is_consulted(
    database: Database, clock: FixedClock, tmp_path: Path
) -> None:
    class Refusing:
        name = "refusing"

        def verify_identity(
            self, name: str, national_id: str, *, face_jpeg: bytes | None = None
        ) -> None:
            raise IdentityCheckError("not a real person")

    env = build_enrolment_env(database, clock, tmp_path, identity_check=Refusing())
    _, national_id, _ = env.services.add_staff("E200")
    ticket = env.enrolments.create(env.application_id, env.services.organization_id, "E200")
    token = token_of(ticket.url)
    env.enrolments.send_code(token)
    env.enrolments.verify_code(token, last_code(env.services))
    with pytest.raises(IdentityCheckError):
        env.enrolments.confirm_identity(token, national_id)
    status = env.enrolments.get(env.application_id, ticket.enrolment.id)
    assert status.failure_reason == "identity-check-refused"
