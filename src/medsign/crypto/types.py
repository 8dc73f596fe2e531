"""Algorithm identifiers and public-key values shared by every stage.

Private keys are not here: they are handled only in ``medsign.crypto.private``, which only
``medsign.keys`` may import (enforced by an import-linter contract).
"""

from __future__ import annotations

from enum import StrEnum

# GB/T 35276 / GM/T 0009: the default signer identity used in Z when none is agreed.
DEFAULT_SM2_ID = b"1234567812345678"


class KeyAlgorithm(StrEnum):
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    EC_P256 = "ec-p256"
    SM2 = "sm2"

    @property
    def family(self) -> AlgorithmFamily:
        if self in (KeyAlgorithm.RSA_2048, KeyAlgorithm.RSA_3072):
            return AlgorithmFamily.RSA
        if self is KeyAlgorithm.EC_P256:
            return AlgorithmFamily.P256
        return AlgorithmFamily.SM2


class AlgorithmFamily(StrEnum):
    """The families that each get their own CA hierarchy."""

    RSA = "rsa"
    P256 = "p256"
    SM2 = "sm2"

    @property
    def default_scheme(self) -> SignatureScheme:
        return {
            AlgorithmFamily.RSA: SignatureScheme.RSA_PKCS1_SHA256,
            AlgorithmFamily.P256: SignatureScheme.ECDSA_SHA256,
            AlgorithmFamily.SM2: SignatureScheme.SM2_SM3,
        }[self]

    @property
    def default_algorithm(self) -> KeyAlgorithm:
        return {
            AlgorithmFamily.RSA: KeyAlgorithm.RSA_3072,
            AlgorithmFamily.P256: KeyAlgorithm.EC_P256,
            AlgorithmFamily.SM2: KeyAlgorithm.SM2,
        }[self]


class SignatureScheme(StrEnum):
    RSA_PKCS1_SHA256 = "rsa-pkcs1-sha256"
    RSA_PSS_SHA256 = "rsa-pss-sha256"
    ECDSA_SHA256 = "ecdsa-sha256"
    SM2_SM3 = "sm2-sm3"

    @property
    def hash_name(self) -> str:
        return "sm3" if self is SignatureScheme.SM2_SM3 else "sha256"

    @property
    def family(self) -> AlgorithmFamily:
        if self in (SignatureScheme.RSA_PKCS1_SHA256, SignatureScheme.RSA_PSS_SHA256):
            return AlgorithmFamily.RSA
        if self is SignatureScheme.ECDSA_SHA256:
            return AlgorithmFamily.P256
        return AlgorithmFamily.SM2


class SignatureEncoding(StrEnum):
    """ECDSA and SM2 signatures travel as DER SEQUENCE{r,s} or as raw fixed-width r||s."""

    DER = "der"
    RAW = "raw"
