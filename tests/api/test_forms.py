"""Forms from signed data through the API: items signed for real (PIN), a prescription and a
long-term order sheet made from them and sealed; checked with qpdf, pdftotext, openssl,
pyHanko's validator, pdfsig and medsign's own verifiers; and the precise refusals."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from asn1crypto import cms as asn1_cms
from fastapi.testclient import TestClient
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from sqlalchemy import select

from medsign.db.tables import EvidenceEventRow
from medsign.documents.forms import read_embedded_items
from medsign.verify.data import CMSSignature, SignedContent
from medsign.verify.pdf import PdfVerifier
from tests.api.pdf_support import (
    ARTIFACTS,
    context,
    installation_roots,
    make_nss,
    pdfsig,
    qpdf_check,
)
from tests.api.signing_support import PIN
from tests.api.test_enrolment import code_from_outbox, new_staff, open_enrolment
from tests.identity.support import register_application, signed_client

pytestmark = pytest.mark.interop

PATIENT_NO = "ZY20261123017"
PATIENT = {
    "name": "赵秀兰",
    "sex": "女",
    "age": "67岁",
    "number": PATIENT_NO,
    "bed": "12",
    "ward": "心内二病区",
    "diagnosis": "冠状动脉粥样硬化性心脏病；高血压病3级（极高危）",
}
# The HIS's own prescription record: nested drug, its own key names (hence the field map).
DRUGS = (
    ("阿司匹林肠溶片", "片剂 100mg×30片/盒", "1盒", "100mg", "口服", "每日1次", ""),
    ("阿托伐他汀钙片", "片剂 20mg×7片/盒", "2盒", "20mg", "口服", "每晚1次", ""),
    ("单硝酸异山梨酯缓释片", "片剂 40mg×24片/盒", "1盒", "40mg", "口服", "每日1次", ""),
    ("二甲双胍缓释片", "片剂 0.5g×30片/盒", "2盒", "0.5g", "口服", "每日2次", "餐中"),
    ("硝酸甘油片", "舌下片 0.5mg×100片/瓶", "1瓶", "0.5mg", "舌下含服", "必要时", "胸痛时"),
    ("奥美拉唑肠溶胶囊", "胶囊 20mg×14粒/盒", "1盒", "20mg", "口服", "每日1次", "早餐前"),
)
RX_FIELD_MAP = {
    "drug": "/drug/name",
    "specification": "/drug/spec",
    "quantity": "qty",
    "frequency": "freq",
    "patient_number": "patient_no",
}
ORDERS = (
    "内科护理常规",
    "一级护理",
    "低盐低脂糖尿病饮食",
    "持续低流量吸氧 2L/min",
    "心电监护",
    "阿司匹林肠溶片 100mg 口服 每日1次",
    "硫酸氢氯吡格雷片 75mg 口服 每日1次",
    "阿托伐他汀钙片 20mg 口服 每晚1次",
    "0.9%氯化钠注射液 100ml + 注射用泮托拉唑钠 40mg 静脉滴注 每日1次",
    "门冬胰岛素注射液 6U 皮下注射 三餐前",
)
BEIJING = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2026, 11, 23, 8, 30, tzinfo=BEIJING)
SM3 = "1.2.156.10197.1.401"


@dataclass(frozen=True)
class Signed:
    request_id: str
    content: bytes  # the RFC 8785 bytes medsign signed
    record: dict[str, Any]


def prescription_record(number: int) -> dict[str, Any]:
    drug, spec, qty, dose, route, freq, note = DRUGS[number]
    record: dict[str, Any] = {
        "rx_no": f"RX-20261123-{number:04d}",
        "patient_no": PATIENT_NO,
        "drug": {"name": drug, "spec": spec},
        "qty": qty,
        "dose": dose,
        "route": route,
        "freq": freq,
    }
    if note:
        record["note"] = note
    return record


def order_record(number: int) -> dict[str, Any]:
    start = START + dt.timedelta(minutes=11 * number)
    record: dict[str, Any] = {
        "order_no": f"MO-20261123-{number:04d}",
        "patient_number": PATIENT_NO,
        "start": start.isoformat(),
        "text": f"{ORDERS[number % len(ORDERS)]}（第{number + 1}条）",
    }
    if number % 7 == 6:
        record["stop"] = (start + dt.timedelta(days=3)).isoformat()
    return record


# -- fixtures: two applications, three enrolled clinicians, items signed with the PIN ----------


@pytest.fixture(scope="module")
def his(client: TestClient, admin_headers: dict[str, str]) -> Iterator[Any]:
    app_id, secret = register_application(client, admin_headers)
    granted = client.patch(
        f"/admin/v1/applications/{app_id}",
        headers=admin_headers,
        json={"seal_purposes": ["", "处方专用章"]},
    )
    assert granted.status_code == 200, granted.text
    with signed_client(client, app_id, secret) as medsign:
        yield medsign


@pytest.fixture(scope="module")
def other(client: TestClient, admin_headers: dict[str, str]) -> Iterator[Any]:
    app_id, secret = register_application(client, admin_headers)
    granted = client.patch(
        f"/admin/v1/applications/{app_id}", headers=admin_headers, json={"seal_purposes": [""]}
    )
    assert granted.status_code == 200, granted.text
    with signed_client(client, app_id, secret) as medsign:
        yield medsign


def enrol_named(
    client: TestClient, admin_headers: dict[str, str], his: Any, algorithm: str, **fields: str
) -> str:
    """As ``signing_support.enrol``, with the staff member's name and title."""
    employee_no, national_id, last4 = new_staff(his, **fields)
    _, token = open_enrolment(his, employee_no, algorithm)
    base = f"/m/api/enrolments/{token}"
    assert client.post(f"{base}/send-code").status_code == 200
    code = code_from_outbox(client, admin_headers, last4)
    assert client.post(f"{base}/verify-code", json={"code": code}).status_code == 200
    confirmed = client.post(f"{base}/confirm-identity", json={"national_id": national_id})
    assert confirmed.status_code == 200, confirmed.text
    done = client.post(f"{base}/pin", json={"pin": PIN})
    assert done.status_code == 200, done.text
    return employee_no


@pytest.fixture(scope="module")
def doctors(client: TestClient, admin_headers: dict[str, str], his: Any) -> dict[str, str]:
    return {
        "chen": enrol_named(
            client,
            admin_headers,
            his,
            "ec-p256",
            name="陈立新",
            title="主治医师",
            department="心血管内科",
        ),
        "wang": enrol_named(
            client,
            admin_headers,
            his,
            "sm2",
            name="王静",
            title="副主任医师",
            department="心血管内科",
        ),
    }


def open_batch(
    app: Any, employee_no: str, key: str, scene: str, records: list[dict[str, Any]]
) -> list[str]:
    opened = app.request(
        "POST",
        "/api/v1/sign-batches",
        json={
            "employee_no": employee_no,
            "idempotency_key": key,
            "items": [
                {
                    "scene": scene,
                    "summary": f"{scene} {n + 1}",
                    "record_id": f"{key}-{n}",
                    "record": record,
                }
                for n, record in enumerate(records)
            ],
        },
    )
    assert opened.status_code == 201, opened.text
    return [r["id"] for r in opened.json()["requests"]]


def sign_all(app: Any, employee_no: str, request_ids: list[str]) -> None:
    intent = app.request(
        "POST",
        "/api/v1/intents",
        json={"employee_no": employee_no, "request_ids": request_ids, "method": "pin"},
    )
    assert intent.status_code == 201, intent.text
    confirmed = app.request(
        "POST", f"/api/v1/intents/{intent.json()['id']}/confirm", json={"pin": PIN}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert {s["state"] for s in confirmed.json()["signed"]} == {"signed"}


def sign_records(
    app: Any, employee_no: str, key: str, scene: str, records: list[dict[str, Any]]
) -> list[Signed]:
    ids = open_batch(app, employee_no, key, scene, records)
    sign_all(app, employee_no, ids)
    return [Signed(i, rfc8785.dumps(r), r) for i, r in zip(ids, records, strict=True)]


@pytest.fixture(scope="module")
def prescriptions(his: Any, doctors: dict[str, str]) -> list[Signed]:
    records = [prescription_record(n) for n in range(6)]
    return sign_records(his, doctors["chen"], "rx", "prescription", records)


@pytest.fixture(scope="module")
def orders(his: Any, doctors: dict[str, str]) -> list[Signed]:
    """30 long-term orders: the first 15 by 陈立新 (P-256), the rest by 王静 (SM2)."""
    records = [order_record(n) for n in range(30)]
    first = sign_records(his, doctors["chen"], "mo-a", "medical-order", records[:15])
    second = sign_records(his, doctors["wang"], "mo-b", "medical-order", records[15:])
    return first + second


@pytest.fixture(scope="module")
def roots(runtime: Any) -> list[bytes]:
    return installation_roots(runtime)


@pytest.fixture(scope="module")
def nss(tmp_path_factory: pytest.TempPathFactory, roots: list[bytes]) -> str:
    return make_nss(tmp_path_factory.mktemp("nss"), roots)


def prescription_body(items: list[Signed], **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "prescription",
        "document_id": "RX-20261123-0001",
        "department": "心血管内科",
        "patient": PATIENT,
        "prescription": {
            "category": "general",
            "number": "RX-20261123-0001",
            "fee_category": "医保",
            "amount": "¥186.40",
            "reviewer": "李药师",
        },
        "field_map": RX_FIELD_MAP,
        "lines": [{"request_id": s.request_id} for s in items],
        "seal": {"purpose": "处方专用章"},
    }
    return body | changes


def orders_body(items: list[Signed], **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "medical-order",
        "order_term": "long-term",
        "document_id": "MO-ZY20261123017-L",
        "department": "心血管内科",
        "patient": PATIENT,
        "lines": [{"request_id": s.request_id} for s in items],
        "seal": {"level": "B-LTA"},
    }
    return body | changes


def make_form(app: Any, body: dict[str, Any]) -> Any:
    return app.request("POST", "/api/v1/forms", json=body)


def form_events(runtime: Any) -> list[dict[str, Any]]:
    with runtime.database.session() as session:
        rows = session.scalars(
            select(EvidenceEventRow.record)
            .where(EvidenceEventRow.type == "form:seal")
            .order_by(EvidenceEventRow.leaf_index)
        ).all()
    return [json.loads(r) for r in rows]


def run(*args: str | Path) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


def squeeze(text: str) -> str:
    """pdftotext spaces CJK text and wraps table cells: compare without whitespace."""
    return re.sub(r"\s+", "", text)


def save_page(pdf: Path, page: int, name: str) -> Path:
    """The page as a PNG in test-artifacts/documents, for people to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    prefix = ARTIFACTS / name
    number = str(page)
    run("pdftoppm", "-png", "-r", "80", "-f", number, "-l", number, "-singlefile", pdf, prefix)
    return prefix.with_suffix(".png")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def is_sm2(cms: bytes) -> bool:
    signed_data = asn1_cms.ContentInfo.load(cms)["content"]
    return bool(signed_data["signer_infos"][0]["digest_algorithm"]["algorithm"].dotted == SM3)


def check_sealed_form(
    answer: Any,
    items: list[Signed],
    runtime: Any,
    roots: list[bytes],
    nss: str,
    tmp_path: Path,
) -> bytes:
    """Every check a sealed form must pass; returns the PDF."""
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    pdf: bytes = answer.content
    assert answer.headers["Medsign-Form-Sha256"] == hashlib.sha256(pdf).hexdigest()

    qpdf_check(tmp_path, pdf)

    # The embedded items are exactly what was signed, and each CMS verifies over its item.
    embedded = read_embedded_items(pdf)
    assert [e.request_id for e in embedded] == [s.request_id for s in items]
    for item, signed in zip(embedded, items, strict=True):
        assert item.content == signed.content
        report = runtime.verifier.verify_cms(
            CMSSignature(item.cms, SignedContent(data=item.content))
        )
        assert report.indication.value == "passed", report
        assert report.signing_time_source == "timestamp"
        assert item.signed_at == report.signing_time
    for item in embedded:
        if is_sm2(item.cms):
            continue  # openssl's cms does not take SM2/SM3 signatures; medsign's did above
        (tmp_path / "item.json").write_bytes(item.content)
        (tmp_path / "item.p7s").write_bytes(item.cms)
        verified = subprocess.run(
            [
                "openssl", "cms", "-verify", "-binary", "-noverify", "-inform", "DER",
                "-in", str(tmp_path / "item.p7s"),
                "-content", str(tmp_path / "item.json"),
                "-out", "/dev/null",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert verified.returncode == 0, verified.stderr
        assert "Verification successful" in verified.stderr

    # Every line shows its signer's time, request, certificate serial and CMS digest.
    path = tmp_path / "form.pdf"
    path.write_bytes(pdf)
    text = squeeze(run("pdftotext", "-layout", path, "-"))
    for item in embedded:
        signed_at = item.signed_at.astimezone(BEIJING).strftime("%Y-%m-%d%H:%M:%S")
        for shown in (signed_at, item.request_id, item.certificate_serial):
            assert shown in text, shown
        assert hashlib.sha256(item.cms).hexdigest()[:16] in text

    # The hospital seal: pyHanko's validator, medsign's PDF verifier, poppler's pdfsig.
    reader = PdfFileReader(io.BytesIO(pdf))
    seal = next(s for s in reader.embedded_signatures if s.field_name.startswith("HospitalSeal"))
    status = validate_pdf_signature(seal, context(roots, runtime))
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert "示例人民医院" in status.signing_cert.subject.human_friendly
    report = PdfVerifier(runtime.verifier).verify(pdf)
    assert report.passed, report.as_dict()
    assert "Signature Validation: Signature is Valid." in pdfsig(nss, tmp_path, pdf)
    return pdf


# -- the forms ---------------------------------------------------------------------------------


def test_a_prescription_from_six_signed_drugs(
    his: Any,
    prescriptions: list[Signed],
    runtime: Any,
    roots: list[bytes],
    nss: str,
    tmp_path: Path,
) -> None:
    answer = make_form(his, prescription_body(prescriptions))
    pdf = check_sealed_form(answer, prescriptions, runtime, roots, nss, tmp_path)
    assert answer.headers["Medsign-Form-Pages"] == "2"  # at most five drugs a sheet
    path = tmp_path / "prescription.pdf"
    path.write_bytes(pdf)

    text = squeeze(run("pdftotext", "-layout", path, "-"))
    for expected in ("示例人民医院", "处方笺", PATIENT["name"], PATIENT_NO, "陈立新", "李药师"):
        assert expected in text, expected
    for drug, spec, qty, dose, route, freq, note in DRUGS:
        for value in (drug, spec, qty, dose, route, freq, note):
            assert squeeze(value) in text, value
    reader = PdfFileReader(io.BytesIO(pdf))
    seal = next(s for s in reader.embedded_signatures if s.field_name.startswith("HospitalSeal"))
    assert seal.sig_object["/Reason"] == "处方专用章"

    event = form_events(runtime)[-1]
    assert event["sealed_sha256"] == hashlib.sha256(pdf).hexdigest()
    assert event["request_ids"] == [s.request_id for s in prescriptions]
    assert event["kind"] == "prescription" and event["level"] == "B-T" and event["pages"] == 2
    assert event["id"] == answer.headers["Medsign-Evidence-Event"]
    # ids and hashes only: no patient, drug or signer in the evidence record
    recorded = json.dumps(event, ensure_ascii=False)
    for private in (PATIENT["name"], PATIENT_NO, "阿司匹林", "陈立新", "RX-20261123-0001"):
        assert private not in recorded

    assert answer.headers["content-disposition"] == ('attachment; filename="RX-20261123-0001.pdf"')
    assert save_page(path, 1, "form-api-prescription-page1").stat().st_size > 10_000
    save_page(path, 2, "form-api-prescription-sealed-page2")


def test_a_long_term_order_sheet_from_thirty_signed_orders(
    his: Any,
    orders: list[Signed],
    runtime: Any,
    roots: list[bytes],
    nss: str,
    tmp_path: Path,
) -> None:
    answer = make_form(his, orders_body(orders))
    pdf = check_sealed_form(answer, orders, runtime, roots, nss, tmp_path)
    path = tmp_path / "orders.pdf"
    path.write_bytes(pdf)
    text = squeeze(run("pdftotext", "-layout", path, "-"))
    for expected in ("长期医嘱单", PATIENT["name"], "陈立新", "王静", "2026-11-23"):
        assert expected in text, expected
    # -raw keeps a wrapped table cell's lines together
    in_order = squeeze(run("pdftotext", "-raw", path, "-"))
    for signed in orders:
        assert squeeze(signed.record["text"]) in in_order, signed.record["text"]

    # B-LTA: a document timestamp after the seal, valid too.
    reader = PdfFileReader(io.BytesIO(pdf))
    stamps = [s for s in reader.embedded_signatures if s.sig_object_type == "/DocTimeStamp"]
    assert len(stamps) == 1
    assert validate_pdf_timestamp(stamps[0], validation_context=context(roots, runtime)).valid
    seal = next(s for s in reader.embedded_signatures if s.field_name.startswith("HospitalSeal"))
    assert seal.sig_object["/Reason"] == "单位电子印章"  # "" is the official seal
    event = form_events(runtime)[-1]
    assert event["level"] == "B-LTA" and event["kind"] == "medical-order"

    # As docs/integration/forms.md checks a form: the PDF and an (SM2) item over the API.
    whole = his.post("/api/v1/verify", json={"type": "pdf", "pdf": b64(pdf)})
    assert whole["indication"] == "passed", whole
    item = read_embedded_items(pdf)[-1]
    assert is_sm2(item.cms)
    one = his.post(
        "/api/v1/verify", json={"type": "cms", "cms": b64(item.cms), "data": b64(item.content)}
    )
    assert one["indication"] == "passed", one

    assert save_page(path, 1, "form-api-long-term-orders-page1").stat().st_size > 10_000
    last = int(answer.headers["Medsign-Form-Pages"])
    save_page(path, last, f"form-api-long-term-orders-sealed-page{last}")


def test_the_same_body_gives_the_same_form_under_a_new_seal(
    his: Any, prescriptions: list[Signed], runtime: Any
) -> None:
    body = prescription_body(prescriptions[:2], document_id="RX-SAME")
    first, second = make_form(his, body), make_form(his, body)
    assert first.status_code == second.status_code == 200
    one, two = form_events(runtime)[-2:]
    assert one["form_sha256"] == two["form_sha256"]  # the form before its seal
    assert one["cms_sha256"] != two["cms_sha256"]  # each seal is a new signature


def test_numbers_in_a_record_print_as_signed(
    client: TestClient, admin_headers: dict[str, str], his: Any, runtime: Any, tmp_path: Path
) -> None:
    nurse = enrol_named(
        client,
        admin_headers,
        his,
        "rsa-2048",
        name="刘晓燕",
        title="主管护师",
        department="心血管内科",
    )
    records = [
        {
            "patient_number": PATIENT_NO,
            "time": (START + dt.timedelta(hours=n)).isoformat(),
            "vitals": {"t": 36.8 + n / 10, "p": 78 + n, "bp": "132/84"},
            "observation": "患者神志清楚，诉胸闷较前缓解。",
            "measures": "遵医嘱予低流量吸氧2L/min。",
        }
        for n in range(3)
    ]
    signed = sign_records(his, nurse, "nr", "nursing-record", records)
    answer = make_form(
        his,
        {
            "kind": "nursing-record",
            "document_id": "NR-ZY20261123017-1",
            "department": "心血管内科",
            "patient": PATIENT | {"admitted_on": "2026-11-20"},
            "field_map": {
                "temperature": "/vitals/t",
                "pulse": "/vitals/p",
                "blood_pressure": "/vitals/bp",
            },
            "lines": [{"request_id": s.request_id} for s in signed],
        },
    )
    assert answer.status_code == 200, answer.text
    path = tmp_path / "nursing.pdf"
    path.write_bytes(answer.content)
    text = squeeze(run("pdftotext", "-layout", path, "-"))
    for record in records:
        vitals = record["vitals"]
        # 36.8 + 0.1 is 36.9 in JSON only as its shortest form: the form prints that text
        assert rfc8785.dumps(vitals["t"]).decode() in text
        assert str(vitals["p"]) in text
    assert "刘晓燕" in text and "132/84" in text
    assert [e.content for e in read_embedded_items(answer.content)] == [s.content for s in signed]


# -- refusals ----------------------------------------------------------------------------------


def problem(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = answer.json()
    assert body["code"] == code, body
    return body


def test_an_unsigned_request_is_refused(
    his: Any, prescriptions: list[Signed], doctors: dict[str, str], runtime: Any
) -> None:
    pending = open_batch(
        his, doctors["chen"], "rx-pending", "prescription", [prescription_record(0)]
    )
    before = len(form_events(runtime))
    body = prescription_body([*prescriptions[:1], Signed(pending[0], b"", {})])
    refused = problem(make_form(his, body), 409, "form-line-not-signed")
    assert refused["line"] == 2 and refused["state"] == "pending"
    assert len(form_events(runtime)) == before


def test_another_applications_request_is_not_found(
    his: Any, other: Any, prescriptions: list[Signed], doctors: dict[str, str]
) -> None:
    theirs = sign_records(
        other, doctors["chen"], "other-rx", "prescription", [prescription_record(1)]
    )
    refused = problem(
        make_form(his, prescription_body(theirs + prescriptions[:1])), 404, "not-found"
    )
    assert refused["line"] == 1
    missing = prescription_body([Signed("sig_NOSUCHREQUEST", b"", {})])
    assert problem(make_form(his, missing), 404, "not-found")["line"] == 1
    # and the other application cannot print ours, though it may use the official seal
    ours = prescription_body(prescriptions[:1], seal={"purpose": ""})
    assert problem(make_form(other, ours), 404, "not-found")["line"] == 1


def test_a_record_without_a_printed_field_is_refused_by_line_and_name(
    his: Any, prescriptions: list[Signed], doctors: dict[str, str]
) -> None:
    record = prescription_record(2)
    del record["freq"]
    lacking = sign_records(his, doctors["chen"], "rx-lacking", "prescription", [record])
    refused = problem(
        make_form(his, prescription_body(prescriptions[:2] + lacking)),
        422,
        "form-line-field-missing",
    )
    assert (refused["line"], refused["field"], refused["key"]) == (3, "frequency", "freq")
    for value in record.values():  # names, never values
        assert str(value) not in refused["detail"]

    # A field the application's map points elsewhere in the record: same refusal.
    remapped = prescription_body(prescriptions[:1], field_map=RX_FIELD_MAP | {"dose": "/drug/dose"})
    refused = problem(make_form(his, remapped), 422, "form-line-field-missing")
    assert (refused["line"], refused["field"], refused["key"]) == (1, "dose", "/drug/dose")


def test_a_record_for_another_patient_or_with_a_bad_value_is_refused(
    his: Any, orders: list[Signed], doctors: dict[str, str]
) -> None:
    other_patient = orders_body(orders[:3], patient=PATIENT | {"number": "ZY20260000001"})
    refused = problem(make_form(his, other_patient), 422, "form-line-patient-mismatch")
    assert refused["line"] == 1 and refused["field"] == "patient_number"
    assert "ZY2026" not in refused["detail"]

    naive = order_record(3) | {"start": "2026-11-23T08:30:00"}
    nested = order_record(4) | {"text": {"drug": "阿司匹林"}}
    bad = sign_records(his, doctors["chen"], "mo-bad", "medical-order", [naive, nested])
    refused = problem(make_form(his, orders_body(bad[:1])), 422, "form-line-field-invalid")
    assert (refused["line"], refused["field"]) == (1, "start")
    refused = problem(make_form(his, orders_body(bad[1:])), 422, "form-line-field-invalid")
    assert (refused["line"], refused["field"]) == (1, "text")


def test_a_digest_request_has_no_record_to_print(
    his: Any, prescriptions: list[Signed], doctors: dict[str, str]
) -> None:
    opened = his.request(
        "POST",
        "/api/v1/sign-requests",
        json={
            "employee_no": doctors["chen"],
            "scene": "prescription",
            "summary": "处方 摘要",
            "record_id": "rx-digest",
            "digest": hashlib.sha256(b"rx").hexdigest(),
            "digest_algorithm": "sha256",
            "idempotency_key": "rx-digest",
        },
    )
    assert opened.status_code == 201, opened.text
    sign_all(his, doctors["chen"], [opened.json()["id"]])
    body = prescription_body([*prescriptions[:1], Signed(opened.json()["id"], b"", {})])
    assert problem(make_form(his, body), 422, "form-line-not-a-record")["line"] == 2


def test_a_seal_without_the_right_is_refused(his: Any, prescriptions: list[Signed]) -> None:
    body = prescription_body(prescriptions[:1], seal={"purpose": "病案专用章"})
    problem(make_form(his, body), 403, "seal-not-allowed")


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"field_map": {"colour": "c"}}, "colour"),
        ({"field_map": {"drug": "/drug/~2"}}, "field_map.drug"),
        ({"order_term": "temporary"}, "order_term"),
        ({"kind": "medical-order"}, "prescription"),
        ({"document_id": "RX 1"}, "document_id"),
        ({"lines": []}, "lines"),
    ],
)
def test_malformed_bodies_are_refused_by_schema(
    his: Any, prescriptions: list[Signed], change: dict[str, Any], where: str
) -> None:
    refused = problem(
        make_form(his, prescription_body(prescriptions[:1]) | change), 422, "invalid-input"
    )
    assert where in json.dumps(refused["errors"], ensure_ascii=False)


def test_a_request_listed_twice_is_refused(his: Any, prescriptions: list[Signed]) -> None:
    body = prescription_body(prescriptions[:1] + prescriptions[:1])
    refused = problem(make_form(his, body), 422, "invalid-input")
    assert "listed twice" in json.dumps(refused["errors"])


def test_unsigned_calls_are_refused(client: TestClient) -> None:
    answer = client.post("/api/v1/forms", json={})
    assert answer.status_code == 401


@pytest.mark.parametrize(
    ("key", "found"),
    [
        ("drug", (True, {"name": "甲", "a/b": 1, "m~n": 2})),
        ("/drug/name", (True, "甲")),
        ("/drug/a~1b", (True, 1)),
        ("/drug/m~0n", (True, 2)),
        ("/doses/1", (True, "0.5g")),
        ("/doses/01", (False, None)),
        ("/doses/2", (False, None)),
        ("/drug/name/0", (False, None)),
        ("/", (True, "empty key")),
        ("/missing", (False, None)),
        ("missing", (False, None)),
    ],
)
def test_record_keys_and_json_pointers(key: str, found: tuple[bool, Any]) -> None:
    from medsign.api.form_schemas import is_record_key
    from medsign.api.routes.forms import _lookup

    record = {
        "drug": {"name": "甲", "a/b": 1, "m~n": 2},
        "doses": ["0.25g", "0.5g"],
        "": "empty key",
    }
    assert is_record_key(key)
    assert _lookup(record, key) == found
