"""Public keys, digests and verification for every supported scheme.

Checks raise: ``verify`` returns ``None`` on success and raises ``VerificationError``.

Ed25519 (RFC 8032, pure) signs the message itself: ``verify`` takes the message, and the
digest functions refuse it rather than hash something no Ed25519 signer ever signed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

from asn1crypto import core
from asn1crypto import keys as asn1_keys
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from medsign.crypto import oids
from medsign.crypto.types import (
    DEFAULT_SM2_ID,
    AlgorithmFamily,
    KeyAlgorithm,
    SignatureEncoding,
    SignatureScheme,
)
from medsign.errors import InputError, VerificationError

oids.register_asn1crypto_oids()

PSS_SALT_LENGTH = 32
ED25519_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64


@dataclass(frozen=True)
class PublicKey:
    """A SubjectPublicKeyInfo whose algorithm medsign supports."""

    algorithm: KeyAlgorithm
    der: bytes

    @classmethod
    def from_der(cls, der: bytes) -> PublicKey:
        try:
            info = asn1_keys.PublicKeyInfo.load(der)
            algo = info["algorithm"]["algorithm"].native
            if algo == "rsa":
                bits = info["public_key"].parsed["modulus"].native.bit_length()
                by_size = {2048: KeyAlgorithm.RSA_2048, 3072: KeyAlgorithm.RSA_3072}
                if bits not in by_size:
                    raise InputError(f"RSA keys must be 2048 or 3072 bits, not {bits}")
                return cls(by_size[bits], info.dump())
            if algo == "ec":
                curve = info["algorithm"]["parameters"].chosen.native
                if curve == "secp256r1":
                    return cls(KeyAlgorithm.EC_P256, info.dump())
                if curve == "sm2p256v1":
                    return cls(KeyAlgorithm.SM2, info.dump())
                raise InputError(f"unsupported elliptic curve {curve}")
            if algo == "ed25519":
                # RFC 8410 §3: the parameters MUST be absent; the key is the 32-byte encoding.
                if not isinstance(info["algorithm"]["parameters"], core.Void):
                    raise InputError("Ed25519 public key with algorithm parameters")
                if len(bytes(info["public_key"].native)) != ED25519_KEY_SIZE:
                    raise InputError("an Ed25519 public key is 32 bytes")
                return cls(KeyAlgorithm.ED25519, info.dump())
        except InputError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError("malformed public key") from exc
        raise InputError(f"unsupported public key algorithm {algo}")

    @classmethod
    def from_ed25519_raw(cls, raw: bytes) -> PublicKey:
        """The SubjectPublicKeyInfo of a raw 32-byte Ed25519 key (as signed notes carry it)."""
        if not isinstance(raw, bytes) or len(raw) != ED25519_KEY_SIZE:
            raise InputError("an Ed25519 public key is 32 bytes")
        der = ed25519.Ed25519PublicKey.from_public_bytes(raw).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(KeyAlgorithm.ED25519, der)

    @classmethod
    def from_pem(cls, pem: bytes | str) -> PublicKey:
        text = pem.decode("ascii") if isinstance(pem, bytes) else pem
        body = "".join(line for line in text.strip().splitlines() if not line.startswith("-----"))
        import base64

        try:
            return cls.from_der(base64.b64decode(body, validate=True))
        except ValueError as exc:
            raise InputError("malformed PEM public key") from exc

    def pem(self) -> str:
        import base64
        import textwrap

        body = "\n".join(textwrap.wrap(base64.b64encode(self.der).decode("ascii"), 64))
        return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"

    @property
    def default_scheme(self) -> SignatureScheme:
        return self.algorithm.family.default_scheme

    def supports(self, scheme: SignatureScheme) -> bool:
        return scheme.family is self.algorithm.family

    @cached_property
    def ec_point(self) -> bytes:
        """Uncompressed point 04||x||y of an EC or SM2 key."""
        if self.algorithm not in (KeyAlgorithm.EC_P256, KeyAlgorithm.SM2):
            raise InputError("not a P-256 or SM2 key")
        info = asn1_keys.PublicKeyInfo.load(self.der)
        # ``.contents`` would include the BIT STRING's unused-bits octet; ``.native`` does not.
        point = bytes(info["public_key"].native)
        if point[:1] != b"\x04" or len(point) != 65:
            raise InputError("only uncompressed P-256/SM2 points are supported")
        return point

    @cached_property
    def ed25519_raw(self) -> bytes:
        """The 32-byte RFC 8032 encoding of an Ed25519 key (what signed notes hash and carry)."""
        if self.algorithm is not KeyAlgorithm.ED25519:
            raise InputError("not an Ed25519 key")
        return bytes(asn1_keys.PublicKeyInfo.load(self.der)["public_key"].native)

    def _ed25519_key(self) -> ed25519.Ed25519PublicKey:
        try:
            return ed25519.Ed25519PublicKey.from_public_bytes(self.ed25519_raw)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise InputError("malformed Ed25519 public key") from exc

    def _cryptography_key(self) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        try:
            key = serialization.load_der_public_key(self.der)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise InputError("malformed public key") from exc
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise InputError("unsupported public key")
        return key


def der_to_raw(signature: bytes, size: int = 32) -> bytes:
    """DER SEQUENCE{r, s} to fixed-width r||s; raises InputError on malformed input."""
    try:
        r, s = utils.decode_dss_signature(signature)
    except ValueError as exc:
        raise InputError("malformed DER signature") from exc
    if utils.encode_dss_signature(r, s) != signature:
        raise InputError("non-canonical DER signature")
    if r >= 1 << (8 * size) or s >= 1 << (8 * size):
        raise InputError("signature component too large")
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def raw_to_der(signature: bytes, size: int = 32) -> bytes:
    if len(signature) != 2 * size:
        raise InputError(f"raw signature must be {2 * size} bytes")
    r = int.from_bytes(signature[:size], "big")
    s = int.from_bytes(signature[size:], "big")
    return utils.encode_dss_signature(r, s)


def message_digest(
    public_key: PublicKey,
    scheme: SignatureScheme,
    message: bytes,
    *,
    user_id: bytes = DEFAULT_SM2_ID,
) -> bytes:
    """The digest a key store signs for ``message``: SHA-256(m), or SM3(Z_A || m) for SM2.

    Ed25519 has none: its key store call takes the message (``KeyStore.sign_message``).
    """
    if not public_key.supports(scheme):
        raise InputError(f"scheme {scheme} does not fit a {public_key.algorithm} key")
    if not scheme.signs_digest:
        raise InputError(f"{scheme} signs the message itself, not a digest")
    if scheme is SignatureScheme.SM2_SM3:
        from medsign.crypto.sm2 import sm2_z

        return hashlib.new("sm3", sm2_z(public_key.ec_point, user_id) + message).digest()
    return hashlib.sha256(message).digest()


def verify(
    public_key: PublicKey,
    scheme: SignatureScheme,
    message: bytes,
    signature: bytes,
    *,
    encoding: SignatureEncoding = SignatureEncoding.DER,
    user_id: bytes = DEFAULT_SM2_ID,
) -> None:
    """Raise ``VerificationError`` unless ``signature`` is ``public_key``'s over ``message``.

    ``encoding`` and ``user_id`` concern ECDSA and SM2; an Ed25519 signature has a single
    64-byte form (RFC 8032 §5.1.6).
    """
    if not scheme.signs_digest:
        _verify_ed25519(public_key, scheme, message, signature)
        return
    digest = message_digest(public_key, scheme, message, user_id=user_id)
    verify_digest(public_key, scheme, digest, signature, encoding=encoding)


def _verify_ed25519(
    public_key: PublicKey, scheme: SignatureScheme, message: bytes, signature: bytes
) -> None:
    if not public_key.supports(scheme):
        raise VerificationError(f"scheme {scheme} does not fit a {public_key.algorithm} key")
    if len(signature) != ED25519_SIGNATURE_SIZE:
        raise VerificationError(f"an Ed25519 signature is {ED25519_SIGNATURE_SIZE} bytes")
    try:
        # OpenSSL refuses S >= L (RFC 8032 §5.1.7): a valid signature cannot be re-encoded
        # into another valid one.
        public_key._ed25519_key().verify(signature, message)
    except InvalidSignature as exc:
        raise VerificationError("signature does not verify") from exc


def verify_digest(
    public_key: PublicKey,
    scheme: SignatureScheme,
    digest: bytes,
    signature: bytes,
    *,
    encoding: SignatureEncoding = SignatureEncoding.DER,
) -> None:
    if not public_key.supports(scheme):
        raise VerificationError(f"scheme {scheme} does not fit a {public_key.algorithm} key")
    if not scheme.signs_digest:
        raise InputError(f"{scheme} signs the message itself: it cannot be checked on a digest")
    if len(digest) != 32:
        raise InputError("digest must be 32 bytes")
    if scheme.family is not AlgorithmFamily.RSA:
        try:
            if encoding is SignatureEncoding.RAW:
                signature = raw_to_der(signature)
            else:
                der_to_raw(signature)  # rejects non-canonical and oversized encodings
        except InputError as exc:
            raise VerificationError(f"signature rejected: {exc}") from exc
    if scheme is SignatureScheme.SM2_SM3:
        from medsign.crypto.sm2 import sm2_verify_digest

        sm2_verify_digest(public_key.der, digest, signature)
        return
    key = public_key._cryptography_key()
    prehashed = utils.Prehashed(hashes.SHA256())
    try:
        if scheme is SignatureScheme.ECDSA_SHA256:
            assert isinstance(key, ec.EllipticCurvePublicKey)
            key.verify(signature, digest, ec.ECDSA(prehashed))
        elif scheme is SignatureScheme.RSA_PKCS1_SHA256:
            assert isinstance(key, rsa.RSAPublicKey)
            key.verify(signature, digest, padding.PKCS1v15(), prehashed)
        else:
            assert isinstance(key, rsa.RSAPublicKey)
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=PSS_SALT_LENGTH)
            key.verify(signature, digest, pss, prehashed)
    except InvalidSignature as exc:
        raise VerificationError("signature does not verify") from exc
