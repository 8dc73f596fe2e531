"""The verifier on real material: medsign's CA and key store, openssl's CMS and TSA."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms

from medsign.clock import FixedClock, SystemClock
from medsign.crypto import KeyAlgorithm, der_to_raw, message_digest
from medsign.crypto.types import SignatureEncoding, SignatureScheme
from medsign.errors import InputError
from medsign.verify import (
    CheckName,
    CMSSignature,
    Indication,
    NoStatusSource,
    RawSignature,
    SignedContent,
    SubIndication,
    TimeSource,
    TrustStore,
    Verifier,
    verify_many,
)
from tests.verify.support import (
    OpenSSLSigner,
    add_timestamp,
    load_pem_der,
    openssl,
    openssl_signer,
    signature_value,
    store_signer,
    tamper_signature,
    timestamp_token,
    verifier_at,
)

DATA = "出院小结：患者好转出院。".encode()


def _after_a_second() -> None:
    # CMS signing-time and genTime have one-second resolution; a status change and a
    # signature in the same second cannot be ordered.
    time.sleep(1.1)


def _sub(report: Any) -> tuple[Indication, SubIndication | None]:
    return report.indication, report.sub_indication


# -- CMS ---------------------------------------------------------------------------------


def test_detached_cms_passes_and_names_the_signer(runtime: Any, work: Path) -> None:
    signer = openssl_signer(runtime, work, subject="/CN=Dr. Li/serialNumber=E1001/O=Demo")
    report = runtime.verifier.verify(CMSSignature(signer.sign_cms(DATA, work), SignedContent(DATA)))
    assert _sub(report) == (Indication.PASSED, None), report.checks
    assert [c.name for c in report.checks] == [
        CheckName.FORMAT,
        CheckName.SIGNED_DATA,
        CheckName.SIGNATURE,
        CheckName.SIGNING_CERTIFICATE,
        CheckName.SIGNING_TIME,
        CheckName.CHAIN,
        CheckName.VALIDITY,
        CheckName.STATUS,
    ]
    assert report.scheme == "ecdsa-sha256"
    assert report.signing_time_source is TimeSource.CLAIMED
    assert "unproven" in report.check(CheckName.SIGNING_TIME).message
    identity = report.signer
    assert identity.common_name == "Dr. Li"
    assert identity.employee_number == "E1001"
    assert identity.profile == "staff-signing"
    assert identity.certificate_serial.lstrip("0").lower() == signer.serial
    assert "ECC Issuing CA" in identity.issuer
    assert "ECC Root CA" in report.chain[-1]


def test_attached_rsa_cms_passes(runtime: Any, work: Path) -> None:
    signer = openssl_signer(runtime, work, ec=False)
    report = runtime.verifier.verify(CMSSignature(signer.sign_cms(DATA, work, detached=False)))
    assert _sub(report) == (Indication.PASSED, None), report.checks
    assert report.scheme == "rsa-pkcs1-sha256"


def test_digest_instead_of_data(runtime: Any, work: Path) -> None:
    import hashlib

    signer = openssl_signer(runtime, work)
    signed = signer.sign_cms(DATA, work)
    good = SignedContent(digest=hashlib.sha256(DATA).digest(), digest_algorithm="sha256")
    assert runtime.verifier.verify(CMSSignature(signed, good)).passed
    wrong = SignedContent(digest=hashlib.sha256(b"other").digest(), digest_algorithm="sha256")
    report = runtime.verifier.verify(CMSSignature(signed, wrong))
    assert _sub(report) == (Indication.FAILED, SubIndication.HASH_FAILURE)


def test_tampered_data_is_a_hash_failure(runtime: Any, work: Path) -> None:
    signer = openssl_signer(runtime, work)
    signed = signer.sign_cms(DATA, work)
    report = runtime.verifier.verify(CMSSignature(signed, SignedContent(DATA + b" ")))
    assert _sub(report) == (Indication.FAILED, SubIndication.HASH_FAILURE)
    assert report.check(CheckName.SIGNATURE).indication is Indication.PASSED


def test_tampered_signature_is_a_crypto_failure(runtime: Any, work: Path) -> None:
    signer = openssl_signer(runtime, work)
    signed = tamper_signature(signer.sign_cms(DATA, work))
    report = runtime.verifier.verify(CMSSignature(signed, SignedContent(DATA)))
    assert _sub(report) == (Indication.FAILED, SubIndication.SIG_CRYPTO_FAILURE)


def test_detached_without_data_is_indeterminate(runtime: Any, work: Path) -> None:
    signer = openssl_signer(runtime, work)
    report = runtime.verifier.verify(CMSSignature(signer.sign_cms(DATA, work)))
    assert _sub(report) == (Indication.INDETERMINATE, SubIndication.SIGNED_DATA_NOT_FOUND)


@pytest.mark.parametrize("blob", [b"", b"\x30\x03\x02\x01\x01", b"not cms at all"])
def test_garbage_is_a_format_failure(runtime: Any, blob: bytes) -> None:
    report = runtime.verifier.verify(CMSSignature(blob, SignedContent(DATA)))
    assert _sub(report) == (Indication.INDETERMINATE, SubIndication.FORMAT_FAILURE)
    assert report.signer is None


def test_untrusted_chain(runtime: Any, work: Path) -> None:
    key, cert = work / "self.key", work / "self.pem"
    openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-subj",
        "/CN=Somebody/serialNumber=X1",
        "-days",
        "30",
    )
    signed = OpenSSLSigner(key, cert, "", None).sign_cms(DATA, work)
    report = runtime.verifier.verify(CMSSignature(signed, SignedContent(DATA)))
    assert _sub(report) == (Indication.INDETERMINATE, SubIndication.NO_CERTIFICATE_CHAIN_FOUND)
    assert report.check(CheckName.SIGNATURE).indication is Indication.PASSED
    assert report.check(CheckName.STATUS) is None
    # A medsign certificate against a trust store without medsign's roots: the same answer.
    medsign_signed = openssl_signer(runtime, work).sign_cms(DATA, work)
    bare = Verifier(TrustStore(), NoStatusSource(), SystemClock())
    report = bare.verify(CMSSignature(medsign_signed, SignedContent(DATA)))
    assert _sub(report) == (Indication.INDETERMINATE, SubIndication.NO_CERTIFICATE_CHAIN_FOUND)


def test_extra_anchor_without_revocation_information(runtime: Any, work: Path) -> None:
    """An external CA configured as anchor: the path holds, the status is unknown."""
    ca_key, ca_cert = work / "ext-ca.key", work / "ext-ca.pem"
    openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        ca_key,
        "-out",
        ca_cert,
        "-subj",
        "/CN=External CA/O=Ext",
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=keyCertSign,cRLSign",
    )
    key, csr, cert = work / "ext.key", work / "ext.csr", work / "ext.pem"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    openssl("req", "-new", "-key", key, "-subj", "/CN=Dr. Zhao/serialNumber=E9", "-out", csr)
    openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca_cert,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-out",
        cert,
        "-days",
        "10",
    )
    signed = OpenSSLSigner(key, cert, "", None).sign_cms(DATA, work)
    trust = runtime.verifier.trust.with_anchors(load_pem_der(ca_cert), source="configured")
    report = runtime.verifier.with_trust(trust).verify(CMSSignature(signed, SignedContent(DATA)))
    assert _sub(report) == (Indication.INDETERMINATE, SubIndication.TRY_LATER)
    assert report.check(CheckName.CHAIN).indication is Indication.PASSED
    assert "External CA" in report.chain[-1]


# -- status at signing time --------------------------------------------------------------


def test_revoked_before_signing_fails(runtime: Any, work: Path) -> None:
    signer = openssl_signer(runtime, work)
    runtime.authority.revoke(signer.serial, "keyCompromise", actor="test")
    _after_a_second()
    report = runtime.verifier.verify(CMSSignature(signer.sign_cms(DATA, work), SignedContent(DATA)))
    assert _sub(report) == (Indication.FAILED, SubIndication.REVOKED)
    assert "keyCompromise" in report.check(CheckName.STATUS).message


def test_revoked_after_timestamped_signing_passes_with_a_note(
    runtime: Any, work: Path, tsa: OpenSSLSigner, tsa_chain: Path
) -> None:
    signer = openssl_signer(runtime, work)
    signed = signer.sign_cms(DATA, work)
    stamped = add_timestamp(
        signed, timestamp_token(tsa, signature_value(signed), work, chain=tsa_chain)
    )
    _after_a_second()
    runtime.authority.revoke(signer.serial, "affiliationChanged", actor="test")
    report = runtime.verifier.verify(CMSSignature(stamped, SignedContent(DATA)))
    assert _sub(report) == (Indication.PASSED, None), report.checks
    assert report.signing_time_source is TimeSource.TIMESTAMP
    assert report.timestamp is not None and "Test TSA" in report.timestamp.tsa
    assert any("revoked" in note and "after" in note for note in report.notes)
    # The same signature without its timestamp: the claimed time proves nothing.
    report = runtime.verifier.verify(CMSSignature(signed, SignedContent(DATA)))
    assert _sub(report) == (Indication.INDETERMINATE, SubIndication.REVOKED_NO_POE)


def test_held_at_signing_fails_even_after_release(runtime: Any, work: Path) -> None:
    signer = openssl_signer(runtime, work)
    runtime.authority.hold(signer.serial, actor="test")
    _after_a_second()
    signed = signer.sign_cms(DATA, work)
    report = runtime.verifier.verify(CMSSignature(signed, SignedContent(DATA)))
    assert _sub(report) == (Indication.FAILED, SubIndication.CERTIFICATE_ON_HOLD)
    _after_a_second()
    runtime.authority.release(signer.serial, actor="test")
    report = runtime.verifier.verify(CMSSignature(signed, SignedContent(DATA)))
    assert _sub(report) == (Indication.FAILED, SubIndication.CERTIFICATE_ON_HOLD)
    assert "until" in report.check(CheckName.STATUS).message


def test_hold_after_signing(runtime: Any, work: Path, tsa: OpenSSLSigner, tsa_chain: Path) -> None:
    signer = openssl_signer(runtime, work)
    signed = signer.sign_cms(DATA, work)
    stamped = add_timestamp(
        signed, timestamp_token(tsa, signature_value(signed), work, chain=tsa_chain)
    )
    _after_a_second()
    runtime.authority.hold(signer.serial, actor="test")
    # Still held: only a proven signing time settles it.
    assert _sub(runtime.verifier.verify(CMSSignature(signed, SignedContent(DATA)))) == (
        Indication.INDETERMINATE,
        SubIndication.TRY_LATER,
    )
    assert runtime.verifier.verify(CMSSignature(stamped, SignedContent(DATA))).passed
    runtime.authority.release(signer.serial, actor="test")
    report = runtime.verifier.verify(CMSSignature(signed, SignedContent(DATA)))
    assert report.passed
    assert any("on hold from" in note for note in report.notes)


def test_embedded_crl_offline(runtime: Any, work: Path) -> None:
    """Without an installation, a CRL carried in the SignedData gives the status."""
    signer = openssl_signer(runtime, work)
    signed = signer.sign_cms(DATA, work)
    _after_a_second()
    ca_id = signer.record.issuer_ca_id
    crl = runtime.crls.publish(ca_id)
    roots = [a.certificate.dump() for a in runtime.verifier.trust.anchors]
    offline = Verifier(
        TrustStore.from_certificates(roots, source="configured"), NoStatusSource(), SystemClock()
    )
    chain = tuple(runtime.authority.chain(signer.serial))
    without = offline.verify(CMSSignature(signed, SignedContent(DATA), chain))
    assert _sub(without) == (Indication.INDETERMINATE, SubIndication.TRY_LATER)
    report = offline.verify(CMSSignature(_with_crl(signed, crl), SignedContent(DATA), chain))
    assert report.passed, report.checks
    assert "CRL" in report.check(CheckName.STATUS).message

    runtime.authority.revoke(signer.serial, "keyCompromise", actor="test")
    _after_a_second()
    late = signer.sign_cms(DATA, work)
    crl = runtime.crls.current(ca_id)
    report = offline.verify(CMSSignature(_with_crl(late, crl), SignedContent(DATA), chain))
    assert _sub(report) == (Indication.FAILED, SubIndication.REVOKED)


def _with_crl(cms_der: bytes, crl_der: bytes) -> bytes:
    from asn1crypto import crl as asn1_crl

    info = cms.ContentInfo.load(cms_der)
    info["content"]["crls"] = cms.RevocationInfoChoices(
        [cms.RevocationInfoChoice(name="crl", value=asn1_crl.CertificateList.load(crl_der))]
    )
    return bytes(info.dump(force=True))


# -- timestamps ----------------------------------------------------------------------------


def test_timestamp_over_another_value_fails(
    runtime: Any, work: Path, tsa: OpenSSLSigner, tsa_chain: Path
) -> None:
    signer = openssl_signer(runtime, work)
    signed = signer.sign_cms(DATA, work)
    stamped = add_timestamp(signed, timestamp_token(tsa, b"something else", work, chain=tsa_chain))
    report = runtime.verifier.verify(CMSSignature(stamped, SignedContent(DATA)))
    assert _sub(report) == (Indication.FAILED, SubIndication.TIMESTAMP_FAILURE)
    assert "imprint" in report.check(CheckName.TIMESTAMP).message
    assert report.signing_time_source is TimeSource.CLAIMED


def test_a_token_signer_needs_the_time_stamping_usage(runtime: Any, work: Path, tsa: Any) -> None:
    # openssl itself refuses to sign tokens with such a certificate, so the rule is checked
    # on the certificates directly.
    from medsign.verify.chain import parse_certificate
    from medsign.verify.report import CheckFailure
    from medsign.verify.timestamp import _check_tsa_usage

    staff = openssl_signer(runtime, work, subject="/CN=Not a TSA/serialNumber=E5")
    with pytest.raises(CheckFailure, match="time-stamping"):
        _check_tsa_usage(parse_certificate(staff.record.certificate_der))
    _check_tsa_usage(parse_certificate(tsa.record.certificate_der))


# -- raw signatures --------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.SM2, KeyAlgorithm.EC_P256])
def test_raw_signature_from_the_key_store(runtime: Any, algorithm: KeyAlgorithm) -> None:
    signer = store_signer(runtime, algorithm)
    signature = signer.sign(runtime, DATA)
    request = RawSignature(signature, signer.scheme, signer.certificate_der, SignedContent(DATA))
    report = runtime.verifier.verify(request)
    assert _sub(report) == (Indication.PASSED, None), report.checks
    assert report.signer.employee_number == "E2002"
    assert report.signing_time_source is TimeSource.NONE
    # The digest the key signed (for SM2: SM3(Z_A || data) with the standard ID).
    digest = message_digest(signer.public_key, signer.scheme, DATA)
    by_digest = RawSignature(
        signature,
        signer.scheme,
        signer.certificate_der,
        SignedContent(digest=digest, digest_algorithm=signer.scheme.hash_name),
    )
    assert runtime.verifier.verify(by_digest).passed
    raw = RawSignature(
        der_to_raw(signature),
        signer.scheme,
        signer.certificate_der,
        SignedContent(DATA),
        encoding=SignatureEncoding.RAW,
    )
    assert runtime.verifier.verify(raw).passed
    tampered = RawSignature(
        signature, signer.scheme, signer.certificate_der, SignedContent(DATA + b"!")
    )
    assert _sub(runtime.verifier.verify(tampered)) == (
        Indication.FAILED,
        SubIndication.SIG_CRYPTO_FAILURE,
    )


def test_raw_signature_with_a_timestamp(
    runtime: Any, work: Path, tsa: OpenSSLSigner, tsa_chain: Path
) -> None:
    signer = store_signer(runtime, KeyAlgorithm.SM2)
    signature = signer.sign(runtime, DATA)
    token = timestamp_token(tsa, signature, work, chain=tsa_chain)
    request = RawSignature(
        signature, signer.scheme, signer.certificate_der, SignedContent(DATA), timestamp_token=token
    )
    report = runtime.verifier.verify(request)
    assert report.passed, report.checks
    assert report.signing_time_source is TimeSource.TIMESTAMP


def test_raw_signature_claimed_time_against_revocation(runtime: Any) -> None:
    signer = store_signer(runtime, KeyAlgorithm.EC_P256)
    signature = signer.sign(runtime, DATA)
    record = runtime.authority.revoke(signer.serial, "keyCompromise", actor="test")
    revoked_at = (
        record.revoked_at.replace(tzinfo=dt.UTC)
        if record.revoked_at.tzinfo is None
        else record.revoked_at
    )

    def claimed(at: dt.datetime) -> Any:
        return runtime.verifier.verify(
            RawSignature(
                signature,
                signer.scheme,
                signer.certificate_der,
                SignedContent(DATA),
                claimed_signing_time=at,
            )
        )

    assert _sub(claimed(revoked_at + dt.timedelta(seconds=1))) == (
        Indication.FAILED,
        SubIndication.REVOKED,
    )
    assert _sub(claimed(record.not_before.replace(tzinfo=dt.UTC))) == (
        Indication.INDETERMINATE,
        SubIndication.REVOKED_NO_POE,
    )
    no_time = runtime.verifier.verify(
        RawSignature(signature, signer.scheme, signer.certificate_der, SignedContent(DATA))
    )
    assert _sub(no_time) == (Indication.INDETERMINATE, SubIndication.REVOKED_NO_POE)


def test_validity_period_against_the_signing_time(runtime: Any) -> None:
    signer = store_signer(runtime, KeyAlgorithm.EC_P256)
    signature = signer.sign(runtime, DATA)
    now = runtime.clock.now()
    later = FixedClock(now + dt.timedelta(days=3 * 365))
    verifier = verifier_at(runtime, later)

    def at(claim: dt.datetime | None) -> Any:
        return verifier.verify(
            RawSignature(
                signature,
                signer.scheme,
                signer.certificate_der,
                SignedContent(DATA),
                claimed_signing_time=claim,
            )
        )

    assert _sub(at(None)) == (Indication.INDETERMINATE, SubIndication.OUT_OF_BOUNDS_NO_POE)
    assert _sub(at(now + dt.timedelta(minutes=1))) == (
        Indication.INDETERMINATE,
        SubIndication.OUT_OF_BOUNDS_NO_POE,
    )
    assert _sub(at(now + dt.timedelta(days=2 * 365 + 1))) == (
        Indication.FAILED,
        SubIndication.EXPIRED,
    )
    assert _sub(at(now - dt.timedelta(days=1))) == (
        Indication.FAILED,
        SubIndication.NOT_YET_VALID,
    )


def test_requests_that_cannot_be_checked_are_input_errors(runtime: Any) -> None:
    signer = store_signer(runtime, KeyAlgorithm.EC_P256)
    with pytest.raises(InputError, match="32 bytes"):
        SignedContent(digest=b"\x00" * 20, digest_algorithm="sha256")
    with pytest.raises(InputError):
        SignedContent()
    with pytest.raises(InputError, match="does not fit"):
        runtime.verifier.verify(
            RawSignature(
                b"\x30\x00",
                signer.scheme.__class__("sm2-sm3"),
                signer.certificate_der,
                SignedContent(DATA),
            )
        )


def test_batch_keeps_order(runtime: Any, work: Path) -> None:
    signer = store_signer(runtime, KeyAlgorithm.SM2)
    signature = signer.sign(runtime, DATA)
    good = RawSignature(signature, signer.scheme, signer.certificate_der, SignedContent(DATA))
    bad = RawSignature(signature, signer.scheme, signer.certificate_der, SignedContent(b"x"))
    cms_signed = openssl_signer(runtime, work).sign_cms(DATA, work)
    reports = verify_many(
        runtime.verifier, [good, bad, CMSSignature(cms_signed, SignedContent(DATA))]
    )
    assert [r.indication for r in reports] == [
        Indication.PASSED,
        Indication.FAILED,
        Indication.PASSED,
    ]
    assert [r.kind for r in reports] == ["raw", "raw", "cms"]


def test_raw_ed25519_signature_is_checked_on_the_data(work: Path) -> None:
    # medsign's CA does not issue Ed25519 certificates, but another CA's may reach the
    # verifier: the signature is checked over the data, and a digest cannot stand in for it.
    key, cert, msg, sig = (work / name for name in ("ed.key", "ed.crt", "ed.msg", "ed.sig"))
    openssl("req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", key, "-out", cert,
            "-subj", "/CN=Ed25519 signer", "-days", "2")  # fmt: skip
    msg.write_bytes(DATA)
    openssl("pkeyutl", "-sign", "-inkey", key, "-rawin", "-in", msg, "-out", sig)
    certificate = load_pem_der(cert)[0]
    verifier = Verifier(TrustStore(), NoStatusSource(), SystemClock())
    scheme = SignatureScheme.ED25519
    report = verifier.verify(
        RawSignature(sig.read_bytes(), scheme, certificate, SignedContent(DATA))
    )
    signature_checks = [c for c in report.checks if c.name is CheckName.SIGNATURE]
    assert [c.indication for c in signature_checks] == [Indication.PASSED], report.checks
    assert not report.passed  # self-signed, not trusted here
    tampered = verifier.verify(
        RawSignature(sig.read_bytes(), scheme, certificate, SignedContent(DATA + b"!"))
    )
    assert SubIndication.SIG_CRYPTO_FAILURE in {c.sub_indication for c in tampered.checks}
    digest = SignedContent(digest=bytes(32), digest_algorithm="sha256")
    with pytest.raises(InputError, match="checked on the data"):
        verifier.verify(RawSignature(sig.read_bytes(), scheme, certificate, digest))
