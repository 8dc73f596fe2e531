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


# -- signed PDFs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pdf_key(runtime: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.documents import pdf_support

    return pdf_support.signing_key(runtime, tmp_path_factory.mktemp("pdf-api"))


@pytest.fixture(scope="module")
def signed_pdf(pdf_key: Any) -> bytes:
    from tests.documents import pdf_support

    return pdf_support.sign(pdf_support.base_pdf(), pdf_key)


def test_signed_pdf(post: Any, signed_pdf: bytes) -> None:
    response = post("/api/v1/verify", {"type": "pdf", "pdf": b64(signed_pdf)})
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["kind"], report["indication"], report["revisions"]) == ("pdf", "passed", 2)
    (signature,) = report["signatures"]
    assert signature["field_name"] == "Signature1"
    assert signature["coverage"] == "entire-file"
    assert [c["name"] for c in signature["checks"]] == ["format", "byte-range", "modifications"]
    assert signature["signature"]["kind"] == "cms"
    assert signature["signature"]["signer"]["employee_number"] == "E4004"
    assert [c["name"] for c in report["checks"]] == ["signatures", "file-end"]


def test_changed_pdf_is_a_failed_report(post: Any, signed_pdf: bytes) -> None:
    from tests.documents import pdf_support

    for changed, sub in (
        (pdf_support.isa_replace_content(signed_pdf), "DOCUMENT_MODIFIED"),
        (pdf_support.base_pdf(), "NOT_SIGNED"),
    ):
        response = post("/api/v1/verify", {"type": "pdf", "pdf": b64(changed)})
        assert response.status_code == 200, response.text
        report = response.json()
        assert (report["indication"], report["sub_indication"]) == ("failed", sub)
    filled = pdf_support.fill_text_field(signed_pdf, "Diagnosis", "Pneumonia")
    report = post("/api/v1/verify", {"type": "pdf", "pdf": b64(filled)}).json()
    assert report["indication"] == "passed"
    (change,) = report["signatures"][0]["changes"]
    assert change == {
        "revision": 2,
        "level": "form-filling",
        "allowed": True,
        "reason": None,
        "objects": change["objects"],
        "fields": ["Diagnosis"],
        "signatures": [],
        "dss": False,
    }


def test_unusable_pdfs_are_problems(post: Any, signed_pdf: bytes) -> None:
    from tests.documents import pdf_support

    for pdf, code in (
        (b"plain text, not a PDF", "pdf-unreadable"),
        (pdf_support.encrypted_pdf(), "pdf-encrypted"),
        (pdf_support.broken_xref(signed_pdf), "pdf-unreadable"),
        (pdf_support.truncated_in_signature(signed_pdf), "pdf-unreadable"),
    ):
        response = post("/api/v1/verify", {"type": "pdf", "pdf": b64(pdf)})
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == code
    not_base64 = post("/api/v1/verify", {"type": "pdf", "pdf": "%PDF-1.7 ****"})
    assert not_base64.status_code == 422


def test_pdf_over_the_body_limit(post: Any, runtime: Any) -> None:
    big = b"%PDF-1.7\n" + b"0" * runtime.settings.app_max_body_bytes
    response = post("/api/v1/verify", {"type": "pdf", "pdf": b64(big)})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "payload-too-large"


def test_batch_takes_no_pdfs(post: Any, signed_pdf: bytes) -> None:
    response = post("/api/v1/verify:batch", {"items": [{"type": "pdf", "pdf": b64(signed_pdf)}]})
    assert response.status_code == 422


def test_openapi_describes_pdf_verification(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/v1/verify"]["post"]
    assert "pdf" in operation["description"]
    assert "PdfVerificationReportPublic" in json.dumps(operation["responses"]["200"])
