"""HMAC-SHA256 and HMAC-SM3 for authenticating requests from registered hospital systems.

Checks raise: ``verify_hmac`` returns ``None`` or raises ``VerificationError``. Comparison is
constant-time so a caller cannot learn a valid tag byte by byte from response timing.
"""

from __future__ import annotations

import hmac
from typing import Literal

from medsign.errors import InputError, VerificationError

__all__ = ["MacAlgorithm", "hmac_digest", "verify_hmac"]

MacAlgorithm = Literal["sha256", "sm3"]

_ALGORITHMS: frozenset[str] = frozenset({"sha256", "sm3"})


def _digestmod(algorithm: str) -> str:
    if algorithm not in _ALGORITHMS:
        raise InputError(f"unsupported HMAC algorithm {algorithm!r}")
    return algorithm


def hmac_digest(algorithm: MacAlgorithm, key: bytes, message: bytes) -> bytes:
    """The full-length HMAC tag (32 bytes for both algorithms)."""
    # By name, hmac uses OpenSSL's HMAC directly, which knows SM3 (hashlib.sm3 does not exist).
    return hmac.new(key, message, _digestmod(algorithm)).digest()


def verify_hmac(
    algorithm: MacAlgorithm,
    key: bytes,
    message: bytes,
    tag: bytes,
    *,
    min_tag_length: int = 16,
) -> None:
    """Check ``tag`` (possibly truncated, RFC 2104 §5) against the HMAC of ``message``.

    Truncated tags are accepted down to ``min_tag_length`` bytes so that a client sending an
    empty or one-byte tag cannot pass by matching a prefix.
    """
    expected = hmac_digest(algorithm, key, message)
    if not min_tag_length <= len(tag) <= len(expected):
        raise VerificationError("HMAC tag has the wrong length")
    if not hmac.compare_digest(expected[: len(tag)], tag):
        raise VerificationError("HMAC tag does not match")
