"""QR-code login over HTTP: the application starts and polls with the real HMAC client, the
phone's decision goes through the domain service (its pages are built elsewhere), and the
assertion is checked with ``verify_login_assertion`` and, independently, with openssl."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from medsign.client import LoginAssertionError, MedsignAPIError, verify_login_assertion
from medsign.db.tables import LoginChallengeRow, StaffDeviceRow, WebhookDeliveryRow
from medsign.ids import new_id
from medsign.intent.logins import LoginExpiredError
from tests.api.test_enrolment import new_staff
from tests.conftest import openssl
from tests.identity.support import register_application, signed_client

WORKSTATION = "门诊3楼 诊室12"
PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n", re.S)


@pytest.fixture(scope="module")
def his(client: TestClient, admin_headers: dict[str, str]) -> Iterator[Any]:
    app_id, secret = register_application(
        client, admin_headers, webhook_url="https://his.example.org/medsign"
    )
    with signed_client(client, app_id, secret) as medsign:
        yield medsign


@pytest.fixture(scope="module")
def emr(client: TestClient, admin_headers: dict[str, str]) -> Iterator[Any]:
    app_id, secret = register_application(client, admin_headers)
    with signed_client(client, app_id, secret) as medsign:
        yield medsign


def clinician(runtime: Any, his: Any) -> tuple[str, str, str]:
    """(employee number, staff id, device id) of a new staff member with an enrolled phone."""
    employee_no, _, _ = new_staff(his)
    staff_id = his.get(f"/api/v1/staff/{employee_no}")["id"]
    now = dt.datetime.now(dt.UTC)
    device_id = new_id("dev")
    with runtime.database.session() as session:
        session.add(
            StaffDeviceRow(
                id=device_id,
                staff_id=staff_id,
                label="phone",
                token_sha256=hashlib.sha256(device_id.encode()).hexdigest(),
                key_mode="server",
                created_at=now,
                last_seen_at=now,
            )
        )
    return employee_no, staff_id, device_id


def roots(client: TestClient) -> list[bytes]:
    """Every root of the installation, as a relying party would download them."""
    return [
        ca["certificate_pem"].encode()
        for ca in client.get("/pki/cas").json()
        if ca["level"] == "root"
    ]


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status
    return body


def test_the_installation_has_its_assertion_certificate_from_init(runtime: Any) -> None:
    [record] = runtime.authority.list(profile="login-assertion")
    assert record.key_id is not None and "Login Assertions" in record.subject


def test_approved_login_end_to_end(
    client: TestClient, runtime: Any, his: Any, tmp_path: Path
) -> None:
    employee_no, staff_id, device_id = clinician(runtime, his)
    created = his.start_login(WORKSTATION, employee_no=employee_no, expires_in_seconds=60)
    login_id = created["id"]
    assert created["url"] == f"{runtime.settings.public_base_url}/m/login/{login_id}"
    assert created["state"] == "pending"
    assert set(created) == {"id", "state", "url", "qr_svg_url", "qr_png_url", "expires_at"}
    svg = his.request("GET", created["qr_svg_url"])
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert b"<svg" in svg.content and svg.headers["cache-control"] == "no-store"
    assert his.request("GET", created["qr_png_url"]).content.startswith(b"\x89PNG")

    pending = his.request("GET", f"/api/v1/logins/{login_id}")
    assert pending.headers["cache-control"] == "no-store"
    body = pending.json()
    assert body["state"] == "pending" and body["workstation"] == WORKSTATION
    assert (body["staff_id"], body["employee_no"], body["assertion"]) == (None, None, None)

    view = runtime.logins.view(login_id, staff_id)
    assert (view.application_name, view.workstation) == ("HIS", WORKSTATION)
    runtime.logins.approve(login_id, staff_id=staff_id, device_id=device_id)

    done = his.wait_for_login(login_id, timeout=5)
    assert done["state"] == "approved" and done["decided_at"]
    assert (done["staff_id"], done["employee_no"]) == (staff_id, employee_no)
    token = done["assertion"]

    chain_pem = client.get("/pki/login-assertion.pem")
    assert chain_pem.status_code == 200
    assert chain_pem.headers["content-type"] == "application/pem-certificate-chain"
    blocks = PEM_BLOCK.findall(chain_pem.text)
    assert len(blocks) == 3
    claims = verify_login_assertion(token, [blocks[-1].encode()], audience=his.app_id)
    assert (claims["sub"], claims["employee_no"], claims["login_id"]) == (
        staff_id,
        employee_no,
        login_id,
    )
    assert claims["aud"] == his.app_id and claims["iss"] == runtime.settings.public_base_url
    # A relying party that simply trusts every root of the installation gets the same answer.
    assert verify_login_assertion(token, roots(client), audience=his.app_id) == claims

    header, _, signature = token.split(".")
    forged_claims = {**claims, "employee_no": "D0001"}
    forged = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).rstrip(b"=").decode()
    with pytest.raises(LoginAssertionError, match="signature does not verify"):
        verify_login_assertion(f"{header}.{forged}.{signature}", roots(client), audience=his.app_id)
    with pytest.raises(LoginAssertionError, match="another audience"):
        verify_login_assertion(token, roots(client), audience="app_someoneelse")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    with pytest.raises(LoginAssertionError, match="has expired"):
        verify_login_assertion(token, roots(client), audience=his.app_id, now=later)

    problem(his.request("GET", created["qr_svg_url"]), 409, "login-decided")
    with pytest.raises(MedsignAPIError) as refused:
        his.get(created["qr_png_url"])
    assert (refused.value.status, refused.value.code) == (409, "login-decided")

    with runtime.database.session() as session:
        [delivery] = session.scalars(
            select(WebhookDeliveryRow).where(WebhookDeliveryRow.subject_id == login_id)
        ).all()
        assert (delivery.application_id, delivery.event_type) == (his.app_id, "login:approved")
        assert json.loads(delivery.payload)["data"]["assertion"] == token


@pytest.mark.interop
def test_openssl_verifies_the_assertion_independently(
    client: TestClient, runtime: Any, his: Any, tmp_path: Path
) -> None:
    _, staff_id, device_id = clinician(runtime, his)
    login_id = his.start_login("PC-7")["id"]
    runtime.logins.approve(login_id, staff_id=staff_id, device_id=device_id)
    token = his.get(f"/api/v1/logins/{login_id}")["assertion"]
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(unb64url(header_b64))
    assert (header["alg"], header["typ"]) == ("ES256", "medsign-login+jwt")

    paths = []
    for position, entry in enumerate(header["x5c"]):
        path = tmp_path / f"x5c-{position}.pem"
        path.write_text(pem(base64.b64decode(entry)))
        paths.append(path)
    leaf, issuing, root = paths
    served = PEM_BLOCK.findall(client.get("/pki/login-assertion.pem").text)
    assert served == [p.read_text() for p in paths]

    assert ": OK" in openssl(
        "verify", "-x509_strict", "-CAfile", str(root), "-untrusted", str(issuing), str(leaf)
    )
    text = openssl("x509", "-in", str(leaf), "-noout", "-text")
    usage = text.split("X509v3 Key Usage: critical")[1].splitlines()[1].strip()
    assert usage == "Digital Signature"
    assert "Extended Key Usage" not in text and "CA:FALSE" in text
    assert "2.25.259986585191900661347617386822089060430.1.6" in text

    raw = unb64url(signature_b64)
    assert len(raw) == 64
    (tmp_path / "signature.der").write_bytes(ecdsa_der(raw[:32], raw[32:]))
    (tmp_path / "signing-input").write_bytes(f"{header_b64}.{payload_b64}".encode("ascii"))
    public = tmp_path / "public.pem"
    public.write_text(openssl("x509", "-in", str(leaf), "-noout", "-pubkey"))
    verified = openssl(
        "dgst",
        "-sha256",
        "-verify",
        str(public),
        "-signature",
        str(tmp_path / "signature.der"),
        str(tmp_path / "signing-input"),
    )
    assert "Verified OK" in verified
    (tmp_path / "signing-input").write_bytes(f"{header_b64}.{payload_b64}x".encode("ascii"))
    tampered = openssl(
        "dgst",
        "-sha256",
        "-verify",
        str(public),
        "-signature",
        str(tmp_path / "signature.der"),
        str(tmp_path / "signing-input"),
        check=False,
    )
    assert "Verification failure" in tampered


def unb64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def pem(der: bytes) -> str:
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def ecdsa_der(r: bytes, s: bytes) -> bytes:
    """Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }, written out by hand (X.690) so
    the check does not lean on the library that made the conversion the other way."""

    def integer(value: bytes) -> bytes:
        value = value.lstrip(b"\x00") or b"\x00"
        if value[0] & 0x80:
            value = b"\x00" + value  # stays positive
        return b"\x02" + bytes([len(value)]) + value

    content = integer(r) + integer(s)
    return b"\x30" + bytes([len(content)]) + content


def test_refusals_are_problem_documents(
    client: TestClient, admin_headers: dict[str, str], runtime: Any, his: Any, emr: Any
) -> None:
    employee_no, staff_id, device_id = clinician(runtime, his)
    unsigned = client.post("/api/v1/logins", json={"workstation": "PC"})
    problem(unsigned, 401, "auth-missing")
    problem(
        his.request("POST", "/api/v1/logins", json={"employee_no": "NOBODY", "workstation": ""}),
        404,
        "not-found",
    )
    for body in (
        {"workstation": "PC\n1"},
        {"workstation": "x" * 129},
        {"workstation": "PC", "expires_in_seconds": 601},
        {"workstation": "PC", "expires_in_seconds": 300},  # longer than the installation's 120
        {"workstation": "PC", "expires_in_seconds": 5},
        {"workstation": "PC", "staff_id": staff_id},
        {},
    ):
        problem(his.request("POST", "/api/v1/logins", json=body), 422, "invalid-input")

    lab_id, lab_secret = register_application(
        client, admin_headers, signer_scope={"departments": ["检验科"]}
    )
    with signed_client(client, lab_id, lab_secret) as lis:
        refused = lis.request(
            "POST", "/api/v1/logins", json={"employee_no": employee_no, "workstation": "LAB-1"}
        )
        problem(refused, 403, "login-not-allowed")

    login_id = his.start_login("PC-1")["id"]
    with pytest.raises(TimeoutError):
        his.wait_for_login(login_id, timeout=0)
    for path in (f"/api/v1/logins/{login_id}", f"/api/v1/logins/{login_id}/qr.svg"):
        problem(emr.request("GET", path), 404, "not-found")
    problem(his.request("GET", "/api/v1/logins/lgn_nosuchlogin"), 404, "not-found")
    problem(his.request("GET", f"/api/v1/logins/{login_id}/qr.gif"), 422, "invalid-input")

    declined_id = his.start_login("PC-2")["id"]
    runtime.logins.decline(declined_id, staff_id=staff_id, device_id=device_id)
    declined = his.get(f"/api/v1/logins/{declined_id}")
    assert declined["state"] == "declined" and declined["staff_id"] is None
    assert declined["assertion"] is None and declined["decided_at"]
    body = problem(
        his.request("GET", f"/api/v1/logins/{declined_id}/qr.svg"), 409, "login-declined"
    )
    assert body["state"] == "declined"

    with runtime.database.session() as session:
        session.execute(
            update(LoginChallengeRow)
            .where(LoginChallengeRow.id == login_id)
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    assert his.get(f"/api/v1/logins/{login_id}")["state"] == "expired"
    problem(his.request("GET", f"/api/v1/logins/{login_id}/qr.png"), 410, "login-expired")
    with pytest.raises(LoginExpiredError):
        runtime.logins.approve(login_id, staff_id=staff_id, device_id=device_id)
    assert runtime.logins.expire_due() >= 1
    with runtime.database.session() as session:
        row = session.get(LoginChallengeRow, login_id)
        assert row is not None and row.state == "expired"


def test_the_chain_endpoint_is_public_and_documented(client: TestClient) -> None:
    response = client.get("/pki/login-assertion.pem")
    assert response.status_code == 200
    operations = client.get("/openapi.json").json()["paths"]
    assert "/pki/login-assertion.pem" in operations
    assert set(operations["/api/v1/logins"]) == {"post"}
    assert operations["/api/v1/logins/{login_id}"]["get"]["summary"]
