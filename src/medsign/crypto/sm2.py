"""SM2 with SM3 (GB/T 32918). PLACEHOLDER: the crypto helper replaces this whole module."""

from __future__ import annotations

from medsign.errors import KeyUseError


def is_sm2_pkcs8(der: bytes) -> bool:
    return False


def sm2_z(point: bytes, user_id: bytes) -> bytes:
    raise KeyUseError("SM2 not implemented yet")


def sm2_verify_digest(spki_der: bytes, digest: bytes, signature_der: bytes) -> None:
    raise KeyUseError("SM2 not implemented yet")


class SM2PrivateKey:
    @classmethod
    def generate(cls) -> SM2PrivateKey:
        raise KeyUseError("SM2 not implemented yet")

    @classmethod
    def from_pkcs8_der(cls, der: bytes) -> SM2PrivateKey:
        raise KeyUseError("SM2 not implemented yet")

    def to_pkcs8_der(self) -> bytes:
        raise KeyUseError("SM2 not implemented yet")

    def public_key_der(self) -> bytes:
        raise KeyUseError("SM2 not implemented yet")

    def sign_digest(self, digest: bytes) -> bytes:
        raise KeyUseError("SM2 not implemented yet")
