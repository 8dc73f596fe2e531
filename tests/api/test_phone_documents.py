"""The clinician's handwritten signature and PDF requests through the phone API (issue 6):
a photo becomes a transparent proposal, the clinician confirms it, an application opens a
PDF request, the clinician reads and signs it on the phone with the PIN, and the signed
PDF's appearance shows the confirmed handwriting."""

from __future__ import annotations

import base64
import io
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageChops, ImageFilter, ImageStat

from medsign.documents.handwriting import MAX_PHOTO_BYTES
from medsign.documents.signing import Level
from medsign.web.i18n import MESSAGES
from tests.api.pdf_support import discharge_pdf
from tests.api.test_phone_api import PHONE, PIN, enrol_phone
from tests.documents.test_handwriting import dark_photo, signature_photo
from tests.identity.support import register_application, signed_client

JPEG = {**PHONE, "Content-Type": "image/jpeg"}


@pytest.fixture(scope="module")
def his(client: TestClient, admin_headers: dict[str, str]) -> Iterator[Any]:
    app_id, secret = register_application(client, admin_headers)
    with signed_client(client, app_id, secret) as medsign:
        yield medsign


def open_pdf_request(his: Any, employee_no: str, pdf: bytes, **fields: Any) -> dict[str, Any]:
    key = secrets.token_hex(8)
    opened = his.request(
        "POST",
        "/api/v1/document-requests",
        json={
            "employee_no": employee_no,
            "scene": "discharge-summary",
            "summary": "出院记录 张某某 住院号 A1234",
            "record_id": f"DS-{key}",
            "idempotency_key": key,
            "pdf": base64.b64encode(pdf).decode(),
            "placement": {"page": 2, "rect": [330, 100, 530, 160]},
            "reason": "出院记录审签",
            **fields,
        },
    )
    assert opened.status_code == 201, opened.text
    body: dict[str, Any] = opened.json()
    return body


def rgba(png: bytes) -> Image.Image:
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        return image.convert("RGBA")


def propose(phone: TestClient, photo: bytes) -> dict[str, Any]:
    response = phone.post("/m/api/handwriting", content=photo, headers=JPEG)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def appearance_alpha(tmp_path: Path, pdf: bytes) -> Image.Image:
    """The opacity (soft mask) of the one image the signed PDF holds: the appearance."""
    path = tmp_path / "signed.pdf"
    path.write_bytes(pdf)
    listing = subprocess.run(
        ["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split() for line in listing.splitlines()[2:]]
    # One image and its soft mask, on the page of the signature.
    assert [(r[0], r[2]) for r in rows] == [("2", "image"), ("2", "smask")], listing
    subprocess.run(["pdfimages", "-png", str(path), str(tmp_path / "img")], check=True)
    with Image.open(tmp_path / "img-001.png") as mask:
        return mask.convert("L")


def assert_shows(alpha: Image.Image, handwriting: Image.Image) -> None:
    """The handwriting is the appearance's leftmost block of ink (then the text, then the
    QR code): that block, scaled, matches the confirmed image's opacity."""
    ink = alpha.point([0] * 33 + [255] * 223)  # clearly opaque pixels only
    columns = [ink.crop((x, 0, x + 1, ink.height)).getbbox() is not None for x in range(ink.width)]
    start = columns.index(True)
    end = start
    gap = 0
    for x in range(start, alpha.width):
        if columns[x]:
            end, gap = x + 1, 0
        else:
            gap += 1
            if gap > 6:  # the margin between the picture and the text
                break
    block = alpha.crop((start, 0, end, alpha.height))
    box = block.getbbox()
    assert box is not None
    block = block.crop(box)
    expected = handwriting.getchannel("A")
    expected = expected.crop(expected.getbbox()).resize(block.size, Image.Resampling.LANCZOS)
    # Aspect ratios agree (the appearance scales the image without distortion)...
    ratio = expected.width / expected.height
    assert abs(block.width / block.height - handwriting.width / handwriting.height) < 0.1 * ratio
    # ...and so does the ink, once both are softened enough that resampling one-pixel pen
    # lines differently does not count (the same strokes 20 px apart differ by 1.5x ink).
    soft_block = block.filter(ImageFilter.GaussianBlur(2))
    soft_expected = expected.filter(ImageFilter.GaussianBlur(2))
    mean_difference = ImageStat.Stat(ImageChops.difference(soft_block, soft_expected)).mean[0]
    mean_ink = ImageStat.Stat(soft_expected).mean[0]
    assert mean_ink > 5 and mean_difference < mean_ink / 2, (mean_difference, mean_ink)


def test_every_level_and_certification_has_words_on_the_phone() -> None:
    # Built at run time from the statement ("doc.level." + level), so checked here.
    for level in Level:
        assert f"doc.level.{level.value}" in MESSAGES
    for permission in (1, 2, 3):
        assert f"doc.certify.{permission}" in MESSAGES


def test_a_photographed_signature_appears_in_the_pdf_signed_on_the_phone(
    client: TestClient, admin_headers: dict[str, str], his: Any, tmp_path: Path
) -> None:
    phone, employee_no, _ = enrol_phone(client, admin_headers, his, device_key=False)
    nothing = phone.get("/m/api/handwriting").json()
    assert nothing == {"active": None, "proposed": None, "max_photo_bytes": MAX_PHOTO_BYTES}

    # Without the anti-CSRF header nothing is kept.
    refused = phone.post(
        "/m/api/handwriting", content=signature_photo(), headers={"Content-Type": "image/jpeg"}
    )
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"

    proposal = propose(phone, signature_photo())
    assert proposal["state"] == "proposed"
    shown = phone.get(proposal["png_url"])
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
    assert "no-store" in shown.headers["cache-control"]
    handwriting = rgba(shown.content)
    assert (handwriting.width, handwriting.height) == (proposal["width"], proposal["height"])
    alpha = handwriting.getchannel("A")
    w, h = alpha.size
    corners = [alpha.getpixel(p) for p in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1))]
    assert corners == [0, 0, 0, 0] and alpha.getextrema() == (0, 255)
    # Mostly transparent paper, a little opaque ink.
    assert 1 < ImageStat.Stat(alpha).mean[0] < 80
    assert phone.get("/m/api/handwriting").json()["proposed"] == proposal

    confirmed = phone.post(f"/m/api/handwriting/{proposal['id']}/confirm", headers=PHONE)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["state"] == "active"
    assert phone.get("/m/api/handwriting").json()["active"]["id"] == proposal["id"]

    original = discharge_pdf(pages=2)
    request = open_pdf_request(his, employee_no, original)
    listed = phone.get("/m/api/pending").json()["items"]
    assert [i["id"] for i in listed] == [request["id"]]
    assert listed[0]["content_kind"] == "pdf" and listed[0]["document"]["pages"] == 2

    detail = phone.get(f"/m/api/requests/{request['id']}").json()
    assert detail["record"] is None
    document = detail["document"]
    assert (document["pages"], document["page"], document["level"]) == (2, 2, "B-T")
    assert document["reason"] == "出院记录审签" and document["handwriting"] is True
    assert document["pdf_sha256"] == request["document"]["pdf_sha256"]
    before = phone.get(document["url"])
    assert before.status_code == 200 and before.content == original
    assert before.headers["content-type"] == "application/pdf"
    assert before.headers["content-disposition"].startswith("inline")
    assert before.headers["medsign-document"] == "original"

    intent = phone.post(
        "/m/api/intents", json={"request_ids": [request["id"]]}, headers=PHONE
    ).json()
    assert intent["device_payloads"] == []
    signed = phone.post(f"/m/api/intents/{intent['id']}/confirm", json={"pin": PIN}, headers=PHONE)
    assert signed.status_code == 200, signed.text
    assert [i["state"] for i in signed.json()["items"]] == ["signed"]

    after = phone.get(document["url"])
    assert after.headers["medsign-document"] == "signed"
    assert after.content.startswith(original)  # an incremental update of what was shown
    assert (
        after.content
        == his.request("GET", f"/api/v1/sign-requests/{request['id']}/document.pdf").content
    )
    assert_shows(appearance_alpha(tmp_path, after.content), handwriting)
    assert phone.get("/m/api/history").json()["items"][0]["document"]["pages"] == 2


def test_bad_photos_are_refused_with_precise_codes(
    client: TestClient, admin_headers: dict[str, str], his: Any
) -> None:
    phone, _, _ = enrol_phone(client, admin_headers, his, device_key=False)
    tiny = io.BytesIO()
    Image.new("RGB", (40, 30), "white").save(tiny, "PNG")
    for body, status, code in [
        (signature_photo(ink=False), 422, "no-ink-found"),
        (dark_photo(), 422, "image-too-dark"),
        (b"%PDF-1.7 not a photo", 422, "image-unreadable"),
        (tiny.getvalue(), 422, "image-too-small"),
        (b"\xff\xd8" + b"\0" * MAX_PHOTO_BYTES, 413, "image-too-large"),
    ]:
        response = phone.post("/m/api/handwriting", content=body, headers=JPEG)
        assert response.status_code == status, response.text
        problem = response.json()
        assert problem["code"] == code
        assert response.headers["content-type"] == "application/problem+json"

    def chunks() -> Iterator[bytes]:
        # No Content-Length: the limit holds while the body streams in.
        for _ in range(13):
            yield b"\0" * (1024 * 1024)

    streamed = phone.post("/m/api/handwriting", content=chunks(), headers=JPEG)
    assert streamed.status_code == 413 and streamed.json()["code"] == "image-too-large"
    assert phone.get("/m/api/handwriting").json()["proposed"] is None


def test_one_clinician_cannot_touch_anothers_handwriting_or_pdf(
    client: TestClient, admin_headers: dict[str, str], his: Any
) -> None:
    alice, alice_no, _ = enrol_phone(client, admin_headers, his, device_key=False)
    bob, _, _ = enrol_phone(client, admin_headers, his, device_key=False)
    proposal = propose(alice, signature_photo(seed=9))
    image = proposal["id"]
    for response in (
        bob.post(f"/m/api/handwriting/{image}/confirm", headers=PHONE),
        bob.delete(f"/m/api/handwriting/{image}", headers=PHONE),
        bob.get(f"/m/api/handwriting/{image}.png"),
    ):
        assert response.status_code == 404 and response.json()["code"] == "handwriting-not-found"
    assert bob.get("/m/api/handwriting").json()["proposed"] is None
    assert alice.get("/m/api/handwriting").json()["proposed"]["id"] == image

    # Alice's own: confirmed once; an active image is neither confirmed again nor discarded.
    assert alice.post(f"/m/api/handwriting/{image}/confirm", headers=PHONE).status_code == 200
    again = alice.post(f"/m/api/handwriting/{image}/confirm", headers=PHONE)
    assert again.status_code == 409 and again.json()["code"] == "handwriting-not-proposed"
    dropped = alice.delete(f"/m/api/handwriting/{image}", headers=PHONE)
    assert dropped.status_code == 409 and dropped.json()["code"] == "handwriting-not-proposed"

    # A retake is discarded; the active image stays.
    retake = propose(alice, signature_photo(seed=10))
    assert alice.delete(f"/m/api/handwriting/{retake['id']}", headers=PHONE).status_code == 200
    images = alice.get("/m/api/handwriting").json()
    assert images["active"]["id"] == image and images["proposed"] is None

    request = open_pdf_request(his, alice_no, discharge_pdf(pages=2))
    stolen = bob.get(f"/m/api/requests/{request['id']}/document.pdf")
    assert stolen.status_code == 404
    data_request = his.request(
        "POST",
        "/api/v1/sign-requests",
        json={
            "employee_no": alice_no,
            "scene": "lab-report",
            "summary": "血常规报告",
            "record_id": "LAB-9",
            "record": {"WBC": "6.1"},
            "idempotency_key": secrets.token_hex(8),
        },
    ).json()
    not_pdf = alice.get(f"/m/api/requests/{data_request['id']}/document.pdf")
    assert not_pdf.status_code == 404
