"""SM3 and SM2 known answers from corpora/sm2_sm3 (see its ORIGIN.md).

The published SM2 answers fix the nonce k, which OpenSSL cannot take, so r and s are
reproduced by the test oracle in ``sm2_reference``; the fast OpenSSL-backed verifier must
then accept those signatures (on sm2p256v1) and reject them for a different message.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import sm2_reference as ref
from asn1crypto import core
from asn1crypto import keys as asn1_keys

from medsign.crypto import PublicKey, SignatureScheme, message_digest, verify
from medsign.crypto.sm2 import (
    SM2P256V1,
    Curve,
    SM2PrivateKey,
    sm2_digest,
    sm2_verify_digest,
    sm2_z,
)
from medsign.errors import InputError, VerificationError

CURVES = {"test": ref.GBT32918_TEST_CURVE, "sm2p256v1": SM2P256V1}


def kat(corpora: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((corpora / "sm2_sm3" / "sm2_sm3_kat.json").read_text())
    return data


def der_signature(r: int, s: int) -> bytes:
    seq = core.Sequence()
    seq.contents = core.Integer(r).dump() + core.Integer(s).dump()
    return seq.dump()


def test_sm3_digests(corpora: Path) -> None:
    vectors = kat(corpora)["sm3"]
    assert len(vectors) >= 2
    for message_hex, digest_hex in vectors:
        assert hashlib.new("sm3", bytes.fromhex(message_hex)).hexdigest() == digest_hex.lower()


def test_sm2_vectors_are_both_present(corpora: Path) -> None:
    assert {v["curve"] for v in kat(corpora)["sm2_sign"]} == {"test", "sm2p256v1"}


@pytest.mark.parametrize("index", [0, 1])
def test_sm2_sign_vector(corpora: Path, index: int) -> None:
    vector = kat(corpora)["sm2_sign"][index]
    curve: Curve = CURVES[vector["curve"]]
    d = int(vector["d"], 16)
    x, y = ref.public_point(curve, d)
    assert (x, y) == (int(vector["pub_x"], 16), int(vector["pub_y"], 16))

    point = b"\x04" + curve.element(x) + curve.element(y)
    uid = vector["uid"].encode("ascii")
    msg = vector["msg"].encode("ascii")
    z = sm2_z(point, uid, curve)
    if "za" in vector:
        assert z.hex() == vector["za"].lower()
    e = sm2_digest(point, uid, msg, curve)
    assert e == hashlib.new("sm3", z + msg).digest()
    if "e" in vector:
        assert e.hex() == vector["e"].lower()

    r, s = ref.sign_with_k(curve, d, e, int(vector["k"], 16))
    assert (r, s) == (int(vector["r"], 16), int(vector["s"], 16))
    assert ref.verify(curve, (x, y), e, r, s)

    if curve is SM2P256V1:
        spki = spki_for(point)
        sm2_verify_digest(spki, e, der_signature(r, s))
        verify(
            PublicKey.from_der(spki), SignatureScheme.SM2_SM3, msg, der_signature(r, s), user_id=uid
        )
        with pytest.raises(VerificationError):
            verify(
                PublicKey.from_der(spki),
                SignatureScheme.SM2_SM3,
                msg + b".",
                der_signature(r, s),
                user_id=uid,
            )


def spki_for(point: bytes) -> bytes:
    info = asn1_keys.PublicKeyInfo(
        {
            "algorithm": {"algorithm": "ec", "parameters": ("named", "sm2p256v1")},
            "public_key": point,
        }
    )
    return bytes(info.dump())


def pkcs8_for(d: int) -> bytes:
    """A PKCS#8 with only d (no public key), so medsign/OpenSSL must derive the point."""
    ec_key = asn1_keys.ECPrivateKey({"version": "ecPrivkeyVer1", "private_key": d})
    info = asn1_keys.PrivateKeyInfo(
        {
            "version": 0,
            "private_key_algorithm": {
                "algorithm": "ec",
                "parameters": ("named", "sm2p256v1"),
            },
            "private_key": ec_key,
        }
    )
    return bytes(info.dump())


def test_fast_key_derives_published_public_key(corpora: Path) -> None:
    vector = next(v for v in kat(corpora)["sm2_sign"] if v["curve"] == "sm2p256v1")
    key = SM2PrivateKey.from_pkcs8_der(pkcs8_for(int(vector["d"], 16)))
    expected = bytes.fromhex("04" + vector["pub_x"] + vector["pub_y"])
    assert key.public_point() == expected
    # And a signature from the fast signer verifies under the reference verifier.
    e = sm2_digest(expected, vector["uid"].encode(), vector["msg"].encode())
    signature = PublicKey.from_der(key.public_key_der())
    from medsign.crypto.public import der_to_raw

    raw = der_to_raw(key.sign_digest(e))
    x = int.from_bytes(expected[1:33], "big")
    y = int.from_bytes(expected[33:], "big")
    assert ref.verify(
        SM2P256V1, (x, y), e, int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    assert signature.algorithm.value == "sm2"


def test_annex_a_files_verify(corpora: Path) -> None:
    folder = corpora / "sm2_sm3"
    public = PublicKey.from_pem((folder / "sm2p256v1_annexA_pub.pem").read_bytes())
    assert public.der == (folder / "sm2p256v1_annexA_pub.der").read_bytes()
    signature = (folder / "sm2p256v1_annexA_sig.der").read_bytes()
    verify(public, SignatureScheme.SM2_SM3, (folder / "msg.txt").read_bytes(), signature)
    with pytest.raises(VerificationError):
        verify(public, SignatureScheme.SM2_SM3, (folder / "msg_bad.txt").read_bytes(), signature)
    digest = message_digest(public, SignatureScheme.SM2_SM3, (folder / "msg.txt").read_bytes())
    sm2_verify_digest(public.der, digest, signature)


def test_z_rejects_bad_points() -> None:
    with pytest.raises(InputError):
        sm2_z(b"\x04" + bytes(64), b"id")
    with pytest.raises(InputError):
        sm2_z(b"\x02" + bytes(32), b"id")
    with pytest.raises(InputError):
        sm2_z(
            b"\x04" + SM2P256V1.element(SM2P256V1.gx) + SM2P256V1.element(SM2P256V1.gy), bytes(8192)
        )
