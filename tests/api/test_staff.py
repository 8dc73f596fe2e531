"""Staff directory over HTTP: HMAC-authenticated upsert, import, reads, states, numbers;
organization and signer-scope isolation; the operator's SMS outbox and PIN unlock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from medsign.client import MedsignAPIError
from tests.identity.support import (
    make_national_id,
    register_application,
    send_raw,
    signed_client,
)

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def his(client: TestClient, admin_headers: dict[str, str]) -> Iterator[tuple[Any, str, str]]:
    app_id, secret = register_application(client, admin_headers)
    with signed_client(client, app_id, secret) as medsign:
        yield medsign, app_id, secret


def body(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "王医生",
        "national_id": make_national_id("19880512"),
        "phone": "13800005678",
        "department": "心内科",
        "title": "主治医师",
        "roles": ["doctor"],
    }
    data.update(fields)
    return data


def test_upsert_get_and_idempotence(his: tuple[Any, str, str]) -> None:
    medsign = his[0]
    record = body()
    response = medsign.request("PUT", "/api/v1/staff/S001", json=record)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["outcome"] == "created"
    staff = created["staff"]
    assert (
        staff["national_id_masked"]
        == record["national_id"][:4] + "*" * 10 + record["national_id"][-4:]
    )
    assert staff["phone_masked"] == "138****5678"
    assert record["national_id"] not in response.text and "13800005678" not in response.text
    again = medsign.request("PUT", "/api/v1/staff/S001", json=record)
    assert again.status_code == 200 and again.json()["outcome"] == "unchanged"
    changed = medsign.request(
        "PUT", "/api/v1/staff/S001", json=body(national_id=None, title="副主任医师")
    )
    assert changed.json()["outcome"] == "updated" and changed.json()["changed"] == ["title"]
    fetched = medsign.get("/api/v1/staff/S001")
    assert fetched["title"] == "副主任医师" and fetched["state"] == "active"
    assert fetched["pin_set"] is False and fetched["certificate_id"] is None


def test_bad_records_are_problems(his: tuple[Any, str, str]) -> None:
    medsign = his[0]
    response = medsign.request(
        "PUT", "/api/v1/staff/S002", json=body(national_id="110101199001011234")
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["code"] == "invalid-input" and problem["field"] == "national_id"
    assert "110101199001011234" not in response.text
    response = medsign.request("PUT", "/api/v1/staff/S002", json={"name": "x", "extra": 1})
    assert response.status_code == 422
    response = medsign.request("PUT", "/api/v1/staff/bad%20no", json=body())
    assert response.status_code == 422
    with pytest.raises(MedsignAPIError) as info:
        medsign.get("/api/v1/staff/NOBODY")
    assert info.value.status == 404


def test_import_json_and_csv(client: TestClient, his: tuple[Any, str, str]) -> None:
    medsign, app_id, secret = his
    records = [
        {"employee_no": "I001", "name": "甲", "phone": "13900000001"},
        {"employee_no": "I002", "name": "", "phone": "13900000002"},
    ]
    report = medsign.post("/api/v1/staff:import", json=records)
    assert (report["created"], report["updated"], report["unchanged"]) == (1, 0, 0)
    assert report["errors"] == [
        {"row": 2, "field": "name", "code": "invalid-input", "message": "name is required"}
    ]
    csv_body = (
        "\ufeffemployee_no,name,phone,department,roles\r\n"
        "I001,甲,13900000001,,\r\n"
        "I003,丙,13900000003,检验科,technician;reviewer\r\n"
        "I004,丁,139,,\r\n"
    ).encode()
    response = send_raw(
        client, app_id, secret, "POST", "/api/v1/staff:import", csv_body, "text/csv"
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["unchanged"]) == (1, 1)
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(3, "phone")]
    assert medsign.get("/api/v1/staff/I003")["roles"] == ["technician", "reviewer"]
    response = send_raw(
        client, app_id, secret, "POST", "/api/v1/staff:import", b"{}", "application/json"
    )
    assert response.status_code == 422
    response = send_raw(client, app_id, secret, "POST", "/api/v1/staff:import", b"x", "text/plain")
    assert response.status_code == 422


def test_states_and_phone(his: tuple[Any, str, str]) -> None:
    medsign = his[0]
    medsign.request("PUT", "/api/v1/staff/S010", json=body())
    assert medsign.post("/api/v1/staff/S010/freeze")["state"] == "frozen"
    response = medsign.request("POST", "/api/v1/staff/S010/freeze")
    assert response.status_code == 409 and response.json()["code"] == "staff-state"
    assert medsign.post("/api/v1/staff/S010/unfreeze")["state"] == "active"
    phone = medsign.request("PUT", "/api/v1/staff/S010/phone", json={"phone": "13712345678"})
    assert phone.status_code == 200 and phone.json()["phone_masked"] == "137****5678"
    assert medsign.post("/api/v1/staff/S010/deregister")["state"] == "deregistered"
    response = medsign.request("PUT", "/api/v1/staff/S010", json=body())
    assert response.status_code == 409
    response = medsign.request("POST", "/api/v1/staff/S010/explode")
    assert response.status_code == 422


def test_isolation_between_organizations_and_scopes(
    client: TestClient, admin_headers: dict[str, str], his: tuple[Any, str, str], runtime: Any
) -> None:
    from medsign.identity.organizations import ensure_organization

    his[0].request("PUT", "/api/v1/staff/S020", json=body(department="心内科"))
    other_org = ensure_organization(runtime.database, runtime.clock, code="branch", name="分院")
    app_id, secret = register_application(client, admin_headers, organization_id=other_org.id)
    with signed_client(client, app_id, secret) as other:
        assert other.request("GET", "/api/v1/staff/S020").status_code == 404
        # The same employee number in another organization is another person.
        assert other.request("PUT", "/api/v1/staff/S020", json=body()).status_code == 201
    app_id, secret = register_application(
        client, admin_headers, signer_scope={"departments": ["儿科"]}
    )
    with signed_client(client, app_id, secret) as scoped:
        assert scoped.request("GET", "/api/v1/staff/S020").status_code == 404
        response = scoped.request("PUT", "/api/v1/staff/S021", json=body(department="儿科"))
        assert response.status_code == 403
        his[0].request("PUT", "/api/v1/staff/S022", json=body(department="儿科"))
        assert scoped.get("/api/v1/staff/S022")["department"] == "儿科"
    # Unsigned calls are refused.
    assert client.get("/api/v1/staff/S020").status_code == 401


def test_outbox_and_unlock(
    client: TestClient, admin_headers: dict[str, str], his: tuple[Any, str, str], runtime: Any
) -> None:
    created = his[0].request("PUT", "/api/v1/staff/S030", json=body(phone="13600009876")).json()
    staff_id = created["staff"]["id"]
    runtime.codes.issue_code(staff_id, "intent", "chl_outbox")
    listed = client.get(
        "/admin/v1/sms/outbox", params={"phone_last4": "9876"}, headers=admin_headers
    )
    assert listed.status_code == 200
    messages = listed.json()
    assert len(messages) == 1 and messages[0]["provider"] == "development"
    assert messages[0]["phone_masked"] == "136****9876" and "验证码" in messages[0]["body"]
    assert client.get("/admin/v1/sms/outbox").status_code == 401
    assert (
        client.get(
            "/admin/v1/sms/outbox", params={"phone_last4": "98"}, headers=admin_headers
        ).status_code
        == 422
    )
    runtime.pins.set_pin(staff_id, "258036", actor="test")
    from medsign.errors import PINLockedError, PINWrongError

    for _ in range(5):
        with pytest.raises((PINWrongError, PINLockedError)):
            runtime.pins.verify_pin(staff_id, "975310", client="t")
    unlocked = client.post(f"/admin/v1/staff/{staff_id}/unlock-pin", headers=admin_headers)
    assert unlocked.status_code == 200 and unlocked.json()["pin_set"] is True
    runtime.pins.verify_pin(staff_id, "258036", client="t")
    missing = client.post("/admin/v1/staff/stf_nobody/unlock-pin", headers=admin_headers)
    assert missing.status_code == 404
    assert json.dumps(messages).count("1360000") == 0
