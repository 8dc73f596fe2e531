"""OCSP request handling that needs no CA: malformed input, nonce limits, the GET form.

``respond`` must turn every input into a DER OCSPResponse, so the property test feeds it
arbitrary bytes and mutated real requests and checks only that contract.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import urllib.parse
from pathlib import Path

import pytest
from asn1crypto import core, ocsp, x509
from crl_ocsp_support import (
    FAMILIES,
    FAMILY_IDS,
    PKI,
    make_pki,
    needs_openssl,
    openssl,
    real_time_clock,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medsign.ca.authority import CertificateAuthority, CertificateRecord
from medsign.ca.ocsp import MAX_CERT_IDS, OCSPResponder
from medsign.clock import FixedClock
from medsign.crypto import AlgorithmFamily, PublicKey, verify
from medsign.crypto.x509alg import scheme_from_algorithm
from medsign.db import Database
from medsign.errors import KeyStoreUnavailableError


class _NoKeys:
    """A key store that must never be reached by requests rejected before signing."""

    kind = "none"

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"key store used for a rejected request ({name})")


def build_request(
    *,
    serials: list[int] | None = None,
    nonce: bytes | None = None,
    raw_nonce: bytes | None = None,
    hash_algorithm: str = "sha1",
) -> bytes:
    requests = [
        {
            "req_cert": {
                "hash_algorithm": {"algorithm": hash_algorithm},
                "issuer_name_hash": hashlib.new(hash_algorithm, b"name").digest(),
                "issuer_key_hash": hashlib.new(hash_algorithm, b"key").digest(),
                "serial_number": serial,
            }
        }
        for serial in (serials or [1])
    ]
    tbs: dict[str, object] = {"request_list": requests}
    if nonce is not None or raw_nonce is not None:
        value = raw_nonce if raw_nonce is not None else core.OctetString(nonce).dump()
        tbs["request_extensions"] = [
            {"extn_id": "nonce", "extn_value": core.ParsableOctetString(value)}
        ]
    return bytes(ocsp.OCSPRequest({"tbs_request": tbs}).dump())


def status_of(response_der: bytes) -> str:
    response = ocsp.OCSPResponse.load(response_der, strict=True)
    return str(response["response_status"].native)


@pytest.fixture
def responder(database: Database, clock: FixedClock) -> OCSPResponder:
    return OCSPResponder(database, _NoKeys(), clock)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x00", b"hello world", b"\x30\x03\x02\x01\x01", b"\x30\x80" + b"\x00" * 10],
)
def test_garbage_is_malformed_request(responder: OCSPResponder, garbage: bytes) -> None:
    assert status_of(responder.respond(garbage)) == "malformed_request"


def test_trailing_bytes_are_malformed(responder: OCSPResponder) -> None:
    assert status_of(responder.respond(build_request() + b"\x00")) == "malformed_request"


def test_empty_request_list_is_malformed(responder: OCSPResponder) -> None:
    empty = ocsp.OCSPRequest({"tbs_request": {"request_list": []}}).dump()
    assert status_of(responder.respond(empty)) == "malformed_request"


def test_too_many_cert_ids_is_malformed(responder: OCSPResponder) -> None:
    request = build_request(serials=list(range(1, MAX_CERT_IDS + 2)))
    assert status_of(responder.respond(request)) == "malformed_request"


def test_oversized_request_is_malformed(responder: OCSPResponder) -> None:
    assert status_of(responder.respond(b"\x30" * 100_000)) == "malformed_request"


@pytest.mark.parametrize("size", [0, 33, 64])
def test_nonce_outside_rfc8954_bounds_is_malformed(responder: OCSPResponder, size: int) -> None:
    request = build_request(nonce=b"\x01" * size)
    assert status_of(responder.respond(request)) == "malformed_request"


@pytest.mark.parametrize("size", [1, 16, 32])
def test_acceptable_nonce_reaches_issuer_lookup(responder: OCSPResponder, size: int) -> None:
    # The issuer hashes name no CA here, so a well-formed request ends as unauthorized.
    assert status_of(responder.respond(build_request(nonce=b"\x01" * size))) == "unauthorized"


def test_unknown_issuer_is_unauthorized(responder: OCSPResponder) -> None:
    assert status_of(responder.respond(build_request())) == "unauthorized"


def test_unsupported_cert_id_hash_is_unauthorized(responder: OCSPResponder) -> None:
    assert status_of(responder.respond(build_request(hash_algorithm="md5"))) == "unauthorized"


def test_get_form_decodes_url_encoded_base64(responder: OCSPResponder) -> None:
    request = build_request(nonce=b"\xfb" * 20)
    encoded = base64.b64encode(request).decode("ascii")
    assert "+" in encoded or "/" in encoded or "=" in encoded
    assert status_of(responder.respond_get(urllib.parse.quote(encoded, safe=""))) == "unauthorized"
    # An already-decoded path, one where '+' became ' ', and base64url all work too.
    assert status_of(responder.respond_get(encoded)) == "unauthorized"
    assert status_of(responder.respond_get(encoded.replace("+", " "))) == "unauthorized"
    url_safe = base64.urlsafe_b64encode(request).decode("ascii").rstrip("=")
    assert status_of(responder.respond_get(url_safe)) == "unauthorized"


@pytest.mark.parametrize("path", ["", "%%%", "not base64!", "A", "////"])
def test_get_form_garbage_is_malformed(responder: OCSPResponder, path: str) -> None:
    assert status_of(responder.respond_get(path)) == "malformed_request"


def test_error_responses_carry_no_response_bytes(responder: OCSPResponder) -> None:
    response = ocsp.OCSPResponse.load(responder.respond(b"junk"))
    assert response["response_bytes"].native is None


@settings(
    max_examples=300,
    deadline=dt.timedelta(seconds=2),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_always_get_an_error_response(
    responder: OCSPResponder, data: bytes
) -> None:
    assert status_of(responder.respond(data)) in {"malformed_request", "unauthorized"}


@settings(
    max_examples=300,
    deadline=dt.timedelta(seconds=2),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_mutated_requests_always_get_an_error_response(
    responder: OCSPResponder, position: int, value: int
) -> None:
    request = bytearray(build_request(nonce=b"\x07" * 16))
    request[position % len(request)] = value
    assert status_of(responder.respond(bytes(request))) in {"malformed_request", "unauthorized"}


# -- against a real CA hierarchy ------------------------------------------------------------


@pytest.fixture(params=FAMILIES, ids=FAMILY_IDS)
def pki(
    request: pytest.FixtureRequest, database: Database, clock: FixedClock, tmp_path: Path
) -> PKI:
    return make_pki(request.param, database, clock, tmp_path)


@pytest.fixture
def p256(database: Database, clock: FixedClock, tmp_path: Path) -> PKI:
    return make_pki(AlgorithmFamily.P256, database, clock, tmp_path)


def cert_id_request(
    issuer_der: bytes,
    serials: list[int],
    *,
    hash_algorithm: str = "sha1",
    nonce: bytes | None = None,
) -> bytes:
    issuer = x509.Certificate.load(issuer_der)
    name_hash = hashlib.new(hash_algorithm, issuer.subject.dump()).digest()
    key_bits = bytes(issuer.public_key["public_key"].contents)[1:]
    key_hash = hashlib.new(hash_algorithm, key_bits).digest()
    requests = [
        {
            "req_cert": {
                "hash_algorithm": {"algorithm": hash_algorithm},
                "issuer_name_hash": name_hash,
                "issuer_key_hash": key_hash,
                "serial_number": serial,
            }
        }
        for serial in serials
    ]
    tbs: dict[str, object] = {"request_list": requests}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "extn_value": nonce}]
    return bytes(ocsp.OCSPRequest({"tbs_request": tbs}).dump())


def verify_response(response_der: bytes, pki: PKI) -> ocsp.BasicOCSPResponse:
    """medsign's own check: signed by the CA's delegated responder, which is in ``certs``."""
    response = ocsp.OCSPResponse.load(response_der, strict=True)
    assert response["response_status"].native == "successful"
    assert response["response_bytes"]["response_type"].native == "basic_ocsp_response"
    basic = response.basic_ocsp_response
    certs = basic["certs"]
    assert len(certs) == 1
    responder = certs[0]
    expected = pki.authority.ocsp_responder(pki.issuing.id)
    assert expected is not None
    assert responder.dump() == expected.certificate_der
    assert responder.issuer.dump() == pki.issuing.certificate.subject.dump()
    assert "ocsp_signing" in responder.extended_key_usage_value.native
    data = basic["tbs_response_data"]
    assert data["responder_id"].name == "by_key"
    assert data["responder_id"].chosen.native == responder.public_key.sha1
    verify(
        PublicKey.from_der(responder.public_key.dump()),
        scheme_from_algorithm(basic["signature_algorithm"]),
        data.dump(),
        basic["signature"].native,
    )
    return basic


def single_statuses(basic: ocsp.BasicOCSPResponse) -> list[tuple[int, str, object]]:
    out = []
    for single in basic["tbs_response_data"]["responses"]:
        status = single["cert_status"]
        detail: object = None
        if status.name == "revoked":
            detail = (
                status.chosen["revocation_time"].native,
                status.chosen["revocation_reason"].native,
            )
        out.append((single["cert_id"]["serial_number"].native, status.name, detail))
    return out


def serial(record: CertificateRecord) -> int:
    return int(record.serial_hex, 16)


def test_good_revoked_unknown(pki: PKI) -> None:
    good = pki.issue_leaf("Good")
    revoked = pki.issue_leaf("Revoked")
    unspecified = pki.issue_leaf("Unspecified")
    pki.authority.revoke(revoked.serial_hex, "keyCompromise", actor="test")
    pki.authority.revoke(unspecified.serial_hex, "unspecified", actor="test")
    revoked_at = pki.authority.get(revoked.serial_hex).revoked_at
    never_issued = serial(good) ^ 0xFFFF
    request = cert_id_request(
        pki.issuing.certificate_der,
        [serial(good), serial(revoked), never_issued, serial(unspecified)],
        nonce=b"\x42" * 16,
    )
    basic = verify_response(pki.ocsp.respond(request), pki)
    assert single_statuses(basic) == [
        (serial(good), "good", None),
        (serial(revoked), "revoked", (revoked_at, "key_compromise")),
        (never_issued, "unknown", None),
        (serial(unspecified), "revoked", (revoked_at, None)),
    ]
    data = basic["tbs_response_data"]
    now = pki.clock.now()
    assert data["produced_at"].native == now
    for single in data["responses"]:
        assert single["this_update"].native == now
        assert single["next_update"].native == now + dt.timedelta(minutes=60)
    nonce = data["response_extensions"][0]
    assert nonce["extn_id"].native == "nonce"
    assert nonce["extn_value"].parsed.native == b"\x42" * 16


def test_hold_and_release(pki: PKI) -> None:
    leaf = pki.issue_leaf()
    request = cert_id_request(pki.issuing.certificate_der, [serial(leaf)])
    pki.authority.hold(leaf.serial_hex, actor="test")
    held_at = pki.authority.get(leaf.serial_hex).revoked_at
    basic = verify_response(pki.ocsp.respond(request), pki)
    assert single_statuses(basic) == [(serial(leaf), "revoked", (held_at, "certificate_hold"))]
    pki.authority.release(leaf.serial_hex, actor="test")
    basic = verify_response(pki.ocsp.respond(request), pki)
    assert single_statuses(basic) == [(serial(leaf), "good", None)]


@pytest.mark.parametrize("hash_algorithm", ["sha1", "sha256", "sha384", "sha512"])
def test_cert_id_hash_algorithms(p256: PKI, hash_algorithm: str) -> None:
    leaf = p256.issue_leaf()
    request = cert_id_request(
        p256.issuing.certificate_der, [serial(leaf)], hash_algorithm=hash_algorithm
    )
    basic = verify_response(p256.ocsp.respond(request), p256)
    single = basic["tbs_response_data"]["responses"][0]
    assert single["cert_id"]["hash_algorithm"]["algorithm"].native == hash_algorithm
    assert single_statuses(basic) == [(serial(leaf), "good", None)]


def test_no_nonce_no_extension(p256: PKI) -> None:
    leaf = p256.issue_leaf()
    basic = verify_response(
        p256.ocsp.respond(cert_id_request(p256.issuing.certificate_der, [serial(leaf)])), p256
    )
    assert basic["tbs_response_data"]["response_extensions"].native is None


def test_cert_ids_of_two_cas_are_unauthorized(p256: PKI) -> None:
    leaf = p256.issue_leaf()
    issuing_row = p256.authority.list(issuer_ca_id=p256.root.id, profile="issuing-ca")[0]
    mixed = ocsp.OCSPRequest.load(cert_id_request(p256.issuing.certificate_der, [serial(leaf)]))
    other = ocsp.OCSPRequest.load(cert_id_request(p256.root.certificate_der, [serial(issuing_row)]))
    both = ocsp.OCSPRequest(
        {
            "tbs_request": {
                "request_list": [
                    mixed["tbs_request"]["request_list"][0],
                    other["tbs_request"]["request_list"][0],
                ]
            }
        }
    )
    assert status_of(p256.ocsp.respond(both.dump())) == "unauthorized"


def test_root_ca_has_no_ocsp_service(p256: PKI) -> None:
    issuing_row = p256.authority.list(issuer_ca_id=p256.root.id, profile="issuing-ca")[0]
    request = cert_id_request(p256.root.certificate_der, [serial(issuing_row)])
    assert status_of(p256.ocsp.respond(request)) == "unauthorized"


def test_negative_serial_is_unknown(p256: PKI) -> None:
    request = cert_id_request(p256.issuing.certificate_der, [-5])
    basic = verify_response(p256.ocsp.respond(request), p256)
    assert single_statuses(basic) == [(-5, "unknown", None)]


def test_responder_revoked_means_try_later(p256: PKI) -> None:
    leaf = p256.issue_leaf()
    request = cert_id_request(p256.issuing.certificate_der, [serial(leaf)])
    verify_response(p256.ocsp.respond(request), p256)  # caches the responder
    responder = p256.authority.ocsp_responder(p256.issuing.id)
    assert responder is not None
    p256.authority.revoke(responder.serial_hex, "keyCompromise", actor="test")
    assert status_of(p256.ocsp.respond(request)) == "try_later"


def test_responder_expiry_and_renewal(p256: PKI) -> None:
    leaf = p256.issue_leaf()
    request = cert_id_request(p256.issuing.certificate_der, [serial(leaf)])
    old = p256.authority.ocsp_responder(p256.issuing.id)
    assert old is not None
    verify_response(p256.ocsp.respond(request), p256)

    p256.clock.advance(dt.timedelta(days=29))
    assert p256.authority.refresh_ocsp_responders()
    # Within the cache lifetime the old (still valid) responder may answer; then the newest.
    p256.ocsp.on_status_change(p256.issuing.id)
    basic = verify_response(p256.ocsp.respond(request), p256)
    assert basic["certs"][0].dump() != old.certificate_der

    p256.clock.advance(dt.timedelta(days=2))  # past the old responder's notAfter
    verify_response(p256.ocsp.respond(request), p256)


def test_expired_responder_means_try_later(p256: PKI) -> None:
    request = cert_id_request(p256.issuing.certificate_der, [1])
    verify_response(p256.ocsp.respond(request), p256)
    p256.clock.advance(dt.timedelta(days=31))
    assert status_of(p256.ocsp.respond(request)) == "try_later"


def test_ca_created_after_responder(database: Database, clock: FixedClock, tmp_path: Path) -> None:
    pki = make_pki(AlgorithmFamily.P256, database, clock, tmp_path)
    pki.authority.initialise_hierarchy("Test Hospital", families=[AlgorithmFamily.RSA])
    rsa_issuing = next(
        ca
        for ca in pki.authority.list_cas()
        if ca.family is AlgorithmFamily.RSA and ca.level == "issuing"
    )
    key = pki.keystore.generate(AlgorithmFamily.RSA.default_algorithm, label="leaf")
    leaf = pki.authority.issue_for_key(key.id, {"CN": "Late"}, "patient-event", actor="test")
    response = pki.ocsp.respond(cert_id_request(rsa_issuing.certificate_der, [serial(leaf)]))
    basic = ocsp.OCSPResponse.load(response).basic_ocsp_response
    assert single_statuses(basic) == [(serial(leaf), "good", None)]


def test_signing_is_recorded_as_key_use(p256: PKI) -> None:
    from medsign.keys.usage import key_uses

    p256.ocsp.respond(cert_id_request(p256.issuing.certificate_der, [1]))
    responder = p256.authority.ocsp_responder(p256.issuing.id)
    assert responder is not None and responder.key_id is not None
    use = key_uses(p256.database, responder.key_id, limit=1)[0]
    assert (use.actor, use.purpose) == ("ca:ocsp", "ocsp")


def test_key_store_failure_is_internal_error(p256: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> bytes:
        raise KeyStoreUnavailableError("token removed")

    monkeypatch.setattr(p256.keystore, "sign_digest", broken)
    request = cert_id_request(p256.issuing.certificate_der, [1])
    assert status_of(p256.ocsp.respond(request)) == "internal_error"


def test_get_form_with_real_ca(p256: PKI) -> None:
    leaf = p256.issue_leaf()
    request = cert_id_request(p256.issuing.certificate_der, [serial(leaf)], nonce=b"\x01" * 8)
    path = urllib.parse.quote(base64.b64encode(request).decode("ascii"), safe="")
    basic = verify_response(p256.ocsp.respond_get(path), p256)
    assert single_statuses(basic) == [(serial(leaf), "good", None)]


# -- OpenSSL interop ------------------------------------------------------------------------


@pytest.fixture(params=FAMILIES, ids=FAMILY_IDS)
def live_pki(request: pytest.FixtureRequest, database: Database, tmp_path: Path) -> PKI:
    return make_pki(request.param, database, real_time_clock(), tmp_path)


def openssl_request(pki: PKI, leaf_pem: Path, *, nonce: bool = True) -> bytes:
    out = pki.directory / "req.der"
    openssl(
        "ocsp",
        "-issuer",
        pki.issuing_pem,
        "-cert",
        leaf_pem,
        "-reqout",
        out,
        "-nonce" if nonce else "-no_nonce",
    )
    return out.read_bytes()


def openssl_check(pki: PKI, request: bytes, response: bytes) -> str:
    """Verify the response with openssl against the request (nonce included); return its text."""
    req = pki.write("req.der", request)
    resp = pki.write("resp.der", response)
    verify_args: list[str | Path] = ["-CAfile", pki.root_pem]
    if pki.family is AlgorithmFamily.SM2:
        # OpenSSL 3.0 checks SM2 signatures with an empty distinguishing ID and `openssl ocsp`
        # has no option to set one, while medsign signs with the GM/T 0009 default ID; so
        # openssl only parses here and medsign's verify checks the signature.
        verify_response(response, pki)
        verify_args = ["-noverify"]
    result = openssl(
        "ocsp",
        "-reqin",
        req,
        "-respin",
        resp,
        "-issuer",
        pki.issuing_pem,
        *verify_args,
        "-resp_text",
    )
    text = result.stdout + result.stderr
    if pki.family is not AlgorithmFamily.SM2:
        assert "Response verify OK" in text
    return text


@pytest.mark.interop
@needs_openssl
def test_openssl_good_revoked_unknown(live_pki: PKI) -> None:
    leaf = live_pki.issue_leaf()
    leaf_pem = live_pki.write("leaf.pem", leaf.certificate_der)
    request = openssl_request(live_pki, leaf_pem)

    text = openssl_check(live_pki, request, live_pki.ocsp.respond(request))
    assert "Cert Status: good" in text
    assert "OCSP Nonce" in text

    live_pki.authority.revoke(leaf.serial_hex, "keyCompromise", actor="test")
    text = openssl_check(live_pki, request, live_pki.ocsp.respond(request))
    assert "Cert Status: revoked" in text
    assert "Revocation Reason: keyCompromise (0x1)" in text

    # The per-certificate summary line needs -cert, which builds its own request.
    if live_pki.family is not AlgorithmFamily.SM2:
        resp = live_pki.write("resp.der", live_pki.ocsp.respond(request))
        summary = openssl(
            "ocsp",
            "-respin",
            resp,
            "-issuer",
            live_pki.issuing_pem,
            "-cert",
            leaf_pem,
            "-CAfile",
            live_pki.root_pem,
            "-no_nonce",
        ).stdout
        assert f"{leaf_pem}: revoked" in summary
        assert "Reason: keyCompromise" in summary

    # A serial this CA never issued.
    openssl(
        "ocsp",
        "-issuer",
        live_pki.issuing_pem,
        "-serial",
        "0x1234567",
        "-reqout",
        live_pki.directory / "unknown.der",
        "-nonce",
    )
    unknown_request = (live_pki.directory / "unknown.der").read_bytes()
    text = openssl_check(live_pki, unknown_request, live_pki.ocsp.respond(unknown_request))
    assert "Cert Status: unknown" in text


@pytest.mark.interop
@needs_openssl
def test_openssl_hold_and_release(live_pki: PKI) -> None:
    leaf = live_pki.issue_leaf()
    leaf_pem = live_pki.write("leaf.pem", leaf.certificate_der)
    request = openssl_request(live_pki, leaf_pem, nonce=False)
    live_pki.authority.hold(leaf.serial_hex, actor="test")
    text = openssl_check(live_pki, request, live_pki.ocsp.respond(request))
    assert "Cert Status: revoked" in text
    assert "Revocation Reason: certificateHold (0x6)" in text
    live_pki.authority.release(leaf.serial_hex, actor="test")
    text = openssl_check(live_pki, request, live_pki.ocsp.respond(request))
    assert "Cert Status: good" in text


@pytest.mark.interop
@needs_openssl
def test_openssl_sha256_cert_id(live_pki: PKI) -> None:
    leaf = live_pki.issue_leaf()
    leaf_pem = live_pki.write("leaf.pem", leaf.certificate_der)
    out = live_pki.directory / "req256.der"
    openssl(
        "ocsp",
        "-sha256",
        "-issuer",
        live_pki.issuing_pem,
        "-cert",
        leaf_pem,
        "-reqout",
        out,
        "-nonce",
    )
    request = out.read_bytes()
    text = openssl_check(live_pki, request, live_pki.ocsp.respond(request))
    assert "Hash Algorithm: sha256" in text
    assert "Cert Status: good" in text


@pytest.mark.interop
@needs_openssl
def test_openssl_reads_malformed_request(p256: PKI) -> None:
    resp = p256.write("resp.der", p256.ocsp.respond(b"definitely not DER"))
    result = openssl("ocsp", "-respin", resp, "-resp_text", check=False)
    assert "malformedrequest" in (result.stdout + result.stderr).lower()


def test_response_encoding_matches_asn1crypto() -> None:
    """The hand-assembled ResponseData is exactly what asn1crypto would encode."""
    from medsign.ca.ocsp import _Status, encode_response_data

    now = dt.datetime(2026, 11, 23, 8, 0, 5, tzinfo=dt.UTC)
    revoked_at = dt.datetime(2026, 11, 20, 1, 2, 3, tzinfo=dt.UTC)
    cert_ids = [
        ocsp.CertId(
            {
                "hash_algorithm": {"algorithm": name},
                "issuer_name_hash": hashlib.new(name, b"n").digest(),
                "issuer_key_hash": hashlib.new(name, b"k").digest(),
                "serial_number": serial_number,
            }
        )
        for name, serial_number in [("sha1", 1), ("sha256", 2**159 + 7), ("sha1", 3), ("sha1", 4)]
    ]
    statuses = [
        _Status("good", None, None),
        _Status("revoked", "key_compromise", revoked_at),
        _Status("revoked", None, revoked_at),
        None,
    ]
    responder_id = ocsp.ResponderId({"by_key": b"\x11" * 20})
    nonce = core.OctetString(b"\x42" * 32).dump()
    ours = encode_response_data(
        responder_id_der=responder_id.dump(),
        produced_at=now,
        singles=[
            (cert_id.dump(), status) for cert_id, status in zip(cert_ids, statuses, strict=True)
        ],
        next_update=now + dt.timedelta(hours=1),
        nonce_extension=nonce,
    )

    def asn1_status(status: _Status | None) -> dict[str, object]:
        if status is None:
            return {"unknown": core.Null()}
        if status.status == "good":
            return {"good": core.Null()}
        info: dict[str, object] = {"revocation_time": status.revoked_at}
        if status.reason is not None:
            info["revocation_reason"] = status.reason
        return {"revoked": info}

    reference = ocsp.ResponseData(
        {
            "responder_id": responder_id,
            "produced_at": now,
            "responses": [
                {
                    "cert_id": cert_id,
                    "cert_status": asn1_status(status),
                    "this_update": now,
                    "next_update": now + dt.timedelta(hours=1),
                }
                for cert_id, status in zip(cert_ids, statuses, strict=True)
            ],
            "response_extensions": [
                {"extn_id": "nonce", "extn_value": core.ParsableOctetString(nonce)}
            ],
        }
    )
    assert ours == reference.dump()
    assert ocsp.ResponseData.load(ours, strict=True).native == reference.native


# -- pre-produced responses for requests without a nonce (RFC 5019) ----------------------


def _uses(pki: PKI) -> int:
    from medsign.keys.usage import key_uses

    responder = pki.authority.ocsp_responder(pki.issuing.id)
    assert responder is not None and responder.key_id is not None
    return len(key_uses(pki.database, responder.key_id, limit=1000))


def test_nonceless_response_is_reused_while_status_is_unchanged(p256: PKI) -> None:
    leaf = p256.issue_leaf()
    request = cert_id_request(p256.issuing.certificate_der, [serial(leaf)])
    first = p256.ocsp.respond(request)
    p256.clock.advance(dt.timedelta(seconds=10))
    assert p256.ocsp.respond(request) == first
    assert _uses(p256) == 1  # one signature, one record
    # Older than the reuse window: signed afresh.
    p256.clock.advance(dt.timedelta(seconds=60))
    assert p256.ocsp.respond(request) != first
    assert _uses(p256) == 2


def test_requests_with_a_nonce_are_always_signed_afresh(p256: PKI) -> None:
    leaf = p256.issue_leaf()
    request = cert_id_request(p256.issuing.certificate_der, [serial(leaf)], nonce=b"n" * 16)
    verify_response(p256.ocsp.respond(request), p256)
    verify_response(p256.ocsp.respond(request), p256)
    assert _uses(p256) == 2


def test_revocation_by_another_process_is_seen_by_the_next_nonceless_answer(
    p256: PKI, tmp_path: Path
) -> None:
    leaf = p256.issue_leaf()
    request = cert_id_request(p256.issuing.certificate_der, [serial(leaf)])
    assert single_statuses(verify_response(p256.ocsp.respond(request), p256))[0][1] == "good"
    # Another process (the CLI): its own authority, no listener reaches this responder.
    other = CertificateAuthority(p256.database, p256.keystore, p256.clock, "http://medsign.test")
    other.hold(leaf.serial_hex, actor="cli")
    held = single_statuses(verify_response(p256.ocsp.respond(request), p256))
    assert held[0][1] == "revoked" and held[0][2][1] == "certificate_hold"
    other.release(leaf.serial_hex, actor="cli")
    assert single_statuses(verify_response(p256.ocsp.respond(request), p256))[0][1] == "good"
    other.revoke(leaf.serial_hex, "keyCompromise", actor="cli")
    revoked = single_statuses(verify_response(p256.ocsp.respond(request), p256))
    assert revoked[0][1] == "revoked" and revoked[0][2][1] == "key_compromise"
