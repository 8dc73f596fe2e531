"""Signing of DER structures (TBSCertificate, TBSCertList, ResponseData, CSR info) via a key store.

Every CA artefact is signed the same way: digest the to-be-signed DER as the scheme requires
(SHA-256, or SM3(Z_A || tbs) for SM2 with the default ID) and hand the digest to the key store.
The CA never touches private key objects, so software, PKCS#11 and phone-held keys all work.

``StructureSigner`` does the per-key work (parsing the public key, the scheme check, the
AlgorithmIdentifier, SM2's Z_A) once, for callers that sign many structures with one key (the
issuing CA, OCSP responders); ``sign_structure`` is the one-off form.
"""

from __future__ import annotations

import hashlib

from asn1crypto import algos

from medsign.crypto import DEFAULT_SM2_ID, PublicKey, SignatureScheme, sm2_z
from medsign.crypto.x509alg import signature_algorithm
from medsign.errors import InputError
from medsign.ids import KeyId
from medsign.keys.base import KeyRef, KeyStore

__all__ = ["StructureSigner", "default_scheme", "der_tlv", "sign_structure"]


def default_scheme(key: KeyRef) -> SignatureScheme:
    """RSA PKCS#1 v1.5 SHA-256, ECDSA SHA-256 or SM2-with-SM3, by the key's family."""
    return key.algorithm.family.default_scheme


def der_tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV with a definite, minimal length (X.690 §10.1)."""
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


class StructureSigner:
    """Signs DER structures with one key-store key under one scheme.

    Holds no private key: every signature still goes through ``KeyStore.sign_digest``, which
    checks the key's state and records the use.
    """

    def __init__(
        self, keystore: KeyStore, key: KeyRef, scheme: SignatureScheme | None = None
    ) -> None:
        chosen = scheme if scheme is not None else default_scheme(key)
        if not chosen.signs_digest:
            # Every CA artefact is signed as a digest through ``KeyStore.sign_digest``.
            raise InputError(f"the CA does not sign with {chosen}: it signs digests only")
        public_key = PublicKey.from_der(key.public_key_der)
        if not public_key.supports(chosen):
            raise InputError(f"scheme {chosen} does not fit a {key.algorithm} key")
        self._keystore = keystore
        self.key = key
        self.scheme = chosen
        self.public_key = public_key
        self.algorithm: algos.SignedDigestAlgorithm = signature_algorithm(chosen)
        self.algorithm_der = bytes(self.algorithm.dump())
        self._z: bytes | None = None
        if chosen is SignatureScheme.SM2_SM3:
            self._z = sm2_z(public_key.ec_point, DEFAULT_SM2_ID)

    def __repr__(self) -> str:
        return f"<StructureSigner {self.key.id} {self.scheme}>"

    def digest(self, tbs_der: bytes) -> bytes:
        """What the key signs for ``tbs_der`` (equal to ``message_digest`` with the default ID)."""
        if self._z is not None:
            return hashlib.new("sm3", self._z + tbs_der).digest()
        return hashlib.sha256(tbs_der).digest()

    def sign(self, tbs_der: bytes, *, actor: str, purpose: str) -> bytes:
        """The signature value: raw octets for RSA, DER SEQUENCE{r, s} for ECDSA and SM2."""
        return self._keystore.sign_digest(
            self.key.id, self.scheme, self.digest(tbs_der), actor=actor, purpose=purpose
        )


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
    signer = StructureSigner(keystore, key, scheme)
    return signer.algorithm, signer.sign(tbs_der, actor=actor, purpose=purpose)
