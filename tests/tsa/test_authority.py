"""The time-stamping unit: tokens, request handling, rejections, and the token verifier."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest
from asn1crypto import cms, core, tsp, x509

from medsign.clock import FixedClock
from medsign.crypto import KeyAlgorithm
from medsign.errors import InputError, VerificationError
from medsign.tsa import DEFAULT_POLICY_OID, parse_token, verify_token
from medsign.tsa.authority import rejection
from tests.tsa.conftest import TimeStampResp, TSAFactory, intermediates, roots

HASHES = {"sha256": 32, "sha384": 48, "sha512": 64, "sm3": 32}


def request(
    data: bytes = b"record",
    hash_name: str = "sha256",
    *,
    nonce: int | None = 0x1234567890ABCDEF,
    cert_req: bool = False,
    policy: str | None = None,
    version: int = 1,
    extensions: bool = False,
    null_params: bool = True,
) -> bytes:
    algorithm: dict[str, Any] = {"algorithm": hash_name}
    if null_params:
        algorithm["parameters"] = core.Null()
    fields: dict[str, Any] = {
        "version": version,
        "message_imprint": {
            "hash_algorithm": algorithm,
            "hashed_message": hashlib.new(hash_name, data).digest(),
        },
        "cert_req": cert_req,
    }
    if nonce is not None:
        fields["nonce"] = nonce
    if policy is not None:
        fields["req_policy"] = policy
    if extensions:
        fields["extensions"] = [
            {"extn_id": "1.2.3.4", "critical": False, "extn_value": core.OctetString(b"x")}
        ]
    return bytes(tsp.TimeStampReq(fields).dump())


def status(response: bytes) -> tuple[str, set[str]]:
    resp = TimeStampResp.load(response, strict=True)
    info = resp["status"]
    fail = info["fail_info"].native if not isinstance(info["fail_info"], core.Void) else set()
    return info["status"].native, set(fail or ())


def token_of(response: bytes) -> bytes:
    resp = TimeStampResp.load(response)
    assert resp["status"]["status"].native == "granted", status(response)
    return bytes(resp["time_stamp_token"].dump())


def certificates_in(token: bytes) -> list[bytes]:
    signed = cms.ContentInfo.load(token)["content"]
    return [bytes(c.chosen.dump()) for c in signed["certificates"]]


# -- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize("hash_name", sorted(HASHES))
def test_stamp_verifies_for_every_hash(runtime: Any, hash_name: str) -> None:
    imprint = hashlib.new(hash_name, b"the record").digest()
    token = runtime.tsa.stamp(imprint, hash_name, nonce=7)
    info = verify_token(
        token,
        imprint=imprint,
        hash_name=hash_name,
        trust=roots(runtime),
        certificates=intermediates(runtime),
    )
    assert info.hash_name == hash_name
    assert info.imprint == imprint
    assert info.nonce == 7
    assert info.policy == DEFAULT_POLICY_OID
    assert info.accuracy_ms == runtime.settings.tsa_accuracy_ms
    assert info.tsa_cert_der == runtime.tsa.certificate()


def test_respond_echoes_nonce_and_imprint_bytes(runtime: Any) -> None:
    req = request(nonce=2**63 + 5, null_params=True)
    token = token_of(runtime.tsa.respond(req))
    tst = tsp.TSTInfo.load(
        cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].contents
    )
    assert tst["nonce"].native == 2**63 + 5
    sent = tsp.TimeStampReq.load(req)["message_imprint"].dump()
    assert tst["message_imprint"].dump() == sent


def test_cert_req_is_honoured(runtime: Any) -> None:
    with_cert = token_of(runtime.tsa.respond(request(cert_req=True)))
    without = token_of(runtime.tsa.respond(request(cert_req=False)))
    assert certificates_in(with_cert) == [runtime.tsa.certificate()]
    assert certificates_in(without) == []
    assert parse_token(without).tsa_cert_der is None
    # Without certReq the verifier needs the TSA certificate from elsewhere.
    imprint = hashlib.sha256(b"record").digest()
    with pytest.raises(VerificationError, match="neither in the token"):
        verify_token(without, imprint=imprint, hash_name="sha256", trust=roots(runtime))
    verify_token(
        without,
        imprint=imprint,
        hash_name="sha256",
        trust=roots(runtime),
        certificates=[runtime.tsa.certificate(), *intermediates(runtime)],
    )


def test_serials_increase_and_nonce_is_optional(runtime: Any) -> None:
    first = parse_token(token_of(runtime.tsa.respond(request(nonce=None))))
    second = parse_token(token_of(runtime.tsa.respond(request(nonce=None))))
    assert first.nonce is None
    assert second.serial > first.serial > 0


def test_tsa_certificate_profile(runtime: Any) -> None:
    certificate = x509.Certificate.load(runtime.tsa.certificate())
    eku = [
        e
        for e in certificate["tbs_certificate"]["extensions"]
        if e["extn_id"].native == "extended_key_usage"
    ]
    assert eku and eku[0]["critical"].native is True
    assert eku[0]["extn_value"].parsed.native == ["time_stamping"]
    assert certificate.authority_information_access_value is not None
    assert "Time-Stamping Unit" in certificate.subject.native["common_name"]
    assert certificate.public_key.algorithm == "ec"  # P-256 by default


@pytest.mark.parametrize(
    ("digits", "micro", "fraction"),
    [(0, 123456, ""), (3, 123456, ".123"), (3, 100000, ".1"), (3, 0, ""), (6, 120050, ".12005")],
)
def test_gen_time_precision(make_tsa: TSAFactory, digits: int, micro: int, fraction: str) -> None:
    # Inside the TSA certificate's validity, which starts when the fixture issued it.
    moment = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(microsecond=micro)
    tsa = make_tsa(clock=FixedClock(moment), time_digits=digits)
    token = tsa.stamp(hashlib.sha256(b"x").digest(), "sha256")
    content = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"]
    gen_time = tsp.TSTInfo.load(content.contents)["gen_time"].contents.decode()
    assert gen_time == moment.strftime("%Y%m%d%H%M%S") + fraction + "Z"


def test_accuracy_encoding(make_tsa: TSAFactory) -> None:
    for accuracy, seconds, millis in ((1000, 1, None), (250, None, 250), (2500, 2, 500)):
        token = make_tsa(accuracy_ms=accuracy).stamp(hashlib.sha256(b"x").digest(), "sha256")
        tst = tsp.TSTInfo.load(
            cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].contents
        )
        assert tst["accuracy"]["seconds"].native == seconds
        assert tst["accuracy"]["millis"].native == millis
        assert parse_token(token).accuracy_ms == accuracy


def test_configured_policy(make_tsa: TSAFactory) -> None:
    tsa = make_tsa(policy_oid="1.2.3.4.5")
    assert parse_token(token_of(tsa.respond(request(policy="1.2.3.4.5")))).policy == "1.2.3.4.5"
    assert status(tsa.respond(request(policy=DEFAULT_POLICY_OID))) == (
        "rejection",
        {"unaccepted_policy"},
    )


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.SM2, KeyAlgorithm.RSA_2048])
def test_other_tsa_key_algorithms(
    runtime: Any, make_tsa: TSAFactory, algorithm: KeyAlgorithm
) -> None:
    tsa = make_tsa(algorithm=algorithm)
    imprint = hashlib.new("sm3", b"x").digest()
    token = token_of(tsa.respond(request(b"x", "sm3", cert_req=True)))
    info = verify_token(
        token,
        imprint=imprint,
        hash_name="sm3",
        trust=roots(runtime),
        certificates=intermediates(runtime),
    )
    signer_info = cms.ContentInfo.load(token)["content"]["signer_infos"][0]
    expected = "sm3" if algorithm is KeyAlgorithm.SM2 else "sha256"
    assert signer_info["digest_algorithm"]["algorithm"].native == expected
    assert info.tsa_cert_der == tsa.certificate()


# -- rejections -----------------------------------------------------------------------------


def test_rejections(runtime: Any) -> None:
    tsa = runtime.tsa
    assert status(tsa.respond(request(hash_name="sha1"))) == ("rejection", {"bad_alg"})
    assert status(tsa.respond(request(hash_name="md5"))) == ("rejection", {"bad_alg"})
    assert status(tsa.respond(request(version=2))) == ("rejection", {"bad_request"})
    assert status(tsa.respond(request(policy="1.2.3"))) == ("rejection", {"unaccepted_policy"})
    assert status(tsa.respond(request(extensions=True))) == (
        "rejection",
        {"unaccepted_extensions"},
    )
    wrong_length = tsp.TimeStampReq(
        {
            "version": 1,
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": b"\x00" * 20,
            },
        }
    ).dump()
    assert status(tsa.respond(wrong_length)) == ("rejection", {"bad_data_format"})
    for garbage in (b"", b"\x30", b"hello", b"\x30\x80\x00\x00", request() + b"\x00"):
        assert status(tsa.respond(garbage)) == ("rejection", {"bad_data_format"})
    # The statusString says why, in words an operator can act on.
    text = TimeStampResp.load(tsa.respond(request(hash_name="sha1")))["status"]
    assert "SHA-256" in text["status_string"].native[0]


def test_stamp_input_errors(runtime: Any) -> None:
    with pytest.raises(InputError):
        runtime.tsa.stamp(b"\x00" * 20, "sha1")
    with pytest.raises(InputError):
        runtime.tsa.stamp(b"\x00" * 31, "sha256")


@pytest.mark.parametrize(
    "fail_info",
    [
        "bad_alg",
        "bad_request",
        "bad_data_format",
        "time_not_available",
        "unaccepted_policy",
        "unaccepted_extensions",
        "system_failure",
    ],
)
def test_rejection_encoding(fail_info: str) -> None:
    der = rejection(fail_info, "why")
    status_info = TimeStampResp.load(der, strict=True)["status"]
    assert status_info["status"].native == "rejection"
    assert status_info["fail_info"].native == {fail_info}
    assert status_info["status_string"].native == ["why"]
    # DER: asn1crypto re-encodes the parsed value to the same bytes.
    assert tsp.PKIStatusInfo.load(status_info.dump()).dump(force=True) == status_info.dump()


# -- the verifier ---------------------------------------------------------------------------


def test_verify_token_refuses(runtime: Any, make_tsa: TSAFactory) -> None:
    imprint = hashlib.sha256(b"the record").digest()
    token = runtime.tsa.stamp(imprint, "sha256")
    trust = roots(runtime)
    pool = intermediates(runtime)
    with pytest.raises(VerificationError, match="imprint"):
        verify_token(
            token,
            imprint=hashlib.sha256(b"other").digest(),
            hash_name="sha256",
            trust=trust,
            certificates=pool,
        )
    with pytest.raises(VerificationError, match="imprint"):
        verify_token(token, imprint=imprint, hash_name="sha512", trust=trust, certificates=pool)
    # Untrusted: a root of another family, or no intermediates to build the path with.
    with pytest.raises(VerificationError, match="chain"):
        verify_token(token, imprint=imprint, hash_name="sha256", trust=trust)
    other_root = [r for r in trust if r not in (roots(runtime)[:0])]
    p256_root = [
        ca.certificate_der
        for ca in runtime.authority.list_cas()
        if ca.level == "root" and ca.family != "p256"
    ]
    assert other_root
    with pytest.raises(VerificationError, match="chain"):
        verify_token(token, imprint=imprint, hash_name="sha256", trust=p256_root, certificates=pool)
    # A flipped bit in the signature or in the TSTInfo.
    signature = bytes(cms.ContentInfo.load(token)["content"]["signer_infos"][0]["signature"].native)
    position = token.index(signature) + len(signature) // 2
    tampered = token[:position] + bytes([token[position] ^ 1]) + token[position + 1 :]
    with pytest.raises(VerificationError):
        verify_token(tampered, imprint=imprint, hash_name="sha256", trust=trust, certificates=pool)
    position = token.index(imprint)
    tampered = token[:position] + bytes([token[position] ^ 1]) + token[position + 1 :]
    with pytest.raises(VerificationError):
        verify_token(
            tampered,
            imprint=tampered[position : position + 32],
            hash_name="sha256",
            trust=trust,
            certificates=pool,
        )
    with pytest.raises(VerificationError):
        verify_token(b"\x30\x00", imprint=imprint, hash_name="sha256", trust=trust)


def test_verify_token_needs_a_tsa_certificate(runtime: Any) -> None:
    """A token signed with a staff certificate (no timeStamping EKU) is refused."""
    from medsign.tsa import TimestampAuthority, TSACredentials

    key = runtime.keystore.generate(KeyAlgorithm.EC_P256, label="not-a-tsa")
    record = runtime.authority.issue_for_key(
        key.id, {"CN": "Dr Who", "serialNumber": "E9"}, "staff-signing", actor="test"
    )
    impostor = TimestampAuthority(
        runtime.database,
        runtime.keystore,
        runtime.clock,
        lambda: TSACredentials(key.id, record.certificate_der),
    )
    imprint = hashlib.sha256(b"x").digest()
    token = impostor.stamp(imprint, "sha256")
    with pytest.raises(VerificationError, match=r"extended key usage|EKU"):
        verify_token(
            token,
            imprint=imprint,
            hash_name="sha256",
            trust=roots(runtime),
            certificates=intermediates(runtime),
        )


def test_stamp_many_gives_one_verifiable_token_each(runtime: Any) -> None:
    imprints = [hashlib.sha256(bytes([i])).digest() for i in range(25)]
    tokens = runtime.tsa.stamp_many(imprints, "sha256")
    serials = set()
    for imprint, token in zip(imprints, tokens, strict=True):
        info = verify_token(
            token,
            imprint=imprint,
            hash_name="sha256",
            trust=roots(runtime),
            certificates=intermediates(runtime),
        )
        serials.add(info.serial)
        assert info.nonce is None
    assert len(serials) == len(imprints)
    with pytest.raises(InputError):
        runtime.tsa.stamp_many([b"short"], "sha256")
    assert runtime.tsa.stamp_many([], "sha256") == []
