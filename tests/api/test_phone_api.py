"""The phone API (/m/api) without a browser: a phone-held P-256 key played by `cryptography`,
the session and CSRF rules, and refusals that must leave nothing signed (issue 4)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from fastapi.testclient import TestClient

from medsign.identity.enrolment import pop_message
from tests.api.signing_support import openssl_cms_verify
from tests.api.test_enrolment import code_from_outbox, new_staff
from tests.identity.support import register_application, signed_client

PIN = "604729"
PHONE = {"X-Medsign-Phone": "1"}


@pytest.fixture(scope="module")
def his(client: TestClient, admin_headers: dict[str, str]) -> Iterator[Any]:
    app_id, secret = register_application(client, admin_headers)
    with signed_client(client, app_id, secret) as medsign:
        yield medsign


def raw_signature(key: ec.EllipticCurvePrivateKey, message: bytes) -> str:
    """What WebCrypto returns: ECDSA-SHA256 as r || s."""
    r, s = utils.decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()


def enrol_phone(
    client: TestClient, admin_headers: dict[str, str], his: Any, *, device_key: bool
) -> tuple[TestClient, str, ec.EllipticCurvePrivateKey | None]:
    """A phone (its own TestClient, so its own cookies) that walked enrolment."""
    employee_no, national_id, last4 = new_staff(his)
    opened = his.request(
        "POST",
        "/api/v1/enrolments",
        json={
            "employee_no": employee_no,
            "key_algorithm": "ec-p256",
            "key_location": "device" if device_key else "server",
        },
    ).json()
    token = opened["url"].rsplit("/", 1)[1]
    phone = TestClient(client.app)
    base = f"/m/api/enrolments/{token}"
    assert phone.post(f"{base}/send-code").status_code == 200
    code = code_from_outbox(client, admin_headers, last4)
    assert phone.post(f"{base}/verify-code", json={"code": code}).status_code == 200
    assert (
        phone.post(f"{base}/confirm-identity", json={"national_id": national_id}).status_code == 200
    )
    body: dict[str, Any] = {"pin": PIN}
    key = None
    if device_key:
        key = ec.generate_private_key(ec.SECP256R1())
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        body["device_key"] = {
            "public_key": base64.b64encode(spki).decode(),
            "proof": raw_signature(key, pop_message(opened["id"], spki)),
        }
    done = phone.post(f"{base}/pin", json=body)
    assert done.status_code == 200, done.text
    assert {"medsign_device", "medsign_session"} <= set(phone.cookies.keys())
    return phone, employee_no, key


def open_items(his: Any, employee_no: str) -> list[dict[str, Any]]:
    digest = hashlib.sha256(b"PACS study 1.2.840.113619").hexdigest()
    opened = his.request(
        "POST",
        "/api/v1/sign-batches",
        json={
            "employee_no": employee_no,
            "idempotency_key": secrets.token_hex(8),
            "items": [
                {
                    "scene": "lab-report",
                    "summary": "血常规报告",
                    "record_id": "LAB-1",
                    "record": {"WBC": "6.1", "HGB": "135"},
                },
                {
                    "scene": "imaging-report",
                    "summary": "胸部CT报告",
                    "record_id": "CT-1",
                    "digest": digest,
                    "digest_algorithm": "sha256",
                },
            ],
        },
    )
    assert opened.status_code == 201, opened.text
    items: list[dict[str, Any]] = opened.json()["requests"]
    return items


def test_phone_held_key_signs_and_medsign_checks_every_signature(
    client: TestClient, admin_headers: dict[str, str], his: Any, tmp_path: Path
) -> None:
    phone, employee_no, key = enrol_phone(client, admin_headers, his, device_key=True)
    assert key is not None
    items = open_items(his, employee_no)
    ids = [i["id"] for i in items]
    pending = phone.get("/m/api/pending").json()["items"]
    assert [p["id"] for p in pending] == ids
    assert phone.get(f"/m/api/requests/{ids[0]}").json()["record"] == {"WBC": "6.1", "HGB": "135"}

    # Without the anti-CSRF header nothing happens.
    refused = phone.post("/m/api/intents", json={"request_ids": ids})
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"

    intent = phone.post("/m/api/intents", json={"request_ids": ids}, headers=PHONE).json()
    payloads = {p["request_id"]: p for p in intent["device_payloads"]}
    assert set(payloads) == set(ids)

    def signed_by(k: ec.EllipticCurvePrivateKey, request_id: str) -> dict[str, str]:
        p = payloads[request_id]
        return {
            "request_id": request_id,
            "raw": raw_signature(k, base64.b64decode(p["message"])),
            "cms": raw_signature(k, base64.b64decode(p["signed_attributes"])),
        }

    confirm = f"/m/api/intents/{intent['id']}/confirm"
    # One item signed by another key: refused, and nothing of the batch is stored.
    intruder = ec.generate_private_key(ec.SECP256R1())
    bad = phone.post(
        confirm,
        json={
            "pin": PIN,
            "device_signatures": [signed_by(key, ids[0]), signed_by(intruder, ids[1])],
        },
        headers=PHONE,
    )
    assert bad.status_code == 422 and bad.json()["code"] == "device-signature-invalid"
    missing = phone.post(
        confirm, json={"pin": PIN, "device_signatures": [signed_by(key, ids[0])]}, headers=PHONE
    )
    assert missing.status_code == 422 and missing.json()["code"] == "device-signature-invalid"
    for request_id in ids:
        assert (
            his.request("GET", f"/api/v1/sign-requests/{request_id}").json()["state"] == "pending"
        )

    good = phone.post(
        confirm,
        json={"pin": PIN, "device_signatures": [signed_by(key, i) for i in ids]},
        headers=PHONE,
    )
    assert good.status_code == 200, good.text
    results = [his.request("GET", f"/api/v1/sign-requests/{i}").json() for i in ids]
    assert [r["state"] for r in results] == ["signed", "signed"]
    lab, ct = results
    openssl_cms_verify(tmp_path, lab["signature"], rfc8785.dumps({"WBC": "6.1", "HGB": "135"}))
    # The raw signatures: over the record's bytes, and over the digest taken as the message.
    public = key.public_key()
    public.verify(
        base64.b64decode(lab["signature"]["value"]),
        rfc8785.dumps({"WBC": "6.1", "HGB": "135"}),
        ec.ECDSA(hashes.SHA256()),
    )
    public.verify(
        base64.b64decode(ct["signature"]["value"]),
        bytes.fromhex(ct["digest"]),
        ec.ECDSA(hashes.SHA256()),
    )
    with pytest.raises(InvalidSignature):  # not the prehashed form a key-store key gives
        public.verify(
            base64.b64decode(ct["signature"]["value"]),
            bytes.fromhex(ct["digest"]),
            ec.ECDSA(utils.Prehashed(hashes.SHA256())),
        )


def test_a_phone_sees_only_its_own_clinicians_requests(
    client: TestClient, admin_headers: dict[str, str], his: Any
) -> None:
    alice, alice_no, _ = enrol_phone(client, admin_headers, his, device_key=False)
    bob, _, _ = enrol_phone(client, admin_headers, his, device_key=False)
    items = open_items(his, alice_no)
    assert bob.get("/m/api/pending").json()["items"] == []
    assert bob.get(f"/m/api/requests/{items[0]['id']}").status_code == 404
    stolen = bob.post("/m/api/intents", json={"request_ids": [items[0]["id"]]}, headers=PHONE)
    assert stolen.status_code == 404
    rejected = bob.post(
        "/m/api/requests:reject",
        json={"request_ids": [items[0]["id"]], "reason": "不是我的"},
        headers=PHONE,
    )
    assert rejected.status_code == 404
    # Server-held key: the phone confirms with the PIN alone and gets no payloads.
    intent = alice.post(
        "/m/api/intents", json={"request_ids": [i["id"] for i in items]}, headers=PHONE
    ).json()
    assert intent["device_payloads"] == []
    wrong = alice.post(
        f"/m/api/intents/{intent['id']}/confirm", json={"pin": "135790"}, headers=PHONE
    )
    assert wrong.status_code == 403 and wrong.json()["code"] == "pin-wrong"
    done = alice.post(f"/m/api/intents/{intent['id']}/confirm", json={"pin": PIN}, headers=PHONE)
    assert [i["state"] for i in done.json()["items"]] == ["signed", "signed"]
    assert len(alice.get("/m/api/history").json()["items"]) == 2


def test_no_session_no_access_and_logout_ends_it(
    client: TestClient, admin_headers: dict[str, str], his: Any
) -> None:
    stranger = TestClient(client.app)
    response = stranger.get("/m/api/pending")
    assert response.status_code == 401 and response.json()["code"] == "phone-session-invalid"
    assert stranger.post("/m/api/unlock", json={"pin": PIN}, headers=PHONE).json()["code"] == (
        "phone-device-unknown"
    )
    phone, _, _ = enrol_phone(client, admin_headers, his, device_key=False)
    assert phone.get("/m/api/me").status_code == 200
    assert phone.post("/m/api/logout", headers=PHONE).status_code == 200
    assert phone.get("/m/api/me").status_code == 401
    wrong = phone.post("/m/api/unlock", json={"pin": "135790"}, headers=PHONE)
    assert wrong.status_code == 403 and wrong.json()["code"] == "pin-wrong"
    assert phone.post("/m/api/unlock", json={"pin": PIN}, headers=PHONE).status_code == 200
    assert phone.get("/m/api/me").json()["methods"]


def test_a_phone_held_key_signs_a_pdf_prepared_for_it(
    client: TestClient, admin_headers: dict[str, str], his: Any, runtime: Any
) -> None:
    """The PDF's signature is prepared when the phone asks for its payloads (the same
    signed attributes if it asks again), signed on the phone, checked, then finished with the
    TSA's timestamp; a record of the same challenge is signed alongside."""
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature

    from medsign.verify.pdf import PdfVerifier
    from tests.api.pdf_support import context, discharge_pdf, installation_roots

    phone, employee_no, key = enrol_phone(client, admin_headers, his, device_key=True)
    assert key is not None
    pdf = discharge_pdf()
    opened = his.request(
        "POST",
        "/api/v1/document-requests",
        json={
            "employee_no": employee_no,
            "scene": "discharge-summary",
            "summary": "出院记录",
            "record_id": "DS-PHONE-1",
            "idempotency_key": secrets.token_hex(8),
            "pdf": base64.b64encode(pdf).decode(),
            "placement": {"anchor": "医师签名："},
            "level": "B-LT",
        },
    )
    assert opened.status_code == 201, opened.text
    ids = [opened.json()["id"], open_items(his, employee_no)[0]["id"]]
    intent = phone.post("/m/api/intents", json={"request_ids": ids}, headers=PHONE).json()
    payloads = {p["request_id"]: p for p in intent["device_payloads"]}
    from sqlalchemy import select

    from medsign.db.tables import StaffRow

    with runtime.database.session() as session:
        staff_id = session.scalar(select(StaffRow.id).where(StaffRow.employee_no == employee_no))
    again = runtime.workflow.device_payloads(staff_id, intent["id"])
    # Asked again: the same prepared signature, not a new one.
    assert {p.request_id: base64.b64encode(p.signed_attributes).decode() for p in again} == {
        rid: p["signed_attributes"] for rid, p in payloads.items()
    }
    statement = base64.b64decode(payloads[ids[0]]["message"])
    assert b'"pdf_sha256"' in statement  # the raw signature covers the statement

    signatures = [
        {
            "request_id": rid,
            "raw": raw_signature(key, base64.b64decode(payloads[rid]["message"])),
            "cms": raw_signature(key, base64.b64decode(payloads[rid]["signed_attributes"])),
        }
        for rid in ids
    ]
    done = phone.post(
        f"/m/api/intents/{intent['id']}/confirm",
        json={"pin": PIN, "device_signatures": signatures},
        headers=PHONE,
    )
    assert done.status_code == 200, done.text
    result = his.request("GET", f"/api/v1/sign-requests/{ids[0]}").json()
    assert result["state"] == "signed"
    key.public_key().verify(
        base64.b64decode(result["signature"]["value"]), statement, ec.ECDSA(hashes.SHA256())
    )
    signed = his.request("GET", f"/api/v1/sign-requests/{ids[0]}/document.pdf").content
    reader = PdfFileReader(io.BytesIO(signed))
    status = validate_pdf_signature(
        reader.embedded_signatures[0], context(installation_roots(runtime), runtime)
    )
    assert status.intact and status.valid and status.trusted
    assert "/DSS" in reader.root
    assert PdfVerifier(runtime.verifier).verify(signed).passed
