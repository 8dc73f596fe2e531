"""The request signature scheme, byte by byte, against docs/integration/authentication.md.

The worked example is reproduced three ways: by the client's functions, by the server's
authenticator, and by the OpenSSL CLI (an independent HMAC-SHA256 / HMAC-SM3 implementation).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medsign.client import (
    canonical_path,
    canonical_query,
    canonical_request,
    content_digest,
    signed_headers,
)
from tests.conftest import REPO_ROOT, openssl

DOC = REPO_ROOT / "docs" / "integration" / "authentication.md"
SECRET = "mss_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
APP_ID = "app_gezdgnbvgy3tqojqgezdgnbvgy"
NONCE = "Yq3xV9o2bN0cWm4kP7sT1A"
TIMESTAMP = 1795420800
PATH = "/api/v1/application/webhook-test"
QUERY = "trace=on&b=2&a=1"
BODY = b'{"note":"hello"}'

EXPECTED = {
    "hmac-sha256": (
        "MEDSIGN-HMAC-SHA256",
        "498207608015e1c6ea99b40748b3ecefd7d9035d5c0a70817902058823362be6",
        "k6jZnzFEGWkuhBDMc2pu26HvRnQYRMuHShUJjje2RD0=",
    ),
    "hmac-sm3": (
        "MEDSIGN-HMAC-SM3",
        "ecbe1eb5c0fc79581526a2b0c2241bbf3afbd0b243e21023d9a246e02a472688",
        "joh9w5XaAeSCbc3pI1+hffiAXEE5s3F95NykN076EH8=",
    ),
}


def expected_canonical(scheme: str, digest: str) -> bytes:
    return (
        f"{scheme}\nPOST\n{PATH}\na=1&b=2&trace=on\n{TIMESTAMP}\n{NONCE}\n{APP_ID}\n{digest}"
    ).encode()


def test_the_example_time_is_the_documented_one() -> None:
    assert dt.datetime.fromtimestamp(TIMESTAMP, dt.UTC) == dt.datetime(
        2026, 11, 23, 8, 0, tzinfo=dt.UTC
    )
    assert SECRET[4:] == "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"


@pytest.mark.parametrize("algorithm", ["hmac-sha256", "hmac-sm3"])
def test_worked_example_matches_the_document(algorithm: str) -> None:
    scheme, digest, signature = EXPECTED[algorithm]
    headers = signed_headers(
        algorithm=algorithm,  # type: ignore[arg-type]
        app_id=APP_ID,
        secret=SECRET,
        method="POST",
        path=PATH,
        query=QUERY,
        body=BODY,
        timestamp=TIMESTAMP,
        nonce=NONCE,
    )
    assert headers == {
        "X-Medsign-App": APP_ID,
        "X-Medsign-Timestamp": str(TIMESTAMP),
        "X-Medsign-Nonce": NONCE,
        "X-Medsign-Content-Digest": digest,
        "Authorization": f"{scheme} Signature={signature}",
    }
    canonical = canonical_request(
        scheme=scheme,
        method="post",
        path=PATH,
        query=QUERY,
        timestamp=str(TIMESTAMP),
        nonce=NONCE,
        app_id=APP_ID,
        digest=digest,
    )
    assert canonical == expected_canonical(scheme, digest)
    assert not canonical.endswith(b"\n")

    doc = DOC.read_text(encoding="utf-8")
    assert digest in doc and f"{scheme} Signature={signature}" in doc
    if algorithm == "hmac-sha256":
        block = canonical.decode()
        assert f"```\n{block}\n```" in doc, "the canonical string in the document differs"


@pytest.mark.interop
@pytest.mark.parametrize("algorithm", ["hmac-sha256", "hmac-sm3"])
def test_worked_example_with_the_openssl_cli(algorithm: str, tmp_path: Path) -> None:
    scheme, digest, signature = EXPECTED[algorithm]
    body = tmp_path / "body"
    body.write_bytes(BODY)
    md = "-sha256" if algorithm == "hmac-sha256" else "-sm3"
    assert openssl("dgst", md, "-r", str(body)).split()[0] == digest
    message = tmp_path / "canonical"
    message.write_bytes(expected_canonical(scheme, digest))
    if algorithm == "hmac-sha256":
        out = openssl("dgst", "-sha256", "-hmac", SECRET, "-r", str(message))
    else:
        hexkey = SECRET.encode().hex()
        out = openssl(
            "mac", "-digest", "SM3", "-macopt", f"hexkey:{hexkey}", "-in", str(message), "HMAC"
        )
    import base64

    assert base64.b64encode(bytes.fromhex(out.split()[0])).decode() == signature


def test_query_table_in_the_document() -> None:
    doc = DOC.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]*)` \| `([^`]*)` \|$", doc, flags=re.M)
    assert len(rows) >= 3
    for sent, canonical in rows:
        assert canonical_query(sent) == canonical, sent
    assert canonical_query("") == ""


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("/api/v1/application", "/api/v1/application"),
        ("/api/v1/x%2dy", "/api/v1/x-y"),
        ("/api/v1/张三", "/api/v1/%E5%BC%A0%E4%B8%89"),
        ("/api/v1/%e5%bc%a0%e4%b8%89", "/api/v1/%E5%BC%A0%E4%B8%89"),
        ("/a b", "/a%20b"),
        ("", "/"),
    ],
)
def test_canonical_path(path: str, canonical: str) -> None:
    assert canonical_path(path) == canonical


@given(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=6))
def test_canonical_query_ignores_order_and_encoding_choices(pairs: list[tuple[str, str]]) -> None:
    from urllib.parse import quote, quote_plus

    pairs = [(k, v) for k, v in pairs if k]
    one = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs)
    two = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in reversed(pairs))
    assert canonical_query(one) == canonical_query(two)
    # Canonical output is a fixed point and has nothing left to encode.
    assert canonical_query(canonical_query(one)) == canonical_query(one)
    assert re.fullmatch(r"[A-Za-z0-9\-._~%=&]*", canonical_query(one))


def test_empty_body_digest() -> None:
    assert content_digest("sha256", b"") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert content_digest("sm3", b"") == (
        "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"
    )
