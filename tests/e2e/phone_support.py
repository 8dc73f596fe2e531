"""Headless Chromium (Debian's `chromium`, driven by Playwright) holding a 390×844 phone.

Screenshots of the key pages go to ``test-artifacts/phone/`` (or ``$MEDSIGN_TEST_ARTIFACTS``)
so a person can look at what a clinician sees."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from medsign.client import MedsignClient
from tests.identity.support import make_national_id
from tests.live import LiveServer

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
ARTIFACTS = Path(os.environ.get("MEDSIGN_TEST_ARTIFACTS", "test-artifacts")) / "phone"


def new_phone(browser: Any, lang: str = "zh-CN") -> Any:
    """A fresh phone (no cookies): a new browser context with a phone's viewport."""
    context = browser.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale=lang,
        user_agent="Mozilla/5.0 (Linux; Android 14; medsign-test) Mobile Chrome",
    )
    context.set_default_timeout(20_000)
    return context


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def register_his(server: LiveServer, code: str) -> MedsignClient:
    registered = server.admin.post(
        "/admin/v1/applications",
        json={"name": f"电子病历 {code}", "code": code, "rate_limit_per_minute": 10_000},
    )
    assert registered.status_code == 201, registered.text
    body = registered.json()
    return MedsignClient(server.base, body["application"]["id"], body["secret"], timeout=60)


def staff_record(n: int) -> dict[str, object]:
    return {
        "employee_no": f"P{n:04d}",
        "name": f"张医生{n}",
        "national_id": make_national_id("19820304", n),
        "phone": f"137{n:08d}",
        "department": "心内科",
        "title": "主治医师",
    }


def sms_code(server: LiveServer, phone: str) -> str:
    outbox = server.admin.get(
        "/admin/v1/sms/outbox", params={"phone_last4": phone[-4:], "limit": 1}
    ).json()
    found = re.search(r"(\d{6})", outbox[0]["body"])
    assert found is not None
    return found.group(1)


def enrol_in_browser(
    page: Any,
    server: LiveServer,
    his: MedsignClient,
    record: dict[str, object],
    pin: str,
    *,
    screenshots: str | None = None,
    key_location: str = "server",
) -> dict[str, Any]:
    """Walk the real enrolment on the phone page, as the clinician would; returns the
    enrolment as the application sees it afterwards."""
    assert his.request("POST", "/api/v1/staff:import", json=[record]).status_code == 200
    opened = his.request(
        "POST",
        "/api/v1/enrolments",
        json={
            "employee_no": record["employee_no"],
            "key_algorithm": "ec-p256",
            "key_location": key_location,
        },
    )
    assert opened.status_code == 201, opened.text
    page.goto(opened.json()["url"])
    if screenshots:
        shot(page, f"{screenshots}-1-start")
    page.click("#send-code")
    page.wait_for_selector("#step-code:not([hidden])")
    page.fill("#code", sms_code(server, str(record["phone"])))
    if screenshots:
        shot(page, f"{screenshots}-2-code")
    page.click("#step-code button[type=submit]")
    page.wait_for_selector("#step-identity:not([hidden])")
    page.fill("#national-id", str(record["national_id"]))
    page.click("#step-identity button[type=submit]")
    page.wait_for_selector("#step-pin:not([hidden])")
    page.fill("#new-pin", pin)
    page.fill("#new-pin-again", pin)
    if screenshots:
        shot(page, f"{screenshots}-3-pin")
    page.click("#step-pin button[type=submit]")
    page.wait_for_selector("#step-done:not([hidden])", timeout=60_000)
    if screenshots:
        shot(page, f"{screenshots}-4-done")
    done: dict[str, Any] = his.request("GET", f"/api/v1/enrolments/{opened.json()['id']}").json()
    assert done["state"] == "authenticated", done
    return done
