"""The key store contract. Nothing outside ``medsign.keys`` ever sees private key bytes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from medsign.crypto.types import KeyAlgorithm, SignatureScheme
from medsign.ids import KeyId


@dataclass(frozen=True)
class KeyRef:
    """A handle to a private key held by a key store, with its public half."""

    id: KeyId
    store: str
    algorithm: KeyAlgorithm
    label: str
    public_key_der: bytes  # SubjectPublicKeyInfo


class KeyStore(Protocol):
    """Generate keys and sign with them; private keys never leave the store.

    ``sign_digest`` takes the digest the signature scheme signs (SHA-256 of the message, or
    for SM2 the SM3 of Z_A || message, see ``medsign.crypto.message_digest``) and returns the
    signature in DER form for ECDSA/SM2 and as the raw octet string for RSA. Schemes that sign
    the message itself (``SignatureScheme.signs_digest`` is False: Ed25519) go through
    ``sign_message`` instead; each method refuses the other's schemes. Every use is recorded
    (actor, key, scheme, digest — for a message its SHA-256 —, time).
    """

    kind: str

    def supported_algorithms(self) -> frozenset[KeyAlgorithm]: ...

    def generate(self, algorithm: KeyAlgorithm, *, label: str) -> KeyRef: ...

    def get(self, key_id: KeyId) -> KeyRef: ...

    def sign_digest(
        self,
        key_id: KeyId,
        scheme: SignatureScheme,
        digest: bytes,
        *,
        actor: str,
        purpose: str,
    ) -> bytes: ...

    def sign_message(
        self,
        key_id: KeyId,
        scheme: SignatureScheme,
        message: bytes,
        *,
        actor: str,
        purpose: str,
    ) -> bytes:
        """Sign ``message`` itself (Ed25519: the 64-byte RFC 8032 signature), recorded like
        ``sign_digest``; a store that cannot raises ``KeyUseError``."""
        ...

    def sign_digests(
        self,
        key_id: KeyId,
        scheme: SignatureScheme,
        digests: Sequence[bytes],
        *,
        actor: str,
        purpose: str,
    ) -> list[bytes]:
        """``sign_digest`` for many digests, recorded together: all signed or none."""
        ...

    def check(self) -> None:
        """Raise ``KeyStoreUnavailableError`` when the store cannot sign right now."""
        ...
