"""CRL publication: structure, numbering, status changes, scheduling, and OpenSSL interop."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import x509
from crl_ocsp_support import (
    FAMILIES,
    FAMILY_IDS,
    PKI,
    make_pki,
    needs_openssl,
    openssl,
    real_time_clock,
)
from sqlalchemy import select

from medsign.ca.crl import CRLPublisher
from medsign.clock import FixedClock
from medsign.crypto import AlgorithmFamily, PublicKey, verify
from medsign.crypto.x509alg import scheme_from_algorithm
from medsign.db import Database
from medsign.db.tables import CertificateAuthorityRow, CRLRow
from medsign.errors import NotFoundError


@pytest.fixture(params=FAMILIES, ids=FAMILY_IDS)
def pki(
    request: pytest.FixtureRequest, database: Database, clock: FixedClock, tmp_path: Path
) -> PKI:
    return make_pki(request.param, database, clock, tmp_path)


@pytest.fixture
def p256(database: Database, clock: FixedClock, tmp_path: Path) -> PKI:
    return make_pki(AlgorithmFamily.P256, database, clock, tmp_path)


def load(der: bytes) -> asn1_crl.CertificateList:
    return asn1_crl.CertificateList.load(der, strict=True)


def verify_crl(der: bytes, issuer_der: bytes) -> asn1_crl.CertificateList:
    """medsign's own check of the CRL signature (the only one for SM2, see test_openssl_*)."""
    crl = load(der)
    tbs = crl["tbs_cert_list"]
    assert tbs["signature"].dump() == crl["signature_algorithm"].dump()
    issuer = x509.Certificate.load(issuer_der)
    verify(
        PublicKey.from_der(issuer.public_key.dump()),
        scheme_from_algorithm(crl["signature_algorithm"]),
        tbs.dump(),
        crl["signature"].native,
    )
    return crl


def entries(crl: asn1_crl.CertificateList) -> dict[int, str | None]:
    """serial → reason name (None when the entry carries no reason)."""
    return {
        entry["user_certificate"].native: (
            entry.crl_reason_value.native if entry.crl_reason_value is not None else None
        )
        for entry in crl["tbs_cert_list"]["revoked_certificates"]
    }


def crl_number(crl: asn1_crl.CertificateList) -> int:
    return int(crl.crl_number_value.native)


def test_empty_crl_structure(pki: PKI) -> None:
    der = pki.crl.publish(pki.issuing.id)
    crl = verify_crl(der, pki.issuing.certificate_der)
    tbs = crl["tbs_cert_list"]
    issuer_cert = pki.issuing.certificate
    assert tbs["version"].native == "v2"
    assert tbs["issuer"].dump() == issuer_cert.subject.dump()
    assert tbs["this_update"].native == pki.clock.now()
    assert tbs["next_update"].native - tbs["this_update"].native == dt.timedelta(hours=24)
    assert crl_number(crl) == 1
    assert crl.authority_key_identifier == issuer_cert.key_identifier
    # RFC 5280 §5.1.2.6: no entries means the field is absent, not an empty SEQUENCE.
    assert not tbs["revoked_certificates"].native
    assert entries(crl) == {}


def test_crl_is_stored(pki: PKI) -> None:
    der = pki.crl.publish(pki.issuing.id)
    with pki.database.session() as session:
        rows = session.scalars(select(CRLRow).where(CRLRow.ca_id == pki.issuing.id)).all()
        assert [(row.crl_number, row.der) for row in rows] == [(1, der)]
        assert rows[0].next_update - rows[0].this_update == dt.timedelta(hours=24)
        ca = session.get(CertificateAuthorityRow, pki.issuing.id)
        assert ca is not None and ca.crl_number == 1


def test_revocation_hold_and_release(pki: PKI) -> None:
    compromised = pki.issue_leaf("Compromised")
    unspecified = pki.issue_leaf("Unspecified")
    held = pki.issue_leaf("Held")
    untouched = pki.issue_leaf("Untouched")

    pki.authority.revoke(compromised.serial_hex, "keyCompromise", actor="test")
    pki.authority.revoke(unspecified.serial_hex, "unspecified", actor="test")
    pki.authority.hold(held.serial_hex, actor="test")

    crl = verify_crl(pki.crl.current(pki.issuing.id), pki.issuing.certificate_der)
    assert entries(crl) == {
        int(compromised.serial_hex, 16): "key_compromise",
        # unspecified is left out of the entry, as RFC 5280 §5.3.1 recommends
        int(unspecified.serial_hex, 16): None,
        int(held.serial_hex, 16): "certificate_hold",
    }
    assert int(untouched.serial_hex, 16) not in entries(crl)
    by_serial = {
        entry["user_certificate"].native: entry
        for entry in crl["tbs_cert_list"]["revoked_certificates"]
    }
    revoked_at = pki.authority.get(compromised.serial_hex).revoked_at
    assert by_serial[int(compromised.serial_hex, 16)]["revocation_date"].native == revoked_at

    pki.authority.release(held.serial_hex, actor="test")
    crl = verify_crl(pki.crl.current(pki.issuing.id), pki.issuing.certificate_der)
    assert int(held.serial_hex, 16) not in entries(crl)
    assert len(entries(crl)) == 2


def test_status_listener_publishes_immediately(p256: PKI) -> None:
    leaf = p256.issue_leaf()
    first = load(p256.crl.publish(p256.issuing.id))
    p256.authority.revoke(leaf.serial_hex, "superseded", actor="test")
    latest = load(p256.crl.current(p256.issuing.id))
    assert crl_number(latest) == crl_number(first) + 1
    assert entries(latest) == {int(leaf.serial_hex, 16): "superseded"}


def test_crl_numbers_increase(p256: PKI) -> None:
    numbers = [crl_number(load(p256.crl.publish(p256.issuing.id))) for _ in range(4)]
    assert numbers == [1, 2, 3, 4]
    # Each CA counts on its own.
    assert crl_number(load(p256.crl.publish(p256.root.id))) == 1


def test_concurrent_publishes_never_share_a_number(p256: PKI) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def publish() -> None:
        try:
            for _ in range(3):
                results.append(crl_number(load(p256.crl.publish(p256.issuing.id))))
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(results) == list(range(1, 13))
    with p256.database.session() as session:
        stored = session.scalars(
            select(CRLRow.crl_number).where(CRLRow.ca_id == p256.issuing.id)
        ).all()
    assert sorted(stored) == list(range(1, 13))


def test_current_reuses_until_expiry(p256: PKI) -> None:
    first = p256.crl.current(p256.issuing.id)
    assert crl_number(load(first)) == 1
    p256.clock.advance(dt.timedelta(hours=23))
    assert p256.crl.current(p256.issuing.id) == first
    p256.clock.advance(dt.timedelta(hours=1))
    renewed = load(p256.crl.current(p256.issuing.id))
    assert crl_number(renewed) == 2
    assert renewed["tbs_cert_list"]["this_update"].native == p256.clock.now()


def test_refresh_due_at_half_life(p256: PKI) -> None:
    # Neither CA has a CRL yet: both are due.
    assert sorted(p256.crl.refresh_due()) == sorted([p256.root.id, p256.issuing.id])
    assert p256.crl.refresh_due() == []
    p256.clock.advance(dt.timedelta(hours=11))
    assert p256.crl.refresh_due() == []
    p256.clock.advance(dt.timedelta(hours=1))
    assert sorted(p256.crl.refresh_due()) == sorted([p256.root.id, p256.issuing.id])
    # An explicit time overrides the clock.
    later = p256.clock.now() + dt.timedelta(hours=13)
    assert sorted(p256.crl.refresh_due(later)) == sorted([p256.root.id, p256.issuing.id])


def test_root_crl_lists_revoked_issuing_ca(p256: PKI) -> None:
    issuing_row = p256.authority.list(issuer_ca_id=p256.root.id, profile="issuing-ca")[0]
    p256.authority.revoke(issuing_row.serial_hex, "cACompromise", actor="test")
    crl = verify_crl(p256.crl.current(p256.root.id), p256.root.certificate_der)
    assert entries(crl) == {int(issuing_row.serial_hex, 16): "ca_compromise"}
    # The issuing CA's own CRL is unaffected.
    assert entries(load(p256.crl.current(p256.issuing.id))) == {}


def test_unknown_ca(p256: PKI) -> None:
    with pytest.raises(NotFoundError):
        p256.crl.publish("ca_missing")
    with pytest.raises(NotFoundError):
        p256.crl.current("ca_missing")


def test_validity_must_be_positive(p256: PKI) -> None:
    with pytest.raises(ValueError):
        CRLPublisher(p256.database, p256.keystore, p256.clock, validity=dt.timedelta(0))


def test_crl_signing_is_recorded_as_key_use(p256: PKI) -> None:
    from medsign.keys.usage import key_uses

    p256.crl.publish(p256.issuing.id)
    uses = key_uses(p256.database, p256.issuing.key_id, limit=5)
    assert uses[0].purpose == "crl"
    assert uses[0].actor == "ca:crl"


# -- OpenSSL interop ------------------------------------------------------------------------

OPENSSL_VERIFIES = [AlgorithmFamily.RSA, AlgorithmFamily.P256]


@pytest.fixture(params=FAMILIES, ids=FAMILY_IDS)
def live_pki(request: pytest.FixtureRequest, database: Database, tmp_path: Path) -> PKI:
    return make_pki(request.param, database, real_time_clock(), tmp_path)


def crl_pem(pki: PKI, name: str = "crl.pem") -> Path:
    return pki.write(name, pki.crl.current(pki.issuing.id), label="X509 CRL")


def verify_leaf(pki: PKI, leaf_pem: Path, crl_path: Path) -> str:
    result = openssl(
        "verify",
        "-crl_check",
        "-CAfile",
        pki.root_pem,
        "-untrusted",
        pki.issuing_pem,
        "-CRLfile",
        crl_path,
        leaf_pem,
        check=False,
    )
    return result.stdout + result.stderr


@pytest.mark.interop
@needs_openssl
def test_openssl_parses_crl(live_pki: PKI) -> None:
    leaf = live_pki.issue_leaf()
    live_pki.authority.revoke(leaf.serial_hex, "keyCompromise", actor="test")
    path = live_pki.write("crl.der", live_pki.crl.current(live_pki.issuing.id))
    text = openssl("crl", "-inform", "DER", "-in", path, "-text", "-noout").stdout
    assert "Version 2" in text
    assert "X509v3 CRL Number" in text
    assert "X509v3 Authority Key Identifier" in text
    assert "Key Compromise" in text
    assert leaf.serial_hex.upper() in text.replace(":", "")
    expected = {
        AlgorithmFamily.RSA: "sha256WithRSAEncryption",
        AlgorithmFamily.P256: "ecdsa-with-SHA256",
        AlgorithmFamily.SM2: "SM2-with-SM3",
    }[live_pki.family]
    assert expected in text


@pytest.mark.interop
@needs_openssl
def test_openssl_verifies_crl_signature(live_pki: PKI) -> None:
    crl = live_pki.crl.current(live_pki.issuing.id)
    if live_pki.family not in OPENSSL_VERIFIES:
        # OpenSSL 3.0 verifies SM2 signatures on CRLs (and OCSP responses) with an empty
        # distinguishing ID and offers no option to change it there; medsign signs with the
        # GM/T 0009 default ID 1234567812345678, so the check is medsign's own.
        verify_crl(crl, live_pki.issuing.certificate_der)
        return
    chain = live_pki.directory / "chain.pem"
    chain.write_bytes(live_pki.root_pem.read_bytes() + live_pki.issuing_pem.read_bytes())
    path = live_pki.write("crl.pem", crl, label="X509 CRL")
    result = openssl("crl", "-in", path, "-CAfile", chain, "-verify", "-noout")
    assert "verify OK" in result.stdout + result.stderr


@pytest.mark.interop
@needs_openssl
@pytest.mark.parametrize(
    "family", OPENSSL_VERIFIES, ids=[family.value for family in OPENSSL_VERIFIES]
)
def test_openssl_verify_crl_check(
    family: AlgorithmFamily, database: Database, tmp_path: Path
) -> None:
    pki = make_pki(family, database, real_time_clock(), tmp_path)
    leaf = pki.issue_leaf()
    leaf_pem = pki.write("leaf.pem", leaf.certificate_der)

    first = crl_pem(pki, "crl-1.pem")
    assert f"{leaf_pem}: OK" in verify_leaf(pki, leaf_pem, first)

    pki.authority.hold(leaf.serial_hex, actor="test")
    held = crl_pem(pki, "crl-2.pem")
    assert "certificate revoked" in verify_leaf(pki, leaf_pem, held)
    assert "Certificate Hold" in openssl("crl", "-in", held, "-text", "-noout").stdout

    pki.authority.release(leaf.serial_hex, actor="test")
    released = crl_pem(pki, "crl-3.pem")
    assert f"{leaf_pem}: OK" in verify_leaf(pki, leaf_pem, released)

    pki.authority.revoke(leaf.serial_hex, "keyCompromise", actor="test")
    revoked = crl_pem(pki, "crl-4.pem")
    assert "certificate revoked" in verify_leaf(pki, leaf_pem, revoked)

    numbers = [
        int(openssl("crl", "-in", path, "-noout", "-crlnumber").stdout.split("=")[1], 16)
        for path in (first, held, released, revoked)
    ]
    assert numbers == sorted(set(numbers))
