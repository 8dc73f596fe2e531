"""Private-key operations. Only ``medsign.keys`` may import this module.

A ``PrivateKey`` lives in memory only while a key store uses it; at rest it is always
wrapped (software store) or never leaves the token (PKCS#11).

RSA, ECDSA and SM2 keys sign a digest (``sign_digest``); Ed25519 keys sign the message itself
(``sign_message``), and each method refuses the schemes of the other.
"""

from __future__ import annotations

from typing import assert_never

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from medsign.crypto.public import PSS_SALT_LENGTH, PublicKey
from medsign.crypto.types import KeyAlgorithm, SignatureScheme
from medsign.errors import InputError, KeyUseError

_CryptographyKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class PrivateKey:
    """A software private key of one of the supported algorithms."""

    def __init__(self, algorithm: KeyAlgorithm, handle: object) -> None:
        self.algorithm = algorithm
        self._handle = handle

    def __repr__(self) -> str:  # never show key material
        return f"<PrivateKey {self.algorithm}>"

    @classmethod
    def generate(cls, algorithm: KeyAlgorithm) -> PrivateKey:
        match algorithm:
            case KeyAlgorithm.SM2:
                from medsign.crypto import sm2

                return cls(algorithm, sm2.SM2PrivateKey.generate())
            case KeyAlgorithm.EC_P256:
                return cls(algorithm, ec.generate_private_key(ec.SECP256R1()))
            case KeyAlgorithm.ED25519:
                return cls(algorithm, ed25519.Ed25519PrivateKey.generate())
            case KeyAlgorithm.RSA_2048 | KeyAlgorithm.RSA_3072:
                bits = 2048 if algorithm is KeyAlgorithm.RSA_2048 else 3072
                return cls(
                    algorithm, rsa.generate_private_key(public_exponent=65537, key_size=bits)
                )
        assert_never(algorithm)

    @classmethod
    def from_pkcs8_der(cls, der: bytes) -> PrivateKey:
        from medsign.crypto import sm2

        if sm2.is_sm2_pkcs8(der):
            return cls(KeyAlgorithm.SM2, sm2.SM2PrivateKey.from_pkcs8_der(der))
        try:
            key = serialization.load_der_private_key(der, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise InputError("malformed or unsupported PKCS#8 private key") from exc
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
            return cls(KeyAlgorithm.EC_P256, key)
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size in (2048, 3072):
            algorithm = KeyAlgorithm.RSA_2048 if key.key_size == 2048 else KeyAlgorithm.RSA_3072
            return cls(algorithm, key)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return cls(KeyAlgorithm.ED25519, key)
        raise InputError("unsupported private key")

    def to_pkcs8_der(self) -> bytes:
        from medsign.crypto import sm2

        if isinstance(self._handle, sm2.SM2PrivateKey):
            return self._handle.to_pkcs8_der()
        assert isinstance(self._handle, _CryptographyKey)
        return self._handle.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_key(self) -> PublicKey:
        from medsign.crypto import sm2

        if isinstance(self._handle, sm2.SM2PrivateKey):
            return PublicKey(KeyAlgorithm.SM2, self._handle.public_key_der())
        assert isinstance(self._handle, _CryptographyKey)
        der = self._handle.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return PublicKey(self.algorithm, der)

    def sign_digest(self, scheme: SignatureScheme, digest: bytes) -> bytes:
        """Sign a 32-byte digest; DER signatures for ECDSA and SM2."""
        if not scheme.signs_digest:
            raise KeyUseError(f"{scheme} signs the message itself, not a digest: use sign_message")
        if scheme.family is not self.algorithm.family:
            raise KeyUseError(f"scheme {scheme} does not fit a {self.algorithm} key")
        if len(digest) != 32:
            raise InputError("digest must be 32 bytes")
        from medsign.crypto import sm2

        if isinstance(self._handle, sm2.SM2PrivateKey):
            return self._handle.sign_digest(digest)
        prehashed = utils.Prehashed(hashes.SHA256())
        if isinstance(self._handle, ec.EllipticCurvePrivateKey):
            return self._handle.sign(digest, ec.ECDSA(prehashed))
        assert isinstance(self._handle, rsa.RSAPrivateKey)
        if scheme is SignatureScheme.RSA_PKCS1_SHA256:
            return self._handle.sign(digest, padding.PKCS1v15(), prehashed)
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=PSS_SALT_LENGTH)
        return self._handle.sign(digest, pss, prehashed)

    def sign_message(self, scheme: SignatureScheme, message: bytes) -> bytes:
        """Sign ``message`` itself (Ed25519, RFC 8032 pure: the 64-byte R || S)."""
        if scheme.signs_digest:
            raise KeyUseError(f"{scheme} signs a digest, not the message: use sign_digest")
        if scheme.family is not self.algorithm.family:
            raise KeyUseError(f"scheme {scheme} does not fit a {self.algorithm} key")
        if not isinstance(message, bytes):
            raise InputError("the message to sign must be bytes")
        assert isinstance(self._handle, ed25519.Ed25519PrivateKey)
        return self._handle.sign(message)
