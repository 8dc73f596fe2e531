"""Passkeys as an intention method, against a software authenticator with real keys.

Nothing of the verification is mocked: responses are CBOR and JSON built byte by byte and
signed with P-256 keys, and the service checks them with the webauthn package.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import rfc8785
from sqlalchemy import func, select
from tests.intent.soft_authenticator import UP, UV, SoftAuthenticator, b64url, unb64url

from medsign.clock import FixedClock
from medsign.db.session import Database
from medsign.db.tables import (
    IntentAttemptRow,
    OrganizationRow,
    PasskeyCredentialRow,
    StaffDeviceRow,
    StaffRow,
    StaffSessionRow,
)
from medsign.errors import (
    ConfigurationError,
    InputError,
    NotFoundError,
    PasskeyAssertionError,
    PasskeyChallengeError,
    PasskeyClonedError,
    PasskeyDuplicateError,
    PasskeyNotRegisteredError,
    PasskeyOriginError,
    PasskeyRegistrationExpiredError,
    PasskeyRegistrationInvalidError,
    PasskeyRegistrationMissingError,
    PasskeyRevokedError,
    PasskeySignatureError,
    PasskeyUnknownError,
    PasskeyUserNotVerifiedError,
    StaffStateError,
    StateError,
)
from medsign.evidence import list_events
from medsign.intent.challenges import (
    BoundItem,
    Challenge,
    IntentChallenges,
    IntentExpiredError,
)
from medsign.intent.passkeys import (
    INTENT_LABEL,
    Passkey,
    PasskeyService,
    _parse_assertion,
    check_relying_party,
    intent_challenge,
    user_handle,
)

RP_ID = "sign.example.org"
ORIGIN = "https://sign.example.org"
ITEMS = [BoundItem(f"sig_{i}", "sha256", hashlib.sha256(bytes([i])).digest()) for i in range(2)]
OTHER_ITEMS = [BoundItem("sig_9", "sha256", hashlib.sha256(b"other").digest())]


@dataclass
class Person:
    staff_id: str
    session_id: str


@dataclass
class Ward:
    database: Database
    clock: FixedClock
    service: PasskeyService
    alice: Person
    bob: Person

    def challenge(self, person: Person, items: Sequence[BoundItem] = ITEMS) -> Challenge:
        with self.database.session() as session:
            return IntentChallenges().start(
                session,
                self.clock.now(),
                staff_id=person.staff_id,
                application_id=None,
                method="passkey",
                items=items,
            )

    def register(
        self, person: Person, authenticator: SoftAuthenticator, label: str = "ward phone"
    ) -> Passkey:
        options = self.service.registration_options(person.session_id, person.staff_id)
        return self.service.finish_registration(
            person.session_id, person.staff_id, authenticator.create(options), label=label
        )

    def attempts(self) -> list[str]:
        with self.database.session() as session:
            return list(
                session.scalars(
                    select(IntentAttemptRow.outcome)
                    .where(IntentAttemptRow.method == "passkey")
                    .order_by(IntentAttemptRow.id)
                )
            )


def add_person(database: Database, now: dt.datetime, key: str, employee_no: str) -> Person:
    with database.session() as session:
        session.add(
            StaffRow(
                id=f"stf_{key}",
                organization_id="org_1",
                employee_no=employee_no,
                name="张三" if key == "a" else "李四",
                created_at=now,
                updated_at=now,
            )
        )
        session.flush()
        session.add(
            StaffDeviceRow(
                id=f"dev_{key}",
                staff_id=f"stf_{key}",
                label="phone",
                token_sha256=hashlib.sha256(f"device-{key}".encode()).hexdigest(),
                created_at=now,
                last_seen_at=now,
            )
        )
        session.flush()
        session.add(
            StaffSessionRow(
                id=f"ses_{key}",
                staff_id=f"stf_{key}",
                device_id=f"dev_{key}",
                token_sha256=hashlib.sha256(f"session-{key}".encode()).hexdigest(),
                method="pin",
                created_at=now,
                expires_at=now + dt.timedelta(hours=8),
                last_seen_at=now,
            )
        )
    return Person(f"stf_{key}", f"ses_{key}")


@pytest.fixture
def ward(database: Database, clock: FixedClock) -> Ward:
    now = clock.now()
    with database.session() as session:
        session.add(OrganizationRow(id="org_1", code="h", name="H", demo=False, created_at=now))
    alice = add_person(database, now, "a", "E1001")
    bob = add_person(database, now, "b", "E1002")
    service = PasskeyService(database, clock, rp_id=RP_ID, rp_name="示例人民医院", origins=[ORIGIN])
    return Ward(database, clock, service, alice, bob)


def authenticator(*, counting: bool = True) -> SoftAuthenticator:
    return SoftAuthenticator(origin=ORIGIN, counting=counting)


# -- registration ------------------------------------------------------------------------------


def test_registration_options_ask_for_a_verified_resident_passkey(ward: Ward) -> None:
    options = ward.service.registration_options(ward.alice.session_id, ward.alice.staff_id)

    assert options["rp"] == {"id": RP_ID, "name": "示例人民医院"}
    assert unb64url(options["user"]["id"]) == user_handle(ward.alice.staff_id)
    assert options["user"]["name"] == options["user"]["displayName"] == "张三"
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-7, -257]
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["attestation"] == "none"
    assert options["timeout"] == 300_000
    assert options["excludeCredentials"] == []
    json.dumps(options)  # JSON-ready as it is
    with ward.database.session() as session:
        row = session.get(StaffSessionRow, ward.alice.session_id)
        assert row is not None
        assert row.webauthn_challenge == options["challenge"]
        assert row.webauthn_challenge_expires_at == ward.clock.now() + dt.timedelta(minutes=5)


def test_user_handle_is_opaque_and_stable() -> None:
    handle = user_handle("stf_a")
    assert handle == user_handle("stf_a") != user_handle("stf_b")
    assert len(handle) == 32
    assert b"stf_a" not in handle and b"E1001" not in handle


def test_registration_round_trip(ward: Ward) -> None:
    soft = authenticator()
    passkey = ward.register(ward.alice, soft, label="iPhone")

    assert passkey.staff_id == ward.alice.staff_id
    assert passkey.label == "iPhone"
    assert passkey.id.startswith("pk_")
    assert passkey.created_at == ward.clock.now()
    assert passkey.last_used_at is None and passkey.revoked_at is None
    assert ward.service.list_passkeys(ward.alice.staff_id) == [passkey]
    assert ward.service.list_passkeys(ward.bob.staff_id) == []
    with ward.database.session() as session:
        row = session.get(PasskeyCredentialRow, passkey.id)
        assert row is not None
        assert row.credential_id == soft.id
        assert row.public_key == soft.cose_key()
        assert row.sign_count == 0
        assert json.loads(row.transports) == ["internal", "hybrid"]
        pending = session.get(StaffSessionRow, ward.alice.session_id)
        assert pending is not None and pending.webauthn_challenge is None

    (event,) = list_events(ward.database, event_type="passkey:register")
    assert event.record["passkey_id"] == passkey.id
    assert event.record["staff_id"] == ward.alice.staff_id
    assert event.record["credential_sha256"] == hashlib.sha256(soft.credential_id).hexdigest()
    assert "iPhone" not in json.dumps(event.record, ensure_ascii=False)

    # A second registration excludes the passkey already there.
    options = ward.service.registration_options(ward.alice.session_id, ward.alice.staff_id)
    assert options["excludeCredentials"] == [
        {"id": soft.id, "type": "public-key", "transports": ["internal", "hybrid"]}
    ]


def test_registration_over_another_challenge_is_refused_and_uses_the_challenge(
    ward: Ward,
) -> None:
    soft = authenticator()
    options = ward.service.registration_options(ward.alice.session_id, ward.alice.staff_id)
    forged = soft.create(options, challenge=b"\x01" * 32)
    with pytest.raises(PasskeyRegistrationInvalidError):
        ward.service.finish_registration(
            ward.alice.session_id, ward.alice.staff_id, forged, label="x"
        )
    # The failed try used the challenge up: even the right answer comes too late now.
    with pytest.raises(PasskeyRegistrationMissingError):
        ward.service.finish_registration(
            ward.alice.session_id, ward.alice.staff_id, soft.create(options), label="x"
        )
    assert ward.service.list_passkeys(ward.alice.staff_id) == []


def test_registration_challenge_is_used_once(ward: Ward) -> None:
    soft = authenticator()
    options = ward.service.registration_options(ward.alice.session_id, ward.alice.staff_id)
    response = soft.create(options)
    ward.service.finish_registration(
        ward.alice.session_id, ward.alice.staff_id, response, label="x"
    )
    with pytest.raises(PasskeyRegistrationMissingError):
        ward.service.finish_registration(
            ward.alice.session_id, ward.alice.staff_id, json.dumps(response), label="x"
        )


def test_registration_without_options_is_refused(ward: Ward) -> None:
    options = {"challenge": b64url(b"\x00" * 32), "rp": {"id": RP_ID}, "user": {"id": "AA"}}
    with pytest.raises(PasskeyRegistrationMissingError):
        ward.service.finish_registration(
            ward.alice.session_id,
            ward.alice.staff_id,
            authenticator().create(options),
            label="x",
        )


def test_registration_challenge_expires(ward: Ward) -> None:
    soft = authenticator()
    options = ward.service.registration_options(ward.alice.session_id, ward.alice.staff_id)
    ward.clock.advance(dt.timedelta(minutes=5))
    with pytest.raises(PasskeyRegistrationExpiredError):
        ward.service.finish_registration(
            ward.alice.session_id, ward.alice.staff_id, soft.create(options), label="x"
        )
    with pytest.raises(PasskeyRegistrationMissingError):
        ward.service.finish_registration(
            ward.alice.session_id, ward.alice.staff_id, soft.create(options), label="x"
        )


@pytest.mark.parametrize(
    "change",
    [
        {"origin": "https://evil.example.net"},
        {"rp_id": "example.net"},
        {"flags": UP | 0x40},  # no UV
        {"flags": UV | 0x40},  # no UP
    ],
    ids=["origin", "rp-id", "no-uv", "no-up"],
)
def test_registration_checks_origin_rp_and_user_verification(
    ward: Ward, change: dict[str, Any]
) -> None:
    options = ward.service.registration_options(ward.alice.session_id, ward.alice.staff_id)
    with pytest.raises(PasskeyRegistrationInvalidError):
        ward.service.finish_registration(
            ward.alice.session_id,
            ward.alice.staff_id,
            authenticator().create(options, **change),
            label="x",
        )


@pytest.mark.parametrize("response", ["", "[]", "{", "x" * 70_000, '{"id": 1}'])
def test_malformed_registration_is_refused(ward: Ward, response: str) -> None:
    ward.service.registration_options(ward.alice.session_id, ward.alice.staff_id)
    with pytest.raises(PasskeyRegistrationInvalidError):
        ward.service.finish_registration(
            ward.alice.session_id, ward.alice.staff_id, response, label="x"
        )


def test_registration_needs_the_staff_members_own_open_session(ward: Ward) -> None:
    with pytest.raises(NotFoundError):
        ward.service.registration_options(ward.bob.session_id, ward.alice.staff_id)
    with ward.database.session() as session:
        row = session.get(StaffSessionRow, ward.alice.session_id)
        assert row is not None
        row.revoked_at = ward.clock.now()
    with pytest.raises(NotFoundError):
        ward.service.registration_options(ward.alice.session_id, ward.alice.staff_id)


def test_same_passkey_cannot_be_registered_twice(ward: Ward) -> None:
    soft = authenticator()
    ward.register(ward.alice, soft)
    with pytest.raises(PasskeyDuplicateError):
        ward.register(ward.alice, soft)
    with pytest.raises(PasskeyDuplicateError):
        ward.register(ward.bob, soft)


@pytest.mark.parametrize("label", ["", "   ", "x" * 129, "a\nb"])
def test_label_is_checked(ward: Ward, label: str) -> None:
    with pytest.raises(InputError):
        ward.register(ward.alice, authenticator(), label=label)


# -- the intention challenge -----------------------------------------------------------------


def test_intent_challenge_is_the_hash_of_label_id_and_binding(ward: Ward) -> None:
    challenge = ward.challenge(ward.alice)
    expected = hashlib.sha256(
        rfc8785.dumps([INTENT_LABEL, challenge.id, challenge.binding_digest])
    ).digest()
    assert intent_challenge(challenge) == ward.service.intent_challenge(challenge) == expected
    # Other digests, or the same digests under another challenge, give another value.
    other_digests = dataclasses.replace(challenge, binding_digest="00" * 32)
    other_id = dataclasses.replace(challenge, id="int_other")
    values = {intent_challenge(c) for c in (challenge, other_digests, other_id)}
    assert len(values) == 3


def test_authentication_options(ward: Ward) -> None:
    soft = authenticator()
    ward.register(ward.alice, soft)
    challenge = ward.challenge(ward.alice)
    options = ward.service.authentication_options(challenge)
    assert unb64url(options["challenge"]) == intent_challenge(challenge)
    assert options["rpId"] == RP_ID
    assert options["userVerification"] == "required"
    assert options["allowCredentials"] == [
        {"id": soft.id, "type": "public-key", "transports": ["internal", "hybrid"]}
    ]
    assert options["timeout"] == 300_000
    json.dumps(options)


def test_authentication_options_need_a_passkey(ward: Ward) -> None:
    with pytest.raises(PasskeyNotRegisteredError):
        ward.service.authentication_options(ward.challenge(ward.alice))


# -- assertions -------------------------------------------------------------------------------


def test_assertion_bound_to_the_challenge_confirms(ward: Ward) -> None:
    soft = authenticator()
    passkey = ward.register(ward.alice, soft)
    challenge = ward.challenge(ward.alice)
    ward.clock.advance(dt.timedelta(seconds=20))
    assertion = soft.get(ward.service.authentication_options(challenge))

    ward.service.verify_assertion(challenge, assertion, client="phone")

    (used,) = ward.service.list_passkeys(ward.alice.staff_id)
    assert used.id == passkey.id and used.last_used_at == ward.clock.now()
    with ward.database.session() as session:
        row = session.get(PasskeyCredentialRow, passkey.id)
        assert row is not None and row.sign_count == 1
    assert ward.attempts() == ["confirmed"]
    (event,) = list_events(ward.database, event_type="intent:attempt")
    assert event.record["outcome"] == "confirmed"
    assert event.record["passkey_id"] == passkey.id
    assert event.record["challenge_id"] == challenge.id
    assert event.record["method"] == "passkey"


def test_check_takes_the_assertion_json_text(ward: Ward) -> None:
    soft = authenticator()
    ward.register(ward.alice, soft)
    challenge = ward.challenge(ward.alice)
    ward.service.begin(challenge)
    text = json.dumps(soft.get(ward.service.authentication_options(challenge)))
    ward.service.check(challenge, text, client="phone")
    assert ward.attempts() == ["confirmed"]


def test_assertion_for_another_challenge_is_refused(ward: Ward) -> None:
    soft = authenticator()
    ward.register(ward.alice, soft)
    asked = ward.challenge(ward.alice)
    other = ward.challenge(ward.alice, OTHER_ITEMS)
    assertion = soft.get(ward.service.authentication_options(asked))

    with pytest.raises(PasskeyChallengeError):
        ward.service.verify_assertion(other, assertion, client="phone")
    # Same challenge id, other digests: refused as well.
    swapped = dataclasses.replace(asked, binding_digest=other.binding_digest)
    with pytest.raises(PasskeyChallengeError):
        ward.service.verify_assertion(swapped, assertion, client="phone")
    ward.service.verify_assertion(asked, assertion, client="phone")
    assert ward.attempts() == ["passkey-wrong-challenge"] * 2 + ["confirmed"]


@pytest.mark.parametrize("flags", [UP, UV, 0], ids=["no-uv", "no-up", "none"])
def test_assertion_without_user_verification_is_refused(ward: Ward, flags: int) -> None:
    soft = authenticator()
    ward.register(ward.alice, soft)
    challenge = ward.challenge(ward.alice)
    assertion = soft.get(ward.service.authentication_options(challenge), flags=flags)
    with pytest.raises(PasskeyUserNotVerifiedError):
        ward.service.verify_assertion(challenge, assertion, client="phone")
    assert ward.attempts() == ["passkey-user-not-verified"]


@pytest.mark.parametrize(
    "change",
    [
        {"origin": "https://sign.example.org.evil.net"},
        {"origin": "http://sign.example.org"},
        {"rp_id": "example.org"},
        {"cross_origin": True},
    ],
    ids=["other-origin", "plain-http", "other-rp-id", "cross-origin-frame"],
)
def test_assertion_for_another_site_is_refused(ward: Ward, change: dict[str, Any]) -> None:
    soft = authenticator()
    ward.register(ward.alice, soft)
    challenge = ward.challenge(ward.alice)
    assertion = soft.get(ward.service.authentication_options(challenge), **change)
    with pytest.raises(PasskeyOriginError):
        ward.service.verify_assertion(challenge, assertion, client="phone")
    assert ward.attempts() == ["passkey-wrong-origin"]


def test_bad_signature_is_refused(ward: Ward) -> None:
    soft = authenticator()
    ward.register(ward.alice, soft)
    challenge = ward.challenge(ward.alice)
    options = ward.service.authentication_options(challenge)

    impostor = authenticator().key
    with pytest.raises(PasskeySignatureError):
        ward.service.verify_assertion(challenge, soft.get(options, key=impostor), client="p")
    tampered = soft.get(options)
    data = bytearray(unb64url(tampered["response"]["authenticatorData"]))
    data[36] ^= 0x01  # a different signature count than the one signed
    tampered["response"]["authenticatorData"] = b64url(bytes(data))
    with pytest.raises(PasskeySignatureError):
        ward.service.verify_assertion(challenge, tampered, client="p")
    assert ward.attempts() == ["passkey-signature-invalid"] * 2


def test_sign_count_going_backwards_is_refused(ward: Ward) -> None:
    soft = authenticator()
    passkey = ward.register(ward.alice, soft)
    challenge = ward.challenge(ward.alice)
    options = ward.service.authentication_options(challenge)
    ward.service.verify_assertion(challenge, soft.get(options, count=7), client="p")

    for count in (7, 3, 0):
        with pytest.raises(PasskeyClonedError):
            ward.service.verify_assertion(challenge, soft.get(options, count=count), client="p")
    ward.service.verify_assertion(challenge, soft.get(options, count=8), client="p")
    with ward.database.session() as session:
        row = session.get(PasskeyCredentialRow, passkey.id)
        assert row is not None and row.sign_count == 8
    assert ward.attempts() == ["confirmed", *["passkey-cloned"] * 3, "confirmed"]


def test_counter_races_and_revocation_races_are_lost_by_the_late_assertion(ward: Ward) -> None:
    # Two assertions checked against the same stored state, as two requests handled at once
    # would be: the private steps are driven one by one to force the interleaving.
    soft = authenticator()
    passkey = ward.register(ward.alice, soft)
    challenge = ward.challenge(ward.alice)
    options = ward.service.authentication_options(challenge)
    now = ward.clock.now()
    checked = []
    for count in (1, 2):
        parsed = _parse_assertion(soft.get(options, count=count))
        stored = ward.service._find(challenge, parsed, now)
        checked.append((stored, ward.service._check(challenge, parsed, stored)))
    ward.service._advance(challenge, *checked[1], now, "p")
    with pytest.raises(PasskeyClonedError):
        ward.service._advance(challenge, *checked[0], now, "p")

    parsed = _parse_assertion(soft.get(options, count=3))
    stored = ward.service._find(challenge, parsed, now)
    count = ward.service._check(challenge, parsed, stored)
    ward.service.revoke(ward.alice.staff_id, passkey.id, actor="admin")
    with pytest.raises(PasskeyRevokedError):
        ward.service._advance(challenge, stored, count, now, "p")
    assert ward.attempts() == ["confirmed", "passkey-cloned", "passkey-revoked"]


def test_counter_that_stays_zero_is_accepted(ward: Ward) -> None:
    soft = authenticator(counting=False)
    ward.register(ward.alice, soft)
    challenge = ward.challenge(ward.alice)
    options = ward.service.authentication_options(challenge)
    ward.service.verify_assertion(challenge, soft.get(options), client="p")
    ward.service.verify_assertion(challenge, soft.get(options), client="p")
    assert ward.attempts() == ["confirmed", "confirmed"]


def test_revoked_passkey_never_verifies_again(ward: Ward) -> None:
    soft = authenticator()
    passkey = ward.register(ward.alice, soft)
    challenge = ward.challenge(ward.alice)
    options = ward.service.authentication_options(challenge)
    ward.service.verify_assertion(challenge, soft.get(options), client="p")

    with pytest.raises(NotFoundError):
        ward.service.revoke(ward.bob.staff_id, passkey.id, actor="staff:stf_b")
    revoked = ward.service.revoke(ward.alice.staff_id, passkey.id, actor="staff:stf_a")
    assert revoked.revoked_at == ward.clock.now()
    with pytest.raises(StateError):
        ward.service.revoke(ward.alice.staff_id, passkey.id, actor="staff:stf_a")

    with pytest.raises(PasskeyRevokedError):
        ward.service.verify_assertion(challenge, soft.get(options), client="p")
    with pytest.raises(PasskeyNotRegisteredError):
        ward.service.authentication_options(challenge)
    (event,) = list_events(ward.database, event_type="passkey:revoke")
    assert event.record["passkey_id"] == passkey.id
    assert event.record["actor"] == "staff:stf_a"
    assert ward.attempts() == ["confirmed", "passkey-revoked"]


def test_unknown_credential_is_refused(ward: Ward) -> None:
    ward.register(ward.alice, authenticator())
    challenge = ward.challenge(ward.alice)
    stranger = authenticator()
    with pytest.raises(PasskeyUnknownError):
        ward.service.verify_assertion(
            challenge, stranger.get(ward.service.authentication_options(challenge)), client="p"
        )
    assert ward.attempts() == ["passkey-unknown"]


def test_another_staff_members_passkey_is_refused(ward: Ward) -> None:
    ward.register(ward.alice, authenticator())
    bobs = authenticator()
    ward.register(ward.bob, bobs)
    challenge = ward.challenge(ward.alice)
    assertion = bobs.get(ward.service.authentication_options(challenge))
    with pytest.raises(PasskeyUnknownError):
        ward.service.verify_assertion(challenge, assertion, client="p")
    assert ward.attempts() == ["passkey-unknown"]
    (event,) = list_events(ward.database, event_type="intent:attempt")
    assert "passkey_id" not in event.record


def test_assertion_for_another_user_handle_is_refused(ward: Ward) -> None:
    soft = authenticator()
    ward.register(ward.alice, soft)
    soft.user_handle = user_handle(ward.bob.staff_id)
    challenge = ward.challenge(ward.alice)
    with pytest.raises(PasskeyAssertionError):
        ward.service.verify_assertion(
            challenge, soft.get(ward.service.authentication_options(challenge)), client="p"
        )


@pytest.mark.parametrize(
    "assertion", ["", "null", "[1]", "{", "x" * 70_000, '{"id": "AA", "rawId": "AA"}']
)
def test_malformed_assertion_is_refused(ward: Ward, assertion: str) -> None:
    ward.register(ward.alice, authenticator())
    with pytest.raises(PasskeyAssertionError) as info:
        ward.service.check(ward.challenge(ward.alice), assertion, client="p")
    assert type(info.value) is PasskeyAssertionError
    assert ward.attempts() == ["passkey-assertion-invalid"]


def test_expired_challenge_is_refused(ward: Ward) -> None:
    soft = authenticator()
    ward.register(ward.alice, soft)
    challenge = ward.challenge(ward.alice)
    assertion = soft.get(ward.service.authentication_options(challenge))
    ward.clock.advance(dt.timedelta(minutes=5))
    with pytest.raises(IntentExpiredError):
        ward.service.verify_assertion(challenge, assertion, client="p")
    with pytest.raises(IntentExpiredError):
        ward.service.authentication_options(challenge)
    assert ward.attempts() == ["intent-expired"]


def test_frozen_staff_member_cannot_confirm(ward: Ward) -> None:
    soft = authenticator()
    ward.register(ward.alice, soft)
    challenge = ward.challenge(ward.alice)
    assertion = soft.get(ward.service.authentication_options(challenge))
    with ward.database.session() as session:
        staff = session.get(StaffRow, ward.alice.staff_id)
        assert staff is not None
        staff.state = "frozen"
    with pytest.raises(StaffStateError):
        ward.service.verify_assertion(challenge, assertion, client="p")
    assert ward.attempts() == ["staff-state"]


def test_every_attempt_is_recorded(ward: Ward) -> None:
    soft = authenticator()
    ward.register(ward.alice, soft)
    challenge = ward.challenge(ward.alice)
    options = ward.service.authentication_options(challenge)
    tries: list[dict[str, Any] | str] = [
        "garbage",
        soft.get(options, flags=UP),
        soft.get(options, origin="https://evil.example.net"),
        authenticator().get(options),
        soft.get(options, key=authenticator().key),
        soft.get(options),
        soft.get(options, count=1),
    ]
    failures = 0
    for attempt in tries:
        try:
            ward.service.verify_assertion(challenge, attempt, client="phone" * 100)
        except (PasskeyAssertionError, PasskeyUnknownError):
            failures += 1
    assert failures == 6

    with ward.database.session() as session:
        rows = session.scalars(select(IntentAttemptRow).order_by(IntentAttemptRow.id)).all()
        assert [r.outcome for r in rows] == [
            "passkey-assertion-invalid",
            "passkey-user-not-verified",
            "passkey-wrong-origin",
            "passkey-unknown",
            "passkey-signature-invalid",
            "confirmed",
            "passkey-cloned",
        ]
        assert {(r.method, r.staff_id, r.challenge_id) for r in rows} == {
            ("passkey", ward.alice.staff_id, challenge.id)
        }
        assert all(len(r.client) == 200 for r in rows)
        assert session.scalar(select(func.count()).select_from(IntentAttemptRow)) == 7
    events = list_events(ward.database, event_type="intent:attempt")
    assert [e.record["outcome"] for e in events] == [r.outcome for r in rows]


# -- configuration ----------------------------------------------------------------------------


def test_relying_party_configuration() -> None:
    assert check_relying_party("Sign.Example.org", ["https://sign.example.org/"]) == (
        "sign.example.org",
        ("https://sign.example.org",),
    )
    assert check_relying_party("example.org", ["https://sign.example.org:8443"]) == (
        "example.org",
        ("https://sign.example.org:8443",),
    )
    assert check_relying_party("localhost", ["http://localhost:8000"])[1] == (
        "http://localhost:8000",
    )
    for rp_id, origins in [
        ("127.0.0.1", ["http://127.0.0.1:8000"]),
        ("sign.example.org", ["http://sign.example.org"]),
        ("sign.example.org", ["https://other.example.org"]),
        ("sign.example.org", ["https://sign.example.org/m/"]),
        ("sign.example.org", []),
        ("https://sign.example.org", ["https://sign.example.org"]),
        ("", ["https://sign.example.org"]),
    ]:
        with pytest.raises(ConfigurationError):
            check_relying_party(rp_id, origins)
