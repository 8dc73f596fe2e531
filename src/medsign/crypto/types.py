"""Algorithm identifiers and public-key values shared by every stage.

Private keys are not here: they are handled only in ``medsign.crypto.private``, which only
``medsign.keys`` may import (enforced by an import-linter contract).
"""

from __future__ import annotations

from enum import StrEnum
from typing import assert_never

# GB/T 35276 / GM/T 0009: the default signer identity used in Z when none is agreed.
DEFAULT_SM2_ID = b"1234567812345678"


class KeyAlgorithm(StrEnum):
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    EC_P256 = "ec-p256"
    SM2 = "sm2"
    ED25519 = "ed25519"

    @property
    def family(self) -> AlgorithmFamily:
        # A match mypy checks for exhaustiveness: a new member cannot fall into another family.
        match self:
            case KeyAlgorithm.RSA_2048 | KeyAlgorithm.RSA_3072:
                return AlgorithmFamily.RSA
            case KeyAlgorithm.EC_P256:
                return AlgorithmFamily.P256
            case KeyAlgorithm.SM2:
                return AlgorithmFamily.SM2
            case KeyAlgorithm.ED25519:
                return AlgorithmFamily.ED25519
        assert_never(self)


class AlgorithmFamily(StrEnum):
    """Key families; each one the CA certifies gets its own CA hierarchy (``certifiable``)."""

    RSA = "rsa"
    P256 = "p256"
    SM2 = "sm2"
    ED25519 = "ed25519"

    @property
    def default_scheme(self) -> SignatureScheme:
        return {
            AlgorithmFamily.RSA: SignatureScheme.RSA_PKCS1_SHA256,
            AlgorithmFamily.P256: SignatureScheme.ECDSA_SHA256,
            AlgorithmFamily.SM2: SignatureScheme.SM2_SM3,
            AlgorithmFamily.ED25519: SignatureScheme.ED25519,
        }[self]

    @property
    def default_algorithm(self) -> KeyAlgorithm:
        return {
            AlgorithmFamily.RSA: KeyAlgorithm.RSA_3072,
            AlgorithmFamily.P256: KeyAlgorithm.EC_P256,
            AlgorithmFamily.SM2: KeyAlgorithm.SM2,
            AlgorithmFamily.ED25519: KeyAlgorithm.ED25519,
        }[self]

    @property
    def certifiable(self) -> bool:
        """Whether medsign's CA certifies keys of this family and has a hierarchy for it.

        The CA signs every certificate, CRL and OCSP response through
        ``KeyStore.sign_digest``, and CMS and the TSA hash before signing too. Ed25519 signs
        the message itself (RFC 8032 PureEdDSA), so it fits none of them; its keys serve the
        transparency log (witness cosignatures) only.
        """
        return self is not AlgorithmFamily.ED25519


# The families with a CA hierarchy, in a stable order (bootstrapping, listings, tests).
CA_FAMILIES: tuple[AlgorithmFamily, ...] = tuple(f for f in AlgorithmFamily if f.certifiable)


class SignatureScheme(StrEnum):
    RSA_PKCS1_SHA256 = "rsa-pkcs1-sha256"
    RSA_PSS_SHA256 = "rsa-pss-sha256"
    ECDSA_SHA256 = "ecdsa-sha256"
    SM2_SM3 = "sm2-sm3"
    ED25519 = "ed25519"

    @property
    def hash_name(self) -> str:
        """The hash of the scheme: of the digest a key store signs, or the CMS digest.

        Ed25519 hashes inside the signature with SHA-512 (RFC 8032 §5.1.6), and RFC 8419 §3.1
        pairs it with SHA-512 in CMS; no stage of medsign computes a digest for it.
        """
        match self:
            case SignatureScheme.SM2_SM3:
                return "sm3"
            case (
                SignatureScheme.RSA_PKCS1_SHA256
                | SignatureScheme.RSA_PSS_SHA256
                | SignatureScheme.ECDSA_SHA256
            ):
                return "sha256"
            case SignatureScheme.ED25519:
                return "sha512"
        assert_never(self)

    @property
    def family(self) -> AlgorithmFamily:
        match self:
            case SignatureScheme.RSA_PKCS1_SHA256 | SignatureScheme.RSA_PSS_SHA256:
                return AlgorithmFamily.RSA
            case SignatureScheme.ECDSA_SHA256:
                return AlgorithmFamily.P256
            case SignatureScheme.SM2_SM3:
                return AlgorithmFamily.SM2
            case SignatureScheme.ED25519:
                return AlgorithmFamily.ED25519
        assert_never(self)

    @property
    def signs_digest(self) -> bool:
        """True when a key store signs a precomputed digest (``KeyStore.sign_digest``); False
        when it must be given the message itself (``KeyStore.sign_message``: Ed25519)."""
        return self is not SignatureScheme.ED25519


class SignatureEncoding(StrEnum):
    """ECDSA and SM2 signatures travel as DER SEQUENCE{r,s} or as raw fixed-width r||s."""

    DER = "der"
    RAW = "raw"
