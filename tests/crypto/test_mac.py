"""HMAC helpers: RFC 4231 for SHA-256 (vectors in code are published constants); SM3 is
covered by the Wycheproof file in test_wycheproof.py."""

from __future__ import annotations

import pytest

from medsign.crypto.mac import hmac_digest, verify_hmac
from medsign.errors import InputError, VerificationError

# RFC 4231 test case 2.
KEY, MSG = b"Jefe", b"what do ya want for nothing?"
TAG = bytes.fromhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_sha256_known_answer() -> None:
    assert hmac_digest("sha256", KEY, MSG) == TAG
    verify_hmac("sha256", KEY, MSG, TAG)
    verify_hmac("sha256", KEY, MSG, TAG[:16])


@pytest.mark.parametrize("tag", [b"", TAG[:1], TAG[:15], TAG + b"\x00", bytes(32)])
def test_bad_tags_are_rejected(tag: bytes) -> None:
    with pytest.raises(VerificationError):
        verify_hmac("sha256", KEY, MSG, tag)


def test_sm3_length_and_key_separation() -> None:
    tag = hmac_digest("sm3", KEY, MSG)
    assert len(tag) == 32
    assert tag != hmac_digest("sm3", KEY + b"x", MSG)
    with pytest.raises(VerificationError):
        verify_hmac("sm3", KEY, MSG, TAG)


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(InputError):
        hmac_digest("md5", KEY, MSG)  # type: ignore[arg-type]
