"""POST /api/v1/verify and /api/v1/verify:batch: a report for every outcome."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from medsign.client import signed_headers
from medsign.crypto import KeyAlgorithm, message_digest
from tests.verify.support import openssl_signer, store_signer

DATA = "检验报告：血常规正常。".encode()


@pytest.fixture(scope="module")
def app_credentials(runtime: Any) -> tuple[str, str]:
    application, secret = runtime.applications.register(name="LIS", code="lis-verify")
    return application.id, secret


@pytest.fixture(scope="module")
def post(client: TestClient, app_credentials: tuple[str, str]) -> Any:
    app_id, secret = app_credentials

    def send(path: str, body: dict[str, Any], *, sign: bool = True) -> Any:
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if sign:
            headers |= signed_headers(
                algorithm="hmac-sha256",
                app_id=app_id,
                secret=secret,
                method="POST",
                path=path,
                query="",
                body=raw,
                timestamp=int(time.time()),
                nonce=secrets.token_urlsafe(16),
            )
        return client.post(path, content=raw, headers=headers)

    return send


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def sm2_raw(runtime: Any) -> dict[str, Any]:
    signer = store_signer(runtime, KeyAlgorithm.SM2, cn="Dr. Chen", employee="E3003")
    signature = signer.sign(runtime, DATA)
    return {
        "type": "raw",
        "scheme": "sm2-sm3",
        "signature": b64(signature),
        "certificate": runtime.authority.get(signer.serial).pem(),
        "data": b64(DATA),
        "_digest": message_digest(signer.public_key, signer.scheme, DATA).hex(),
    }


def _body(raw: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {k: v for k, v in raw.items() if not k.startswith("_")}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_good_raw_signature(post: Any, sm2_raw: dict[str, Any]) -> None:
    response = post("/api/v1/verify", _body(sm2_raw))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["indication"] == "passed"
    assert report["sub_indication"] is None
    assert report["kind"] == "raw"
    assert report["signer"]["employee_number"] == "E3003"
    assert report["signer"]["profile"] == "staff-signing"
    assert report["signing_time_source"] == "none"
    assert {c["name"] for c in report["checks"]} >= {"signature", "chain", "validity", "status"}


def test_digest_form(post: Any, sm2_raw: dict[str, Any]) -> None:
    body = _body(sm2_raw, data=None, digest=sm2_raw["_digest"], digest_algorithm="sm3")
    assert post("/api/v1/verify", body).json()["indication"] == "passed"


def test_tampered_data_is_a_failed_report_not_an_error(post: Any, sm2_raw: dict[str, Any]) -> None:
    response = post("/api/v1/verify", _body(sm2_raw, data=b64(DATA + b"x")))
    assert response.status_code == 200
    assert response.json()["indication"] == "failed"
    assert response.json()["sub_indication"] == "SIG_CRYPTO_FAILURE"


def test_cms_detached(post: Any, runtime: Any, tmp_path: Any) -> None:
    signer = openssl_signer(runtime, tmp_path)
    signed = signer.sign_cms(DATA, tmp_path)
    good = post("/api/v1/verify", {"type": "cms", "cms": b64(signed), "data": b64(DATA)})
    assert good.json()["indication"] == "passed", good.text
    bad = post("/api/v1/verify", {"type": "cms", "cms": b64(signed), "data": b64(b"changed")})
    assert (bad.json()["indication"], bad.json()["sub_indication"]) == ("failed", "HASH_FAILURE")
    garbage = post("/api/v1/verify", {"type": "cms", "cms": b64(b"garbage!"), "data": b64(DATA)})
    assert garbage.status_code == 200
    assert garbage.json()["sub_indication"] == "FORMAT_FAILURE"


@pytest.mark.parametrize(
    "changes",
    [
        {"data": None, "digest": "ab" * 20, "digest_algorithm": "sm3"},  # wrong digest length
        {"data": None, "digest": "ab" * 32},  # no digest algorithm
        {"data": None},  # neither data nor digest
        {"signature": "***"},  # not base64
        {"scheme": "ecdsa-sha256"},  # does not fit an SM2 key
        {"certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"},
        {"type": "pdf"},
    ],
)
def test_malformed_requests_are_problems(
    post: Any, sm2_raw: dict[str, Any], changes: dict[str, Any]
) -> None:
    body = _body(sm2_raw)
    body.update(changes)
    body = {k: v for k, v in body.items() if v is not None}
    response = post("/api/v1/verify", body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid-input"


def test_authentication_is_required(post: Any, sm2_raw: dict[str, Any]) -> None:
    response = post("/api/v1/verify", _body(sm2_raw), sign=False)
    assert response.status_code == 401


def test_batch(post: Any, sm2_raw: dict[str, Any]) -> None:
    items = [_body(sm2_raw), _body(sm2_raw, data=b64(b"other")), _body(sm2_raw)]
    response = post("/api/v1/verify:batch", {"items": items})
    assert response.status_code == 200, response.text
    assert [r["indication"] for r in response.json()["reports"]] == ["passed", "failed", "passed"]
    bad = post(
        "/api/v1/verify:batch", {"items": [_body(sm2_raw), _body(sm2_raw, signature="****")]}
    )
    assert bad.status_code == 422
    assert "items[1]" in bad.json()["detail"]
    assert post("/api/v1/verify:batch", {"items": []}).status_code == 422
