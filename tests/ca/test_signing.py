"""sign_structure: one path for every key family, through the key store."""

from __future__ import annotations

import pytest

from medsign.ca.signing import sign_structure
from medsign.crypto import KeyAlgorithm, PublicKey, SignatureScheme, verify
from medsign.crypto.x509alg import scheme_from_algorithm
from medsign.db import Database
from medsign.errors import InputError
from medsign.keys import SoftwareKeyStore, key_uses

TBS = b"\x30\x03\x02\x01\x05"


@pytest.mark.parametrize(
    ("algorithm", "scheme"),
    [
        (KeyAlgorithm.RSA_2048, SignatureScheme.RSA_PKCS1_SHA256),
        (KeyAlgorithm.EC_P256, SignatureScheme.ECDSA_SHA256),
        (KeyAlgorithm.SM2, SignatureScheme.SM2_SM3),
    ],
)
def test_default_scheme_per_family(
    keystore: SoftwareKeyStore, algorithm: KeyAlgorithm, scheme: SignatureScheme
) -> None:
    key = keystore.generate(algorithm, label="ca")
    alg, signature = sign_structure(keystore, key, TBS, actor="ca", purpose="certificate-issue")
    assert scheme_from_algorithm(alg) is scheme
    verify(PublicKey.from_der(key.public_key_der), scheme, TBS, signature)


def test_key_id_explicit_scheme_and_key_use_record(
    keystore: SoftwareKeyStore, database: Database
) -> None:
    key = keystore.generate(KeyAlgorithm.RSA_2048, label="ca")
    alg, signature = sign_structure(
        keystore,
        key.id,
        TBS,
        actor="crl",
        purpose="crl-sign",
        scheme=SignatureScheme.RSA_PSS_SHA256,
    )
    assert alg["algorithm"].native == "rsassa_pss"
    verify(PublicKey.from_der(key.public_key_der), SignatureScheme.RSA_PSS_SHA256, TBS, signature)
    uses = key_uses(database, key.id)
    assert [(u.actor, u.purpose) for u in uses] == [("crl", "crl-sign")]


def test_scheme_must_fit_the_key(keystore: SoftwareKeyStore) -> None:
    key = keystore.generate(KeyAlgorithm.EC_P256, label="ca")
    with pytest.raises(InputError, match="does not fit"):
        sign_structure(keystore, key, TBS, actor="a", purpose="p", scheme=SignatureScheme.SM2_SM3)


def test_ed25519_keys_do_not_sign_ca_structures(
    keystore: SoftwareKeyStore, database: Database
) -> None:
    key = keystore.generate(KeyAlgorithm.ED25519, label="witness")
    with pytest.raises(InputError, match="does not sign with ed25519"):
        sign_structure(keystore, key, TBS, actor="a", purpose="p")
    assert key_uses(database, key.id) == []
