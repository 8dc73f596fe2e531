"""PKCS#10 requests made by the openssl CLI: loading and self-signature checks.

Finding (OpenSSL 3.0): ``openssl req -sm3`` signs SM2 requests with an EMPTY SM2 ID, not the
GM/T 0009 default 1234567812345678; ``-sigopt distid:X`` makes it use X. The tests below pin
that down so a change in OpenSSL's behaviour shows up here first.
"""

from __future__ import annotations

import pytest
from asn1crypto import csr as asn1_csr
from ca_support import OpenSSL

from medsign.ca.csr import OPENSSL_DEFAULT_SM2_ID, verify_csr
from medsign.crypto import DEFAULT_SM2_ID, KeyAlgorithm
from medsign.errors import InputError

SUBJECT = "/C=CN/O=示例医院/CN=张三/serialNumber=E1024"

NEW_KEY = {
    "rsa": ["-newkey", "rsa:2048"],
    "p256": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
}


def make_csr(openssl: OpenSSL, kind: str, *extra: str, name: str = "req") -> bytes:
    if kind == "sm2":
        openssl("genpkey", "-algorithm", "SM2", "-out", f"{name}.key")
        openssl(
            "req",
            "-new",
            "-key",
            f"{name}.key",
            "-sm3",
            "-subj",
            SUBJECT,
            "-utf8",
            "-out",
            f"{name}.csr",
            *extra,
        )
    else:
        openssl(
            "req",
            "-new",
            *NEW_KEY[kind],
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-subj",
            SUBJECT,
            "-utf8",
            "-out",
            f"{name}.csr",
            *extra,
        )
    return openssl.read(f"{name}.csr")


@pytest.mark.interop
@pytest.mark.parametrize(
    ("kind", "algorithm"),
    [("rsa", KeyAlgorithm.RSA_2048), ("p256", KeyAlgorithm.EC_P256), ("sm2", KeyAlgorithm.SM2)],
)
def test_openssl_requests_verify(run_openssl: OpenSSL, kind: str, algorithm: KeyAlgorithm) -> None:
    request = verify_csr(make_csr(run_openssl, kind))
    assert request.public_key.algorithm is algorithm
    assert request.subject_text == "serialNumber=E1024,CN=张三,O=示例医院,C=CN"
    # DER input works as well as PEM.
    assert verify_csr(request.der).der == request.der


@pytest.mark.interop
def test_rsa_pss_request(run_openssl: OpenSSL) -> None:
    pem = make_csr(run_openssl, "rsa", "-sigopt", "rsa_padding_mode:pss")
    request = verify_csr(pem)
    assert request.signature_algorithm == "rsassa_pss"


@pytest.mark.interop
def test_openssl_signs_sm2_requests_with_an_empty_id(run_openssl: OpenSSL) -> None:
    pem = make_csr(run_openssl, "sm2")
    assert verify_csr(pem).sm2_id == OPENSSL_DEFAULT_SM2_ID
    with pytest.raises(InputError, match="does not verify"):
        verify_csr(pem, sm2_id=DEFAULT_SM2_ID)
    # OpenSSL itself agrees: told the GM/T default ID, it rejects its own request.
    assert run_openssl("req", "-in", "req.csr", "-verify", "-noout").returncode == 0
    told = run_openssl(
        "req",
        "-in",
        "req.csr",
        "-verify",
        "-noout",
        "-vfyopt",
        "distid:1234567812345678",
    )
    # ``req -verify`` exits 0 either way; only its message tells.
    assert "verify failure" in told.stderr


@pytest.mark.interop
def test_sm2_request_with_explicit_ids(run_openssl: OpenSSL) -> None:
    standard = make_csr(run_openssl, "sm2", "-sigopt", "distid:1234567812345678", name="std")
    assert verify_csr(standard).sm2_id == DEFAULT_SM2_ID
    custom = make_csr(run_openssl, "sm2", "-sigopt", "distid:ward-7@hospital", name="custom")
    assert verify_csr(custom, sm2_id=b"ward-7@hospital").sm2_id == b"ward-7@hospital"
    with pytest.raises(InputError, match="does not verify"):
        verify_csr(custom)


def _flip_signature(der: bytes) -> bytes:
    request = asn1_csr.CertificationRequest.load(der)
    signature = bytearray(request["signature"].native)
    signature[-3] ^= 0x01
    tampered = asn1_csr.CertificationRequest(
        {
            "certification_request_info": request["certification_request_info"],
            "signature_algorithm": request["signature_algorithm"],
            "signature": bytes(signature),
        }
    )
    return bytes(tampered.dump())


@pytest.mark.interop
@pytest.mark.parametrize("kind", ["rsa", "p256", "sm2"])
def test_wrong_self_signature(run_openssl: OpenSSL, kind: str) -> None:
    der = verify_csr(make_csr(run_openssl, kind)).der
    with pytest.raises(InputError) as caught:
        verify_csr(_flip_signature(der))
    assert caught.value.public_message() == "certificate request self-signature does not verify"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a request",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        b"\x30\x03\x02\x01\x01",
        "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
    ],
)
def test_malformed_requests(data: bytes | str) -> None:
    with pytest.raises(InputError):
        verify_csr(data)


@pytest.mark.interop
def test_unsupported_key(run_openssl: OpenSSL) -> None:
    run_openssl(
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-nodes",
        "-keyout",
        "k.key",
        "-subj",
        "/CN=x",
        "-out",
        "p384.csr",
    )
    with pytest.raises(InputError, match="unsupported key"):
        verify_csr(run_openssl.read("p384.csr"))
