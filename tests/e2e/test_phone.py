"""The clinician's phone pages in headless Chromium against a real server (issue 4).

Each test plays both sides: the hospital system through the HMAC-signed API and the
clinician through the phone pages, at a 390×844 viewport."""

from __future__ import annotations

import base64
import itertools
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import rfc8785

from medsign.client import MedsignClient, verify_login_assertion
from tests.api.signing_support import openssl_cms_verify
from tests.conftest import make_database_url, openssl
from tests.e2e.phone_support import (
    enrol_in_browser,
    new_phone,
    register_his,
    shot,
    staff_record,
)
from tests.live import LiveServer, live_server

expect = pytest.importorskip("playwright.sync_api").expect

PIN = "582046"
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("phone")
    urls = make_database_url(data_dir)
    extra = {"MEDSIGN_PHONE_EVENTS_POLL_SECONDS": "0.2"}
    with live_server(data_dir, next(urls), extra_env=extra, hostname="localhost") as running:
        yield running
    for _ in urls:
        pass


@pytest.fixture(scope="module")
def his(server: LiveServer) -> MedsignClient:
    return register_his(server, "emr-phone")


@pytest.fixture
def clinician(server: LiveServer, his: MedsignClient, browser: Any) -> Iterator[tuple[Any, str]]:
    """An enrolled clinician's phone (a page with the device and session cookies) and their
    employee number."""
    record = staff_record(next(_numbers))
    context = new_phone(browser)
    page = context.new_page()
    enrol_in_browser(page, server, his, record, PIN)
    try:
        yield page, str(record["employee_no"])
    finally:
        context.close()


def open_orders(his: MedsignClient, employee_no: str, n: int) -> list[str]:
    opened = his.request(
        "POST",
        "/api/v1/sign-batches",
        json={
            "employee_no": employee_no,
            "idempotency_key": secrets.token_hex(8),
            "items": [
                {
                    "scene": "medical-order",
                    "summary": f"阿司匹林肠溶片 100mg 口服 每日一次（{i + 1}）",
                    "record_id": f"MO-{i + 1}",
                    "record": {
                        "药品": "阿司匹林肠溶片",
                        "剂量": "100mg",
                        "频次": "qd",
                        "序号": i + 1,
                    },
                }
                for i in range(n)
            ],
        },
    )
    assert opened.status_code == 201, opened.text
    return [item["id"] for item in opened.json()["requests"]]


def open_one(his: MedsignClient, employee_no: str, summary: str) -> dict[str, Any]:
    opened = his.request(
        "POST",
        "/api/v1/sign-requests",
        json={
            "employee_no": employee_no,
            "scene": "prescription",
            "summary": summary,
            "record_id": "RX-" + secrets.token_hex(3),
            "record": {
                "患者": "王某",
                "诊断": "高血压",
                "药品": [{"名称": "氨氯地平", "剂量": "5mg"}],
            },
            "idempotency_key": secrets.token_hex(8),
        },
    )
    assert opened.status_code == 201, opened.text
    body: dict[str, Any] = opened.json()
    return body


def test_enrolment_on_the_phone(
    server: LiveServer, his: MedsignClient, browser: Any, tmp_path: Path
) -> None:
    record = staff_record(next(_numbers))
    context = new_phone(browser)
    page = context.new_page()
    enrol_in_browser(page, server, his, record, PIN, screenshots="enrol")
    page.click("text=进入待签列表")
    page.wait_for_selector("#empty:not([hidden])")
    assert "张医生" in page.inner_text("header")
    shot(page, "home-empty")
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["medsign_device"]["httpOnly"] and cookies["medsign_session"]["httpOnly"]
    assert cookies["medsign_session"]["sameSite"] == "Strict"
    # The same enrolment link is dead now.
    enrolments = his.request("GET", f"/api/v1/signers/{record['employee_no']}/pending")
    assert enrolments.status_code == 200
    context.close()


def test_pending_arrive_live_and_ten_are_signed_with_one_pin(
    clinician: tuple[Any, str], his: MedsignClient, tmp_path: Path
) -> None:
    page, employee_no = clinician
    page.goto(page.url.split("/m/")[0] + "/m/")
    page.wait_for_selector("#empty:not([hidden])")
    ids = open_orders(his, employee_no, 10)
    # No reload: the list is pushed over Server-Sent Events.
    expect(page.locator("#pending .item")).to_have_count(10)
    shot(page, "home-pending-10")
    page.check("#select-all")
    assert page.inner_text("#sign-selected") == "签署所选（10）"
    page.click("#sign-selected")
    page.fill("#pin-input", "000000")
    page.click("#pin-submit")
    page.wait_for_selector("#pin-error:not([hidden])")
    assert page.inner_text("#pin-error") == "签名密码错误，还可尝试 4 次"  # in the page's language
    assert not page.is_visible("#passkey-sign")  # no passkey registered yet
    shot(page, "pin-wrong")
    page.fill("#pin-input", PIN)
    shot(page, "pin-dialog")
    page.click("#pin-submit")
    page.wait_for_selector("#empty:not([hidden])", timeout=60_000)
    shot(page, "home-signed")
    for request_id in ids:
        polled = his.request("GET", f"/api/v1/sign-requests/{request_id}").json()
        assert polled["state"] == "signed"
    # The last order's CMS signature, over the record's RFC 8785 bytes, passes openssl.
    record = {"药品": "阿司匹林肠溶片", "剂量": "100mg", "频次": "qd", "序号": 10}
    openssl_cms_verify(tmp_path, polled["signature"], rfc8785.dumps(record))


def test_rejection_with_a_reason(clinician: tuple[Any, str], his: MedsignClient) -> None:
    page, employee_no = clinician
    opened = open_one(his, employee_no, "头孢呋辛 0.5g 静滴")
    page.goto(opened["phone_url"])
    page.wait_for_selector("#reject")
    assert "头孢呋辛" in page.inner_text(".detail")
    assert "氨氯地平" in page.inner_text("table.record")  # the record itself, laid out
    shot(page, "request-detail")
    page.click("#reject")
    page.fill("#reject-reason", "剂量需与药师核对")
    shot(page, "reject-dialog")
    page.click("#reject-submit")
    page.wait_for_selector(".state-rejected")
    polled = his.request("GET", f"/api/v1/sign-requests/{opened['id']}").json()
    assert polled["state"] == "rejected" and polled["reject_reason"] == "剂量需与药师核对"


def test_qr_signing_unlocks_then_signs_with_the_pin(
    clinician: tuple[Any, str], his: MedsignClient, server: LiveServer
) -> None:
    page, employee_no = clinician
    opened = open_one(his, employee_no, "氨氯地平片 5mg 口服 每日一次")
    qr = his.request("GET", f"/api/v1/sign-requests/{opened['id']}/qr.png")
    assert qr.status_code == 200 and qr.content.startswith(b"\x89PNG")
    # The session ends (log out); scanning the QR code asks for the PIN, then shows the item.
    page.goto(server.base + "/m/settings")
    page.click("#logout")
    page.wait_for_url("**/m/unlock")
    page.goto(opened["phone_url"])
    page.wait_for_url(re.compile(r"/m/unlock\?next="))
    shot(page, "unlock")
    page.fill("#unlock-pin", PIN)
    page.click("#unlock-form button[type=submit]")
    page.wait_for_url(f"**/m/requests/{opened['id']}")
    page.click("#sign")
    page.fill("#pin-input", PIN)
    page.click("#pin-submit")
    page.wait_for_selector(".state-signed", timeout=60_000)
    shot(page, "request-signed")
    polled = his.request("GET", f"/api/v1/sign-requests/{opened['id']}").json()
    assert polled["state"] == "signed" and polled["signature"]["timestamp_token"]
    page.goto(server.base + "/m/history")
    assert "氨氯地平片" in page.inner_text("#history")
    shot(page, "history")


def test_another_phone_without_enrolment_is_refused(server: LiveServer, browser: Any) -> None:
    context = new_phone(browser)
    page = context.new_page()
    page.goto(server.base + "/m/")
    page.wait_for_url(re.compile(r"/m/unlock\?next="))
    assert "尚未完成实名认证" in page.inner_text("#message")
    shot(page, "not-enrolled")
    response = page.request.get(server.base + "/m/api/pending")
    assert response.status == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    context.close()


def test_settings_change_pin_and_english(clinician: tuple[Any, str], server: LiveServer) -> None:
    page, _ = clinician
    page.goto(server.base + "/m/lang/en?next=/m/settings")
    page.wait_for_selector("#pin-change")
    assert "Change signing PIN" in page.inner_text("main")
    page.fill("#old-pin", PIN)
    page.fill("#new-pin", "731902")
    page.fill("#new-pin-again", "731902")
    page.click("#pin-change button[type=submit]")
    page.wait_for_selector("#flash:not([hidden])")
    assert "changed" in page.inner_text("#flash")
    shot(page, "settings-en")


def test_device_held_key_signs_on_the_phone_and_openssl_agrees(
    server: LiveServer, his: MedsignClient, browser: Any, tmp_path: Path
) -> None:
    record = staff_record(next(_numbers))
    context = new_phone(browser)
    page = context.new_page()
    enrolment = enrol_in_browser(
        page, server, his, record, PIN, key_location="device", screenshots="device-enrol"
    )
    assert enrolment["key_location"] == "device"
    # The private key is a non-extractable CryptoKey in the phone's IndexedDB.
    held = page.evaluate(
        """() => new Promise((resolve) => {
            const opened = indexedDB.open("medsign", 1);
            opened.onsuccess = () => {
                const get = opened.result.transaction("keys").objectStore("keys").get("signing");
                get.onsuccess = () => resolve({
                    extractable: get.result.privateKey.extractable,
                    type: get.result.privateKey.type,
                    spki: btoa(String.fromCharCode(...get.result.spki)),
                });
            };
        })"""
    )
    assert held == {"extractable": False, "type": "private", "spki": held["spki"]}
    certificate = tmp_path / "signer.pem"
    certificate.write_text(enrolment["certificate_pem"])
    spki_from_certificate = openssl("x509", "-in", str(certificate), "-noout", "-pubkey")
    assert "".join(spki_from_certificate.split("\n")[1:-2]) == held["spki"]

    employee_no = str(record["employee_no"])
    opened = open_one(his, employee_no, "硝酸甘油片 0.5mg 舌下含服")
    # The application cannot confirm for a phone-held key: only the phone can sign.
    intent = his.request(
        "POST", "/api/v1/intents", json={"employee_no": employee_no, "request_ids": [opened["id"]]}
    ).json()
    refused = his.request("POST", f"/api/v1/intents/{intent['id']}/confirm", json={"pin": PIN})
    assert refused.status_code == 409
    assert refused.json()["code"] == "device-signature-required"

    page.goto(opened["phone_url"])
    page.click("#sign")
    page.fill("#pin-input", PIN)
    page.click("#pin-submit")
    page.wait_for_selector(".state-signed", timeout=60_000)
    shot(page, "device-signed")
    polled = his.request("GET", f"/api/v1/sign-requests/{opened['id']}").json()
    assert polled["state"] == "signed"
    assert polled["content_kind"] == "json"
    jcs = rfc8785.dumps(
        {"患者": "王某", "诊断": "高血压", "药品": [{"名称": "氨氯地平", "剂量": "5mg"}]}
    )
    openssl_cms_verify(tmp_path, polled["signature"], jcs)
    # The raw signature: plain ECDSA-SHA256 over the record's bytes, by the certified key.
    (tmp_path / "content.bin").write_bytes(jcs)
    (tmp_path / "raw.sig").write_bytes(base64.b64decode(polled["signature"]["value"]))
    (tmp_path / "pub.pem").write_text(spki_from_certificate)
    verified = openssl(
        "dgst", "-sha256", "-verify", str(tmp_path / "pub.pem"), "-signature",
        str(tmp_path / "raw.sig"), str(tmp_path / "content.bin"),
    )  # fmt: skip
    assert "Verified OK" in verified

    # Losing the phone: unbinding it revokes the certificate; signing is refused until
    # the clinician enrols again.
    page.goto(server.base + "/m/settings")
    page.click(".unbind")
    page.wait_for_url(re.compile(r"/m/unlock"))
    refused_open = his.request(
        "POST",
        "/api/v1/sign-requests",
        json={
            "employee_no": employee_no,
            "scene": "prescription",
            "summary": "二次签名",
            "record_id": "RX-after",
            "record": {"n": 1},
            "idempotency_key": secrets.token_hex(8),
        },
    )
    assert refused_open.status_code == 409, refused_open.text
    assert "revoked" in refused_open.json()["code"]
    serial = enrolment["certificate_serial"]
    status = server.admin.get(f"/admin/v1/certificates/{serial}").json()
    assert status["status"] == "revoked" and status["revocation_reason"] == "keyCompromise"
    context.close()


def root_certificates(server: LiveServer) -> list[bytes]:
    cas = httpx.get(server.base + "/pki/cas").json()
    return [ca["certificate_pem"].encode() for ca in cas if ca["level"] == "root"]


def test_qr_login_approved_on_the_phone(
    clinician: tuple[Any, str], his: MedsignClient, server: LiveServer
) -> None:
    page, employee_no = clinician
    started = his.start_login("门诊 3 诊室 PC-0312", employee_no=employee_no)
    assert his.request("GET", f"/api/v1/logins/{started['id']}/qr.svg").status_code == 200
    page.goto(started["url"])
    page.wait_for_selector("#approve")
    assert "电子病历" in page.inner_text("#asks")
    assert page.inner_text("#workstation") == "门诊 3 诊室 PC-0312"
    shot(page, "login-ask")
    page.click("#approve")
    page.wait_for_selector("#login-result:not([hidden])")
    assert page.inner_text("#login-result") == "已确认登录"
    shot(page, "login-approved")
    login = his.wait_for_login(started["id"], interval=0.2, timeout=30)
    assert login["state"] == "approved" and login["employee_no"] == employee_no
    claims = verify_login_assertion(
        login["assertion"], root_certificates(server), audience=his.app_id
    )
    assert claims["employee_no"] == employee_no and claims["login_id"] == started["id"]
    # Used once: the same challenge cannot be approved again.
    page.goto(started["url"])
    assert "已确认登录" in page.inner_text("#login-result")
    again = page.request.post(
        f"{server.base}/m/api/logins/{started['id']}/approve", headers={"X-Medsign-Phone": "1"}
    )
    assert again.status == 409 and again.json()["code"] == "login-decided"


def test_qr_login_declined(clinician: tuple[Any, str], his: MedsignClient) -> None:
    page, employee_no = clinician
    started = his.start_login("住院部护士站", employee_no=employee_no)
    page.goto(started["url"])
    page.click("#decline")
    page.wait_for_selector("#login-result:not([hidden])")
    assert page.inner_text("#login-result") == "已拒绝登录"
    shot(page, "login-declined")
    login = his.wait_for_login(started["id"], interval=0.2, timeout=30)
    assert login["state"] == "declined" and not login.get("assertion")


def test_qr_login_expired_is_refused(clinician: tuple[Any, str], his: MedsignClient) -> None:
    page, employee_no = clinician
    started = his.start_login("急诊 PC-01", employee_no=employee_no, expires_in_seconds=10)
    page.goto(started["url"])
    page.wait_for_selector("#approve")
    login = his.wait_for_login(started["id"], interval=0.5, timeout=60)  # until it expires
    assert login["state"] == "expired"
    page.click("#approve")
    page.wait_for_selector("#login-result:not([hidden])")
    assert page.inner_text("#login-result") == "登录请求已过期"
    shot(page, "login-expired")


def test_qr_login_named_for_someone_else_is_not_shown(
    clinician: tuple[Any, str], his: MedsignClient, server: LiveServer
) -> None:
    page, _ = clinician
    other = staff_record(next(_numbers))
    assert his.request("POST", "/api/v1/staff:import", json=[other]).status_code == 200
    started = his.start_login("PC-9", employee_no=str(other["employee_no"]))
    response = page.goto(started["url"])
    assert response is not None and response.status == 404
    refused = page.request.post(
        f"{server.base}/m/api/logins/{started['id']}/approve", headers={"X-Medsign-Phone": "1"}
    )
    assert refused.status == 404


def test_passkey_registered_and_used_to_sign_in_chromium(
    clinician: tuple[Any, str], his: MedsignClient, server: LiveServer
) -> None:
    page, employee_no = clinician
    # Chromium's virtual authenticator (DevTools WebAuthn domain): a platform authenticator
    # with user verification, as a phone's fingerprint sensor would be.
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    page.goto(server.base + "/m/settings")
    page.fill("#passkey-label", "测试手机指纹")
    page.click("#passkey-add")
    page.wait_for_selector("#passkeys .passkey")
    assert "测试手机指纹" in page.inner_text("#passkeys")
    shot(page, "passkey-registered")
    credentials = cdp.send(
        "WebAuthn.getCredentials", {"authenticatorId": added["authenticatorId"]}
    )["credentials"]
    assert len(credentials) == 1

    opened = open_one(his, employee_no, "阿托伐他汀钙片 20mg 睡前")
    page.goto(opened["phone_url"])
    page.click("#sign")
    page.wait_for_selector("#passkey-sign:not([hidden])")
    shot(page, "passkey-dialog")
    page.click("#passkey-sign")
    page.wait_for_selector(".state-signed", timeout=60_000)
    polled = his.request("GET", f"/api/v1/sign-requests/{opened['id']}").json()
    assert polled["state"] == "signed"
    # One assertion was made: the authenticator's counter moved past zero.
    after = cdp.send("WebAuthn.getCredentials", {"authenticatorId": added["authenticatorId"]})
    assert after["credentials"][0]["signCount"] >= 1
