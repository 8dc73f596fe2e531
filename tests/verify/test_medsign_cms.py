"""Interop with medsign's own producers: the CMS builder (GB/T 35275 for SM2) and the TSA."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from medsign.crypto import KeyAlgorithm, message_digest
from medsign.crypto.cms import add_signature_timestamp, build_signed_data
from medsign.verify import CheckName, CMSSignature, Indication, SignedContent, TimeSource
from tests.verify.support import store_signer

DATA = "护理记录：生命体征平稳。".encode()


def _sign(runtime: Any, algorithm: KeyAlgorithm) -> tuple[Any, bytes, bytes]:
    signer = store_signer(runtime, algorithm)
    digest_name = signer.scheme.hash_name
    built = build_signed_data(
        content_digest=hashlib.new(digest_name, DATA).digest(),
        digest_name=digest_name,
        signer_certificate_der=signer.certificate_der,
        chain_der=runtime.authority.chain(signer.serial),
        scheme=signer.scheme,
        signing_time=runtime.clock.now(),
        sign=lambda attrs: runtime.keystore.sign_digest(
            signer.key_id,
            signer.scheme,
            message_digest(signer.public_key, signer.scheme, attrs),
            actor="test",
            purpose="test",
        ),
    )
    return signer, built.der, built.signature


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.SM2, KeyAlgorithm.EC_P256])
def test_medsign_cms_with_medsign_timestamp(runtime: Any, algorithm: KeyAlgorithm) -> None:
    signer, der, signature = _sign(runtime, algorithm)
    report = runtime.verifier.verify(CMSSignature(der, SignedContent(DATA)))
    assert report.passed, report.checks
    assert report.scheme == str(signer.scheme)
    assert "signing-certificate-v2" in report.check(CheckName.SIGNING_CERTIFICATE).message

    token = runtime.tsa.stamp(hashlib.sha256(signature).digest(), "sha256")
    stamped = add_signature_timestamp(der, token)
    report = runtime.verifier.verify(CMSSignature(stamped, SignedContent(DATA)))
    assert report.passed, report.checks
    assert report.signing_time_source is TimeSource.TIMESTAMP

    changed = runtime.verifier.verify(CMSSignature(stamped, SignedContent(DATA + b".")))
    assert changed.indication is Indication.FAILED
