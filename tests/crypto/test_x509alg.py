"""SignatureScheme <-> AlgorithmIdentifier, checked against the encodings OpenSSL writes."""

from __future__ import annotations

import pytest
from asn1crypto import algos, core

from medsign.crypto.types import SignatureScheme
from medsign.crypto.x509alg import scheme_from_algorithm, signature_algorithm
from medsign.errors import InputError

# DER as written by OpenSSL 3 in certificates (ecdsa/sm2: no parameters; rsa: NULL;
# PSS: explicit SHA-256/MGF1-SHA-256/salt 32, trailer omitted as DEFAULT).
EXPECTED = {
    SignatureScheme.RSA_PKCS1_SHA256: "300d06092a864886f70d01010b0500",
    SignatureScheme.ECDSA_SHA256: "300a06082a8648ce3d040302",
    SignatureScheme.SM2_SM3: "300a06082a811ccf55018375",
    SignatureScheme.RSA_PSS_SHA256: (
        "304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a86"
        "4886f70d010108300d06096086480165030402010500a203020120"
    ),
}


@pytest.mark.parametrize("scheme", [s for s in SignatureScheme if s.signs_digest])
def test_round_trip(scheme: SignatureScheme) -> None:
    alg = signature_algorithm(scheme)
    assert alg.dump().hex() == EXPECTED[scheme]
    reparsed = algos.SignedDigestAlgorithm.load(bytes.fromhex(EXPECTED[scheme]))
    assert scheme_from_algorithm(reparsed) is scheme


def pss(**changes: object) -> algos.SignedDigestAlgorithm:
    params: dict[str, object] = {
        "hash_algorithm": {"algorithm": "sha256"},
        "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
        "salt_length": 32,
        "trailer_field": "trailer_field_bc",
    }
    params.update(changes)
    alg = algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": params})
    return algos.SignedDigestAlgorithm.load(alg.dump())


def test_pss_without_null_hash_parameters_is_accepted() -> None:
    assert scheme_from_algorithm(pss()) is SignatureScheme.RSA_PSS_SHA256


@pytest.mark.parametrize(
    "changes",
    [
        {"salt_length": 20},
        {"salt_length": 64},
        {"hash_algorithm": {"algorithm": "sha384"}},
        {"mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha1"}}},
        {"trailer_field": 2},
    ],
)
def test_pss_parameters_are_validated(changes: dict[str, object]) -> None:
    with pytest.raises(InputError):
        scheme_from_algorithm(pss(**changes))


def test_pss_defaults_are_refused() -> None:
    # Empty RSASSA-PSS-params means SHA-1/MGF1-SHA-1/salt 20; no params at all is malformed.
    for hex_der in ("300d06092a864886f70d01010a3000", "300b06092a864886f70d01010a"):
        with pytest.raises(InputError):
            scheme_from_algorithm(algos.SignedDigestAlgorithm.load(bytes.fromhex(hex_der)))


@pytest.mark.parametrize("name", ["sha1_rsa", "sha384_ecdsa", "sha256_dsa", "ed25519", "md5_rsa"])
def test_other_algorithms_are_refused(name: str) -> None:
    with pytest.raises(InputError):
        scheme_from_algorithm(algos.SignedDigestAlgorithm({"algorithm": name}))


def test_unknown_oid_is_refused() -> None:
    alg = algos.SignedDigestAlgorithm.load(bytes.fromhex("300706052b0601020a"))
    with pytest.raises(InputError):
        scheme_from_algorithm(alg)


def test_ecdsa_with_parameters_is_refused() -> None:
    alg = algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa", "parameters": core.Null()})
    with pytest.raises(InputError):
        scheme_from_algorithm(algos.SignedDigestAlgorithm.load(alg.dump()))


def test_tolerated_variants() -> None:
    sm2_null = algos.SignedDigestAlgorithm({"algorithm": "sm2_sm3", "parameters": core.Null()})
    assert scheme_from_algorithm(sm2_null) is SignatureScheme.SM2_SM3
    rsa_absent = algos.SignedDigestAlgorithm.load(bytes.fromhex("300b06092a864886f70d01010b"))
    assert scheme_from_algorithm(rsa_absent) is SignatureScheme.RSA_PKCS1_SHA256
    rsa_junk = algos.SignedDigestAlgorithm.load(bytes.fromhex("300e06092a864886f70d01010b020101"))
    with pytest.raises(InputError):
        scheme_from_algorithm(rsa_junk)


def test_ed25519_has_no_identifier_here() -> None:
    # The CA and CMS never sign with Ed25519, so no X.509 identifier is produced or accepted.
    with pytest.raises(InputError, match="no AlgorithmIdentifier"):
        signature_algorithm(SignatureScheme.ED25519)
    ed25519 = algos.SignedDigestAlgorithm.load(bytes.fromhex("300506032b6570"))
    with pytest.raises(InputError, match="unsupported signature algorithm"):
        scheme_from_algorithm(ed25519)
