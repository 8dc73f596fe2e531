"""Phones bound to staff and the sessions opened on them (issue 4, item 1)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from medsign.clock import FixedClock
from medsign.db.session import Database
from medsign.errors import InputError, NotFoundError
from medsign.evidence import list_events
from medsign.identity.devices import DeviceUnknownError, PhoneSessionError, PhoneSessions
from medsign.identity.enrolment import DeviceKeyProof, pop_message, verify_possession
from tests.identity.support import Services, build_services


@pytest.fixture
def services(database: Database, clock: FixedClock, tmp_path: Path) -> Services:
    return build_services(database, clock, tmp_path)


@pytest.fixture
def phones(database: Database, clock: FixedClock) -> PhoneSessions:
    return PhoneSessions(
        database, clock, lifetime=dt.timedelta(hours=8), idle=dt.timedelta(minutes=30)
    )


def test_a_bound_phone_gets_a_session_that_works_only_with_its_device_token(
    services: Services, phones: PhoneSessions, database: Database
) -> None:
    staff_id, _, _ = services.add_staff("E1")
    binding = phones.bind_device(staff_id, label="Android\x00 phone", enrolment_id="enr_x")
    session = phones.authenticate(binding.session.token, binding.device_token)
    assert session.staff_id == staff_id and session.device_id == binding.device_id
    assert phones.device_for(binding.device_token).label == "Android phone"
    other = phones.bind_device(staff_id, label="second phone", enrolment_id=None)
    # A session cookie copied to another phone does not work there.
    with pytest.raises(PhoneSessionError):
        phones.authenticate(binding.session.token, other.device_token)
    with pytest.raises(PhoneSessionError):
        phones.authenticate(binding.session.token, None)
    with pytest.raises(PhoneSessionError):
        phones.authenticate("forged", binding.device_token)
    types = [e.type for e in list_events(database)]
    assert types.count("device:bind") == 2 and types.count("session:open") == 2


def test_sessions_end_when_idle_and_after_their_lifetime(
    services: Services, phones: PhoneSessions, clock: FixedClock
) -> None:
    staff_id, _, _ = services.add_staff("E2")
    binding = phones.bind_device(staff_id, label="phone", enrolment_id=None)
    clock.advance(dt.timedelta(minutes=29))
    phones.authenticate(binding.session.token, binding.device_token)  # use keeps it alive
    clock.advance(dt.timedelta(minutes=29))
    phones.authenticate(binding.session.token, binding.device_token)
    clock.advance(dt.timedelta(minutes=31))
    with pytest.raises(PhoneSessionError, match="inactivity"):
        phones.authenticate(binding.session.token, binding.device_token)
    with pytest.raises(PhoneSessionError):  # and it stays ended
        phones.authenticate(binding.session.token, binding.device_token)

    fresh = phones.open_session(binding.device_token, method="pin")
    for _ in range(16):  # used every 29 minutes, still ended by the 8-hour lifetime
        clock.advance(dt.timedelta(minutes=29))
        phones.authenticate(fresh.token, binding.device_token)
    clock.advance(dt.timedelta(minutes=29))
    with pytest.raises(PhoneSessionError):
        phones.authenticate(fresh.token, binding.device_token)


def test_revoking_a_device_ends_its_sessions_and_frozen_staff_cannot_sign_in(
    services: Services, phones: PhoneSessions
) -> None:
    staff_id, _, _ = services.add_staff("E3")
    binding = phones.bind_device(staff_id, label="phone", enrolment_id=None)
    with pytest.raises(NotFoundError):
        phones.revoke_device("stf_other", binding.device_id, actor="test")
    phones.revoke_device(staff_id, binding.device_id, actor="test")
    with pytest.raises(PhoneSessionError):
        phones.authenticate(binding.session.token, binding.device_token)
    with pytest.raises(DeviceUnknownError):
        phones.open_session(binding.device_token, method="pin")

    second = phones.bind_device(staff_id, label="phone 2", enrolment_id=None)
    services.staff.freeze(services.organization_id, "E3", actor="test")
    with pytest.raises(PhoneSessionError):
        phones.authenticate(second.session.token, second.device_token)
    with pytest.raises(PhoneSessionError):
        phones.open_session(second.device_token, method="pin")


def test_phone_sessions_refuse_an_idle_timeout_longer_than_the_lifetime(
    database: Database, clock: FixedClock
) -> None:
    with pytest.raises(InputError):
        PhoneSessions(database, clock, lifetime=dt.timedelta(hours=1), idle=dt.timedelta(hours=2))


def _proof(key: ec.EllipticCurvePrivateKey, enrolment_id: str) -> DeviceKeyProof:
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = key.sign(pop_message(enrolment_id, spki), ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    return DeviceKeyProof(spki, r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def test_proof_of_possession_is_bound_to_the_enrolment_and_the_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    proof = _proof(key, "enr_a")
    verify_possession("enr_a", proof)
    with pytest.raises(InputError, match="prove"):
        verify_possession("enr_b", proof)  # replayed into another enrolment
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InputError, match="prove"):
        verify_possession(
            "enr_a", DeviceKeyProof(_proof(other, "enr_a").public_key_der, proof.signature)
        )
    p384 = ec.generate_private_key(ec.SECP384R1())
    spki = p384.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(InputError):
        verify_possession("enr_a", DeviceKeyProof(spki, proof.signature))
    with pytest.raises(InputError):
        verify_possession("enr_a", DeviceKeyProof(b"\x30\x03garbage", proof.signature))
