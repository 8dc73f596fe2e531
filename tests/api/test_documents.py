"""PDF signing through the API: open → intent → PIN → signed PDF, checked with poppler's
pdfsig, pyHanko's validator, qpdf and `openssl ts -verify`; sequential signers and
certification; bad input."""

from __future__ import annotations

import base64
import io
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp

from tests.api.pdf_support import (
    ARTIFACTS,
    context,
    discharge_pdf,
    installation_roots,
    make_nss,
    pdfsig,
    qpdf_check,
)
from tests.api.signing_support import enrol, openssl_ts_verify
from tests.api.test_signing import sign
from tests.identity.support import register_application, signed_client

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def his(client: TestClient, admin_headers: dict[str, str]) -> Iterator[Any]:
    app_id, secret = register_application(client, admin_headers)
    with signed_client(client, app_id, secret) as medsign:
        yield medsign


@pytest.fixture(scope="module")
def signers(client: TestClient, admin_headers: dict[str, str], his: Any) -> dict[str, str]:
    return {
        "ec-p256": enrol(client, admin_headers, his, "ec-p256"),
        "ec-p256-b": enrol(client, admin_headers, his, "ec-p256"),
        "rsa-2048": enrol(client, admin_headers, his, "rsa-2048"),
        "sm2": enrol(client, admin_headers, his, "sm2"),
    }


@pytest.fixture(scope="module")
def roots(runtime: Any) -> list[bytes]:
    return installation_roots(runtime)


@pytest.fixture(scope="module")
def nss(tmp_path_factory: pytest.TempPathFactory, roots: list[bytes]) -> str:
    return make_nss(tmp_path_factory.mktemp("nss"), roots)


def open_document(his: Any, employee_no: str, key: str, pdf: bytes, **fields: Any) -> Any:
    body = {
        "employee_no": employee_no,
        "scene": "discharge-summary",
        "summary": "出院记录 张某某",
        "record_id": key,
        "idempotency_key": key,
        "pdf": base64.b64encode(pdf).decode(),
        "placement": {"page": 1, "rect": [330, 100, 530, 160]},
        **fields,
    }
    return his.request("POST", "/api/v1/document-requests", json=body)


def sign_document(his: Any, employee_no: str, key: str, pdf: bytes, **fields: Any) -> bytes:
    opened = open_document(his, employee_no, key, pdf, **fields)
    assert opened.status_code == 201, opened.text
    confirmed = sign(his, employee_no, [opened.json()["id"]])
    assert confirmed.status_code == 200, confirmed.text
    downloaded = his.request("GET", f"/api/v1/sign-requests/{opened.json()['id']}/document.pdf")
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.headers["medsign-document"] == "signed"
    return bytes(downloaded.content)


@pytest.mark.parametrize("algorithm", ["ec-p256", "rsa-2048"])
def test_a_pdf_is_signed_after_the_pin_and_every_tool_accepts_it(
    his: Any,
    signers: dict[str, str],
    runtime: Any,
    roots: list[bytes],
    nss: str,
    tmp_path: Path,
    algorithm: str,
) -> None:
    original = discharge_pdf()
    opened = open_document(his, signers[algorithm], f"pdf-{algorithm}", original)
    assert opened.status_code == 201, opened.text
    request = opened.json()
    assert request["content_kind"] == "pdf" and request["state"] == "pending"
    document = request["document"]
    assert document["field"] == "Signature1" and document["page"] == 1
    assert document["rect"] == [330, 100, 530, 160] and document["level"] == "B-T"
    import hashlib

    assert document["pdf_sha256"] == hashlib.sha256(original).hexdigest()
    before = his.request("GET", f"/api/v1/sign-requests/{request['id']}/document.pdf")
    assert before.headers["medsign-document"] == "original" and before.content == original

    confirmed = sign(his, signers[algorithm], [request["id"]])
    assert confirmed.status_code == 200, confirmed.text
    polled = his.get(f"/api/v1/sign-requests/{request['id']}")
    assert polled["state"] == "signed"
    assert polled["signature"]["value"] is None and polled["signature"]["cms"]
    signed = his.request("GET", f"/api/v1/sign-requests/{request['id']}/document.pdf").content
    assert polled["document"]["signed_pdf_sha256"] == hashlib.sha256(signed).hexdigest()
    assert signed.startswith(original)  # an incremental update: the original bytes untouched

    text = pdfsig(nss, tmp_path, signed)
    assert "Signature Validation: Signature is Valid." in text, text
    assert "Certificate Validation: Certificate is Trusted." in text, text
    assert "Total document signed" in text, text
    assert "Signature Type: ETSI.CAdES.detached" in text
    qpdf_check(tmp_path, signed)

    embedded = PdfFileReader(io.BytesIO(signed)).embedded_signatures
    assert len(embedded) == 1
    status = validate_pdf_signature(embedded[0], context(roots, runtime))
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.timestamp_validity is not None and status.timestamp_validity.valid
    assert "Verification: OK" in openssl_ts_verify(tmp_path, polled["signature"], runtime)
    # medsign's own verifier: passed, the signing time proven by the signature timestamp.
    verified = his.request(
        "POST", "/api/v1/verify", json={"type": "pdf", "pdf": base64.b64encode(signed).decode()}
    )
    assert verified.status_code == 200, verified.text
    report = verified.json()
    assert report["indication"] == "passed", report
    (entry,) = report["signatures"]
    assert entry["signature"]["signing_time_source"] == "timestamp"
    # Kept for a human to look at: the visible signature on page 1.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "110",
            "-png",
            "-singlefile",
            str(tmp_path / "check.pdf"),
            str(ARTIFACTS / f"signed-{algorithm}"),
        ],
        check=True,
    )


@pytest.mark.parametrize("level", ["B-LT", "B-LTA"])
def test_long_term_levels_carry_validation_data(
    his: Any,
    signers: dict[str, str],
    runtime: Any,
    roots: list[bytes],
    nss: str,
    tmp_path: Path,
    level: str,
) -> None:
    signed = sign_document(his, signers["ec-p256"], f"pdf-{level}", discharge_pdf(), level=level)
    reader = PdfFileReader(io.BytesIO(signed))
    dss = reader.root["/DSS"]
    assert len(dss["/Certs"]) >= 3 and len(dss["/OCSPs"]) >= 1 and len(dss["/CRLs"]) >= 1
    status = validate_pdf_signature(reader.embedded_signatures[0], context(roots, runtime))
    assert status.intact and status.valid and status.trusted
    assert status.modification_level.name == "LTA_UPDATES"
    text = pdfsig(nss, tmp_path, signed)
    assert "Signature Validation: Signature is Valid." in text, text
    if level == "B-LTA":
        stamps = [s for s in reader.embedded_signatures if s.sig_object_type == "/DocTimeStamp"]
        assert len(stamps) == 1
        stamp = validate_pdf_timestamp(stamps[0], validation_context=context(roots, runtime))
        assert stamp.intact and stamp.valid and stamp.trusted
    qpdf_check(tmp_path, signed)


def test_sequential_signers_and_certification_keep_every_signature_valid(
    his: Any,
    signers: dict[str, str],
    runtime: Any,
    roots: list[bytes],
    nss: str,
    tmp_path: Path,
) -> None:
    # The resident certifies (form filling and signing allowed) and lays out the fields of
    # the attending and the chief; they sign those fields, one after the other.
    first = sign_document(
        his,
        signers["ec-p256"],
        "seq-1",
        discharge_pdf(2),
        certify=2,
        reason="住院医师签名",
        empty_fields=[
            {"field_name": "Attending", "page": 2, "rect": [330, 100, 530, 160]},
            {"field_name": "Chief", "page": 2, "rect": [60, 100, 260, 160]},
        ],
    )
    refused = open_document(his, signers["ec-p256-b"], "seq-new-field", first)
    assert refused.status_code == 409 and refused.json()["code"] == "pdf-locked"
    assert "Attending" in refused.json()["detail"]
    second = sign_document(
        his,
        signers["ec-p256-b"],
        "seq-2",
        first,
        placement={"field_name": "Attending"},
        reason="主治医师审核",
    )
    third = sign_document(
        his, signers["rsa-2048"], "seq-3", second, placement={"field_name": "Chief"}
    )
    reader = PdfFileReader(io.BytesIO(third))
    embedded = reader.embedded_signatures
    assert [s.field_name for s in embedded] == ["Signature1", "Attending", "Chief"]
    for signature in embedded:
        status = validate_pdf_signature(signature, context(roots, runtime))
        assert status.intact and status.valid and status.trusted
        assert status.docmdp_ok is not False
    assert embedded[0].docmdp_level is not None and embedded[0].docmdp_level.value == 2
    text = pdfsig(nss, tmp_path, third)
    assert text.count("Signature Validation: Signature is Valid.") == 3, text

    # Certified with "no changes": a later signature is refused before anyone confirms.
    locked = sign_document(his, signers["ec-p256"], "lock-1", discharge_pdf(), certify=1)
    refused = open_document(his, signers["ec-p256-b"], "lock-2", locked)
    assert refused.status_code == 409 and refused.json()["code"] == "pdf-locked"


def test_a_replayed_open_returns_the_first_answer(his: Any, signers: dict[str, str]) -> None:
    pdf = discharge_pdf()
    first = open_document(his, signers["ec-p256"], "replay-1", pdf)
    again = open_document(his, signers["ec-p256"], "replay-1", pdf)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = open_document(his, signers["ec-p256"], "replay-1", discharge_pdf(label="入院记录"))
    assert other.status_code == 409 and other.json()["code"] == "idempotency-conflict"


def _encrypted_pdf(tmp: Path) -> bytes:
    plain, locked = tmp / "plain.pdf", tmp / "locked.pdf"
    plain.write_bytes(discharge_pdf())
    subprocess.run(
        ["qpdf", "--encrypt", "user", "owner", "256", "--", str(plain), str(locked)], check=True
    )
    return locked.read_bytes()


def _broken_xref() -> bytes:
    pdf = discharge_pdf()
    # Point startxref somewhere that is not a cross-reference table.
    return re.sub(rb"startxref\s+\d+", b"startxref\n17", pdf)


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("not-a-pdf", 422, "pdf-unreadable"),
        ("truncated", 422, "pdf-unreadable"),
        ("broken-xref", 422, "pdf-unreadable"),
        ("encrypted", 422, "pdf-encrypted"),
        ("bad-base64", 422, "pdf-unreadable"),
        ("page-out-of-range", 422, "invalid-placement"),
        ("box-off-the-page", 422, "invalid-placement"),
        ("no-place", 422, "invalid-placement"),
        ("unknown-field", 422, "invalid-placement"),
        ("sm2-signer", 409, "document-algorithm-unsupported"),
    ],
)
def test_bad_input_is_refused_with_a_precise_problem_and_nothing_is_stored(
    his: Any,
    signers: dict[str, str],
    runtime: Any,
    tmp_path: Path,
    case: str,
    status: int,
    code: str,
) -> None:
    pdf = discharge_pdf()
    employee_no = signers["ec-p256"]
    fields: dict[str, Any] = {}
    if case == "not-a-pdf":
        pdf = b"GIF89a not a pdf at all"
    elif case == "truncated":
        pdf = pdf[: len(pdf) // 2]
    elif case == "broken-xref":
        pdf = _broken_xref()
    elif case == "encrypted":
        pdf = _encrypted_pdf(tmp_path)
    elif case == "page-out-of-range":
        fields["placement"] = {"page": 3, "rect": [330, 100, 530, 160]}
    elif case == "box-off-the-page":
        fields["placement"] = {"page": 1, "rect": [500, 100, 700, 160]}
    elif case == "no-place":
        fields["placement"] = {}
    elif case == "unknown-field":
        fields["placement"] = {"field_name": "Approval"}
    elif case == "sm2-signer":
        employee_no = signers["sm2"]
    key = f"bad-{case}"
    if case == "bad-base64":
        body = {
            "employee_no": employee_no,
            "scene": "discharge-summary",
            "summary": "x",
            "record_id": key,
            "idempotency_key": key,
            "pdf": "%%%%not base64%%%%",
        }
        answer = his.request("POST", "/api/v1/document-requests", json=body)
    else:
        answer = open_document(his, employee_no, key, pdf, **fields)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == code
    from sqlalchemy import func, select

    from medsign.db.tables import SignRequestRow

    with runtime.database.session() as session:
        stored = session.scalar(
            select(func.count()).select_from(SignRequestRow).where(SignRequestRow.record_id == key)
        )
    assert stored == 0


def test_a_field_already_signed_is_refused(his: Any, signers: dict[str, str]) -> None:
    signed = sign_document(his, signers["ec-p256"], "twice-1", discharge_pdf())
    again = open_document(
        his, signers["ec-p256-b"], "twice-2", signed, placement={"field_name": "Signature1"}
    )
    assert again.status_code == 409 and again.json()["code"] == "field-already-signed"


def test_the_signature_goes_next_to_the_anchor_text(
    his: Any, signers: dict[str, str], runtime: Any, roots: list[bytes]
) -> None:
    pdf = discharge_pdf(2)
    opened = open_document(
        his,
        signers["ec-p256"],
        "anchor-1",
        pdf,
        placement={"anchor": "医师签名：", "anchor_occurrence": 2, "width": 150, "height": 40},
    )
    assert opened.status_code == 201, opened.text
    document = opened.json()["document"]
    # The second occurrence is on page 2; the box starts right of the label's baseline row.
    assert document["page"] == 2
    x1, y1, x2, y2 = document["rect"]
    assert 72 < x1 < 200 and round(x2 - x1) == 150 and round(y2 - y1) == 40
    assert y1 < 130 < y2  # the label is drawn at y = 120
    confirmed = sign(his, signers["ec-p256"], [opened.json()["id"]])
    assert confirmed.status_code == 200, confirmed.text
    signed = his.request("GET", f"/api/v1/sign-requests/{opened.json()['id']}/document.pdf")
    status = validate_pdf_signature(
        PdfFileReader(io.BytesIO(signed.content)).embedded_signatures[0], context(roots, runtime)
    )
    assert status.intact and status.valid and status.trusted

    missing = open_document(
        his, signers["ec-p256"], "anchor-2", pdf, placement={"anchor": "护士签名："}
    )
    assert missing.status_code == 422 and missing.json()["code"] == "anchor-not-found"
    assert "护士签名：" in missing.json()["detail"]


def test_a_pdf_over_the_configured_limit_is_refused(
    his: Any, signers: dict[str, str], runtime: Any
) -> None:
    signer = runtime.workflow.documents.signer
    limit = signer.max_bytes
    signer.max_bytes = 16 * 1024
    try:
        big = discharge_pdf(40)
        assert len(big) > signer.max_bytes
        answer = open_document(his, signers["ec-p256"], "too-big", big)
    finally:
        signer.max_bytes = limit
    assert answer.status_code == 413, answer.text
    assert answer.json()["code"] == "pdf-too-large"
