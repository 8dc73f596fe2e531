from __future__ import annotations

import hashlib

import pytest

from medsign.crypto import PublicKey, verify_digest
from medsign.crypto.types import KeyAlgorithm, SignatureScheme
from medsign.errors import InputError
from medsign.keys import SoftwareKeyStore, key_uses


@pytest.mark.parametrize(
    ("algorithm", "scheme"),
    [
        (KeyAlgorithm.EC_P256, SignatureScheme.ECDSA_SHA256),
        (KeyAlgorithm.RSA_2048, SignatureScheme.RSA_PSS_SHA256),
        (KeyAlgorithm.SM2, SignatureScheme.SM2_SM3),
    ],
)
def test_sign_digests_signs_and_records_each(
    store: SoftwareKeyStore, algorithm: KeyAlgorithm, scheme: SignatureScheme
) -> None:
    ref = store.generate(algorithm, label="batch")
    digests = [hashlib.sha256(bytes([i])).digest() for i in range(20)]
    signatures = store.sign_digests(ref.id, scheme, digests, actor="staff:1", purpose="batch")
    public = PublicKey.from_der(ref.public_key_der)
    for digest, signature in zip(digests, signatures, strict=True):
        verify_digest(public, scheme, digest, signature)
    recorded = key_uses(store._database, ref.id, limit=100)  # type: ignore[attr-defined]
    assert sorted(u.digest_hex for u in recorded) == sorted(d.hex() for d in digests)


def test_sign_digests_is_all_or_nothing(store: SoftwareKeyStore) -> None:
    ref = store.generate(KeyAlgorithm.EC_P256, label="batch")
    digests = [b"\x01" * 32, b"\x02" * 31]
    with pytest.raises(InputError):
        store.sign_digests(ref.id, SignatureScheme.ECDSA_SHA256, digests, actor="a", purpose="p")
    assert key_uses(store._database, ref.id) == []  # type: ignore[attr-defined]
    assert (
        store.sign_digests(ref.id, SignatureScheme.ECDSA_SHA256, [], actor="a", purpose="p") == []
    )
