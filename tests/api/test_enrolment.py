"""Enrolment over HTTP, end to end: the application opens it (HMAC), the phone walks it with
the code read from the development SMS outbox, and the certificate verifies with openssl."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from medsign.crypto.types import AlgorithmFamily, KeyAlgorithm
from medsign.db.tables import EnrolmentRow
from tests.conftest import openssl
from tests.identity.support import make_national_id, register_application, signed_client

PIN = "258036"


@pytest.fixture(scope="module")
def his(client: TestClient, admin_headers: dict[str, str]) -> Iterator[Any]:
    app_id, secret = register_application(client, admin_headers)
    with signed_client(client, app_id, secret) as medsign:
        yield medsign


counter = iter(range(100, 1000))


def new_staff(his: Any, **fields: Any) -> tuple[str, str, str]:
    """Create a staff member; returns (employee number, national ID, last four phone digits)."""
    number = next(counter)
    employee_no = f"N{number}"
    national_id = make_national_id("19850620", number)
    phone = f"13{number:03d}00{number:04d}"[:11]
    response = his.request(
        "PUT",
        f"/api/v1/staff/{employee_no}",
        json={
            "name": "陈医生",
            "national_id": national_id,
            "phone": phone,
            "department": "麻醉科",
            "title": "主任医师",
            **fields,
        },
    )
    assert response.status_code == 201, response.text
    return employee_no, national_id, phone[-4:]


def code_from_outbox(client: TestClient, admin_headers: dict[str, str], last4: str) -> str:
    messages = client.get(
        "/admin/v1/sms/outbox", params={"phone_last4": last4, "limit": 1}, headers=admin_headers
    ).json()
    match = re.search(r"验证码 (\d{6})", messages[0]["body"])
    assert match is not None
    return match.group(1)


def open_enrolment(
    his: Any, employee_no: str, algorithm: str = "sm2"
) -> tuple[dict[str, Any], str]:
    response = his.request(
        "POST", "/api/v1/enrolments", json={"employee_no": employee_no, "key_algorithm": algorithm}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created, created["url"].rsplit("/", 1)[1]


@pytest.mark.parametrize("algorithm", ["sm2", "ec-p256", "rsa-2048"])
def test_whole_enrolment_ends_in_a_verifiable_certificate(
    client: TestClient,
    admin_headers: dict[str, str],
    his: Any,
    runtime: Any,
    tmp_path: Path,
    algorithm: str,
) -> None:
    employee_no, national_id, last4 = new_staff(his)
    created, token = open_enrolment(his, employee_no, algorithm)
    assert created["url"].startswith(runtime.settings.public_base_url + "/m/enrol/")
    assert created["state"] == "pending" and created["key_algorithm"] == algorithm
    svg = his.request("GET", created["qr_svg_url"])
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert b"<svg" in svg.content
    png = his.request("GET", created["qr_png_url"])
    assert png.content.startswith(b"\x89PNG")

    base = f"/m/api/enrolments/{token}"
    view = client.get(base).json()
    assert view["step"] == "start" and view["phone_masked"].endswith(last4)
    assert view["name"] == "陈医生" and "national_id" not in view
    assert client.post(f"{base}/send-code").json()["step"] == "code-sent"
    code = code_from_outbox(client, admin_headers, last4)
    assert client.post(f"{base}/verify-code", json={"code": code}).json()["step"] == "code-verified"
    confirmed = client.post(f"{base}/confirm-identity", json={"national_id": national_id})
    assert confirmed.json()["step"] == "identity-confirmed"
    trivial = client.post(f"{base}/pin", json={"pin": "123456"})
    assert trivial.status_code == 422
    done = client.post(f"{base}/pin", json={"pin": PIN})
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "authenticated"

    status = his.get(f"/api/v1/enrolments/{created['id']}")
    assert status["state"] == "authenticated" and status["certificate_serial"]
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(status["certificate_pem"])
    family = KeyAlgorithm(algorithm).family
    issuing = tmp_path / "issuing.pem"
    issuing.write_text(runtime.authority.issuing_ca(family).pem())
    if family is AlgorithmFamily.SM2:
        out = openssl(
            "verify",
            "-vfyopt",
            "distid:1234567812345678",
            "-partial_chain",
            "-CAfile",
            str(issuing),
            str(leaf),
        )
    else:
        out = openssl("verify", "-partial_chain", "-CAfile", str(issuing), str(leaf))
    assert ": OK" in out
    text = openssl("x509", "-in", str(leaf), "-noout", "-subject", "-ext", "keyUsage")
    assert employee_no in text and "Non Repudiation" in text
    staff = his.get(f"/api/v1/staff/{employee_no}")
    assert staff["pin_set"] and staff["certificate_id"] == status["certificate_id"]
    # The token is used up: every phone endpoint now refuses it.
    reused = client.get(base)
    assert reused.status_code == 409 and reused.json()["code"] == "enrolment-closed"
    assert client.post(f"{base}/send-code").status_code == 409
    assert his.request("GET", created["qr_svg_url"]).status_code == 409


def test_five_wrong_codes(client: TestClient, admin_headers: dict[str, str], his: Any) -> None:
    employee_no, _, last4 = new_staff(his)
    created, token = open_enrolment(his, employee_no)
    base = f"/m/api/enrolments/{token}"
    client.post(f"{base}/send-code")
    code = code_from_outbox(client, admin_headers, last4)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    codes = []
    for _ in range(5):
        response = client.post(f"{base}/verify-code", json={"code": wrong})
        assert response.status_code == 403
        codes.append(response.json()["code"])
    assert codes == ["otp-wrong"] * 4 + ["otp-exhausted"]
    assert client.post(f"{base}/verify-code", json={"code": code}).status_code == 409
    status = his.get(f"/api/v1/enrolments/{created['id']}")
    assert (status["state"], status["failure_reason"]) == ("failed", "too-many-wrong-codes")
    assert status["certificate_pem"] is None


def test_wrong_national_id(client: TestClient, admin_headers: dict[str, str], his: Any) -> None:
    employee_no, national_id, last4 = new_staff(his)
    created, token = open_enrolment(his, employee_no)
    base = f"/m/api/enrolments/{token}"
    client.post(f"{base}/send-code")
    client.post(
        f"{base}/verify-code", json={"code": code_from_outbox(client, admin_headers, last4)}
    )
    other = make_national_id("19700101", 1)
    response = client.post(f"{base}/confirm-identity", json={"national_id": other})
    assert response.status_code == 403 and response.json()["code"] == "identity-check-failed"
    assert other not in response.text and national_id not in response.text
    status = his.get(f"/api/v1/enrolments/{created['id']}")
    assert (status["state"], status["failure_reason"]) == ("failed", "national-id-mismatch")


def test_expired_and_unknown_tokens(his: Any, client: TestClient, runtime: Any) -> None:
    employee_no, _, _ = new_staff(his)
    created, token = open_enrolment(his, employee_no)
    with runtime.database.session() as session:
        session.execute(
            update(EnrolmentRow)
            .where(EnrolmentRow.id == created["id"])
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    response = client.get(f"/m/api/enrolments/{token}")
    assert response.status_code == 410 and response.json()["code"] == "enrolment-expired"
    assert his.get(f"/api/v1/enrolments/{created['id']}")["state"] == "expired"
    assert client.get(f"/m/api/enrolments/{'0' * 64}").status_code == 404
    assert client.post("/m/api/enrolments/short/send-code").status_code == 404


def test_frozen_staff_and_other_applications(
    client: TestClient, admin_headers: dict[str, str], his: Any
) -> None:
    employee_no, _, _ = new_staff(his)
    created, token = open_enrolment(his, employee_no)
    his.post(f"/api/v1/staff/{employee_no}/freeze")
    response = his.request("POST", "/api/v1/enrolments", json={"employee_no": employee_no})
    assert response.status_code == 409 and response.json()["code"] == "staff-state"
    assert client.post(f"/m/api/enrolments/{token}/send-code").status_code == 409
    app_id, secret = register_application(client, admin_headers)
    with signed_client(client, app_id, secret) as other:
        assert other.request("GET", f"/api/v1/enrolments/{created['id']}").status_code == 404
        assert other.request("GET", f"/api/v1/enrolments/{created['id']}/qr.png").status_code == 404
    response = his.request("POST", "/api/v1/enrolments", json={"employee_no": "NOBODY"})
    assert response.status_code == 404
    response = his.request(
        "POST", "/api/v1/enrolments", json={"employee_no": employee_no, "key_algorithm": "dsa"}
    )
    assert response.status_code == 422


def test_send_code_rate_limit(client: TestClient, his: Any) -> None:
    employee_no, _, _ = new_staff(his)
    _, token = open_enrolment(his, employee_no)
    assert client.post(f"/m/api/enrolments/{token}/send-code").status_code == 200
    again = client.post(f"/m/api/enrolments/{token}/send-code")
    assert again.status_code == 429 and again.json()["code"] == "rate-limited"
    assert again.json()["retry_after"] > 0
