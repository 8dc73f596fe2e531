"""SM2 signatures with SM3 (GB/T 32918.2, GM/T 0003), backed by OpenSSL 3 ``libcrypto``.

The split of work: Z_A and e = SM3(Z_A || M) are computed here in Python (cheap hashing, and
it lets the curve be a parameter so the GB/T 32918.2 Annex A test curve can be checked too);
the elliptic-curve arithmetic (keygen, sign, verify) runs in OpenSSL through
``medsign.crypto._libcrypto``. OpenSSL's ``EVP_PKEY_sign``/``EVP_PKEY_verify`` on an SM2 key
treat their input as the already-computed e, which is exactly the ``sign_digest`` contract
every key store shares.

Parsed ``EVP_PKEY`` handles are cached per key object (and per SPKI for verification) and
freed by ``weakref.finalize``; no key material is ever copied into Python except as the
PKCS#8 encoding the caller explicitly asks for.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import weakref
from ctypes import POINTER, byref, c_size_t, c_ubyte, c_void_p
from dataclasses import dataclass

from asn1crypto import keys as asn1_keys

from medsign.crypto import oids
from medsign.crypto._libcrypto import library, openssl_errors
from medsign.errors import InputError, KeyUseError, VerificationError

oids.register_asn1crypto_oids()

__all__ = [
    "SM2P256V1",
    "Curve",
    "SM2PrivateKey",
    "is_sm2_pkcs8",
    "sm2_digest",
    "sm2_verify_digest",
    "sm2_z",
]

# A DER SEQUENCE{r, s} for a 256-bit curve is at most 72 bytes; leave headroom.
_MAX_SIGNATURE = 80
# GB/T 32918.2 §5.5: ENTL is two bytes of *bits*, so the ID is shorter than 8192 bytes.
_MAX_ID_BYTES = 8191


@dataclass(frozen=True)
class Curve:
    """Short Weierstrass curve y² = x³ + ax + b over F_p with base point G of order n."""

    name: str
    p: int
    a: int
    b: int
    gx: int
    gy: int
    n: int

    @property
    def size(self) -> int:
        """Byte length of a field element (32 for every curve medsign uses)."""
        return (self.p.bit_length() + 7) // 8

    def element(self, value: int) -> bytes:
        return value.to_bytes(self.size, "big")

    def contains(self, x: int, y: int) -> bool:
        if not (0 <= x < self.p and 0 <= y < self.p):
            return False
        return (y * y - (x * x * x + self.a * x + self.b)) % self.p == 0


# GB/T 32918.5 (GM/T 0003.5) recommended curve, OID 1.2.156.10197.1.301.
SM2P256V1 = Curve(
    name="sm2p256v1",
    p=0xFFFFFFFE_FFFFFFFF_FFFFFFFF_FFFFFFFF_FFFFFFFF_00000000_FFFFFFFF_FFFFFFFF,
    a=0xFFFFFFFE_FFFFFFFF_FFFFFFFF_FFFFFFFF_FFFFFFFF_00000000_FFFFFFFF_FFFFFFFC,
    b=0x28E9FA9E_9D9F5E34_4D5A9E4B_CF6509A7_F39789F5_15AB8F92_DDBCBD41_4D940E93,
    gx=0x32C4AE2C_1F198119_5F990446_6A39C994_8FE30BBF_F2660BE1_715A4589_334C74C7,
    gy=0xBC3736A2_F4F6779C_59BDCEE3_6B692153_D0A9877C_C62A4740_02DF32E5_2139F0A0,
    n=0xFFFFFFFE_FFFFFFFF_FFFFFFFF_FFFFFFFF_7203DF6B_21C6052B_53BBF409_39D54123,
)


def _sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def sm2_z(point: bytes, user_id: bytes, curve: Curve = SM2P256V1) -> bytes:
    """Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA) for an uncompressed point."""
    size = curve.size
    if len(point) != 1 + 2 * size or point[:1] != b"\x04":
        raise InputError(f"SM2 public key must be an uncompressed {curve.name} point")
    if len(user_id) > _MAX_ID_BYTES:
        raise InputError("SM2 user ID is too long")
    x = int.from_bytes(point[1 : 1 + size], "big")
    y = int.from_bytes(point[1 + size :], "big")
    # Z binds the signature to this key; hashing a point off the curve would bind it to nothing.
    if not curve.contains(x, y):
        raise InputError(f"SM2 public key is not on {curve.name}")
    entl = (8 * len(user_id)).to_bytes(2, "big")
    return _sm3(
        entl
        + user_id
        + curve.element(curve.a)
        + curve.element(curve.b)
        + curve.element(curve.gx)
        + curve.element(curve.gy)
        + point[1:]
    )


def sm2_digest(point: bytes, user_id: bytes, message: bytes, curve: Curve = SM2P256V1) -> bytes:
    """e = SM3(Z_A || M), the value SM2 actually signs."""
    return _sm3(sm2_z(point, user_id, curve) + message)


def is_sm2_pkcs8(der: bytes) -> bool:
    """True for a PKCS#8 PrivateKeyInfo holding an EC key on sm2p256v1."""
    try:
        info = asn1_keys.PrivateKeyInfo.load(der)
        algorithm = info["private_key_algorithm"]
        if algorithm["algorithm"].native != "ec":
            return False
        params = algorithm["parameters"]
        return bool(params.name == "named" and params.chosen.native == "sm2p256v1")
    except (ValueError, TypeError, KeyError):
        return False


# ---------------------------------------------------------------------------------------------
# libcrypto plumbing


def _bytes_ptr(data: bytes) -> ctypes._Pointer[c_ubyte]:
    # d2i_* advance the pointer they are given, so hand them a pointer to a private copy.
    buf = (c_ubyte * len(data)).from_buffer_copy(data)
    return ctypes.cast(buf, POINTER(c_ubyte))


def _d2i(fn_name: str, der: bytes) -> int:
    lib = library()
    ptr = _bytes_ptr(der)
    start = ctypes.cast(ptr, c_void_p).value or 0
    pkey = getattr(lib, fn_name)(None, byref(ptr), len(der))
    if not pkey:
        detail = openssl_errors(lib)
        raise InputError(
            f"OpenSSL could not parse the SM2 key: {detail}", public="malformed SM2 key"
        )
    consumed = (ctypes.cast(ptr, c_void_p).value or 0) - start
    if consumed != len(der) or lib.EVP_PKEY_is_a(pkey, b"SM2") != 1:
        lib.EVP_PKEY_free(pkey)
        openssl_errors(lib)
        raise InputError("not a well-formed SM2 key")
    return int(pkey)


def _i2d(fn_name: str, obj: int) -> bytes:
    lib = library()
    fn = getattr(lib, fn_name)
    length = fn(obj, None)
    if length <= 0:
        raise KeyUseError(f"OpenSSL {fn_name} failed: {openssl_errors(lib)}")
    buf = (c_ubyte * length)()
    ptr = ctypes.cast(buf, POINTER(c_ubyte))
    if fn(obj, byref(ptr)) != length:
        raise KeyUseError(f"OpenSSL {fn_name} failed: {openssl_errors(lib)}")
    out = bytes(buf)
    ctypes.memset(buf, 0, length)  # PKCS#8 goes through here; do not leave a stray copy
    return out


def _free_pkey(pkey: int) -> None:
    library().EVP_PKEY_free(pkey)


class _PublicHandle:
    """An owned ``EVP_PKEY`` parsed from an SPKI, freed when the handle is collected."""

    __slots__ = ("__weakref__", "pkey")

    def __init__(self, spki_der: bytes) -> None:
        self.pkey = _d2i("d2i_PUBKEY", spki_der)
        weakref.finalize(self, _free_pkey, self.pkey)


@functools.lru_cache(maxsize=256)
def _public_handle(spki_der: bytes) -> _PublicHandle:
    # Verifiers check many signatures by the same few CA and signer keys; parsing the SPKI
    # and validating the point costs about as much as a verification, so keep them around.
    return _PublicHandle(spki_der)


def sm2_verify_digest(spki_der: bytes, digest: bytes, signature_der: bytes) -> None:
    """Verify a DER SM2 signature over e; raises ``VerificationError``."""
    if len(digest) != 32:
        raise InputError("SM2 digest must be 32 bytes")
    if len(signature_der) > _MAX_SIGNATURE:
        raise VerificationError("SM2 signature is too long")
    try:
        handle = _public_handle(spki_der)
    except InputError as exc:
        raise VerificationError(f"SM2 public key rejected: {exc}") from exc
    lib = library()
    ctx = lib.EVP_PKEY_CTX_new_from_pkey(None, handle.pkey, None)
    if not ctx:
        raise KeyUseError(f"OpenSSL could not start SM2 verification: {openssl_errors(lib)}")
    try:
        if lib.EVP_PKEY_verify_init(ctx) != 1:
            raise KeyUseError(f"OpenSSL SM2 verify init failed: {openssl_errors(lib)}")
        rc = lib.EVP_PKEY_verify(ctx, signature_der, len(signature_der), digest, len(digest))
    finally:
        lib.EVP_PKEY_CTX_free(ctx)
    if rc != 1:
        # 0 is "does not verify", <0 is "could not even parse"; to a caller both are a no.
        detail = openssl_errors(lib)
        raise VerificationError(
            f"SM2 signature does not verify ({detail})", public="signature does not verify"
        )


class SM2PrivateKey:
    """An SM2 private key held as an OpenSSL ``EVP_PKEY`` for the lifetime of this object."""

    __slots__ = ("__weakref__", "_finalizer", "_pkey", "_public_der")

    def __init__(self, pkey: int) -> None:
        # Takes ownership of ``pkey``; use generate() or from_pkcs8_der().
        self._pkey = pkey
        self._public_der: bytes | None = None
        self._finalizer = weakref.finalize(self, _free_pkey, pkey)

    def __repr__(self) -> str:
        return "<SM2PrivateKey sm2p256v1>"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would either fail obscurely on the pointer or, worse, smuggle key bytes
        # into a cache or log; serialising a private key must be an explicit to_pkcs8_der().
        raise TypeError("SM2PrivateKey cannot be pickled")

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        lib = library()
        ctx = lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None)
        if not ctx:
            raise KeyUseError(f"OpenSSL has no SM2 key generator: {openssl_errors(lib)}")
        try:
            out = c_void_p()
            if lib.EVP_PKEY_keygen_init(ctx) != 1 or lib.EVP_PKEY_generate(ctx, byref(out)) != 1:
                raise KeyUseError(f"OpenSSL SM2 key generation failed: {openssl_errors(lib)}")
        finally:
            lib.EVP_PKEY_CTX_free(ctx)
        assert out.value is not None
        return cls(out.value)

    @classmethod
    def from_pkcs8_der(cls, der: bytes) -> SM2PrivateKey:
        if not is_sm2_pkcs8(der):
            raise InputError("not an SM2 PKCS#8 private key")
        return cls(_d2i("d2i_AutoPrivateKey", der))

    def to_pkcs8_der(self) -> bytes:
        lib = library()
        p8 = lib.EVP_PKEY2PKCS8(self._pkey)
        if not p8:
            raise KeyUseError(f"OpenSSL could not encode the SM2 key: {openssl_errors(lib)}")
        try:
            return _i2d("i2d_PKCS8_PRIV_KEY_INFO", p8)
        finally:
            lib.PKCS8_PRIV_KEY_INFO_free(p8)

    def public_key_der(self) -> bytes:
        """SubjectPublicKeyInfo: id-ecPublicKey with namedCurve sm2p256v1, as OpenSSL writes."""
        if self._public_der is None:
            self._public_der = _i2d("i2d_PUBKEY", self._pkey)
        return self._public_der

    def public_point(self) -> bytes:
        """The uncompressed point 04||x||y, the input to Z_A."""
        info = asn1_keys.PublicKeyInfo.load(self.public_key_der())
        return bytes(info["public_key"].native)

    def sign_digest(self, digest: bytes) -> bytes:
        """DER SEQUENCE{r, s} over e = SM3(Z_A || M); a fresh random k each time."""
        if len(digest) != 32:
            raise InputError("SM2 digest must be 32 bytes")
        lib = library()
        ctx = lib.EVP_PKEY_CTX_new_from_pkey(None, self._pkey, None)
        if not ctx:
            raise KeyUseError(f"OpenSSL could not start SM2 signing: {openssl_errors(lib)}")
        try:
            buf = ctypes.create_string_buffer(_MAX_SIGNATURE)
            length = c_size_t(_MAX_SIGNATURE)
            if (
                lib.EVP_PKEY_sign_init(ctx) != 1
                or lib.EVP_PKEY_sign(ctx, buf, byref(length), digest, len(digest)) != 1
            ):
                raise KeyUseError(
                    f"OpenSSL SM2 signing failed: {openssl_errors(lib)}",
                    public="the SM2 key could not sign",
                )
        finally:
            lib.EVP_PKEY_CTX_free(ctx)
        return buf.raw[: length.value]

    def sign(self, message: bytes, user_id: bytes) -> bytes:
        """Sign a message the GB/T 32918.2 way: e = SM3(Z_A || M), then sign e."""
        return self.sign_digest(sm2_digest(self.public_point(), user_id, message))
