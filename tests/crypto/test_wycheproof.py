"""Wycheproof vectors (see corpora/wycheproof/ORIGIN.md) run through medsign's public API.

One test per file rather than per vector keeps the run fast; every mismatch is collected so
a failure shows all offending tcIds at once. "acceptable" vectors may go either way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from medsign.crypto import PublicKey, SignatureEncoding, SignatureScheme, verify
from medsign.crypto.mac import hmac_digest, verify_hmac
from medsign.crypto.private import PrivateKey
from medsign.errors import InputError, VerificationError

REJECTIONS = (VerificationError, InputError)


def load(corpora: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((corpora / "wycheproof" / name).read_text())
    return data


def cases(data: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for group in data["testGroups"]:
        for test in group["tests"]:
            yield group, test


def check_file(
    data: dict[str, Any],
    accepts: Callable[[dict[str, Any], dict[str, Any]], bool],
    *,
    minimum: int,
) -> None:
    failures: list[str] = []
    count = 0
    for group, test in cases(data):
        count += 1
        try:
            accepted = accepts(group, test)
        except REJECTIONS:
            accepted = False
        except Exception as exc:  # anything else is a bug in medsign, not a rejection
            failures.append(f"tcId {test['tcId']}: unexpected {type(exc).__name__}: {exc}")
            continue
        expected = test["result"]
        if expected == "valid" and not accepted:
            failures.append(f"tcId {test['tcId']} ({test['comment']}): valid but rejected")
        elif expected == "invalid" and accepted:
            failures.append(f"tcId {test['tcId']} ({test['comment']}): invalid but accepted")
    assert count >= minimum, f"only {count} vectors ran"
    assert count == data["numberOfTests"], (count, data["numberOfTests"])
    assert not failures, "\n".join(failures)


def verifier(
    scheme: SignatureScheme, encoding: SignatureEncoding = SignatureEncoding.DER
) -> Callable[[dict[str, Any], dict[str, Any]], bool]:
    keys: dict[str, PublicKey] = {}

    def accepts(group: dict[str, Any], test: dict[str, Any]) -> bool:
        der_hex = group["publicKeyDer"]
        if der_hex not in keys:
            keys[der_hex] = PublicKey.from_der(bytes.fromhex(der_hex))
        verify(
            keys[der_hex],
            scheme,
            bytes.fromhex(test["msg"]),
            bytes.fromhex(test["sig"]),
            encoding=encoding,
        )
        return True

    return accepts


@pytest.mark.parametrize(
    ("name", "scheme", "encoding", "minimum"),
    [
        (
            "ecdsa_secp256r1_sha256_test.json",
            SignatureScheme.ECDSA_SHA256,
            SignatureEncoding.DER,
            400,
        ),
        (
            "ecdsa_secp256r1_sha256_p1363_test.json",
            SignatureScheme.ECDSA_SHA256,
            SignatureEncoding.RAW,
            200,
        ),
        (
            "rsa_signature_2048_sha256_test.json",
            SignatureScheme.RSA_PKCS1_SHA256,
            SignatureEncoding.DER,
            200,
        ),
        (
            "rsa_signature_3072_sha256_test.json",
            SignatureScheme.RSA_PKCS1_SHA256,
            SignatureEncoding.DER,
            200,
        ),
        (
            "rsa_pss_2048_sha256_mgf1_32_test.json",
            SignatureScheme.RSA_PSS_SHA256,
            SignatureEncoding.DER,
            100,
        ),
    ],
)
def test_signature_verification_vectors(
    corpora: Path,
    name: str,
    scheme: SignatureScheme,
    encoding: SignatureEncoding,
    minimum: int,
) -> None:
    data = load(corpora, name)
    if scheme is SignatureScheme.RSA_PSS_SHA256:
        # The file name promises these parameters; make sure medsign's fixed PSS profile fits.
        for group in data["testGroups"]:
            assert (group["sha"], group["mgfSha"], group["sLen"]) == ("SHA-256", "SHA-256", 32)
    check_file(data, verifier(scheme, encoding), minimum=minimum)


def test_rsa_pkcs1_signature_generation(corpora: Path) -> None:
    """PKCS#1 v1.5 is deterministic, so medsign's signer must reproduce the expected bytes."""
    data = load(corpora, "rsa_pkcs1_2048_sig_gen_test.json")
    failures: list[str] = []
    count = 0
    for group, test in cases(data):
        # medsign signs only with SHA-256; the other hash groups are not its business.
        if group["sha"] != "SHA-256":
            continue
        count += 1
        try:
            key = PrivateKey.from_pkcs8_der(bytes.fromhex(group["privateKeyPkcs8"]))
            public = key.public_key()
            message = bytes.fromhex(test["msg"])
            digest = hashlib.sha256(message).digest()
            signature = key.sign_digest(SignatureScheme.RSA_PKCS1_SHA256, digest)
            verify(public, SignatureScheme.RSA_PKCS1_SHA256, message, signature)
            produced = signature == bytes.fromhex(test["sig"])
        except REJECTIONS:
            produced = False
        if test["result"] == "valid" and not produced:
            failures.append(f"tcId {test['tcId']}: signature differs from the expected one")
    assert count >= 8, f"only {count} SHA-256 generation vectors ran"
    assert not failures, "\n".join(failures)


def test_hmac_sm3_vectors(corpora: Path) -> None:
    data = load(corpora, "hmac_sm3_test.json")

    def accepts(group: dict[str, Any], test: dict[str, Any]) -> bool:
        key = bytes.fromhex(test["key"])
        message = bytes.fromhex(test["msg"])
        tag = bytes.fromhex(test["tag"])
        tag_bytes = group["tagSize"] // 8
        full = hmac_digest("sm3", key, message)
        verify_hmac("sm3", key, message, tag)
        # verify_hmac must agree with a plain recomputation, not merely accept.
        assert full[:tag_bytes] == tag
        return True

    check_file(data, accepts, minimum=150)
