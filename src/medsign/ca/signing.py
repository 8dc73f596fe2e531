"""Signing of DER structures (TBSCertificate, TBSCertList, ResponseData, CSR info) via a key store.

Every CA artefact is signed the same way: digest the to-be-signed DER as the scheme requires
(SHA-256, or SM3(Z_A || tbs) for SM2 with the default ID) and hand the digest to the key store.
The CA never touches private key objects, so software, PKCS#11 and phone-held keys all work.
"""

from __future__ import annotations

from asn1crypto import algos

from medsign.crypto import PublicKey, SignatureScheme, message_digest
from medsign.crypto.x509alg import signature_algorithm
from medsign.errors import InputError
from medsign.ids import KeyId
from medsign.keys.base import KeyRef, KeyStore

__all__ = ["default_scheme", "sign_structure"]


def default_scheme(key: KeyRef) -> SignatureScheme:
    """RSA PKCS#1 v1.5 SHA-256, ECDSA SHA-256 or SM2-with-SM3, by the key's family."""
    return key.algorithm.family.default_scheme


def sign_structure(
    keystore: KeyStore,
    key_ref_or_id: KeyRef | KeyId | str,
    tbs_der: bytes,
    *,
    actor: str,
    purpose: str,
    scheme: SignatureScheme | None = None,
) -> tuple[algos.SignedDigestAlgorithm, bytes]:
    """Sign ``tbs_der``; returns the AlgorithmIdentifier and the signature value bytes.

    The signature is what X.509/CRL/OCSP put in their BIT STRING: the raw octets for RSA and
    DER SEQUENCE{r, s} for ECDSA and SM2, which is exactly what ``KeyStore.sign_digest`` gives.
    """
    key = key_ref_or_id if isinstance(key_ref_or_id, KeyRef) else keystore.get(KeyId(key_ref_or_id))
    chosen = scheme if scheme is not None else default_scheme(key)
    public_key = PublicKey.from_der(key.public_key_der)
    if not public_key.supports(chosen):
        raise InputError(f"scheme {chosen} does not fit a {key.algorithm} key")
    digest = message_digest(public_key, chosen, tbs_der)
    signature = keystore.sign_digest(key.id, chosen, digest, actor=actor, purpose=purpose)
    return signature_algorithm(chosen), signature
