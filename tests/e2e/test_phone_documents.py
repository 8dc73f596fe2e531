"""The handwritten signature and PDF requests on the clinician's phone, in headless Chromium
against a real server (issue 6).

The clinician photographs a signature on the settings page, sees it cut out (on white and on
a checkerboard) and confirms it; the hospital system opens a PDF request; the clinician reads
where and how it is signed, opens the PDF, signs with the PIN, and the signed PDF carries the
handwriting. Screenshots (390×844) go to ``test-artifacts/phone/``."""

from __future__ import annotations

import base64
import itertools
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medsign.client import MedsignClient
from tests.api.pdf_support import discharge_pdf
from tests.conftest import make_database_url
from tests.documents.test_handwriting import dark_photo, signature_photo
from tests.e2e.phone_support import (
    ARTIFACTS,
    enrol_in_browser,
    new_phone,
    register_his,
    shot,
    staff_record,
)
from tests.live import LiveServer, live_server

expect = pytest.importorskip("playwright.sync_api").expect

PIN = "493817"
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("phone-documents")
    urls = make_database_url(data_dir)
    extra = {"MEDSIGN_PHONE_EVENTS_POLL_SECONDS": "0.2"}
    with live_server(data_dir, next(urls), extra_env=extra, hostname="localhost") as running:
        yield running
    for _ in urls:
        pass


@pytest.fixture(scope="module")
def his(server: LiveServer) -> MedsignClient:
    return register_his(server, "emr-phone-pdf")


def open_pdf(his: MedsignClient, employee_no: str, pdf: bytes) -> dict[str, Any]:
    key = secrets.token_hex(8)
    opened = his.request(
        "POST",
        "/api/v1/document-requests",
        json={
            "employee_no": employee_no,
            "scene": "discharge-summary",
            "summary": "出院记录 张某某 住院号 A1234",
            "record_id": f"DS-{key[:6]}",
            "idempotency_key": key,
            "pdf": base64.b64encode(pdf).decode(),
            "placement": {"anchor": "医师签名：", "page": 2, "width": 200, "height": 60},
            "level": "B-LT",
            "reason": "出院记录审签",
        },
    )
    assert opened.status_code == 201, opened.text
    body: dict[str, Any] = opened.json()
    return body


def images_loaded(page: Any, selector: str) -> None:
    page.wait_for_function(
        "(s) => [...document.querySelectorAll(s)].every((i) => i.complete && i.naturalWidth > 0)",
        arg=selector,
    )


def choose_photo(page: Any, photo: bytes) -> None:
    """What the camera (or the photo picker) hands the page's file input."""
    page.set_input_files(
        "#hw-file", files=[{"name": "IMG_2041.jpg", "mimeType": "image/jpeg", "buffer": photo}]
    )


def test_photo_to_handwriting_then_a_pdf_read_and_signed_on_the_phone(
    server: LiveServer, his: MedsignClient, browser: Any, tmp_path: Path
) -> None:
    record = staff_record(next(_numbers))
    context = new_phone(browser)
    page = context.new_page()
    enrol_in_browser(page, server, his, record, PIN)

    page.goto(server.base + "/m/settings")
    expect(page.locator("#hw-none")).to_be_visible()
    assert page.inner_text("#hw-take") == "拍照上传签名"
    assert page.get_attribute("#hw-file", "capture") == "environment"
    # A photo of a dark table: refused, in the clinician's language, nothing proposed.
    choose_photo(page, dark_photo())
    expect(page.locator("#hw-error")).to_have_text("照片太暗：请在白纸上签名，在明亮处拍摄")
    assert not page.is_visible("#hw-proposal")
    shot(page, "handwriting-1-too-dark")

    choose_photo(page, signature_photo())
    expect(page.locator("#hw-proposal")).to_be_visible(timeout=30_000)
    expect(page.locator("#hw-error")).to_be_hidden()
    images_loaded(page, ".hw-proposed")
    expect(page.locator("#hw-none")).to_be_hidden()
    expect(page.locator("#hw-confirm")).to_be_in_viewport()  # the page brought it into view
    shot(page, "handwriting-2-proposal")
    # The shown image is the transparent PNG the server kept as the proposal.
    proposed = page.request.get(server.base + "/m/api/handwriting").json()["proposed"]
    assert page.get_attribute(".sig.checker img", "src") == proposed["png_url"]
    png = page.request.get(server.base + proposed["png_url"])
    assert png.headers["content-type"] == "image/png" and png.body().startswith(b"\x89PNG")

    page.click("#hw-confirm")
    expect(page.locator("#flash")).to_have_text("手写签名已启用")
    expect(page.locator("#hw-active-box")).to_be_visible()
    expect(page.locator("#hw-proposal")).to_be_hidden()
    images_loaded(page, "#hw-active")
    assert page.inner_text("#hw-take") == "拍照更换"
    page.locator("#handwriting").scroll_into_view_if_needed()
    shot(page, "handwriting-3-active")

    # The hospital system asks for a signature on a two-page discharge record.
    original = discharge_pdf(pages=2)
    opened = open_pdf(his, str(record["employee_no"]), original)
    page.goto(server.base + "/m/")
    item = page.locator(f"#pending .item[data-id='{opened['id']}']")
    expect(item.locator(".tag")).to_have_text("PDF · 2页")
    shot(page, "pdf-1-pending")

    item.locator("a.body").click()
    page.wait_for_url(f"**/m/requests/{opened['id']}")
    assert page.inner_text("#doc-pages") == "共 2 页"
    assert page.inner_text("#doc-where").startswith("第 2 页")
    assert "B-LT" in page.inner_text("#doc-level")
    assert "出院记录审签" in page.inner_text(".detail")
    images_loaded(page, "#appearance img")
    assert page.locator("#no-handwriting").count() == 0
    shot(page, "pdf-2-detail")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    shot(page, "pdf-2-detail-end")
    # What the link opens is the very PDF the application sent.
    href = page.get_attribute("#open-pdf", "href")
    assert page.get_attribute("#open-pdf", "target") == "_blank"
    shown = page.request.get(server.base + href)
    assert shown.status == 200 and shown.headers["content-type"] == "application/pdf"
    assert shown.headers["content-disposition"].startswith("inline")
    assert shown.body() == original

    page.click("#sign")
    page.fill("#pin-input", PIN)
    shot(page, "pdf-3-pin")
    page.click("#pin-submit")
    page.wait_for_selector(".state-signed", timeout=60_000)
    assert page.inner_text("#open-pdf") == "查看已签署的 PDF"
    shot(page, "pdf-4-signed")

    signed = page.request.get(server.base + href).body()
    assert signed.startswith(original) and signed != original
    downloaded = his.request("GET", f"/api/v1/sign-requests/{opened['id']}/document.pdf")
    assert downloaded.content == signed
    # The appearance on page 2: one image with a soft mask (the transparent handwriting,
    # name, time and QR code drawn together).
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    listing = subprocess.run(
        ["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True
    ).stdout
    kinds = [(row.split()[0], row.split()[2]) for row in listing.splitlines()[2:]]
    assert kinds == [("2", "image"), ("2", "smask")], listing
    # The signed page as a viewer draws it, for a person to look at.
    subprocess.run(
        ["pdftoppm", "-r", "110", "-f", "2", "-l", "2", "-png", "-singlefile", str(path),
         str(ARTIFACTS / "pdf-5-signed-page")],
        check=True,
    )  # fmt: skip
    context.close()


def test_a_key_held_on_the_phone_signs_a_pdf_in_english_without_handwriting(
    server: LiveServer, his: MedsignClient, browser: Any, tmp_path: Path
) -> None:
    record = staff_record(next(_numbers))
    context = new_phone(browser, lang="en")
    page = context.new_page()
    enrol_in_browser(page, server, his, record, PIN, key_location="device")
    opened = open_pdf(his, str(record["employee_no"]), discharge_pdf(pages=2))
    page.goto(server.base + f"/m/lang/en?next=/m/requests/{opened['id']}")
    page.wait_for_url(f"**/m/requests/{opened['id']}")
    assert page.inner_text("#doc-pages") == "2 pages"
    assert page.inner_text("#doc-where").startswith("page 2")
    # No handwriting confirmed: the page says what the signature shows instead, and where
    # to set one up.
    notice = page.locator("#no-handwriting")
    expect(notice).to_contain_text("your name and the time only")
    assert notice.locator("a").get_attribute("href") == "/m/settings#handwriting"
    assert page.locator("#appearance img").count() == 0
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    shot(page, "pdf-6-no-handwriting-en")

    # The phone's WebCrypto key signs what medsign prepared for this PDF; the PIN confirms.
    page.click("#sign")
    page.fill("#pin-input", PIN)
    page.click("#pin-submit")
    page.wait_for_selector(".state-signed", timeout=60_000)
    assert page.inner_text("#open-pdf") == "Open the signed PDF"
    shot(page, "pdf-7-signed-on-device-en")
    signed = page.request.get(server.base + page.get_attribute("#open-pdf", "href")).body()
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    listing = subprocess.run(
        ["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True
    ).stdout
    # Still a visible appearance (name, time, QR code) on page 2, without handwriting.
    assert [row.split()[0] for row in listing.splitlines()[2:]] == ["2", "2"], listing
    polled = his.request("GET", f"/api/v1/sign-requests/{opened['id']}").json()
    assert polled["state"] == "signed"
    context.close()
