"""IssuerContext: the spliced TBSCertificate is byte for byte what asn1crypto would encode.

The fast path encodes the constant parts once and splices in serial, validity, subject, key
and subject key identifier; here every default profile, every key family, both time types and
serials with and without a high first bit are compared with a tree built wholly by asn1crypto
(the encoder medsign used before), and the post-signing check is shown to refuse a bad
signature.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from asn1crypto import keys, x509

from medsign.ca.builder import (
    Issuer,
    IssuerContext,
    PKIURLs,
    asn1_time,
    build_extensions,
    verify_certificate_signature,
)
from medsign.ca.names import build_name
from medsign.ca.profiles import DEFAULT_PROFILES
from medsign.clock import FixedClock
from medsign.crypto import KeyAlgorithm, PublicKey
from medsign.crypto.x509alg import signature_algorithm
from medsign.db import Database
from medsign.errors import CertificateError
from medsign.keys import MasterKeyring, SoftwareKeyStore

URLS = PKIURLs("http://medsign.test")
ALGORITHMS = [KeyAlgorithm.EC_P256, KeyAlgorithm.RSA_2048, KeyAlgorithm.SM2]


@pytest.fixture
def store(database: Database, tmp_path: Path, clock: FixedClock) -> SoftwareKeyStore:
    return SoftwareKeyStore(database, MasterKeyring.create(tmp_path / "keyring"), clock)


def reference_tbs(
    context: IssuerContext,
    *,
    subject: x509.Name,
    public_key: PublicKey,
    profile_name: str,
    serial: int,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> bytes:
    profile = DEFAULT_PROFILES.get(profile_name)
    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial,
            "signature": signature_algorithm(context.signer.scheme),
            "issuer": context.issuer.name,
            "validity": {"not_before": asn1_time(not_before), "not_after": asn1_time(not_after)},
            "subject": subject,
            "subject_public_key_info": keys.PublicKeyInfo.load(public_key.der),
            "extensions": build_extensions(
                profile, subject_key_der=public_key.der, issuer=context.issuer, urls=URLS
            ),
        }
    )
    return bytes(tbs.dump())


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=str)
@pytest.mark.parametrize(
    ("ca_id", "ocsp"), [("ca_issuing", True), ("ca_root", False), (None, False)]
)
def test_spliced_tbs_equals_asn1crypto_tbs(
    store: SoftwareKeyStore, algorithm: KeyAlgorithm, ca_id: str | None, ocsp: bool
) -> None:
    issuer_key = store.generate(algorithm, label="issuer")
    issuer = Issuer(
        name=build_name([("CN", "Issuing CA"), ("O", "示例医院")]),
        key=issuer_key,
        ca_id=ca_id,
        ocsp=ocsp,
    )
    context = IssuerContext(store, issuer, URLS)
    subject = build_name([("C", "CN"), ("O", "示例医院"), ("CN", "张三")])
    for profile_name in DEFAULT_PROFILES.names():
        profile = DEFAULT_PROFILES.get(profile_name)
        subject_algorithm = (
            algorithm if algorithm in profile.key_algorithms else next(iter(profile.key_algorithms))
        )
        public_key = PublicKey.from_der(
            store.generate(subject_algorithm, label="subject").public_key_der
        )
        for serial in (1, 127, 128, 255, 2**151 + 12345, 2**159 - 1):
            for not_before, not_after in (
                (
                    dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC),
                    dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
                ),
                (
                    dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
                    dt.datetime(2050, 1, 1, tzinfo=dt.UTC),
                ),
            ):
                ours = context.tbs_der(
                    subject_der=bytes(subject.dump()),
                    public_key=public_key,
                    profile=profile,
                    serial=serial,
                    not_before=not_before,
                    not_after=not_after,
                )
                assert ours == reference_tbs(
                    context,
                    subject=subject,
                    public_key=public_key,
                    profile_name=profile_name,
                    serial=serial,
                    not_before=not_before,
                    not_after=not_after,
                ), (profile_name, serial, not_before)


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=str)
def test_built_certificate_verifies_and_parses(
    store: SoftwareKeyStore, algorithm: KeyAlgorithm
) -> None:
    issuer_key = store.generate(algorithm, label="issuer")
    issuer = Issuer(name=build_name([("CN", "Issuing CA")]), key=issuer_key, ca_id="ca_x")
    context = IssuerContext(store, issuer, URLS)
    subject_key = PublicKey.from_der(store.generate(algorithm, label="leaf").public_key_der)
    built = context.build(
        subject=build_name([("CN", "Leaf")]),
        public_key=subject_key,
        profile=DEFAULT_PROFILES.get("patient-event"),
        serial=2**151 + 1,
        not_before=dt.datetime(2026, 11, 23, 8, 0, 0, 500, tzinfo=dt.UTC),
        actor="test",
    )
    verify_certificate_signature(built.der, issuer_key.public_key_der)
    certificate = x509.Certificate.load(built.der, strict=True)
    assert certificate.serial_number == built.serial
    validity = certificate["tbs_certificate"]["validity"]
    assert validity["not_before"].native == built.not_before
    assert validity["not_after"].native == built.not_after
    assert built.not_before.microsecond == 0


def test_check_refuses_a_signature_that_does_not_verify(store: SoftwareKeyStore) -> None:
    issuer_key = store.generate(KeyAlgorithm.EC_P256, label="issuer")
    issuer = Issuer(name=build_name([("CN", "Issuing CA")]), key=issuer_key, ca_id="ca_x")
    context = IssuerContext(store, issuer, URLS)
    tbs = b"\x30\x03\x02\x01\x01"
    signature = context.signer.sign(tbs, actor="test", purpose="test")
    der = b"\x30" + bytes([len(tbs) + 2]) + tbs + b"\x00\x00"
    with pytest.raises(CertificateError, match="does not verify"):
        context.check(der, tbs + b"\x00", signature)
