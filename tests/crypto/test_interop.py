"""Interoperability with the real OpenSSL 3 command line.

Signatures and keys must cross the boundary both ways: what medsign makes, ``openssl``
verifies or reads, and the reverse.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from medsign.crypto import (
    DEFAULT_SM2_ID,
    KeyAlgorithm,
    PublicKey,
    SignatureScheme,
    message_digest,
    verify,
)
from medsign.crypto.private import PrivateKey
from medsign.errors import VerificationError

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed"),
]

MESSAGE = "住院病历 / discharge summary #42\n".encode() * 20
DISTID = "distid:" + DEFAULT_SM2_ID.decode("ascii")
PSS_OPTS = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]


def openssl(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(["openssl", *map(str, args)], capture_output=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"openssl {args} failed: {result.stderr.decode(errors='replace')}")
    return result


def pem_body(pem: bytes) -> bytes:
    lines = [line for line in pem.decode("ascii").splitlines() if not line.startswith("-----")]
    return base64.b64decode("".join(lines))


def medsign_sign(key: PrivateKey, scheme: SignatureScheme, message: bytes) -> bytes:
    return key.sign_digest(scheme, message_digest(key.public_key(), scheme, message))


@pytest.fixture
def msg_file(tmp_path: Path) -> Path:
    path = tmp_path / "msg.bin"
    path.write_bytes(MESSAGE)
    return path


# --- SM2 -----------------------------------------------------------------------------------


def test_sm2_medsign_signature_verifies_in_openssl(tmp_path: Path, msg_file: Path) -> None:
    key = PrivateKey.generate(KeyAlgorithm.SM2)
    (tmp_path / "pub.pem").write_text(key.public_key().pem())
    (tmp_path / "sig").write_bytes(medsign_sign(key, SignatureScheme.SM2_SM3, MESSAGE))
    common = [
        "-pubin",
        "-inkey",
        tmp_path / "pub.pem",
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        DISTID,
        "-in",
        msg_file,
    ]
    ok = openssl("pkeyutl", "-verify", *common, "-sigfile", tmp_path / "sig")
    assert b"Signature Verified Successfully" in ok.stdout
    # And OpenSSL really checks: the same signature under another ID must fail.
    other = [*common[:-3], "-pkeyopt", "distid:ALICE123@YAHOO.COM", "-in", msg_file]
    assert (
        openssl("pkeyutl", "-verify", *other, "-sigfile", tmp_path / "sig", check=False).returncode
        != 0
    )


def test_sm2_openssl_signature_verifies_in_medsign(tmp_path: Path, msg_file: Path) -> None:
    openssl("genpkey", "-algorithm", "SM2", "-out", tmp_path / "key.pem")
    openssl("pkey", "-in", tmp_path / "key.pem", "-pubout", "-out", tmp_path / "pub.pem")
    openssl(
        "pkeyutl",
        "-sign",
        "-inkey",
        tmp_path / "key.pem",
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        DISTID,
        "-in",
        msg_file,
        "-out",
        tmp_path / "sig",
    )
    public = PublicKey.from_pem((tmp_path / "pub.pem").read_bytes())
    assert public.algorithm is KeyAlgorithm.SM2
    signature = (tmp_path / "sig").read_bytes()
    verify(public, SignatureScheme.SM2_SM3, MESSAGE, signature)
    with pytest.raises(VerificationError):
        verify(public, SignatureScheme.SM2_SM3, MESSAGE + b"!", signature)
    with pytest.raises(VerificationError):
        verify(public, SignatureScheme.SM2_SM3, MESSAGE, signature, user_id=b"someone-else")


def test_sm2_keys_round_trip_with_openssl(tmp_path: Path, msg_file: Path) -> None:
    # medsign PKCS#8 -> openssl
    key = PrivateKey.generate(KeyAlgorithm.SM2)
    (tmp_path / "mine.der").write_bytes(key.to_pkcs8_der())
    pub = openssl(
        "pkey", "-inform", "DER", "-in", tmp_path / "mine.der", "-pubout", "-outform", "DER"
    ).stdout
    assert pub == key.public_key().der
    text = openssl("pkey", "-inform", "DER", "-in", tmp_path / "mine.der", "-noout", "-text").stdout
    assert b"ASN1 OID: SM2" in text or b"SM2" in text

    # openssl PEM and DER -> medsign, then medsign signs with it and openssl verifies
    openssl("genpkey", "-algorithm", "SM2", "-out", tmp_path / "theirs.pem")
    # ``pkey -outform DER`` would write SEC1 for EC keys; pkcs8 -topk8 gives PKCS#8.
    openssl(
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        tmp_path / "theirs.pem",
        "-outform",
        "DER",
        "-out",
        tmp_path / "theirs.der",
    )
    their_pub = openssl("pkey", "-in", tmp_path / "theirs.pem", "-pubout", "-outform", "DER").stdout
    from_pem = PrivateKey.from_pkcs8_der(pem_body((tmp_path / "theirs.pem").read_bytes()))
    from_der = PrivateKey.from_pkcs8_der((tmp_path / "theirs.der").read_bytes())
    assert from_pem.algorithm is from_der.algorithm is KeyAlgorithm.SM2
    assert from_pem.public_key().der == from_der.public_key().der == their_pub
    assert from_der.to_pkcs8_der() == (tmp_path / "theirs.der").read_bytes()

    (tmp_path / "sig").write_bytes(medsign_sign(from_pem, SignatureScheme.SM2_SM3, MESSAGE))
    (tmp_path / "pub.der").write_bytes(their_pub)
    openssl(
        "pkeyutl",
        "-verify",
        "-pubin",
        "-keyform",
        "DER",
        "-inkey",
        tmp_path / "pub.der",
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        DISTID,
        "-in",
        msg_file,
        "-sigfile",
        tmp_path / "sig",
    )


# --- P-256 and RSA --------------------------------------------------------------------------

GENPKEY = {
    KeyAlgorithm.EC_P256: ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    KeyAlgorithm.RSA_2048: ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
}
CASES = [
    (KeyAlgorithm.EC_P256, SignatureScheme.ECDSA_SHA256, []),
    (KeyAlgorithm.RSA_2048, SignatureScheme.RSA_PKCS1_SHA256, []),
    (KeyAlgorithm.RSA_2048, SignatureScheme.RSA_PSS_SHA256, PSS_OPTS),
]


@pytest.mark.parametrize(("algorithm", "scheme", "sigopts"), CASES)
def test_medsign_signature_verifies_with_openssl_dgst(
    tmp_path: Path,
    msg_file: Path,
    algorithm: KeyAlgorithm,
    scheme: SignatureScheme,
    sigopts: list[str],
) -> None:
    key = PrivateKey.generate(algorithm)
    (tmp_path / "pub.pem").write_text(key.public_key().pem())
    (tmp_path / "sig").write_bytes(medsign_sign(key, scheme, MESSAGE))
    out = openssl(
        "dgst",
        "-sha256",
        "-verify",
        tmp_path / "pub.pem",
        *sigopts,
        "-signature",
        tmp_path / "sig",
        msg_file,
    )
    assert b"Verified OK" in out.stdout


@pytest.mark.parametrize(("algorithm", "scheme", "sigopts"), CASES)
def test_openssl_dgst_signature_verifies_in_medsign(
    tmp_path: Path,
    msg_file: Path,
    algorithm: KeyAlgorithm,
    scheme: SignatureScheme,
    sigopts: list[str],
) -> None:
    openssl("genpkey", *GENPKEY[algorithm], "-out", tmp_path / "key.pem")
    openssl(
        "dgst",
        "-sha256",
        "-sign",
        tmp_path / "key.pem",
        *sigopts,
        "-out",
        tmp_path / "sig",
        msg_file,
    )
    key = PrivateKey.from_pkcs8_der(pem_body((tmp_path / "key.pem").read_bytes()))
    assert key.algorithm is algorithm
    public = key.public_key()
    signature = (tmp_path / "sig").read_bytes()
    verify(public, scheme, MESSAGE, signature)
    with pytest.raises(VerificationError):
        verify(public, scheme, MESSAGE[:-1], signature)
