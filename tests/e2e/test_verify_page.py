"""The public verification page in headless Chromium (issue 5, item 7): upload a CMS
signature with its data, or open a signed request's verification link; see passed, failed or
indeterminate with each check listed."""

from __future__ import annotations

import base64
import io
import secrets
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from medsign.client import MedsignClient
from tests.conftest import make_database_url
from tests.e2e.phone_support import new_phone, register_his, shot, staff_record
from tests.live import LiveServer, enrol_live, live_server

PIN = "491627"
RECORD = {"检验项目": "血常规", "WBC": "6.1", "结论": "未见异常"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("verify-page")
    urls = make_database_url(data_dir)
    with live_server(data_dir, next(urls)) as running:
        yield running
    for _ in urls:
        pass


@pytest.fixture(scope="module")
def signed(server: LiveServer) -> dict[str, Any]:
    his: MedsignClient = register_his(server, "lis-verify")
    record = staff_record(901)
    assert his.request("POST", "/api/v1/staff:import", json=[record]).status_code == 200
    enrol_live(server, his, record, "ec-p256", PIN)
    opened = his.post(
        "/api/v1/sign-requests",
        json={
            "employee_no": record["employee_no"],
            "scene": "lab-report",
            "summary": "血常规报告",
            "record_id": "LAB-9",
            "record": RECORD,
            "idempotency_key": secrets.token_hex(8),
        },
    )
    intent = his.post(
        "/api/v1/intents",
        json={"employee_no": record["employee_no"], "request_ids": [opened["id"]]},
    )
    his.post(f"/api/v1/intents/{intent['id']}/confirm", json={"pin": PIN})
    result: dict[str, Any] = his.get(f"/api/v1/sign-requests/{opened['id']}")
    assert result["state"] == "signed" and result["verification_url"]
    time.sleep(1.1)  # CRL times have whole seconds: let the status evidence postdate signing
    package = his.request("GET", f"/api/v1/sign-requests/{opened['id']}/evidence-package")
    assert package.status_code == 200, package.text
    result["package"] = package.content
    return result


def altered_package(package: bytes) -> bytes:
    """The same package with one byte of the raw signature changed (manifest left as is)."""
    source = zipfile.ZipFile(io.BytesIO(package))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "signature.raw":
                data = bytes([data[0] ^ 0x01]) + data[1:]
            target.writestr(info, data)
    return out.getvalue()


def upload(page: Any, server: LiveServer, tmp_path: Path, cms: bytes, data: bytes | None) -> None:
    page.goto(server.base + "/v/")
    (tmp_path / "signature.p7s").write_bytes(cms)
    page.set_input_files("#signature-file", str(tmp_path / "signature.p7s"))
    if data is not None:
        (tmp_path / "record.json").write_bytes(data)
        page.set_input_files("#data-file", str(tmp_path / "record.json"))
    page.click("#verify-submit")


def test_upload_cms_and_data(
    server: LiveServer, signed: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    context = new_phone(browser)
    page = context.new_page()
    cms = base64.b64decode(signed["signature"]["cms"])
    upload(page, server, tmp_path, cms, rfc8785.dumps(RECORD))
    page.wait_for_selector("#verdict")
    assert page.inner_text("#verdict") == "验证通过"
    assert "张医生901" in page.inner_text("#signer")
    checks = page.inner_text("#checks")
    assert "signature" in checks and "timestamp" in checks
    shot(page, "verify-passed")

    upload(page, server, tmp_path, cms, b'{"tampered": true}')
    page.wait_for_selector("#verdict")
    assert page.inner_text("#verdict") == "验证失败"
    shot(page, "verify-failed")

    # Not a signature at all: a clear report (ETSI: INDETERMINATE, FORMAT_FAILURE), no crash.
    upload(page, server, tmp_path, b"this is not a signature", None)
    page.wait_for_selector("#verdict")
    assert page.inner_text("#verdict") == "无法确定"
    assert "FORMAT_FAILURE" in page.inner_text("#report")
    shot(page, "verify-garbage")
    context.close()


def test_the_verification_link_of_a_signed_request(
    server: LiveServer, signed: dict[str, Any], browser: Any
) -> None:
    context = new_phone(browser)
    page = context.new_page()
    page.goto(signed["verification_url"])
    assert page.inner_text("#verdict") == "验证通过"
    assert signed["id"] in page.inner_text("main")
    assert "血常规" not in page.inner_text("main")  # the record itself is never shown
    shot(page, "verify-link")
    forged = signed["verification_url"].rsplit("/", 1)[0] + "/" + "0" * 32
    response = page.goto(forged)
    assert response is not None and response.status == 404
    context.close()


def test_upload_an_evidence_package(
    server: LiveServer, signed: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    context = new_phone(browser)
    page = context.new_page()
    upload(page, server, tmp_path, signed["package"], None)
    page.wait_for_selector("#verdict")
    assert page.inner_text("#verdict") == "验证通过", page.inner_text("#report")
    checks = page.inner_text("#checks")
    assert "events" in checks and "checkpoint" in checks
    shot(page, "verify-package")
    upload(page, server, tmp_path, altered_package(signed["package"]), None)
    page.wait_for_selector("#verdict")
    assert page.inner_text("#verdict") == "验证失败"
    context.close()
