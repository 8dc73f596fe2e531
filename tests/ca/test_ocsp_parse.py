"""The OCSP request fast path agrees with the asn1crypto parser wherever it answers at all.

``_parse_plain_request`` reads the usual request shape without asn1crypto and returns None for
anything else; it must never accept what ``_parse_any_request`` refuses, nor read a request
differently. Checked on generated requests of many shapes and on mutated bytes.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from asn1crypto import core, ocsp, x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medsign.ca.ocsp import (
    MAX_CERT_IDS,
    _parse_any_request,
    _parse_plain_request,
    _parse_request,
    _ParsedRequest,
    _Reject,
)
from medsign.ca.signing import der_tlv

HASHES = ["sha1", "sha224", "sha256", "sha384", "sha512", "sm3", "md5", "1.2.3.4"]


def _outcome(der: bytes) -> _ParsedRequest | bytes:
    try:
        return _parse_any_request(der)
    except _Reject as reject:
        return reject.response


def _agree(der: bytes) -> _ParsedRequest | None:
    fast = _parse_plain_request(der)
    if fast is not None:
        assert fast == _outcome(der)
    return fast


@st.composite
def cert_ids(draw: st.DrawFn) -> dict[str, object]:
    algorithm: dict[str, object] = {
        "algorithm": draw(st.sampled_from(HASHES[:2]) | st.sampled_from(HASHES))
    }
    if draw(st.booleans()):
        algorithm["parameters"] = core.Null()
    return {
        "hash_algorithm": algorithm,
        "issuer_name_hash": draw(st.binary(min_size=0, max_size=40)),
        "issuer_key_hash": draw(st.binary(min_size=0, max_size=40)),
        "serial_number": draw(st.integers(min_value=-(2**170), max_value=2**170)),
    }


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    items = []
    smallest = 0 if draw(st.integers(0, 7)) == 0 else 1
    for cert_id in draw(st.lists(cert_ids(), min_size=smallest, max_size=3)):
        item: dict[str, object] = {"req_cert": cert_id}
        if draw(st.integers(0, 5)) == 0:
            item["single_request_extensions"] = [
                {
                    "extn_id": "service_locator",
                    "extn_value": {"issuer": x509.Name.build({"common_name": "CA"}), "locator": []},
                }
            ]
        items.append(item)
    tbs: dict[str, object] = {"request_list": items}
    if draw(st.integers(0, 5)) == 0:
        tbs["version"] = draw(st.sampled_from(["v1", 1]))
    extensions = []
    nonce_kind = draw(st.sampled_from(["none", "wrapped", "wrapped", "raw", "twice"]))
    value = draw(st.binary(min_size=0, max_size=40) | st.binary(min_size=1, max_size=32))
    critical = draw(st.integers(0, 5)) == 0
    if nonce_kind in ("wrapped", "twice"):
        extensions.append({"extn_id": "nonce", "critical": critical, "extn_value": value})
    if nonce_kind == "twice":
        extensions.append({"extn_id": "nonce", "extn_value": value})
    if draw(st.integers(0, 5)) == 0:
        extensions.append({"extn_id": "preferred_signature_algorithms", "extn_value": []})
    if extensions:
        tbs["request_extensions"] = extensions
    if nonce_kind == "raw" and not extensions:
        # The nonce octets straight in extnValue, as some old clients send them: spliced in
        # by hand, since asn1crypto would wrap them.
        body = bytes(ocsp.TBSRequest(tbs).contents)
        nonce_oid = bytes.fromhex("06092b0601050507300102")
        extension = der_tlv(0x30, nonce_oid + der_tlv(0x04, value))
        body += der_tlv(0xA2, der_tlv(0x30, extension))
        return der_tlv(0x30, der_tlv(0x30, body))
    return bytes(ocsp.OCSPRequest({"tbs_request": tbs}).dump())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_fast_path_agrees_on_generated_requests(der: bytes) -> None:
    _agree(der)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.data())
def test_fast_path_agrees_on_mutated_requests(der: bytes, data: st.DataObject) -> None:
    mutated = bytearray(der)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if not mutated:
            break
        at = data.draw(st.integers(0, len(mutated) - 1))
        if kind == "flip":
            mutated[at] ^= data.draw(st.integers(1, 255))
        elif kind == "cut":
            del mutated[at : at + data.draw(st.integers(1, 3))]
        else:
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=3))
    if mutated:
        _agree(bytes(mutated))


def _plain_request(count: int, nonce: bytes | None = b"0123456789abcdef") -> bytes:
    cert_id = {
        "hash_algorithm": {"algorithm": "sha1"},
        "issuer_name_hash": hashlib.sha1(b"name").digest(),
        "issuer_key_hash": hashlib.sha1(b"key").digest(),
        "serial_number": 2**151 + 5,
    }
    tbs: dict[str, object] = {"request_list": [{"req_cert": cert_id}] * count}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "extn_value": nonce}]
    return bytes(ocsp.OCSPRequest({"tbs_request": tbs}).dump())


def test_usual_requests_take_the_fast_path() -> None:
    for der in (_plain_request(1), _plain_request(2, None), _plain_request(MAX_CERT_IDS)):
        assert _agree(der) is not None
    # Over the limit: left to the full parser, which refuses it.
    too_many = _plain_request(MAX_CERT_IDS + 1)
    assert _parse_plain_request(too_many) is None
    assert _outcome(too_many) == _parse_request.__globals__["MALFORMED_REQUEST"]


def test_openssl_request_takes_the_fast_path(tmp_path: Path) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Parse test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(12345)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path / "ca.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out = tmp_path / "req.der"
    subprocess.run(
        ["openssl", "ocsp", "-issuer", str(pem), "-cert", str(pem), "-reqout", str(out)],
        check=True,
        capture_output=True,
    )
    parsed = _agree(out.read_bytes())
    assert parsed is not None and parsed.nonce_extension is not None
    assert parsed.queries[0].serial == 12345
