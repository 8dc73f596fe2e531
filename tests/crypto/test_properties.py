"""Property and refusal tests for encodings, tampering, scheme/key mismatches and repr."""

from __future__ import annotations

import hashlib
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medsign.crypto import (
    KeyAlgorithm,
    SignatureEncoding,
    SignatureScheme,
    der_to_raw,
    message_digest,
    raw_to_der,
    verify,
    verify_digest,
)
from medsign.crypto.private import PrivateKey
from medsign.crypto.sm2 import SM2PrivateKey, sm2_verify_digest
from medsign.errors import InputError, KeyUseError, VerificationError

SCHEMES = {
    KeyAlgorithm.SM2: SignatureScheme.SM2_SM3,
    KeyAlgorithm.EC_P256: SignatureScheme.ECDSA_SHA256,
    KeyAlgorithm.RSA_2048: SignatureScheme.RSA_PSS_SHA256,
}
_KEYS: dict[KeyAlgorithm, PrivateKey] = {}


def key_for(algorithm: KeyAlgorithm) -> PrivateKey:
    # Generating an RSA key per hypothesis example would dominate the run; one per algorithm.
    if algorithm not in _KEYS:
        _KEYS[algorithm] = PrivateKey.generate(algorithm)
    return _KEYS[algorithm]


scalars = st.integers(min_value=1, max_value=(1 << 256) - 1)


@given(r=scalars, s=scalars)
def test_raw_der_round_trip(r: int, s: int) -> None:
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = raw_to_der(raw)
    assert der_to_raw(der) == raw
    assert raw_to_der(der_to_raw(der)) == der


@given(st.binary(max_size=80))
def test_der_to_raw_never_crashes(blob: bytes) -> None:
    try:
        raw = der_to_raw(blob)
    except InputError:
        return
    # Anything accepted is canonical, so re-encoding gives the same bytes.
    assert raw_to_der(raw) == blob


@given(st.binary().filter(lambda b: len(b) != 64))
def test_raw_of_wrong_length_is_refused(blob: bytes) -> None:
    with pytest.raises(InputError):
        raw_to_der(blob)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    algorithm=st.sampled_from(list(SCHEMES)),
    message=st.binary(max_size=200),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_tampered_signatures_are_rejected(
    algorithm: KeyAlgorithm, message: bytes, position: int, flip: int
) -> None:
    key = key_for(algorithm)
    scheme = SCHEMES[algorithm]
    public = key.public_key()
    signature = key.sign_digest(scheme, message_digest(public, scheme, message))
    verify(public, scheme, message, signature)
    tampered = bytearray(signature)
    tampered[position % len(tampered)] ^= flip
    with pytest.raises((VerificationError, InputError)):
        verify(public, scheme, message, bytes(tampered))


@settings(max_examples=30, deadline=None)
@given(message=st.binary(max_size=100), other=st.binary(max_size=100))
def test_sm2_signature_binds_message(message: bytes, other: bytes) -> None:
    key = key_for(KeyAlgorithm.SM2)
    public = key.public_key()
    signature = key.sign_digest(
        SignatureScheme.SM2_SM3, message_digest(public, SignatureScheme.SM2_SM3, message)
    )
    raw = der_to_raw(signature)
    verify(public, SignatureScheme.SM2_SM3, message, raw, encoding=SignatureEncoding.RAW)
    if other != message:
        with pytest.raises(VerificationError):
            verify(public, SignatureScheme.SM2_SM3, other, signature)


@pytest.mark.parametrize("algorithm", list(SCHEMES))
def test_wrong_scheme_for_key_is_refused(algorithm: KeyAlgorithm) -> None:
    key = key_for(algorithm)
    digest = hashlib.sha256(b"m").digest()
    for scheme in SignatureScheme:
        if scheme.family is algorithm.family:
            continue
        with pytest.raises(KeyUseError):
            key.sign_digest(scheme, digest)
        with pytest.raises((VerificationError, InputError)):
            verify_digest(key.public_key(), scheme, digest, b"\x30\x06\x02\x01\x01\x02\x01\x01")
        with pytest.raises(InputError):
            message_digest(key.public_key(), scheme, b"m")


def test_sm2_signature_from_other_key_is_rejected() -> None:
    a, b = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    e = hashlib.new("sm3", b"x").digest()
    with pytest.raises(VerificationError):
        sm2_verify_digest(b.public_key_der(), e, a.sign_digest(e))


def test_sm2_malformed_inputs_are_refused() -> None:
    key = SM2PrivateKey.generate()
    e = bytes(32)
    with pytest.raises(InputError):
        key.sign_digest(b"short")
    with pytest.raises(VerificationError):
        sm2_verify_digest(b"\x30\x00", e, key.sign_digest(e))
    with pytest.raises(VerificationError):
        sm2_verify_digest(key.public_key_der(), e, b"\x30\x00")
    with pytest.raises(InputError):
        SM2PrivateKey.from_pkcs8_der(b"not a key")
    # A P-256 PKCS#8 is not an SM2 key, even though both are id-ecPublicKey.
    with pytest.raises(InputError):
        SM2PrivateKey.from_pkcs8_der(key_for(KeyAlgorithm.EC_P256).to_pkcs8_der())
    with pytest.raises(InputError):
        PrivateKey.from_pkcs8_der(b"\x30\x03\x02\x01\x00")


@pytest.mark.parametrize("algorithm", list(SCHEMES))
def test_repr_never_shows_key_material(algorithm: KeyAlgorithm) -> None:
    key = key_for(algorithm)
    pkcs8 = key.to_pkcs8_der()
    texts = [repr(key), str(key), f"{key!r}"]
    handle = getattr(key, "_handle", None)
    texts += [repr(handle), str(handle)]
    for text in texts:
        lowered = text.lower()
        # No 8-byte window of the PKCS#8 (hex or raw) may appear in any rendering.
        for i in range(0, len(pkcs8) - 8, 4):
            window = pkcs8[i : i + 8]
            assert window.hex() not in lowered
            assert window.decode("latin-1") not in text


def test_sm2_private_key_is_not_picklable() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(SM2PrivateKey.generate())


def test_sm2_keys_are_freed() -> None:
    import gc
    import weakref

    key = SM2PrivateKey.generate()
    ref = weakref.ref(key)
    del key
    gc.collect()
    assert ref() is None
