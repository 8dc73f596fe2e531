"""A HIS, played end to end against a real server process (issue 3, item 11).

Register an application, synchronise 20 staff, authenticate one through the development
SMS provider, submit 50 medical orders (one batch) and 5 prescriptions (singles), confirm
with the PIN, fetch every CMS signature and check it with `openssl cms -verify` and every
timestamp with `openssl ts -verify`; reject one, cancel one, void one."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from medsign.client import MedsignClient
from tests.api.signing_support import openssl_cms_verify, ts_verify
from tests.conftest import make_database_url
from tests.identity.support import make_national_id
from tests.live import LiveServer, live_server

PIN = "314159"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("his")
    urls = make_database_url(data_dir)
    with live_server(data_dir, next(urls)) as running:
        yield running
    for _ in urls:
        pass


def staff_record(i: int) -> dict[str, object]:
    return {
        "employee_no": f"H{i:04d}",
        "name": f"医生{i}",
        "national_id": make_national_id("19800101", i),
        "phone": f"139{i:08d}",
        "department": "心内科" if i % 2 else "普外科",
        "title": "主治医师",
        "roles": ["doctor"],
    }


def test_a_day_at_the_hospital(server: LiveServer, tmp_path: Path) -> None:
    admin = server.admin
    registered = admin.post("/admin/v1/applications", json={"name": "HIS 门诊", "code": "his-e2e"})
    assert registered.status_code == 201, registered.text
    app_id = registered.json()["application"]["id"]
    his = MedsignClient(server.base, app_id, registered.json()["secret"])

    imported = his.request(
        "POST", "/api/v1/staff:import", json=[staff_record(i) for i in range(1, 21)]
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["created"] == 20 and imported.json()["errors"] == []

    # Real-name authentication of one doctor through the development SMS outbox.
    doctor = staff_record(7)
    enrolment = his.request(
        "POST",
        "/api/v1/enrolments",
        json={"employee_no": doctor["employee_no"], "key_algorithm": "ec-p256"},
    ).json()
    token = enrolment["url"].rsplit("/", 1)[1]
    phone = his.request("GET", f"/m/api/enrolments/{token}")
    assert phone.status_code == 200
    base = f"{server.base}/m/api/enrolments/{token}"
    import httpx

    assert httpx.post(f"{base}/send-code").status_code == 200
    outbox = admin.get(
        "/admin/v1/sms/outbox", params={"phone_last4": str(doctor["phone"])[-4:], "limit": 1}
    ).json()
    code = re.search(r"(\d{6})", outbox[0]["body"])
    assert code is not None
    assert httpx.post(f"{base}/verify-code", json={"code": code.group(1)}).status_code == 200
    assert (
        httpx.post(
            f"{base}/confirm-identity", json={"national_id": doctor["national_id"]}
        ).status_code
        == 200
    )
    assert httpx.post(f"{base}/pin", json={"pin": PIN}, timeout=30).status_code == 200
    assert his.get(f"/api/v1/enrolments/{enrolment['id']}")["state"] == "authenticated"

    employee_no = str(doctor["employee_no"])
    orders = [
        {
            "scene": "medical-order",
            "summary": f"长期医嘱 {i}：阿司匹林肠溶片 100mg qd",
            "record_id": f"MO-{i:03d}",
            "record": {
                "order_no": f"MO-{i:03d}",
                "drug": "阿司匹林肠溶片",
                "dose": "100mg",
                "freq": "qd",
                "patient_ref": f"P{i % 7}",
            },
        }
        for i in range(50)
    ]
    batch = his.request(
        "POST",
        "/api/v1/sign-batches",
        json={"employee_no": employee_no, "idempotency_key": "orders-1", "items": orders},
    )
    assert batch.status_code == 201, batch.text
    batch_id = batch.json()["batch_id"]
    prescriptions = []
    for i in range(5):
        rx = his.request(
            "POST",
            "/api/v1/sign-requests",
            json={
                "employee_no": employee_no,
                "scene": "prescription",
                "record_id": f"RX-{i}",
                "summary": f"处方 {i}：阿莫西林胶囊 0.25g×24",
                "idempotency_key": f"rx-{i}",
                "record": {"rx_no": f"RX-{i}", "drug": "阿莫西林胶囊", "qty": 24},
            },
        )
        assert rx.status_code == 201, rx.text
        prescriptions.append(rx.json()["id"])

    # The doctor rejects one order and the HIS withdraws one prescription.
    order_ids = [r["id"] for r in batch.json()["requests"]]
    rejected = his.request(
        "POST",
        "/api/v1/sign-requests:reject",
        json={"employee_no": employee_no, "request_ids": [order_ids[0]], "reason": "重复医嘱"},
    )
    assert rejected.status_code == 200
    assert (
        his.request("POST", f"/api/v1/sign-requests/{prescriptions[0]}/cancel").status_code == 200
    )

    intent = his.request(
        "POST",
        "/api/v1/intents",
        json={
            "employee_no": employee_no,
            "batch_id": batch_id,
            "request_ids": prescriptions[1:],
            "method": "pin",
        },
    )
    assert intent.status_code == 201, intent.text
    assert len(intent.json()["items"]) == 49 + 4
    confirmed = his.request(
        "POST", f"/api/v1/intents/{intent.json()['id']}/confirm", json={"pin": PIN}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert len(confirmed.json()["signed"]) == 53

    results = his.get(f"/api/v1/sign-batches/{batch_id}")["requests"]
    results += [his.get(f"/api/v1/sign-requests/{rid}") for rid in prescriptions]
    states = [r["state"] for r in results]
    assert states.count("signed") == 53
    assert states.count("rejected") == 1 and states.count("cancelled") == 1

    # Every CMS with openssl cms -verify, every timestamp with openssl ts -verify.
    records = {o["record_id"]: o["record"] for o in orders}
    records.update(
        {f"RX-{i}": {"rx_no": f"RX-{i}", "drug": "阿莫西林胶囊", "qty": 24} for i in range(5)}
    )
    import rfc8785

    first = next(r for r in results if r["state"] == "signed")["signature"]
    chain = first["chain_pem"]
    tsa = admin.get("/admin/v1/certificates", params={"profile": "tsa"}).json()[0]
    tsa_untrusted = tmp_path / "tsa-untrusted.pem"
    tsa_untrusted.write_text(tsa["certificate_pem"] + "".join(chain[:-1]))
    tsa_root = tmp_path / "tsa-root.pem"
    tsa_root.write_text(chain[-1])  # the TSA and the signer are both under the P-256 root
    for result in results:
        if result["state"] != "signed":
            continue
        signature = result["signature"]
        content = rfc8785.dumps(records[result["record_id"]])
        assert "Verification successful" in openssl_cms_verify(tmp_path, signature, content)
        out = ts_verify(
            tmp_path,
            base64.b64decode(signature["timestamp_token"]),
            base64.b64decode(signature["cms"]),
            "sha256",
            tsa_root,
            tsa_untrusted,
        )
        assert "Verification: OK" in out, out

    # Void one signed order: the doctor signs the void statement.
    target = next(r for r in results if r["state"] == "signed")
    void = his.request(
        "POST",
        f"/api/v1/sign-requests/{target['id']}/void",
        json={"reason": "医嘱开错", "idempotency_key": "void-1"},
    )
    assert void.status_code == 201, void.text
    void_intent = his.request(
        "POST",
        "/api/v1/intents",
        json={"employee_no": employee_no, "request_ids": [void.json()["id"]], "method": "pin"},
    ).json()
    assert (
        his.request(
            "POST", f"/api/v1/intents/{void_intent['id']}/confirm", json={"pin": PIN}
        ).status_code
        == 200
    )
    assert his.get(f"/api/v1/sign-requests/{target['id']}")["state"] == "voided"
    statement = his.get(f"/api/v1/sign-requests/{void.json()['id']}")
    assert statement["state"] == "signed" and statement["voids_request_id"] == target["id"]
