"""The signing API end to end in-process: open, intent, confirm, results; and refusals."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from fastapi.testclient import TestClient

from medsign.crypto import PublicKey, verify
from medsign.crypto.types import SignatureScheme
from medsign.verify.data import CMSSignature, SignedContent
from tests.api.signing_support import (
    PIN,
    enrol,
    openssl_cms_verify,
    openssl_ts_verify,
)
from tests.identity.support import register_application, signed_client

ORDER = {
    "order_no": "MO-1",
    "drug": "阿莫西林胶囊",
    "dose": "0.5 g",
    "route": "口服",
    "freq": "tid",
}


@pytest.fixture(scope="module")
def his(client: TestClient, admin_headers: dict[str, str]) -> Iterator[Any]:
    app_id, secret = register_application(client, admin_headers)
    with signed_client(client, app_id, secret) as medsign:
        yield medsign


@pytest.fixture(scope="module")
def signers(client: TestClient, admin_headers: dict[str, str], his: Any) -> dict[str, str]:
    return {alg: enrol(client, admin_headers, his, alg) for alg in ("ec-p256", "rsa-2048", "sm2")}


def open_single(his: Any, employee_no: str, key: str, **fields: Any) -> Any:
    body = {
        "employee_no": employee_no,
        "scene": "medical-order",
        "summary": "阿莫西林 0.5g tid",
        "record_id": key,
        "record": ORDER,
        "idempotency_key": key,
        **fields,
    }
    return his.request("POST", "/api/v1/sign-requests", json=body)


def sign(his: Any, employee_no: str, request_ids: list[str], pin: str = PIN) -> Any:
    intent = his.request(
        "POST",
        "/api/v1/intents",
        json={"employee_no": employee_no, "request_ids": request_ids, "method": "pin"},
    )
    assert intent.status_code == 201, intent.text
    return his.request("POST", f"/api/v1/intents/{intent.json()['id']}/confirm", json={"pin": pin})


@pytest.mark.parametrize("algorithm", ["ec-p256", "rsa-2048", "sm2"])
def test_sign_a_json_record(
    his: Any, signers: dict[str, str], runtime: Any, tmp_path: Path, algorithm: str
) -> None:
    employee_no = signers[algorithm]
    opened = open_single(his, employee_no, f"single-{algorithm}")
    assert opened.status_code == 201, opened.text
    request = opened.json()
    assert request["state"] == "pending" and request["signature"] is None
    content = rfc8785.dumps(ORDER)
    algo = "sm3" if algorithm == "sm2" else "sha256"
    assert request["digest"] == hashlib.new(algo, content).hexdigest()

    confirmed = sign(his, employee_no, [request["id"]])
    assert confirmed.status_code == 200, confirmed.text
    polled = his.get(f"/api/v1/sign-requests/{request['id']}")
    assert polled["state"] == "signed"
    signature = polled["signature"]
    public = PublicKey.from_pem(_public_from_cert(signature["certificate_pem"]))
    verify(
        public, SignatureScheme(signature["scheme"]), content, base64.b64decode(signature["value"])
    )
    report = runtime.verifier.verify_cms(
        CMSSignature(base64.b64decode(signature["cms"]), SignedContent(data=content))
    )
    assert report.indication.value == "passed", report
    assert report.signing_time_source == "timestamp"
    if algorithm != "sm2":
        assert "Verification successful" in openssl_cms_verify(tmp_path, signature, content)
        assert "Verification: OK" in openssl_ts_verify(tmp_path, signature, runtime)


def _public_from_cert(pem: str) -> str:
    from asn1crypto import pem as asn1_pem
    from asn1crypto import x509

    _, _, der = asn1_pem.unarmor(pem.encode())
    return PublicKey.from_der(x509.Certificate.load(der).public_key.dump()).pem()


def test_batch_with_digests_signs_each_item(his: Any, signers: dict[str, str]) -> None:
    employee_no = signers["ec-p256"]
    digests = [hashlib.sha256(f"nursing {i}".encode()).hexdigest() for i in range(5)]
    opened = his.request(
        "POST",
        "/api/v1/sign-batches",
        json={
            "employee_no": employee_no,
            "idempotency_key": "batch-1",
            "items": [
                {
                    "scene": "nursing-record",
                    "summary": f"护理记录 {i}",
                    "record_id": f"NR-{i}",
                    "digest": d,
                    "digest_algorithm": "sha256",
                }
                for i, d in enumerate(digests)
            ],
        },
    )
    assert opened.status_code == 201, opened.text
    batch = opened.json()
    again = his.request(
        "POST",
        "/api/v1/sign-batches",
        json={
            "employee_no": employee_no,
            "idempotency_key": "batch-1",
            "items": [
                {
                    "scene": "nursing-record",
                    "summary": f"护理记录 {i}",
                    "record_id": f"NR-{i}",
                    "digest": d,
                    "digest_algorithm": "sha256",
                }
                for i, d in enumerate(digests)
            ],
        },
    )
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert [r["id"] for r in again.json()["requests"]] == [r["id"] for r in batch["requests"]]
    intent = his.request(
        "POST",
        "/api/v1/intents",
        json={"employee_no": employee_no, "batch_id": batch["batch_id"], "method": "pin"},
    ).json()
    assert len(intent["items"]) == 5
    signed = his.request("POST", f"/api/v1/intents/{intent['id']}/confirm", json={"pin": PIN})
    assert signed.status_code == 200, signed.text
    polled = his.get(f"/api/v1/sign-batches/{batch['batch_id']}")
    assert [r["state"] for r in polled["requests"]] == ["signed"] * 5
    values = {r["signature"]["value"] for r in polled["requests"]}
    assert len(values) == 5
    # The proof was used once: confirming again cannot sign anything.
    replay = his.request("POST", f"/api/v1/intents/{intent['id']}/confirm", json={"pin": PIN})
    assert replay.status_code in (403, 409) and replay.json()["code"] == "intent-used"


def test_wrong_pin_signs_nothing(his: Any, signers: dict[str, str]) -> None:
    employee_no = signers["ec-p256"]
    request = open_single(his, employee_no, "wrong-pin").json()
    refused = sign(his, employee_no, [request["id"]], pin="999999")
    assert refused.status_code == 403 and refused.json()["code"] == "pin-wrong"
    assert his.get(f"/api/v1/sign-requests/{request['id']}")["state"] == "pending"


def test_reject_cancel_and_void(his: Any, signers: dict[str, str]) -> None:
    employee_no = signers["sm2"]
    a = open_single(his, employee_no, "to-reject").json()
    b = open_single(his, employee_no, "to-cancel").json()
    c = open_single(his, employee_no, "to-void").json()
    rejected = his.request(
        "POST",
        "/api/v1/sign-requests:reject",
        json={"employee_no": employee_no, "request_ids": [a["id"]], "reason": "剂量有误"},
    )
    assert rejected.status_code == 200 and rejected.json()[0]["state"] == "rejected"
    assert his.get(f"/api/v1/sign-requests/{a['id']}")["reject_reason"] == "剂量有误"
    cancelled = his.request("POST", f"/api/v1/sign-requests/{b['id']}/cancel")
    assert cancelled.json()["state"] == "cancelled"
    again = his.request("POST", f"/api/v1/sign-requests/{b['id']}/cancel")
    assert again.status_code == 409 and again.json()["code"] == "request-not-pending"
    assert sign(his, employee_no, [c["id"]]).status_code == 200
    void = his.request(
        "POST",
        f"/api/v1/sign-requests/{c['id']}/void",
        json={"reason": "开错医嘱", "idempotency_key": "void-c"},
    )
    assert void.status_code == 201, void.text
    statement = void.json()
    assert statement["kind"] == "void" and statement["voids_request_id"] == c["id"]
    assert sign(his, employee_no, [statement["id"]]).status_code == 200
    original = his.get(f"/api/v1/sign-requests/{c['id']}")
    assert original["state"] == "voided" and original["voided_by_request_id"] == statement["id"]
    assert his.get(f"/api/v1/sign-requests/{statement['id']}")["state"] == "signed"


def test_refusals_have_stable_codes(
    his: Any, signers: dict[str, str], client: TestClient, admin_headers: dict[str, str]
) -> None:
    employee_no = signers["ec-p256"]
    unknown_scene = open_single(his, employee_no, "bad-scene", scene="haircut")
    assert unknown_scene.status_code == 422 and unknown_scene.json()["code"] == "unknown-scene"
    short = his.request(
        "POST",
        "/api/v1/sign-requests",
        json={
            "employee_no": employee_no,
            "scene": "medical-order",
            "summary": "x",
            "record_id": "d",
            "digest": "ab" * 31,
            "digest_algorithm": "sha256",
            "idempotency_key": "short",
        },
    )
    assert short.status_code == 422 and short.json()["code"] == "digest-length"
    sm3 = his.request(
        "POST",
        "/api/v1/sign-requests",
        json={
            "employee_no": employee_no,
            "scene": "medical-order",
            "summary": "x",
            "record_id": "d",
            "digest": "ab" * 32,
            "digest_algorithm": "sm3",
            "idempotency_key": "sm3",
        },
    )
    assert sm3.json()["code"] == "digest-algorithm-mismatch"
    first = open_single(his, employee_no, "dup")
    assert first.status_code == 201
    conflict = open_single(his, employee_no, "dup", summary="something else")
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency-conflict"
    nobody = open_single(his, "NOBODY", "nobody")
    assert nobody.status_code == 404
    # Another application cannot see or sign this application's requests.
    other_id, other_secret = register_application(client, admin_headers)
    with signed_client(client, other_id, other_secret) as other:
        peek = other.request("GET", f"/api/v1/sign-requests/{first.json()['id']}")
        assert peek.status_code == 404
        steal = other.request(
            "POST",
            "/api/v1/intents",
            json={"employee_no": employee_no, "request_ids": [first.json()["id"]], "method": "pin"},
        )
        assert steal.status_code == 404
