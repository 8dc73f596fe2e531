"""Signing refused for the right reasons, SMS intention, and results by webhook."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from medsign.client import verify_webhook
from medsign.db.tables import SignRequestRow
from tests.api.signing_support import PIN, enrol
from tests.api.test_signing import open_single, sign
from tests.identity.support import register_application, signed_client


class Receiver:
    """A real HTTP endpoint on 127.0.0.1 that keeps what it receives."""

    def __init__(self) -> None:
        received: list[tuple[dict[str, str], bytes]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k: v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture(scope="module")
def registered(
    client: TestClient, admin_headers: dict[str, str], receiver: Receiver
) -> tuple[str, str]:
    return register_application(client, admin_headers, webhook_url=receiver.url)


@pytest.fixture(scope="module")
def his(client: TestClient, registered: tuple[str, str]) -> Iterator[Any]:
    with signed_client(client, *registered) as medsign:
        yield medsign


@pytest.fixture(scope="module")
def signer(client: TestClient, admin_headers: dict[str, str], his: Any) -> str:
    return enrol(client, admin_headers, his, "ec-p256")


def test_sms_intention(
    his: Any, signer: str, client: TestClient, admin_headers: dict[str, str]
) -> None:
    request = open_single(his, signer, "sms-1").json()
    intent = his.request(
        "POST",
        "/api/v1/intents",
        json={"employee_no": signer, "request_ids": [request["id"]], "method": "sms"},
    ).json()
    phone = his.get(f"/api/v1/staff/{signer}")["phone_masked"][-4:]
    body = client.get(
        "/admin/v1/sms/outbox", params={"phone_last4": phone, "limit": 1}, headers=admin_headers
    ).json()[0]["body"]
    code = re.search(r"(\d{6})", body)
    assert code is not None
    wrong = his.request(
        "POST",
        f"/api/v1/intents/{intent['id']}/confirm",
        json={"code": "000000" if code.group(1) != "000000" else "111111"},
    )
    assert wrong.status_code == 403 and wrong.json()["code"] == "otp-wrong"
    done = his.request(
        "POST", f"/api/v1/intents/{intent['id']}/confirm", json={"code": code.group(1)}
    )
    assert done.status_code == 200, done.text
    assert his.get(f"/api/v1/sign-requests/{request['id']}")["state"] == "signed"


def test_frozen_signer_and_held_certificate(
    his: Any, signer: str, client: TestClient, admin_headers: dict[str, str], runtime: Any
) -> None:
    assert his.request("POST", f"/api/v1/staff/{signer}/freeze").status_code == 200
    frozen = open_single(his, signer, "frozen-1")
    assert frozen.status_code == 409 and frozen.json()["code"] == "signer-frozen"
    assert his.request("POST", f"/api/v1/staff/{signer}/unfreeze").status_code == 200

    pending = open_single(his, signer, "held-1").json()
    staff = his.get(f"/api/v1/staff/{signer}")
    serial = runtime.authority.get_by_id(staff["certificate_id"]).serial_hex
    assert (
        client.post(f"/admin/v1/certificates/{serial}/hold", headers=admin_headers).status_code
        == 200
    )
    try:
        held = open_single(his, signer, "held-2")
        assert held.status_code == 409 and held.json()["code"] == "signer-certificate-held"
        # A request opened before the hold cannot be signed while the certificate is held.
        refused = his.request(
            "POST",
            "/api/v1/intents",
            json={"employee_no": signer, "request_ids": [pending["id"]], "method": "pin"},
        )
        assert refused.status_code == 409
        assert refused.json()["code"] == "signer-certificate-held"
    finally:
        client.post(f"/admin/v1/certificates/{serial}/release", headers=admin_headers)
    assert sign(his, signer, [pending["id"]]).status_code == 200


def test_expired_request_is_not_signed(his: Any, signer: str, runtime: Any) -> None:
    request = open_single(his, signer, "expire-1").json()
    intent = his.request(
        "POST",
        "/api/v1/intents",
        json={"employee_no": signer, "request_ids": [request["id"]], "method": "pin"},
    ).json()
    with runtime.database.session() as s:  # as if a day had passed
        s.execute(
            update(SignRequestRow)
            .where(SignRequestRow.id == request["id"])
            .values(expires_at=runtime.clock.now().replace(year=2000))
        )
    late = his.request("POST", f"/api/v1/intents/{intent['id']}/confirm", json={"pin": PIN})
    assert late.status_code == 409 and late.json()["code"] == "request-expired"
    assert runtime.workflow.expire_due() >= 1
    polled = his.get(f"/api/v1/sign-requests/{request['id']}")
    assert polled["state"] == "expired" and polled["signature"] is None


def test_results_reach_the_application_by_webhook(
    his: Any, signer: str, runtime: Any, receiver: Receiver, registered: tuple[str, str]
) -> None:
    request = open_single(his, signer, "hook-1").json()
    assert sign(his, signer, [request["id"]]).status_code == 200
    while runtime.webhooks.deliver_due(50):
        pass
    signed = [
        (h, b)
        for h, b in receiver.received
        if json.loads(b)["data"].get("request_id") == request["id"]
    ]
    assert signed, receiver.received
    headers, body = signed[-1]
    verify_webhook(registered[1], headers, body)
    event = json.loads(body)
    assert event["type"] == "request:signed" and event["data"]["state"] == "signed"
    assert headers["X-Medsign-Delivery"] == event["id"]


def test_revoked_certificate_cannot_sign(
    his: Any, client: TestClient, admin_headers: dict[str, str], runtime: Any
) -> None:
    employee_no = enrol(client, admin_headers, his, "ec-p256")
    pending = open_single(his, employee_no, "revoked-1").json()
    staff = his.get(f"/api/v1/staff/{employee_no}")
    serial = runtime.authority.get_by_id(staff["certificate_id"]).serial_hex
    revoked = client.post(
        f"/admin/v1/certificates/{serial}/revoke",
        headers=admin_headers,
        json={"reason": "keyCompromise"},
    )
    assert revoked.status_code == 200
    refused = open_single(his, employee_no, "revoked-2")
    assert refused.status_code == 409
    assert refused.json()["code"] == "signer-certificate-revoked"
    intent = his.request(
        "POST",
        "/api/v1/intents",
        json={"employee_no": employee_no, "request_ids": [pending["id"]], "method": "pin"},
    )
    assert intent.json()["code"] == "signer-certificate-revoked"
    assert his.get(f"/api/v1/sign-requests/{pending['id']}")["signature"] is None
