"""QR-code login, domain level: start, view, approve, decline, expire; who may decide; the
evidence and webhooks each step writes; the signed assertion and what its verifier refuses."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.identity.support import Services, build_services, make_national_id, make_phone

from medsign.apps.registry import ApplicationRegistry, SignerScope
from medsign.ca.authority import CertificateAuthority
from medsign.ca.profiles import get_profile
from medsign.client import (
    LOGIN_ASSERTION_POLICY,
    LoginAssertionError,
    verify_login_assertion,
)
from medsign.clock import FixedClock
from medsign.crypto import AlgorithmFamily, KeyAlgorithm, SignatureScheme, der_to_raw
from medsign.db.session import Database
from medsign.db.tables import LoginChallengeRow, StaffDeviceRow, WebhookDeliveryRow
from medsign.errors import (
    ApplicationFrozenError,
    InputError,
    NotFoundError,
    StaffStateError,
)
from medsign.evidence import list_events
from medsign.identity.organizations import ensure_organization
from medsign.identity.staff import StaffDirectory, StaffInput
from medsign.ids import new_id
from medsign.intent.assertions import JWS_TYPE, LoginAssertions, b64url
from medsign.intent.logins import (
    Login,
    LoginDecidedError,
    LoginDeclinedError,
    LoginDeviceError,
    LoginExpiredError,
    LoginNotAllowedError,
    LoginService,
    LoginState,
)
from medsign.keys.keyring import MasterKeyring
from medsign.keys.software import SoftwareKeyStore
from medsign.keys.usage import key_uses

BASE_URL = "https://sign.example.org"
WORKSTATION = "门诊3楼 诊室12 (PC-0312)"


@dataclass
class Env:
    database: Database
    clock: FixedClock
    services: Services
    keystore: SoftwareKeyStore
    authority: CertificateAuthority
    registry: ApplicationRegistry
    logins: LoginService
    his: Any  # has a webhook URL
    emr: Any  # polls
    lis: Any  # may address the laboratory only
    root_der: bytes

    def staff(self, employee_no: str, department: str = "心内科", **kw: Any) -> tuple[str, str]:
        """(staff id, device id) of a new active staff member with one enrolled phone."""
        staff_id, _, _ = self.services.add_staff(employee_no, **kw)
        if department != "心内科":
            self.services.staff.upsert(
                self.services.organization_id,
                StaffInput(employee_no=employee_no, name="李四", department=department),
                actor="test",
            )
        return staff_id, self.device(staff_id)

    def device(self, staff_id: str, *, revoked: bool = False) -> str:
        now = self.clock.now()
        device_id = new_id("dev")
        with self.database.session() as session:
            session.add(
                StaffDeviceRow(
                    id=device_id,
                    staff_id=staff_id,
                    label="iPhone",
                    token_sha256=hashlib.sha256(device_id.encode()).hexdigest(),
                    key_mode="server",
                    created_at=now,
                    last_seen_at=now,
                    revoked_at=now if revoked else None,
                )
            )
        return device_id

    def verify(self, token: str, audience: str, **kw: Any) -> dict[str, Any]:
        kw.setdefault("now", self.clock.now())
        return verify_login_assertion(token, [self.root_der], audience=audience, **kw)


@pytest.fixture
def env(database: Database, clock: FixedClock, tmp_path: Path) -> Env:
    services = build_services(database, clock, tmp_path)
    keystore = SoftwareKeyStore(database, MasterKeyring.load(tmp_path / "keyring"), clock)
    authority = CertificateAuthority(database, keystore, clock, BASE_URL)
    authority.initialise_hierarchy("示例人民医院", families=[AlgorithmFamily.P256])
    services.staff = StaffDirectory(database, services.sealer, clock, authority=authority)
    registry = ApplicationRegistry(database, services.sealer, clock)
    org = services.organization_id
    his, _ = registry.register(
        name="HIS", code="his", organization_id=org, webhook_url="https://his.example.org/hook"
    )
    emr, _ = registry.register(name="EMR", code="emr", organization_id=org)
    lis, _ = registry.register(
        name="LIS",
        code="lis",
        organization_id=org,
        signer_scope=SignerScope(all=False, departments=("检验科",)),
        webhook_url="https://lis.example.org/hook",
    )
    logins = LoginService(
        database,
        clock,
        assertions=LoginAssertions(keystore, authority, clock, issuer=BASE_URL + "/"),
        public_base_url=BASE_URL + "/",
        lifetime=dt.timedelta(seconds=120),
    )
    root = next(ca for ca in authority.list_cas() if ca.level == "root")
    return Env(
        database,
        clock,
        services,
        keystore,
        authority,
        registry,
        logins,
        his,
        emr,
        lis,
        root.certificate_der,
    )


def start(env: Env, app: Any = None, employee_no: str | None = None, **kw: Any) -> Login:
    kw.setdefault("workstation", WORKSTATION)
    kw.setdefault("ttl_seconds", None)
    return env.logins.start(app or env.his, employee_no=employee_no, **kw).login


def events(env: Env, login_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e.type, e.record) for e in list_events(env.database, subject=login_id)]


def webhooks(env: Env, login_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    with env.database.session() as session:
        rows = session.scalars(
            select(WebhookDeliveryRow)
            .where(WebhookDeliveryRow.subject_id == login_id)
            .order_by(WebhookDeliveryRow.created_at)
        ).all()
        return [(r.application_id, r.event_type, json.loads(r.payload)["data"]) for r in rows]


# -- start --------------------------------------------------------------------------------------


def test_start_gives_a_one_time_url_and_records_only_ids(env: Env) -> None:
    ticket = env.logins.start(env.his, employee_no=None, workstation=WORKSTATION, ttl_seconds=None)
    login = ticket.login
    assert ticket.url == f"{BASE_URL}/m/login/{login.id}"
    assert login.state is LoginState.PENDING
    assert login.expires_at == env.clock.now() + dt.timedelta(seconds=120)
    assert (login.staff_id, login.requested_staff_id, login.assertion) == (None, None, None)
    assert env.logins.get(env.his.id, login.id) == login
    [(kind, record)] = events(env, login.id)
    assert kind == "login:start"
    assert record["application_id"] == env.his.id and record["ttl_seconds"] == 120
    assert record["workstation_sha256"] == hashlib.sha256(WORKSTATION.encode()).hexdigest()
    assert WORKSTATION not in json.dumps(record, ensure_ascii=False)
    assert webhooks(env, login.id) == []  # the application made it; nothing to tell


def test_a_shorter_lifetime_may_be_asked_never_a_longer_one(env: Env) -> None:
    assert start(env, ttl_seconds=30).expires_at == env.clock.now() + dt.timedelta(seconds=30)
    for ttl in (121, 9, 0, -5):
        with pytest.raises(InputError):
            start(env, ttl_seconds=ttl)


@pytest.mark.parametrize("workstation", ["", "PC-1", "检验科 前台", "x" * 128])
def test_workstation_accepted(env: Env, workstation: str) -> None:
    assert start(env, workstation=workstation).workstation == workstation


@pytest.mark.parametrize("workstation", ["x" * 129, "PC\n1", "PC\t1", "PC\x001", "PC\u200b1"])
def test_workstation_refused(env: Env, workstation: str) -> None:
    with pytest.raises(InputError):
        start(env, workstation=workstation)


def test_named_staff_must_exist_be_addressable_and_active(
    env: Env, database: Database, clock: FixedClock
) -> None:
    env.staff("E001")
    env.staff("L001", department="检验科")
    login = start(env, employee_no="E001")
    assert login.requested_employee_no == "E001" and login.requested_staff_id is not None
    with pytest.raises(NotFoundError):
        start(env, employee_no="E404")
    other = ensure_organization(database, clock, code="other", name="另一家医院")
    env.services.staff.upsert(
        other.id,
        StaffInput(
            employee_no="X001",
            name="王五",
            national_id=make_national_id(),
            phone=make_phone(),
        ),
        actor="test",
    )
    with pytest.raises(NotFoundError):
        start(env, employee_no="X001")  # exists, but in another organization
    with pytest.raises(LoginNotAllowedError):
        start(env, env.lis, employee_no="E001")  # outside the LIS's signer scope
    assert start(env, env.lis, employee_no="L001").requested_employee_no == "L001"
    env.services.staff.freeze(env.services.organization_id, "E001", actor="test")
    with pytest.raises(StaffStateError):
        start(env, employee_no="E001")


# -- deciding -----------------------------------------------------------------------------------


def test_approval_signs_an_assertion_and_tells_the_application(env: Env) -> None:
    staff_id, device_id = env.staff("E001")
    login = start(env)
    approved = env.logins.approve(login.id, staff_id=staff_id, device_id=device_id)
    assert approved.state is LoginState.APPROVED
    assert (approved.staff_id, approved.employee_no) == (staff_id, "E001")
    assert approved.decided_at == env.clock.now() and approved.device_id == device_id
    assert approved.assertion is not None
    assert env.logins.get(env.his.id, login.id) == approved

    claims = env.verify(approved.assertion, env.his.id)
    now = int(env.clock.now().timestamp())
    assert list(claims) == [
        "iss",
        "aud",
        "sub",
        "employee_no",
        "login_id",
        "workstation",
        "iat",
        "exp",
        "jti",
    ]
    assert claims["iss"] == BASE_URL and claims["aud"] == env.his.id
    assert (claims["sub"], claims["employee_no"], claims["login_id"]) == (
        staff_id,
        "E001",
        login.id,
    )
    assert claims["workstation"] == WORKSTATION
    assert (claims["iat"], claims["exp"]) == (now, now + 300)

    header = json.loads(base64.urlsafe_b64decode(approved.assertion.split(".")[0] + "=="))
    assert (header["alg"], header["typ"]) == ("ES256", JWS_TYPE)
    chain = [base64.b64decode(c) for c in header["x5c"]]
    assert chain[-1] == env.root_der and len(chain) == 3
    [record] = env.authority.list(profile="login-assertion")
    assert chain[0] == record.certificate_der
    [use] = key_uses(env.database, record.key_id)
    assert (use.actor, use.purpose, use.scheme) == (
        "system:login",
        "login-assertion",
        SignatureScheme.ECDSA_SHA256,
    )

    kinds = events(env, login.id)
    assert [k for k, _ in kinds] == ["login:start", "login:approve"]
    approve = kinds[1][1]
    assert (approve["staff_id"], approve["device_id"]) == (staff_id, device_id)
    assert approve["certificate_id"] == record.id and approve["jti"] == claims["jti"]
    assert approve["assertion_sha256"] == hashlib.sha256(approved.assertion.encode()).hexdigest()
    [(app_id, event_type, data)] = webhooks(env, login.id)
    assert (app_id, event_type) == (env.his.id, "login:approved")
    assert data == {
        "login_id": login.id,
        "state": "approved",
        "staff_id": staff_id,
        "employee_no": "E001",
        "assertion": approved.assertion,
    }


def test_decline_is_final_and_told(env: Env) -> None:
    staff_id, device_id = env.staff("E001")
    login = start(env)
    declined = env.logins.decline(login.id, staff_id=staff_id, device_id=device_id)
    assert declined.state is LoginState.DECLINED and declined.assertion is None
    assert env.logins.get(env.his.id, login.id).state is LoginState.DECLINED
    with pytest.raises(LoginDeclinedError) as refused:
        env.logins.approve(login.id, staff_id=staff_id, device_id=device_id)
    assert refused.value.code == "login-declined" and refused.value.status == 409
    with pytest.raises(LoginDeclinedError):
        env.logins.url(env.his.id, login.id)
    assert [k for k, _ in events(env, login.id)] == ["login:start", "login:decline"]
    assert webhooks(env, login.id) == [
        (env.his.id, "login:declined", {"login_id": login.id, "state": "declined"})
    ]


def test_only_one_decision_ever_counts(env: Env) -> None:
    staff_id, device_id = env.staff("E001")
    login = start(env)
    env.logins.approve(login.id, staff_id=staff_id, device_id=device_id)
    for decide in (env.logins.approve, env.logins.decline):
        with pytest.raises(LoginDecidedError) as refused:
            decide(login.id, staff_id=staff_id, device_id=device_id)
        assert refused.value.code == "login-decided"
        assert refused.value.extra == {"state": "approved"}
    assert [k for k, _ in events(env, login.id)] == ["login:start", "login:approve"]
    assert len(webhooks(env, login.id)) == 1


def test_a_decision_made_while_signing_wins_over_the_approval(
    env: Env, database_url: str, clock: FixedClock
) -> None:
    """The approval reads a pending login, signs, and only then writes: a decline committed
    meanwhile, through another connection pool (as another process would), must win."""
    staff_id, device_id = env.staff("E001")
    login = start(env)
    second = Database(database_url)
    try:
        rival = LoginService(
            second, clock, assertions=env.logins.assertions, public_base_url=BASE_URL
        )
        issue: Callable[..., Any] = env.logins.assertions.issue

        def issue_then_decline(**kw: Any) -> Any:
            signed = issue(**kw)
            rival.decline(login.id, staff_id=staff_id, device_id=device_id)
            return signed

        env.logins.assertions.issue = issue_then_decline  # type: ignore[method-assign]
        with pytest.raises(LoginDeclinedError):
            env.logins.approve(login.id, staff_id=staff_id, device_id=device_id)
    finally:
        second.dispose()
    with env.database.session() as session:
        row = session.get(LoginChallengeRow, login.id)
        assert row is not None
        assert (row.state, row.assertion) == ("declined", None)
    assert [k for k, _ in events(env, login.id)] == ["login:start", "login:decline"]
    assert [w[1] for w in webhooks(env, login.id)] == ["login:declined"]


def test_a_freeze_while_signing_refuses_the_approval(env: Env) -> None:
    staff_id, device_id = env.staff("E001")
    login = start(env)
    issue: Callable[..., Any] = env.logins.assertions.issue

    def issue_then_freeze(**kw: Any) -> Any:
        signed = issue(**kw)
        env.services.staff.freeze(env.services.organization_id, "E001", actor="test")
        return signed

    env.logins.assertions.issue = issue_then_freeze  # type: ignore[method-assign]
    with pytest.raises(StaffStateError):
        env.logins.approve(login.id, staff_id=staff_id, device_id=device_id)
    assert env.logins.get(env.his.id, login.id).state is LoginState.PENDING
    assert [k for k, _ in events(env, login.id)] == ["login:start"]
    assert webhooks(env, login.id) == []


def test_expired_logins_are_reported_refused_and_swept(env: Env) -> None:
    staff_id, device_id = env.staff("E001")
    login = start(env, env.emr)  # no webhook URL: the sweep writes no delivery
    told = start(env)
    env.clock.advance(dt.timedelta(seconds=120))
    assert env.logins.get(env.emr.id, login.id).state is LoginState.EXPIRED
    assert env.logins.view(login.id, staff_id).state is LoginState.EXPIRED
    for refuse in (env.logins.approve, env.logins.decline):
        with pytest.raises(LoginExpiredError) as refused:
            refuse(login.id, staff_id=staff_id, device_id=device_id)
        assert refused.value.code == "login-expired" and refused.value.status == 410
    with pytest.raises(LoginExpiredError):
        env.logins.url(env.emr.id, login.id)

    assert env.logins.expire_due() == 2
    assert env.logins.expire_due() == 0
    with env.database.session() as session:
        row = session.get(LoginChallengeRow, login.id)
        assert row is not None and row.state == "expired" and row.decided_at is None
    assert [k for k, _ in events(env, login.id)] == ["login:start", "login:expire"]
    assert webhooks(env, login.id) == []
    assert webhooks(env, told.id) == [
        (env.his.id, "login:expired", {"login_id": told.id, "state": "expired"})
    ]


def test_a_login_just_before_its_deadline_can_still_be_approved(env: Env) -> None:
    staff_id, device_id = env.staff("E001")
    login = start(env, ttl_seconds=10)
    env.clock.advance(dt.timedelta(seconds=9, microseconds=999_999))
    assert env.logins.expire_due() == 0
    assert env.logins.approve(login.id, staff_id=staff_id, device_id=device_id).state == "approved"


# -- who may see and decide ---------------------------------------------------------------------


def test_a_named_login_exists_only_for_the_named_staff_member(env: Env) -> None:
    named_id, named_device = env.staff("E001")
    other_id, other_device = env.staff("E002")
    login = start(env, employee_no="E001")
    for attempt in (
        lambda: env.logins.view(login.id, other_id),
        lambda: env.logins.approve(login.id, staff_id=other_id, device_id=other_device),
        lambda: env.logins.decline(login.id, staff_id=other_id, device_id=other_device),
    ):
        with pytest.raises(NotFoundError) as refused:
            attempt()
        assert refused.value.code == "not-found"
    view = env.logins.view(login.id, named_id)
    assert (view.application_name, view.workstation, view.named) == ("HIS", WORKSTATION, True)
    assert view.state is LoginState.PENDING and view.expires_at == login.expires_at
    approved = env.logins.approve(login.id, staff_id=named_id, device_id=named_device)
    assert approved.staff_id == named_id and approved.requested_staff_id == named_id


def test_unknown_ids_and_other_organizations_look_alike(
    env: Env, database: Database, clock: FixedClock
) -> None:
    staff_id, _ = env.staff("E001")
    login = start(env)
    other = ensure_organization(database, clock, code="other", name="另一家医院")
    stranger = env.services.staff.upsert(
        other.id, StaffInput(employee_no="E001", name="王五"), actor="test"
    ).staff.id
    with pytest.raises(NotFoundError):
        env.logins.view(login.id, stranger)
    with pytest.raises(NotFoundError):
        env.logins.approve(login.id, staff_id=stranger, device_id=env.device(stranger))
    with pytest.raises(NotFoundError):
        env.logins.view("lgn_nosuchlogin", staff_id)
    with pytest.raises(NotFoundError):
        env.logins.view(login.id, "stf_nosuchstaff")


def test_another_application_cannot_see_the_login(env: Env) -> None:
    login = start(env)
    with pytest.raises(NotFoundError):
        env.logins.get(env.emr.id, login.id)
    with pytest.raises(NotFoundError):
        env.logins.url(env.emr.id, login.id)
    assert env.logins.url(env.his.id, login.id) == f"{BASE_URL}/m/login/{login.id}"


def test_the_device_must_be_an_enrolled_phone_of_the_decider(env: Env) -> None:
    staff_id, _ = env.staff("E001")
    _, someone_elses = env.staff("E002")
    login = start(env)
    for device_id in (someone_elses, env.device(staff_id, revoked=True), "dev_unknown"):
        with pytest.raises(LoginDeviceError) as refused:
            env.logins.approve(login.id, staff_id=staff_id, device_id=device_id)
        assert refused.value.code == "login-device" and refused.value.status == 403
    assert env.logins.get(env.his.id, login.id).state is LoginState.PENDING


def test_frozen_staff_frozen_applications_and_scopes_refuse(env: Env) -> None:
    staff_id, device_id = env.staff("E001")
    lab_id, lab_device = env.staff("L001", department="检验科")
    login = start(env)
    env.services.staff.freeze(env.services.organization_id, "E001", actor="test")
    with pytest.raises(StaffStateError):
        env.logins.approve(login.id, staff_id=staff_id, device_id=device_id)
    env.services.staff.unfreeze(env.services.organization_id, "E001", actor="test")

    lis_login = start(env, env.lis)
    with pytest.raises(LoginNotAllowedError) as refused:
        env.logins.approve(lis_login.id, staff_id=staff_id, device_id=device_id)
    assert refused.value.public_message() == "this application is not open to this staff member"
    assert env.logins.approve(lis_login.id, staff_id=lab_id, device_id=lab_device).staff_id

    env.registry.freeze(env.his.id)
    with pytest.raises(ApplicationFrozenError):
        env.logins.approve(login.id, staff_id=staff_id, device_id=device_id)
    assert env.logins.get(env.his.id, login.id).state is LoginState.PENDING


# -- the signing certificate ----------------------------------------------------------------------


def test_the_profile_is_digital_signature_only_with_its_own_policy() -> None:
    profile = get_profile("login-assertion")
    assert profile.key_usage == frozenset({"digital_signature"})
    assert profile.extended_key_usage == () and not profile.is_ca
    assert profile.key_algorithms == frozenset({KeyAlgorithm.EC_P256})
    # The client library carries the OID itself (it must not need asn1crypto).
    assert profile.policies == (LOGIN_ASSERTION_POLICY,)


def test_credentials_are_made_once_and_renewed_before_they_run_out(env: Env) -> None:
    assertions = env.logins.assertions
    assert env.authority.list(profile="login-assertion") == []
    first = assertions.ensure()
    assert assertions.ensure() == first
    [record] = env.authority.list(profile="login-assertion")
    assert record.id == first.certificate_id
    assert "示例人民医院 Login Assertions" in record.subject
    env.clock.advance(dt.timedelta(days=59))
    assert assertions.ensure() == first
    env.clock.advance(dt.timedelta(days=2))  # 29 days left: a new key and certificate
    renewed = assertions.ensure()
    assert renewed.certificate_id != first.certificate_id and renewed.key_id != first.key_id
    assert assertions.chain()[0] == env.authority.get_by_id(renewed.certificate_id).certificate_der
    env.authority.revoke(
        env.authority.get_by_id(renewed.certificate_id).serial_hex, "keyCompromise", actor="t"
    )
    assert assertions.ensure().certificate_id not in (first.certificate_id, renewed.certificate_id)


# -- the verifier integrators use ---------------------------------------------------------------


def approved_assertion(env: Env) -> str:
    staff_id, device_id = env.staff("E" + new_id("x")[-6:])
    login = start(env)
    token = env.logins.approve(login.id, staff_id=staff_id, device_id=device_id).assertion
    assert token is not None
    return token


def forge(
    env: Env,
    *,
    profile: str = "login-assertion",
    header: dict[str, Any] | None = None,
    payload: dict[str, Any] | None = None,
    chain: Callable[[list[bytes]], list[bytes]] = lambda chain: chain,
    subject: dict[str, str] | None = None,
) -> str:
    """A JWS signed by a fresh key-store key under a certificate of ``profile``; ``chain``
    may rework the x5c list (leaf, issuing CA, root)."""
    key = env.keystore.generate(KeyAlgorithm.EC_P256, label="forger")
    record = env.authority.issue_for_key(
        key.id, subject or {"CN": "Someone", "O": "示例人民医院"}, profile, actor="t"
    )
    x5c = chain([record.certificate_der, *env.authority.chain(record.serial_hex)])
    now = int(env.clock.now().timestamp())
    head = {"alg": "ES256", "typ": JWS_TYPE, "x5c": [base64.b64encode(c).decode() for c in x5c]}
    head.update(header or {})
    body = {"iss": BASE_URL, "aud": env.his.id, "sub": "stf_x", "login_id": "lgn_x"}
    body.update({"iat": now, "exp": now + 300, "jti": "jti_x"}, **(payload or {}))
    signing_input = (
        b64url(json.dumps(head).encode()) + "." + b64url(json.dumps(body).encode())
    ).encode()
    der = env.keystore.sign_digest(
        key.id,
        SignatureScheme.ECDSA_SHA256,
        hashlib.sha256(signing_input).digest(),
        actor="test",
        purpose="test",
    )
    return signing_input.decode() + "." + b64url(der_to_raw(der))


def test_a_well_formed_forgery_of_the_right_profile_verifies(env: Env) -> None:
    # The baseline for the refusals below: only the property under test differs.
    assert env.verify(forge(env), env.his.id)["sub"] == "stf_x"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ({"profile": "tsa", "subject": {"CN": "TSA", "O": "H"}}, "another purpose"),
        (
            {"profile": "staff-signing", "subject": {"CN": "张三", "serialNumber": "E1"}},
            "digitalSignature only",
        ),
        ({"profile": "evidence-log", "subject": {"CN": "Log", "O": "H"}}, "login-assertion one"),
        ({"header": {"alg": "none"}}, "alg must be ES256"),
        ({"header": {"alg": "ES384"}}, "alg must be ES256"),
        ({"header": {"typ": "JWT"}}, "typ must be"),
        ({"header": {"crit": ["exp"]}}, "critical header"),
        ({"header": {"x5c": []}}, "x5c must list"),
        ({"header": {"x5c": ["not base64!"]}}, "x5c[0] is not a certificate"),
        ({"payload": {"aud": "app_other"}}, "another audience"),
        ({"payload": {"exp": "soon"}}, "'exp' must be a whole number"),
        ({"payload": {"iat": 2**40}}, "issued in the future"),
        ({"payload": {"jti": None}}, "'jti' is missing"),
    ],
)
def test_the_verifier_refuses(env: Env, case: dict[str, Any], message: str) -> None:
    with pytest.raises(LoginAssertionError, match=re.escape(message)):
        env.verify(forge(env, **case), env.his.id)


def test_the_verifier_refuses_broken_chains(env: Env) -> None:
    with pytest.raises(LoginAssertionError, match="does not lead to a trust anchor"):
        env.verify(forge(env, chain=lambda c: c[:1]), env.his.id)
    with pytest.raises(LoginAssertionError, match="is not signed by x5c"):
        env.verify(forge(env, chain=lambda c: [c[0], c[2], c[1]]), env.his.id)
    # The root itself may be left out: the anchor signed the last link.
    assert env.verify(forge(env, chain=lambda c: c[:2]), env.his.id)


def test_the_verifier_refuses_tampering_and_other_anchors(env: Env) -> None:
    token = approved_assertion(env)
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    altered = b64url(json.dumps({**claims, "sub": "stf_someone_else"}).encode())
    with pytest.raises(LoginAssertionError, match="signature does not verify"):
        env.verify(f"{header}.{altered}.{signature}", env.his.id)
    with pytest.raises(LoginAssertionError, match="64 octets"):
        env.verify(f"{header}.{payload}.{signature[:-4]}", env.his.id)
    with pytest.raises(LoginAssertionError, match="not base64url"):
        env.verify(f"{header}.{payload}.{signature}=", env.his.id)
    with pytest.raises(LoginAssertionError, match="three parts"):
        env.verify(f"{header}.{payload}", env.his.id)
    with pytest.raises(LoginAssertionError, match="another audience"):
        env.verify(token, env.emr.id)
    with pytest.raises(LoginAssertionError, match="another issuer"):
        env.verify(token, env.his.id, issuer="https://elsewhere.example.org")
    assert env.verify(token, env.his.id, issuer=BASE_URL)["aud"] == env.his.id
    with pytest.raises(LoginAssertionError, match="has expired"):
        env.verify(token, env.his.id, now=env.clock.now() + dt.timedelta(minutes=6, seconds=1))
    # At the edge of the leeway (60 s past exp) it still passes.
    env.verify(token, env.his.id, now=env.clock.now() + dt.timedelta(minutes=6))
    with pytest.raises(LoginAssertionError, match="not valid at"):
        env.verify(token, env.his.id, now=env.clock.now() - dt.timedelta(days=1))
    with pytest.raises(ValueError, match="timezone-aware"):
        env.verify(token, env.his.id, now=dt.datetime(2026, 11, 23, 8, 0))

    now = env.clock.now()
    with pytest.raises(LoginAssertionError, match="does not lead to a trust anchor"):
        verify_login_assertion(token, [_self_signed()], audience=env.his.id, now=now)
    # The issuing CA as the anchor is enough, and PEM works as well as DER.
    issuing = base64.b64decode(json.loads(b64url_decode(header))["x5c"][1])
    pem = (
        "-----BEGIN CERTIFICATE-----\n"
        + base64.encodebytes(issuing).decode()
        + "-----END CERTIFICATE-----\n"
    ).encode()
    assert verify_login_assertion(token, [_self_signed(), pem], audience=env.his.id, now=now)


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _self_signed() -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Elsewhere Root")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)
