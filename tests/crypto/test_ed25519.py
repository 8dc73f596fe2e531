"""Ed25519: keys, message signatures, the refusals on digest paths, and OpenSSL interop.

Ed25519 (RFC 8032, pure) signs the message itself; medsign uses it for transparency-log
witness cosignatures only, so every digest-based path must refuse it clearly.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import keys as asn1_keys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from medsign.crypto import (
    CA_FAMILIES,
    AlgorithmFamily,
    KeyAlgorithm,
    PublicKey,
    SignatureEncoding,
    SignatureScheme,
    message_digest,
    verify,
    verify_digest,
)
from medsign.crypto.private import PrivateKey
from medsign.errors import InputError, KeyUseError, VerificationError

MESSAGE = b"cosignature/v1\ntime 1679315147\nexample.com/log\n5\n"

# RFC 8032 §7.1, TEST 1 (the empty message) and TEST 2 (one byte, 0x72): secret key, public
# key and signature as printed there.
RFC8032_VECTORS = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]


def pkcs8_from_seed(seed_hex: str) -> bytes:
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex)).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.generate(KeyAlgorithm.ED25519)


def test_enums_are_coherent() -> None:
    for scheme in SignatureScheme:
        assert scheme.family.default_scheme.family is scheme.family
        assert scheme.signs_digest is (scheme is not SignatureScheme.ED25519)
    for algorithm in KeyAlgorithm:
        assert algorithm.family.default_algorithm.family is algorithm.family
    assert KeyAlgorithm.ED25519.family is AlgorithmFamily.ED25519
    assert SignatureScheme.ED25519.family is AlgorithmFamily.ED25519
    assert AlgorithmFamily.ED25519.default_scheme is SignatureScheme.ED25519
    assert AlgorithmFamily.ED25519.default_algorithm is KeyAlgorithm.ED25519
    # RFC 8032 hashes with SHA-512 inside the signature; RFC 8419 pairs it with SHA-512.
    assert SignatureScheme.ED25519.hash_name == "sha512"
    assert CA_FAMILIES == (AlgorithmFamily.RSA, AlgorithmFamily.P256, AlgorithmFamily.SM2)
    assert not AlgorithmFamily.ED25519.certifiable


def test_generate_sign_verify(key: PrivateKey) -> None:
    public = key.public_key()
    assert public.algorithm is KeyAlgorithm.ED25519
    assert public.default_scheme is SignatureScheme.ED25519
    assert len(public.ed25519_raw) == 32
    assert len(public.der) == 44  # SEQUENCE{AlgorithmIdentifier{1.3.101.112}, BIT STRING}
    signature = key.sign_message(SignatureScheme.ED25519, MESSAGE)
    assert len(signature) == 64
    # Deterministic (RFC 8032 §5.1.6): the same key and message give the same signature.
    assert key.sign_message(SignatureScheme.ED25519, MESSAGE) == signature
    verify(public, SignatureScheme.ED25519, MESSAGE, signature)
    # One encoding only: the ECDSA/SM2 encoding switch does not apply.
    verify(public, SignatureScheme.ED25519, MESSAGE, signature, encoding=SignatureEncoding.RAW)
    with pytest.raises(VerificationError):
        verify(public, SignatureScheme.ED25519, MESSAGE + b"!", signature)
    with pytest.raises(VerificationError):
        verify(
            public, SignatureScheme.ED25519, MESSAGE, signature[:-1] + bytes([signature[-1] ^ 1])
        )
    with pytest.raises(VerificationError, match="64 bytes"):
        verify(public, SignatureScheme.ED25519, MESSAGE, signature + b"\x00")
    other = PrivateKey.generate(KeyAlgorithm.ED25519).public_key()
    with pytest.raises(VerificationError):
        verify(other, SignatureScheme.ED25519, MESSAGE, signature)


def test_non_canonical_s_is_refused(key: PrivateKey) -> None:
    # S + L verifies the same equation; RFC 8032 §5.1.7 requires S < L, so it must not.
    order = 2**252 + 27742317777372353535851937790883648493
    signature = key.sign_message(SignatureScheme.ED25519, MESSAGE)
    s = int.from_bytes(signature[32:], "little") + order
    assert s < 2**256
    malleated = signature[:32] + s.to_bytes(32, "little")
    with pytest.raises(VerificationError):
        verify(key.public_key(), SignatureScheme.ED25519, MESSAGE, malleated)


@pytest.mark.parametrize(("seed", "public_hex", "message", "signature"), RFC8032_VECTORS)
def test_rfc8032_vectors(seed: str, public_hex: str, message: str, signature: str) -> None:
    key = PrivateKey.from_pkcs8_der(pkcs8_from_seed(seed))
    assert key.algorithm is KeyAlgorithm.ED25519
    assert key.public_key().ed25519_raw.hex() == public_hex
    assert key.sign_message(SignatureScheme.ED25519, bytes.fromhex(message)).hex() == signature
    public = PublicKey.from_ed25519_raw(bytes.fromhex(public_hex))
    assert public == key.public_key()
    verify(public, SignatureScheme.ED25519, bytes.fromhex(message), bytes.fromhex(signature))


def test_keys_round_trip(key: PrivateKey) -> None:
    again = PrivateKey.from_pkcs8_der(key.to_pkcs8_der())
    assert again.algorithm is KeyAlgorithm.ED25519
    assert again.public_key() == key.public_key()
    public = key.public_key()
    assert PublicKey.from_der(public.der) == public
    assert PublicKey.from_pem(public.pem()) == public
    assert PublicKey.from_ed25519_raw(public.ed25519_raw) == public
    assert repr(key) == "<PrivateKey ed25519>"


def test_malformed_public_keys_are_refused(key: PrivateKey) -> None:
    raw = key.public_key().ed25519_raw
    # RFC 8410 §3: the parameters MUST be absent; here they are NULL.
    with_null = bytes.fromhex("302c300706032b65700500032100") + raw
    with pytest.raises(InputError, match="parameters"):
        PublicKey.from_der(with_null)
    short = asn1_keys.PublicKeyInfo(
        {"algorithm": {"algorithm": "ed25519"}, "public_key": raw[:31]}
    ).dump()
    with pytest.raises(InputError, match="32 bytes"):
        PublicKey.from_der(short)
    with pytest.raises(InputError, match="32 bytes"):
        PublicKey.from_ed25519_raw(raw + b"\x00")


def test_digest_paths_refuse_ed25519(key: PrivateKey) -> None:
    public = key.public_key()
    digest = bytes(32)
    with pytest.raises(KeyUseError, match="use sign_message"):
        key.sign_digest(SignatureScheme.ED25519, digest)
    with pytest.raises(KeyUseError, match="does not fit"):
        key.sign_digest(SignatureScheme.ECDSA_SHA256, digest)
    with pytest.raises(InputError, match="signs the message itself"):
        message_digest(public, SignatureScheme.ED25519, MESSAGE)
    with pytest.raises(InputError, match="signs the message itself"):
        verify_digest(public, SignatureScheme.ED25519, digest, bytes(64))
    with pytest.raises(InputError, match="not a P-256 or SM2 key"):
        _ = public.ec_point


def test_message_signing_refuses_digest_schemes(key: PrivateKey) -> None:
    p256 = PrivateKey.generate(KeyAlgorithm.EC_P256)
    with pytest.raises(KeyUseError, match="use sign_digest"):
        p256.sign_message(SignatureScheme.ECDSA_SHA256, MESSAGE)
    with pytest.raises(InputError, match="not an Ed25519 key"):
        _ = p256.public_key().ed25519_raw
    with pytest.raises(InputError, match="must be bytes"):
        key.sign_message(SignatureScheme.ED25519, "text")  # type: ignore[arg-type]
    # A digest scheme on an Ed25519 key, or Ed25519 on another key, does not fit.
    with pytest.raises((VerificationError, InputError)):
        verify(p256.public_key(), SignatureScheme.ED25519, MESSAGE, bytes(64))
    with pytest.raises(InputError, match="does not fit"):
        verify(key.public_key(), SignatureScheme.ECDSA_SHA256, MESSAGE, bytes(64))


# --- OpenSSL 3 ---------------------------------------------------------------------------------


def openssl(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(["openssl", *map(str, args)], capture_output=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"openssl {args} failed: {result.stderr.decode(errors='replace')}")
    return result


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_medsign_signature_verifies_in_openssl(key: PrivateKey, tmp_path: Path) -> None:
    (tmp_path / "msg").write_bytes(MESSAGE)
    (tmp_path / "pub.pem").write_text(key.public_key().pem())
    (tmp_path / "sig").write_bytes(key.sign_message(SignatureScheme.ED25519, MESSAGE))
    common = ["-verify", "-pubin", "-inkey", tmp_path / "pub.pem", "-rawin"]
    ok = openssl("pkeyutl", *common, "-in", tmp_path / "msg", "-sigfile", tmp_path / "sig")
    assert b"Signature Verified Successfully" in ok.stdout
    # And OpenSSL really checks: another message must fail.
    (tmp_path / "other").write_bytes(MESSAGE + b"!")
    refused = openssl(
        "pkeyutl", *common, "-in", tmp_path / "other", "-sigfile", tmp_path / "sig", check=False
    )
    assert refused.returncode != 0


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_openssl_keys_and_signatures_work_in_medsign(tmp_path: Path) -> None:
    (tmp_path / "msg").write_bytes(MESSAGE)
    openssl("genpkey", "-algorithm", "ED25519", "-out", tmp_path / "key.pem")
    openssl("pkey", "-in", tmp_path / "key.pem", "-outform", "DER", "-out", tmp_path / "key.der")
    openssl("pkey", "-in", tmp_path / "key.pem", "-pubout", "-out", tmp_path / "pub.pem")
    openssl(
        "pkeyutl",
        "-sign",
        "-inkey",
        tmp_path / "key.pem",
        "-rawin",
        "-in",
        tmp_path / "msg",
        "-out",
        tmp_path / "sig",
    )
    public = PublicKey.from_pem((tmp_path / "pub.pem").read_bytes())
    assert public.algorithm is KeyAlgorithm.ED25519
    signature = (tmp_path / "sig").read_bytes()
    verify(public, SignatureScheme.ED25519, MESSAGE, signature)
    # The same key imported from OpenSSL's PKCS#8 signs identically (Ed25519 is deterministic).
    key = PrivateKey.from_pkcs8_der((tmp_path / "key.der").read_bytes())
    assert key.public_key() == public
    assert key.sign_message(SignatureScheme.ED25519, MESSAGE) == signature
    # medsign's PKCS#8 reads back in OpenSSL as the same key.
    (tmp_path / "mine.der").write_bytes(key.to_pkcs8_der())
    pub = openssl(
        "pkey", "-inform", "DER", "-in", tmp_path / "mine.der", "-pubout", "-outform", "DER"
    ).stdout
    assert pub == public.der
