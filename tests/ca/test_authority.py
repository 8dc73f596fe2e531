"""The CA core: hierarchy, issuance from openssl-made CSRs, renewal, the status state machine."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from asn1crypto import x509
from ca_support import BASE_URL, ORGANIZATION, SM2_VERIFY_OPTS, OpenSSL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from medsign.ca import CertificateAuthority, CertificateRecord
from medsign.ca.builder import verify_certificate_signature
from medsign.ca.profiles import DEFAULT_PROFILES
from medsign.clock import FixedClock
from medsign.crypto import CA_FAMILIES, AlgorithmFamily, KeyAlgorithm
from medsign.db import Database
from medsign.db.tables import CertificateEventRow, CertificateRow, KeyRow
from medsign.errors import InputError, KeyUseError, NotFoundError, StateError
from medsign.keys import SoftwareKeyStore

STAFF = "CN=张三,serialNumber=E1024,title=主治医师,OU=心内科,O=示例医院,C=CN"

NEW_KEY = {
    AlgorithmFamily.RSA: ["-newkey", "rsa:2048"],
    AlgorithmFamily.P256: ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
}
SIGNATURE_NAMES = {
    AlgorithmFamily.RSA: "sha256WithRSAEncryption",
    AlgorithmFamily.P256: "ecdsa-with-SHA256",
    AlgorithmFamily.SM2: "SM2-with-SM3",
}


def openssl_csr(
    openssl: OpenSSL, family: AlgorithmFamily, subject: str, name: str = "leaf"
) -> bytes:
    if family is AlgorithmFamily.SM2:
        openssl("genpkey", "-algorithm", "SM2", "-out", f"{name}.key")
        openssl(
            "req",
            "-new",
            "-key",
            f"{name}.key",
            "-sm3",
            "-utf8",
            "-subj",
            subject,
            "-out",
            f"{name}.csr",
        )
    else:
        openssl(
            "req",
            "-new",
            *NEW_KEY[family],
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-utf8",
            "-subj",
            subject,
            "-out",
            f"{name}.csr",
        )
    return openssl.read(f"{name}.csr")


def count(database: Database, table: type) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def openssl_verify(
    openssl: OpenSSL, family: AlgorithmFamily, root: Path, issuing: Path, leaf: Path
) -> None:
    if family is AlgorithmFamily.SM2:
        # -vfyopt reaches only the target certificate, so each link is checked on its own.
        out = openssl("verify", *SM2_VERIFY_OPTS, "-CAfile", root, issuing)
        assert out.stdout.strip().endswith("OK")
        out = openssl("verify", *SM2_VERIFY_OPTS, "-partial_chain", "-CAfile", issuing, leaf)
    else:
        out = openssl("verify", "-CAfile", root, "-untrusted", issuing, leaf)
    assert out.stdout.strip().endswith(": OK")


# -- hierarchy -------------------------------------------------------------------------------


@pytest.mark.interop
def test_hierarchy_for_every_family_is_idempotent(
    authority: CertificateAuthority, database: Database, run_openssl: OpenSSL
) -> None:
    cas = authority.initialise_hierarchy(ORGANIZATION)
    assert sorted((ca.family.value, ca.level) for ca in cas) == sorted(
        (family.value, level) for family in CA_FAMILIES for level in ("root", "issuing")
    )
    keys, certificates = count(database, KeyRow), count(database, CertificateRow)
    assert keys == 9  # root, issuing CA and OCSP responder per family
    again = authority.initialise_hierarchy(ORGANIZATION)
    assert [ca.id for ca in again] == [ca.id for ca in cas]
    assert (count(database, KeyRow), count(database, CertificateRow)) == (keys, certificates)

    for family in CA_FAMILIES:
        root = next(ca for ca in cas if ca.family is family and ca.level == "root")
        issuing = next(ca for ca in cas if ca.family is family and ca.level == "issuing")
        assert issuing.parent_id == root.id
        verify_certificate_signature(root.certificate_der, root.certificate.public_key.dump())
        responder = authority.ocsp_responder(issuing.id)
        assert responder is not None and responder.profile == "ocsp"
        paths = {
            name: run_openssl.write(f"{family}-{name}.pem", der)
            for name, der in (
                ("root", root.certificate_der),
                ("issuing", issuing.certificate_der),
                ("ocsp", responder.certificate_der),
            )
        }
        openssl_verify(run_openssl, family, paths["root"], paths["issuing"], paths["ocsp"])
        root_text = run_openssl("x509", "-in", paths["root"], "-noout", "-text").stdout
        assert "CA:TRUE, pathlen:1" in root_text
        assert "CRL Distribution Points" not in root_text
        assert SIGNATURE_NAMES[family] in root_text
        issuing_text = run_openssl("x509", "-in", paths["issuing"], "-noout", "-text").stdout
        assert "CA:TRUE, pathlen:0" in issuing_text
        assert "Certificate Sign, CRL Sign" in issuing_text
        assert f"URI:{BASE_URL}/pki/crl/{root.id}.crl" in issuing_text
        assert f"CA Issuers - URI:{BASE_URL}/pki/ca/{root.id}.crt" in issuing_text
        assert "OCSP - URI" not in issuing_text
        ocsp_text = run_openssl("x509", "-in", paths["ocsp"], "-noout", "-text").stdout
        assert "OCSP No Check" in ocsp_text and "OCSP Signing" in ocsp_text
        assert f"URI:{BASE_URL}/pki/crl/{issuing.id}.crl" in ocsp_text
        assert authority.ca_certificate(issuing.id) == issuing.certificate_der
        assert authority.chain(responder.serial_hex) == [
            issuing.certificate_der,
            root.certificate_der,
        ]


class _NoSM2(SoftwareKeyStore):
    """A key store like PKCS#11 on SoftHSM2, which cannot hold SM2 keys."""

    def supported_algorithms(self) -> frozenset[KeyAlgorithm]:
        return super().supported_algorithms() - {KeyAlgorithm.SM2}


def test_hierarchy_skips_families_the_key_store_cannot_hold(
    database: Database,
    keystore: SoftwareKeyStore,
    ca_clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _NoSM2(database, keystore.keyring, ca_clock)
    authority = CertificateAuthority(database, store, ca_clock, BASE_URL)
    with caplog.at_level(logging.WARNING):
        cas = authority.initialise_hierarchy(
            ORGANIZATION, families=[AlgorithmFamily.P256, AlgorithmFamily.SM2]
        )
    assert {ca.family for ca in cas} == {AlgorithmFamily.P256}
    assert "skipping the sm2 CA hierarchy" in caplog.text


def test_issuing_without_hierarchy_is_a_state_error(
    authority: CertificateAuthority, keystore: SoftwareKeyStore
) -> None:
    key = keystore.generate(KeyAlgorithm.EC_P256, label="t")
    with pytest.raises(StateError, match="no p256 issuing CA"):
        authority.issue_for_key(key.id, STAFF, "staff-signing", actor="admin")


@pytest.mark.interop
def test_ed25519_is_neither_a_hierarchy_nor_certified(
    authority: CertificateAuthority,
    keystore: SoftwareKeyStore,
    database: Database,
    run_openssl: OpenSSL,
) -> None:
    # Ed25519 keys sign messages; the CA signs digests through the key store, so it refuses
    # them outright instead of failing halfway through a hierarchy or an issuance.
    assert AlgorithmFamily.ED25519 not in CA_FAMILIES
    with pytest.raises(InputError, match="no hierarchy for ed25519"):
        authority.initialise_hierarchy(ORGANIZATION, families=[AlgorithmFamily.ED25519])
    assert count(database, KeyRow) == 0
    with pytest.raises(InputError, match="no hierarchy for ed25519"):
        authority.issuing_ca(AlgorithmFamily.ED25519)
    key = keystore.generate(KeyAlgorithm.ED25519, label="witness")
    with pytest.raises(InputError, match="does not certify") as refused:
        authority.issue_for_key(key.id, STAFF, "staff-signing", actor="admin")
    assert refused.value.public_message() == "ed25519 keys cannot be certified"
    run_openssl("genpkey", "-algorithm", "ED25519", "-out", "ed.key")
    run_openssl(
        "req", "-new", "-key", "ed.key", "-subj", "/CN=张三/serialNumber=E1", "-out", "ed.csr"
    )
    with pytest.raises(InputError, match="ed25519"):
        authority.issue_from_csr(run_openssl.read("ed.csr"), "staff-signing", actor="admin")
    assert count(database, CertificateRow) == 0


# -- issuance ----------------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("family", CA_FAMILIES, ids=lambda f: f.value)
def test_issue_from_openssl_csr(
    authority: CertificateAuthority, run_openssl: OpenSSL, family: AlgorithmFamily
) -> None:
    authority.initialise_hierarchy(ORGANIZATION, families=[family])
    csr = openssl_csr(run_openssl, family, "/C=CN/O=示例医院/OU=心内科/CN=张三/serialNumber=E1024")
    record = authority.issue_from_csr(csr, "staff-signing", actor="admin:li")
    assert record.status == "good" and record.key_id is None and record.source == "internal"
    assert record.subject == "serialNumber=E1024,CN=张三,OU=心内科,O=示例医院,C=CN"
    assert (record.not_after - record.not_before).days == 730
    issuing, root = authority.chain(record.serial_hex)
    leaf = run_openssl.write("leaf.pem", record.certificate_der)
    root_path = run_openssl.write("root.pem", root)
    issuing_path = run_openssl.write("issuing.pem", issuing)
    openssl_verify(run_openssl, family, root_path, issuing_path, leaf)

    text = run_openssl("x509", "-in", leaf, "-noout", "-text").stdout
    ca_id = record.issuer_ca_id
    for expected in (
        f"Signature Algorithm: {SIGNATURE_NAMES[family]}",
        "X509v3 Basic Constraints: critical",
        "CA:FALSE",
        "X509v3 Key Usage: critical",
        "Digital Signature, Non Repudiation",
        "E-mail Protection",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        "X509v3 Certificate Policies",
        f"OCSP - URI:{BASE_URL}/pki/ocsp",
        f"CA Issuers - URI:{BASE_URL}/pki/ca/{ca_id}.crt",
        f"URI:{BASE_URL}/pki/crl/{ca_id}.crl",
    ):
        assert expected in text, expected
    assert "OCSP No Check" not in text
    # RFC 9336 documentSigning: newer OpenSSL releases name it, 3.0 prints the OID.
    assert "1.3.6.1.5.5.7.3.36" in text or "Document Signing" in text

    serial_line = run_openssl("x509", "-in", leaf, "-noout", "-serial").stdout.strip()
    assert serial_line.startswith("serial=")
    assert authority.get(serial_line).id == record.id
    assert authority.get(serial_line.split("=", 1)[1]).id == record.id
    assert [event.action for event in authority.history(serial_line)] == ["issue"]


def test_issue_for_key_and_chain(
    p256_authority: CertificateAuthority, keystore: SoftwareKeyStore
) -> None:
    key = keystore.generate(KeyAlgorithm.EC_P256, label="staff:E1024")
    record = p256_authority.issue_for_key(key.id, STAFF, "staff-signing", actor="admin")
    assert record.key_id == key.id
    cert = x509.Certificate.load(record.certificate_der)
    assert cert.public_key.dump() == key.public_key_der
    assert record.pem().startswith("-----BEGIN CERTIFICATE-----\n")
    chain = p256_authority.chain(record.serial_hex)
    assert len(chain) == 2
    verify_certificate_signature(
        record.certificate_der, x509.Certificate.load(chain[0]).public_key.dump()
    )


@pytest.mark.parametrize(
    ("profile", "subject", "eku", "critical"),
    [
        ("tsa", "CN=示例医院 TSA,O=示例医院", ["time_stamping"], True),
        ("patient-event", "CN=王五", ["1.3.6.1.5.5.7.3.36"], False),
        ("organization-seal", "CN=示例医院电子印章,O=示例医院", ["1.3.6.1.5.5.7.3.36"], False),
        ("evidence-log", "CN=Evidence log,O=示例医院", None, False),
    ],
)
def test_profiles_shape_certificates(
    p256_authority: CertificateAuthority,
    keystore: SoftwareKeyStore,
    profile: str,
    subject: str,
    eku: list[str] | None,
    critical: bool,
) -> None:
    key = keystore.generate(KeyAlgorithm.EC_P256, label=profile)
    record = p256_authority.issue_for_key(key.id, subject, profile, actor="admin")
    cert = x509.Certificate.load(record.certificate_der)
    assert set(cert.key_usage_value.native) == set(DEFAULT_PROFILES.get(profile).key_usage)
    assert record.not_after - record.not_before == DEFAULT_PROFILES.get(profile).lifetime
    if eku is None:
        assert cert.extended_key_usage_value is None
    else:
        assert cert.extended_key_usage_value.native == [
            x509.KeyPurposeId.map(e) if "." in e else e for e in eku
        ]
        extension = next(
            e
            for e in cert["tbs_certificate"]["extensions"]
            if e["extn_id"].native == "extended_key_usage"
        )
        assert extension["critical"].native is critical


def test_profile_enforcement(
    p256_authority: CertificateAuthority, keystore: SoftwareKeyStore
) -> None:
    key = keystore.generate(KeyAlgorithm.EC_P256, label="t")
    with pytest.raises(InputError, match="unknown certificate profile 'doctor'"):
        p256_authority.issue_for_key(key.id, STAFF, "doctor", actor="a")
    with pytest.raises(InputError, match="L is not allowed in profile staff-signing"):
        p256_authority.issue_for_key(key.id, STAFF + ",L=北京", "staff-signing", actor="a")
    with pytest.raises(InputError, match="requires subject attribute serialNumber"):
        p256_authority.issue_for_key(key.id, "CN=张三", "staff-signing", actor="a")
    with pytest.raises(InputError, match="for CA certificates"):
        p256_authority.issue_for_key(key.id, "CN=x,O=y", "issuing-ca", actor="a")
    # Nothing was issued: only the hierarchy's own certificates exist.
    assert {r.profile for r in p256_authority.list()} == {"ocsp", "issuing-ca"}


@pytest.mark.interop
def test_csr_subject_is_checked_and_can_be_overridden(
    p256_authority: CertificateAuthority, run_openssl: OpenSSL
) -> None:
    csr = openssl_csr(run_openssl, AlgorithmFamily.P256, "/C=CN/L=Beijing/CN=张三/serialNumber=E1")
    with pytest.raises(InputError, match="subject attribute L is not allowed"):
        p256_authority.issue_from_csr(csr, "staff-signing", actor="a")
    record = p256_authority.issue_from_csr(
        csr, "staff-signing", actor="a", subject_override={"CN": "张三", "serialNumber": "E1"}
    )
    assert record.subject == "serialNumber=E1,CN=张三"
    with pytest.raises(InputError, match="unknown certificate profile"):
        p256_authority.issue_from_csr(csr, "nope", actor="a")


def test_malformed_csr_is_refused(p256_authority: CertificateAuthority) -> None:
    with pytest.raises(InputError, match="malformed certificate request"):
        p256_authority.issue_from_csr(b"garbage", "staff-signing", actor="a")


class _BrokenSigner(SoftwareKeyStore):
    def sign_digest(self, *args: object, **kwargs: object) -> bytes:
        raise KeyUseError("token removed")


def test_failed_signing_stores_nothing(
    p256_authority: CertificateAuthority,
    database: Database,
    keystore: SoftwareKeyStore,
    ca_clock: FixedClock,
) -> None:
    key = keystore.generate(KeyAlgorithm.EC_P256, label="t")
    broken = CertificateAuthority(
        database, _BrokenSigner(database, keystore.keyring, ca_clock), ca_clock, BASE_URL
    )
    before = count(database, CertificateRow), count(database, CertificateEventRow)
    with pytest.raises(KeyUseError):
        broken.issue_for_key(key.id, STAFF, "staff-signing", actor="a")
    assert (count(database, CertificateRow), count(database, CertificateEventRow)) == before


# -- renewal -----------------------------------------------------------------------------------


def test_renew_same_key_and_rekey(
    p256_authority: CertificateAuthority, keystore: SoftwareKeyStore
) -> None:
    key = keystore.generate(KeyAlgorithm.EC_P256, label="staff:E1024")
    first = p256_authority.issue_for_key(key.id, STAFF, "staff-signing", actor="admin")
    same = p256_authority.renew(first.serial_hex, rekey=False, actor="admin")
    assert same.key_id == key.id and same.replaces_id == first.id
    assert same.serial_hex != first.serial_hex and same.subject == first.subject
    spki = lambda r: x509.Certificate.load(r.certificate_der).public_key.dump()  # noqa: E731
    assert spki(same) == spki(first)
    fresh = p256_authority.renew(same.serial_hex, rekey=True, actor="admin")
    assert fresh.key_id not in (None, key.id)
    assert spki(fresh) != spki(first)
    assert keystore.get(fresh.key_id).algorithm is KeyAlgorithm.EC_P256  # type: ignore[arg-type]
    assert [e.action for e in p256_authority.history(fresh.serial_hex)] == ["renew"]
    assert p256_authority.get(first.serial_hex).status == "good"


@pytest.mark.interop
def test_renew_csr_issued_certificate(
    p256_authority: CertificateAuthority, run_openssl: OpenSSL
) -> None:
    csr = openssl_csr(run_openssl, AlgorithmFamily.P256, "/CN=张三/serialNumber=E1")
    first = p256_authority.issue_from_csr(csr, "staff-signing", actor="a")
    same = p256_authority.renew(first.serial_hex, actor="a")
    assert same.key_id is None
    with pytest.raises(InputError, match="needs a new CSR"):
        p256_authority.renew(first.serial_hex, rekey=True, actor="a")
    with pytest.raises(InputError, match="must carry a new key"):
        p256_authority.renew(first.serial_hex, rekey=True, csr=csr, actor="a")
    new_csr = openssl_csr(run_openssl, AlgorithmFamily.P256, "/CN=other/serialNumber=E9", "new")
    rekeyed = p256_authority.renew(first.serial_hex, rekey=True, csr=new_csr, actor="a")
    assert rekeyed.subject == first.subject  # the subject is the certificate's, not the CSR's
    p256_authority.revoke(first.serial_hex, "superseded", actor="a")
    with pytest.raises(StateError, match="revoked certificate cannot be renewed"):
        p256_authority.renew(first.serial_hex, actor="a")


# -- status ------------------------------------------------------------------------------------


@pytest.fixture
def staff_cert(
    p256_authority: CertificateAuthority, keystore: SoftwareKeyStore
) -> CertificateRecord:
    key = keystore.generate(KeyAlgorithm.EC_P256, label="staff")
    return p256_authority.issue_for_key(key.id, STAFF, "staff-signing", actor="admin")


def _snapshot(authority: CertificateAuthority, serial: str) -> tuple[object, ...]:
    record = authority.get(serial)
    return record.status, record.revocation_reason, record.revoked_at, authority.history(serial)


def test_status_state_machine(
    p256_authority: CertificateAuthority, staff_cert: CertificateRecord, ca_clock: FixedClock
) -> None:
    notified: list[str] = []
    p256_authority.add_status_listener(notified.append)
    serial = staff_cert.serial_hex

    held = p256_authority.hold(serial, actor="admin")
    assert (held.status, held.revocation_reason) == ("hold", "certificateHold")
    assert held.revoked_at == ca_clock.now()
    before = _snapshot(p256_authority, serial)
    with pytest.raises(StateError, match="already on hold"):
        p256_authority.hold(serial, actor="a")
    assert _snapshot(p256_authority, serial) == before

    released = p256_authority.release(serial, actor="admin")
    assert (released.status, released.revocation_reason, released.revoked_at) == (
        "good",
        None,
        None,
    )
    before = _snapshot(p256_authority, serial)
    with pytest.raises(StateError, match="only a certificate on hold"):
        p256_authority.release(serial, actor="a")
    assert _snapshot(p256_authority, serial) == before

    p256_authority.hold(serial, actor="admin")
    revoked = p256_authority.revoke(serial, "keyCompromise", actor="admin")
    assert (revoked.status, revoked.revocation_reason) == ("revoked", "keyCompromise")

    before = _snapshot(p256_authority, serial)
    for call, message in (
        (lambda: p256_authority.revoke(serial, "superseded", actor="a"), "already revoked"),
        (lambda: p256_authority.hold(serial, actor="a"), "cannot be put on hold"),
        (lambda: p256_authority.release(serial, actor="a"), "only a certificate on hold"),
    ):
        with pytest.raises(StateError, match=message):
            call()
        assert _snapshot(p256_authority, serial) == before

    assert [(e.action, e.reason) for e in p256_authority.history(serial)] == [
        ("issue", None),
        ("hold", "certificateHold"),
        ("release", None),
        ("hold", "certificateHold"),
        ("revoke", "keyCompromise"),
    ]
    assert notified == [staff_cert.issuer_ca_id] * 4


@pytest.mark.parametrize("reason", ["certificateHold", "removeFromCRL", "bogus", "KEYCOMPROMISE"])
def test_revocation_reason_is_checked(
    p256_authority: CertificateAuthority, staff_cert: CertificateRecord, reason: str
) -> None:
    before = _snapshot(p256_authority, staff_cert.serial_hex)
    with pytest.raises(InputError):
        p256_authority.revoke(staff_cert.serial_hex, reason, actor="a")
    assert _snapshot(p256_authority, staff_cert.serial_hex) == before


@pytest.mark.parametrize(
    "reason",
    sorted(
        {
            "unspecified",
            "keyCompromise",
            "cACompromise",
            "affiliationChanged",
            "superseded",
            "cessationOfOperation",
            "privilegeWithdrawn",
            "aACompromise",
        }
    ),
)
def test_every_rfc5280_reason_revokes(
    p256_authority: CertificateAuthority, staff_cert: CertificateRecord, reason: str
) -> None:
    assert (
        p256_authority.revoke(staff_cert.serial_hex, reason, actor="a").revocation_reason == reason
    )


def test_unknown_serial(p256_authority: CertificateAuthority) -> None:
    for call in (
        lambda: p256_authority.get("abcdef"),
        lambda: p256_authority.revoke("abcdef", "unspecified", actor="a"),
        lambda: p256_authority.hold("abcdef", actor="a"),
        lambda: p256_authority.release("abcdef", actor="a"),
        lambda: p256_authority.history("abcdef"),
        lambda: p256_authority.chain("abcdef"),
    ):
        with pytest.raises(NotFoundError):
            call()
    with pytest.raises(InputError):
        p256_authority.get("not-hex")


def test_failing_listener_does_not_undo_the_change(
    p256_authority: CertificateAuthority, staff_cert: CertificateRecord
) -> None:
    def explode(ca_id: str) -> None:
        raise RuntimeError("CRL publisher down")

    p256_authority.add_status_listener(explode)
    p256_authority.revoke(staff_cert.serial_hex, "superseded", actor="a")
    assert p256_authority.get(staff_cert.serial_hex).status == "revoked"


def test_list_filters(p256_authority: CertificateAuthority, staff_cert: CertificateRecord) -> None:
    assert [r.id for r in p256_authority.list(profile="staff-signing")] == [staff_cert.id]
    p256_authority.hold(staff_cert.serial_hex, actor="a")
    assert [r.id for r in p256_authority.list(status="hold")] == [staff_cert.id]
    assert p256_authority.list(status="revoked") == []
    assert len(p256_authority.list(limit=1)) == 1
    with pytest.raises(InputError):
        p256_authority.list(limit=0)


OPERATIONS = st.lists(st.sampled_from(["revoke", "hold", "release"]), min_size=1, max_size=6)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=OPERATIONS)
def test_status_changes_follow_the_model(
    p256_authority: CertificateAuthority, keystore: SoftwareKeyStore, operations: list[str]
) -> None:
    key = keystore.generate(KeyAlgorithm.EC_P256, label="model")
    serial = p256_authority.issue_for_key(key.id, "CN=王五", "patient-event", actor="a").serial_hex
    model = "good"
    allowed = {
        "revoke": {"good": "revoked", "hold": "revoked"},
        "hold": {"good": "hold"},
        "release": {"hold": "good"},
    }
    events = 1
    for operation in operations:
        target = allowed[operation].get(model)
        call = {
            "revoke": lambda: p256_authority.revoke(serial, "unspecified", actor="a"),
            "hold": lambda: p256_authority.hold(serial, actor="a"),
            "release": lambda: p256_authority.release(serial, actor="a"),
        }[operation]
        if target is None:
            with pytest.raises(StateError):
                call()
        else:
            call()
            model = target
            events += 1
        assert p256_authority.get(serial).status == model
        assert len(p256_authority.history(serial)) == events


def test_ocsp_responders_are_refreshed_before_they_expire(
    p256_authority: CertificateAuthority, ca_clock: FixedClock
) -> None:
    issuing = p256_authority.issuing_ca(AlgorithmFamily.P256)
    current = p256_authority.ocsp_responder(issuing.id)
    assert current is not None
    assert p256_authority.refresh_ocsp_responders() == []
    ca_clock.advance(dt.timedelta(days=25))
    renewed = p256_authority.refresh_ocsp_responders()
    assert [r.replaces_id for r in renewed] == [current.id]
    assert renewed[0].key_id == current.key_id
    responder = p256_authority.ocsp_responder(issuing.id)
    assert responder is not None and responder.id == renewed[0].id
    ca_clock.advance(dt.timedelta(days=40))
    assert p256_authority.ocsp_responder(issuing.id) is None
