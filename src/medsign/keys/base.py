"""The key store contract. Nothing outside ``medsign.keys`` ever sees private key bytes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.engine import Connection

from medsign.crypto.types import KeyAlgorithm, SignatureScheme
from medsign.errors import KeyUseError
from medsign.ids import KeyId

Claim = Callable[[Connection, int], int]
"""Claims ``count`` consecutive numbers in the reservation's transaction; returns the first."""


class AllowanceSpentError(KeyUseError):
    """The allowance is used up or past its time limit: reserve a new one."""

    code = "key-allowance-spent"


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
    (actor, key, scheme, digest — for a message its SHA-256 —, time): one row per signature,
    written in the signature's transaction, or for ``reserve`` one row for up to N
    signatures, written before the first of them (see ``medsign.keys.usage``).
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

    def reserve(
        self,
        key_id: KeyId,
        scheme: SignatureScheme,
        count: int,
        *,
        actor: str,
        purpose: str,
        seconds: float,
        claim: Claim,
    ) -> SigningAllowance:
        """Record, before any of them is made, the use of the key for up to ``count``
        signatures, each bound to one of ``count`` numbers that ``claim`` takes in the same
        transaction; return the allowance that makes them without touching the database.

        The key row is checked as for ``sign_digest`` (and the key unwrapped or found) before
        the one key-use row is committed; the allowance refuses once its numbers are used up,
        once ``seconds`` have passed, and once the key is destroyed through this store.
        """
        ...

    def check(self) -> None:
        """Raise ``KeyStoreUnavailableError`` when the store cannot sign right now."""
        ...


class SigningAllowance(Protocol):
    """Signatures recorded in advance by one key-use row (``KeyStore.reserve``).

    Each signature carries a number taken from the reservation (``take``), and each number
    signs once: the signature and its number stay tied, and every signature is covered by a
    row written before it was made.
    """

    @property
    def key_id(self) -> KeyId: ...

    @property
    def scheme(self) -> SignatureScheme: ...

    @property
    def numbers(self) -> range:
        """The numbers reserved (recorded as the row's serial range)."""
        ...

    @property
    def valid_until(self) -> dt.datetime: ...

    def take(self) -> int:
        """The next unused number; ``AllowanceSpentError`` when none is left or the time
        limit has passed, ``KeyUseError`` when the allowance was revoked."""
        ...

    def sign_digest(self, number: int, digest: bytes) -> bytes:
        """Sign ``digest`` as the signature carrying ``number`` (taken, not yet signed)."""
        ...

    def sign_digests(self, items: Sequence[tuple[int, bytes]]) -> list[bytes]:
        """``sign_digest`` for many (number, digest) pairs; the numbers are spent even if a
        signature fails."""
        ...
