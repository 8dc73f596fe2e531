"""Evidence reports: the PDF of a request signed through the API, read back with poppler
(pdftotext, pdfimages, pdffonts, pdftoppm); refused for a request that is not signed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from medsign.evidence.report import render_report_and_package, report_font
from medsign.verify.chain import parse_certificate
from medsign.web.verify import verification_link
from tests.api.signing_support import PIN, enrol
from tests.identity.support import register_application, signed_client

ORDER = {"order_no": "MO-8", "drug": "头孢克肟片", "dose": "0.1 g"}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "reports"


@pytest.fixture(scope="module")
def his(client: TestClient, admin_headers: dict[str, str]) -> Iterator[Any]:
    app_id, secret = register_application(client, admin_headers)
    with signed_client(client, app_id, secret) as medsign:
        yield medsign


@pytest.fixture(scope="module")
def employee_no(client: TestClient, admin_headers: dict[str, str], his: Any) -> str:
    return enrol(client, admin_headers, his, "ec-p256")


def _open(his: Any, employee_no: str, key: str) -> str:
    opened = his.request(
        "POST",
        "/api/v1/sign-requests",
        json={
            "employee_no": employee_no,
            "scene": "prescription",
            "summary": "头孢克肟 0.1g",
            "record_id": key,
            "record": ORDER,
            "idempotency_key": key,
        },
    )
    assert opened.status_code == 201, opened.text
    return str(opened.json()["id"])


@pytest.fixture(scope="module")
def signed_id(his: Any, employee_no: str) -> str:
    request_id = _open(his, employee_no, "report-1")
    intent = his.request(
        "POST",
        "/api/v1/intents",
        json={"employee_no": employee_no, "request_ids": [request_id], "method": "pin"},
    )
    assert intent.status_code == 201, intent.text
    confirmed = his.request(
        "POST", f"/api/v1/intents/{intent.json()['id']}/confirm", json={"pin": PIN}
    )
    assert confirmed.status_code == 200, confirmed.text
    # A CRL has whole seconds: one issued in the signing second cannot show it came after.
    time.sleep(1.05)
    return request_id


@pytest.fixture(scope="module")
def rendered(runtime: Any, signed_id: str) -> tuple[bytes, bytes]:
    return render_report_and_package(
        runtime, signed_id, verification_url=verification_link(runtime, signed_id)
    )


@pytest.fixture(scope="module")
def pdf_path(rendered: tuple[bytes, bytes], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.pdf"
    path.write_bytes(rendered[0])
    return path


def poppler(*args: str | Path) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


def text_of(path: Path) -> str:
    """The PDF's text with layout kept and whitespace runs squeezed (table cells wrap)."""
    return poppler("pdftotext", "-layout", path, "-")


def member(package: bytes, name: str) -> bytes:
    return zipfile.ZipFile(io.BytesIO(package)).read(name)


def test_the_report_states_what_the_package_proves(
    runtime: Any, signed_id: str, rendered: tuple[bytes, bytes], pdf_path: Path
) -> None:
    pdf, package = rendered
    assert pdf.startswith(b"%PDF-")
    text = text_of(pdf_path)
    flat = re.sub(r"\s+", "", text)  # long values wrap inside table cells
    request = json.loads(member(package, "request.json"))
    serial = format(parse_certificate(member(package, "chain/00.der")).serial_number, "x")
    for expected in (
        "电子签名证据报告",
        "Electronic Signature Evidence Report",
        "陈医生",  # the signer, from the certificate
        "麻醉科",
        "处方",  # the scene label
        "Prescription",
        "签名口令 PIN",
        "通过 PASSED",
        signed_id,
        serial,
        request["digest"],
        hashlib.sha256(member(package, "signature.raw")).hexdigest(),
        hashlib.sha256(member(package, "signature.p7s")).hexdigest(),
        hashlib.sha256(member(package, "timestamp.tsr")).hexdigest(),
        hashlib.sha256(package).hexdigest(),
        "staff-signing",  # the certificate profile
    ):
        assert re.sub(r"\s+", "", expected) in flat, expected
    for event_type in ("request:open", "intent:confirm", "signature:apply"):
        assert event_type in text, event_type
    for check in ("signature", "raw-signature", "checkpoint", "events", "trail"):
        assert re.search(rf"^\s*{re.escape(check)}\s+通过 PASSED", text, re.M), check
    # The trusted time is the timestamp token's, printed in UTC and Beijing time.
    stamped = request["timestamp_time"][:19].replace("T", " ")
    assert f"{stamped} UTC" in text
    assert PIN not in text
    # Every page has the package's SHA-256 and its number.
    pages = text.split("\f")
    pages = [p for p in pages if p.strip()]
    assert len(pages) >= 2
    for number, page in enumerate(pages, start=1):
        assert hashlib.sha256(package).hexdigest() in page
        assert f"Page {number} of {len(pages)}" in page


def test_the_report_has_a_qr_code_to_the_verification_page(
    runtime: Any, signed_id: str, pdf_path: Path
) -> None:
    url = verification_link(runtime, signed_id)
    first_page = poppler("pdftotext", "-f", "1", "-l", "1", pdf_path, "-")
    assert url in re.sub(r"\s+", "", first_page)
    images = poppler("pdfimages", "-list", "-f", "1", "-l", "1", pdf_path).splitlines()[2:]
    assert images, "no image on page 1"
    width, height = images[0].split()[3:5]
    assert width == height  # a QR code is square


def test_the_font_covers_chinese(pdf_path: Path) -> None:
    fonts = poppler("pdffonts", pdf_path).splitlines()[2:]
    font = report_font()
    if font.kind == "cid":  # no CJK font installed: the reader supplies STSong-Light
        assert any("STSong-Light" in line for line in fonts), fonts
        return
    # Noto Sans CJK (converted from CFF) embedded as a subset: "emb" is yes.
    cjk = [line.split() for line in fonts if "CJK" in line or "+" in line.split()[0]]
    assert any(columns[-5] == "yes" for columns in cjk), fonts
    assert all(line.split()[-5] == "yes" for line in fonts if "Helvetica" not in line), fonts


def test_page_one_as_an_image_for_people(pdf_path: Path, signed_id: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    prefix = ARTIFACTS / "evidence-report"
    poppler("pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", pdf_path, prefix)
    png = prefix.with_suffix(".png")
    assert png.read_bytes().startswith(b"\x89PNG")
    (ARTIFACTS / "evidence-report.pdf").write_bytes(pdf_path.read_bytes())


def test_the_api_serves_the_applications_own_reports(
    his: Any, client: TestClient, admin_headers: dict[str, str], signed_id: str
) -> None:
    response = his.request("GET", f"/api/v1/sign-requests/{signed_id}/evidence-report")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["cache-control"] == "no-store"
    assert response.content.startswith(b"%PDF-")
    app_id, secret = register_application(client, admin_headers)
    with signed_client(client, app_id, secret) as stranger:
        refused = stranger.request("GET", f"/api/v1/sign-requests/{signed_id}/evidence-report")
    assert refused.status_code == 404


def test_only_a_signed_request_has_a_report(his: Any, employee_no: str) -> None:
    pending = _open(his, employee_no, "report-pending")
    response = his.request("GET", f"/api/v1/sign-requests/{pending}/evidence-report")
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "evidence-package-not-ready"


# -- the CLI --------------------------------------------------------------------------------


def run_log_report(runtime: Any, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
        "MEDSIGN_DATABASE_URL": runtime.settings.resolved_database_url,
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "medsign.cli",
            "log",
            "report",
            *map(str, args),
            "--data-dir",
            str(runtime.settings.data_dir),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_writes_a_report_and_its_package(runtime: Any, signed_id: str, tmp_path: Path) -> None:
    out, package = tmp_path / "report.pdf", tmp_path / "evidence.zip"
    result = run_log_report(runtime, signed_id, "--out", out, "--package", package)
    assert result.returncode == 0, result.stdout + result.stderr
    text = re.sub(r"\s+", "", text_of(out))
    assert "陈医生" in text
    assert hashlib.sha256(package.read_bytes()).hexdigest() in text


def test_cli_refuses_a_request_that_is_not_signed(
    runtime: Any, his: Any, employee_no: str, tmp_path: Path
) -> None:
    pending = _open(his, employee_no, "report-pending-cli")
    out = tmp_path / "none.pdf"
    result = run_log_report(runtime, pending, "--out", out)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "[evidence-package-not-ready]" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
