"""Forms from signed data: each kind drawn from 40+ really signed items, read back with
poppler (pdftotext, pdffonts, pdfdetach, pdftoppm), qpdf and openssl; the limits on input."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from fontTools.ttLib import TTFont as FontFile
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.embed import EmbeddedFileObject
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from reportlab.pdfbase import pdfmetrics

from medsign.documents.forms import (
    BEIJING_TIME,
    DRUGS_PER_SHEET,
    MAX_DIAGNOSIS,
    MAX_LINES,
    MAX_MEDIUM,
    MAX_NAME,
    MAX_SHORT,
    MAX_TEXT,
    Form,
    FormAttachmentsError,
    FormContentError,
    FormFieldInvalidError,
    FormFieldTooLongError,
    FormInputError,
    FormItemTooLargeError,
    FormKind,
    FormLine,
    FormPDFError,
    FormTooManyLinesError,
    LineSignature,
    MedicalOrder,
    NursingEntry,
    OrderTerm,
    Patient,
    PrescriptionCategory,
    PrescriptionInfo,
    PrescriptionItem,
    RenderedForm,
    read_embedded_items,
    render_form,
)
from medsign.fonts import Face, cjk_font, embedded_fonts, truetype_subset

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "documents"
HOSPITAL = "江州市第一人民医院"
PATIENT = Patient(
    name="赵秀兰",
    sex="女",
    age="67岁",
    number="ZY20261123017",
    bed="12",
    ward="心内二病区",
    diagnosis="冠状动脉粥样硬化性心脏病；高血压病3级（极高危）；2型糖尿病",
    admitted_on=dt.date(2026, 11, 20),
)
START = dt.datetime(2026, 11, 23, 0, 30, tzinfo=dt.UTC)  # 08:30 in Beijing
DOCTORS = (("陈立新", "主治医师"), ("王静", "副主任医师"))
NURSES = (("刘晓燕", "主管护师"), ("张敏", "护师"))
DRUGS = (
    PrescriptionItem("阿司匹林肠溶片", "片剂 100mg×30片/盒", "1盒", "100mg", "口服", "每日1次"),
    PrescriptionItem("阿托伐他汀钙片", "片剂 20mg×7片/盒", "2盒", "20mg", "口服", "每晚1次"),
    PrescriptionItem("单硝酸异山梨酯缓释片", "片剂 40mg×24片/盒", "1盒", "40mg", "口服", "每日1次"),
    PrescriptionItem(
        "二甲双胍缓释片", "片剂 0.5g×30片/盒", "2盒", "0.5g", "口服", "每日2次", "餐中"
    ),
    PrescriptionItem(
        "硝酸甘油片", "舌下片 0.5mg×100片/瓶", "1瓶", "0.5mg", "舌下含服", "必要时", "胸痛时"
    ),
    PrescriptionItem("氨氯地平片", "片剂 5mg×28片/盒", "1盒", "5mg", "口服", "每日1次"),
    PrescriptionItem(
        "奥美拉唑肠溶胶囊", "胶囊 20mg×14粒/盒", "1盒", "20mg", "口服", "每日1次", "早餐前"
    ),
)
LONG_TERM = (
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
    "测指尖血糖 每日4次（三餐前及睡前）",
)
TEMPORARY = (
    "血常规",
    "肝功能、肾功能、电解质",
    "心肌肌钙蛋白I、BNP",
    "床旁心电图",
    "胸部正侧位片",
    "0.9%氯化钠注射液 250ml 静脉滴注 st",
    "呋塞米注射液 20mg 静脉注射 st",
    "硝酸甘油片 0.5mg 舌下含服 st",
)
OBSERVATIONS = (
    "患者神志清楚，精神可，诉胸闷较前缓解，无胸痛。",
    "患者夜间睡眠可，偶有咳嗽，痰少色白。",
    "患者诉活动后心悸，休息后缓解，双下肢无水肿。",
    "患者血糖控制欠佳，餐后血糖13.2mmol/L，已报告医生。",
)
MEASURES = (
    "遵医嘱予心电监护、低流量吸氧2L/min，指导卧床休息。",
    "协助翻身拍背，指导有效咳嗽，保持呼吸道通畅。",
    "遵医嘱予门冬胰岛素6U皮下注射，做好低血糖宣教。",
)


@dataclass(frozen=True)
class Signer:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


@pytest.fixture(scope="module")
def signer() -> Signer:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "江州市第一人民医院 测试签名")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x5F1A2B3C4D5E6F708192A3B4C5D6E7F801234567)
        .not_valid_before(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2028, 1, 1, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
    )
    return Signer(key, certificate)


def sign(signer: Signer, content: bytes) -> bytes:
    """A detached CMS SignedData over ``content``, DER, as the signing service returns."""
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(signer.certificate, signer.key, hashes.SHA256())
        .sign(
            serialization.Encoding.DER,
            [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
        )
    )


def signature(
    signer: Signer, number: int, prefix: str, record: dict[str, object], people: tuple
) -> LineSignature:
    content = rfc8785.dumps(record)
    name, title = people[number % len(people)]
    request_id = f"sr_{prefix}{number:03d}"
    return LineSignature(
        signer_name=name,
        signer_title=title,
        signed_at=START + dt.timedelta(minutes=7 * number, seconds=number),
        request_id=request_id,
        certificate_serial=format(signer.certificate.serial_number, "x"),
        verification_url=f"https://medsign.jzrmyy.example/v/{request_id}",
        content=content,
        cms=sign(signer, content),
    )


def form_of(kind: str, signer: Signer, count: int) -> Form:
    lines: list[FormLine] = []
    for n in range(1, count + 1):
        at = START + dt.timedelta(minutes=7 * n)
        record: dict[str, object] = {"patient_no": PATIENT.number, "line": n, "kind": kind}
        if kind == "prescription":
            drug = DRUGS[n % len(DRUGS)]
            record |= {"drug": drug.drug, "spec": drug.specification, "qty": drug.quantity}
            item: PrescriptionItem | MedicalOrder | NursingEntry = drug
            people = DOCTORS
        elif kind in ("long-term-orders", "temporary-orders"):
            texts = LONG_TERM if kind == "long-term-orders" else TEMPORARY
            text = texts[n % len(texts)]
            record |= {"order": text, "start": at.isoformat()}
            if kind == "long-term-orders":
                stop = at + dt.timedelta(days=3) if n % 4 == 0 else None
                item = MedicalOrder(start=at, text=text, stop=stop)
            else:
                item = MedicalOrder(start=at, text=text, executed=at + dt.timedelta(minutes=20))
            people = DOCTORS
        else:
            observation = OBSERVATIONS[n % len(OBSERVATIONS)]
            measures = MEASURES[n % len(MEASURES)] if n % 2 else ""
            record |= {"observation": observation, "measures": measures}
            item = NursingEntry(
                time=at,
                observation=observation,
                measures=measures,
                temperature=f"36.{n % 10}",
                pulse=str(70 + n % 15),
                respiration=str(16 + n % 5),
                blood_pressure=f"{120 + n % 30}/{70 + n % 15}",
                spo2=str(95 + n % 5),
                intake="250" if n % 3 == 0 else "",
                output="300" if n % 5 == 0 else "",
            )
            people = NURSES
        lines.append(FormLine(item, signature(signer, n, kind[:2], record, people)))
    form_kind = {
        "prescription": FormKind.PRESCRIPTION,
        "long-term-orders": FormKind.MEDICAL_ORDER,
        "temporary-orders": FormKind.MEDICAL_ORDER,
        "nursing-record": FormKind.NURSING_RECORD,
    }[kind]
    return Form(
        kind=form_kind,
        document_id=f"doc-{kind}-0001",
        created_at=dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC),
        hospital=HOSPITAL,
        department="心血管内科",
        patient=PATIENT,
        lines=tuple(lines),
        order_term=OrderTerm.TEMPORARY if kind == "temporary-orders" else OrderTerm.LONG_TERM,
        prescription=PrescriptionInfo(
            category=PrescriptionCategory.EMERGENCY,
            number="RX202611230042",
            fee_category="医保",
            insurance_number="3607 2611 0042",
            amount="¥ 386.40",
            reviewer="周药师",
        ),
        verification_url=f"https://medsign.jzrmyy.example/d/doc-{kind}-0001",
    )


def run(*args: str | Path) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


def squeeze(text: str) -> str:
    """Text without whitespace: table cells wrap, and pdftotext spaces CJK freely."""
    return re.sub(r"\s+", "", text)


@dataclass(frozen=True)
class Rendered:
    kind: str
    form: Form
    result: RenderedForm
    path: Path
    text: str  # pdftotext -layout
    raw: str  # pdftotext -raw: content order, so a wrapped table cell's lines stay together


KINDS = ("prescription", "long-term-orders", "temporary-orders", "nursing-record")


@pytest.fixture(scope="module", params=KINDS)
def rendered(
    request: pytest.FixtureRequest, signer: Signer, tmp_path_factory: pytest.TempPathFactory
) -> Rendered:
    kind = request.param
    form = form_of(kind, signer, 42 if kind != "temporary-orders" else 40)
    result = render_form(form)
    path = tmp_path_factory.mktemp(kind) / f"{kind}.pdf"
    path.write_bytes(result.pdf)
    layout, raw = run("pdftotext", "-layout", path, "-"), run("pdftotext", "-raw", path, "-")
    return Rendered(kind, form, result, path, layout, raw)


def when(value: dt.datetime) -> str:
    return value.astimezone(BEIJING_TIME).strftime("%Y-%m-%d %H:%M:%S")


# -- what the form shows ------------------------------------------------------------------------


def test_every_line_shows_its_content_signer_time_and_reference(rendered: Rendered) -> None:
    flat, in_order = squeeze(rendered.text), squeeze(rendered.raw)
    for expected in (HOSPITAL, PATIENT.name, PATIENT.number, "心血管内科"):
        assert expected in flat, expected
    for line in rendered.form.lines:
        item, sig = line.item, line.signature
        if isinstance(item, PrescriptionItem):
            shown = [item.drug, item.specification, item.dose, item.route, item.frequency]
        elif isinstance(item, MedicalOrder):
            shown = [item.text]
        else:
            assert isinstance(item, NursingEntry)
            shown = [item.observation, item.measures, item.blood_pressure]
        # -layout puts the lines of a wrapped cell among its neighbours' columns.
        for text in shown:
            assert squeeze(text) in in_order, (sig.request_id, text)
        for text in (sig.signer_name, when(sig.signed_at), sig.request_id):
            assert squeeze(text) in flat, (sig.request_id, text)
        assert sig.cms_sha256[:16] in flat
    titles = {
        "prescription": "处方笺",
        "long-term-orders": "长期医嘱单",
        "temporary-orders": "临时医嘱单",
        "nursing-record": "护理记录单",
    }
    assert titles[rendered.kind] in flat


def test_the_form_spans_pages_with_numbers_and_repeated_headers(rendered: Rendered) -> None:
    pages = [p for p in rendered.text.split("\f") if p.strip()]
    total = rendered.result.page_count
    assert len(pages) == total >= 2
    column = {
        "prescription": "处方编号",
        "long-term-orders": "长期医嘱",
        "temporary-orders": "执行时间",
        "nursing-record": "病情观察及护理措施",
    }[rendered.kind]
    for number, page in enumerate(pages, start=1):
        flat = squeeze(page)
        assert f"第{number}页/共{total}页" in flat, number
        assert HOSPITAL in flat and PATIENT.name in flat and column in flat, number


@pytest.mark.parametrize("rendered", ["prescription"], indirect=True)
def test_a_prescription_has_at_most_five_drugs_a_sheet(rendered: Rendered) -> None:
    pages = [p for p in rendered.text.split("\f") if p.strip()]
    sheets = -(-len(rendered.form.lines) // DRUGS_PER_SHEET)
    assert len(pages) == sheets
    for number, page in enumerate(pages, start=1):
        flat = squeeze(page)
        assert len(re.findall(r"sr_pr\d{3}", flat)) <= DRUGS_PER_SHEET
        assert f"第{number}/{sheets}张" in flat
        for label in (
            "急诊",
            "Rp",
            "医师",
            "审核药师",
            "调配药师/士",
            "核对、发药药师",
            "以下空白",
        ):
            assert label in flat, (number, label)


def test_fonts_are_embedded(rendered: Rendered) -> None:
    fonts = run("pdffonts", rendered.path).splitlines()[2:]
    assert fonts
    assert any("CJK" in line for line in fonts), fonts  # Noto Serif/Sans CJK, cut down
    for line in fonts:
        assert line.split()[-5] == "yes", line  # the "emb" column


def test_qpdf_finds_no_damage(rendered: Rendered) -> None:
    result = subprocess.run(
        ["qpdf", "--check", str(rendered.path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No syntax or stream encoding errors" in result.stdout


def test_the_seal_area_is_empty_and_on_the_page(rendered: Rendered) -> None:
    seal = rendered.result.seal
    assert 0 <= seal.page_index < rendered.result.page_count
    x1, y1, x2, y2 = seal.rect
    assert 0 < x1 < x2 < 595.3 and 0 < y1 < y2 < 841.9
    assert x2 - x1 >= 42 * 72 / 25.4 and y2 - y1 >= 42 * 72 / 25.4  # a 42 mm round seal fits
    # No word of that page lies inside the square (pdftotext's y runs downwards).
    page = str(seal.page_index + 1)
    words = run("pdftotext", "-bbox", "-f", page, "-l", page, rendered.path, "-")
    for match in re.finditer(
        r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)<', words
    ):
        left, top, right, bottom = (float(v) for v in match.groups()[:4])
        overlaps = left < x2 and right > x1 and 841.89 - bottom < y2 and 841.89 - top > y1
        assert not overlaps, match.group(5)


def test_page_one_as_an_image_for_people(rendered: Rendered) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    prefix = ARTIFACTS / rendered.kind
    run("pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", rendered.path, prefix)
    assert prefix.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    (ARTIFACTS / f"{rendered.kind}.pdf").write_bytes(rendered.result.pdf)


# -- the signed items inside ---------------------------------------------------------------------


def test_the_signed_items_come_back_byte_for_byte(rendered: Rendered) -> None:
    items = read_embedded_items(rendered.result.pdf)
    assert len(items) == len(rendered.form.lines)
    for number, (item, line) in enumerate(zip(items, rendered.form.lines, strict=True), start=1):
        sig = line.signature
        assert item.index == number
        assert item.request_id == sig.request_id
        assert item.content == sig.content and item.cms == sig.cms
        assert item.signed_at == sig.signed_at
        assert item.verification_url == sig.verification_url


def openssl_verify(cms: Path, content: Path) -> subprocess.CompletedProcess[bytes]:
    """openssl's check of the signature over the content (not of the test certificate's
    trust: -noverify)."""
    return subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-noverify",
         "-in", str(cms), "-content", str(content), "-out", "/dev/null"],
        capture_output=True, timeout=60,
    )  # fmt: skip


def test_pdfdetach_saves_items_that_openssl_verifies(rendered: Rendered, tmp_path: Path) -> None:
    listing = run("pdfdetach", "-list", rendered.path).splitlines()
    count = len(rendered.form.lines)
    assert listing[0] == f"{2 * count + 1} embedded files"
    run("pdfdetach", "-saveall", "-o", tmp_path, rendered.path)
    assert (tmp_path / "manifest.json").is_file()
    for number, line in enumerate(rendered.form.lines, start=1):
        content = tmp_path / f"item-{number:03d}.json"
        cms = tmp_path / f"item-{number:03d}.p7s"
        assert content.read_bytes() == line.signature.content
        assert cms.read_bytes() == line.signature.cms
        verified = openssl_verify(cms, content)
        assert verified.returncode == 0, verified.stderr.decode()
    # ...and refuses it over anything else: the next line's content.
    assert openssl_verify(tmp_path / "item-001.p7s", tmp_path / "item-002.json").returncode != 0


def test_the_same_form_gives_the_same_bytes(signer: Signer) -> None:
    form = form_of("long-term-orders", signer, 6)
    first = render_form(form)
    assert render_form(form).pdf == first.pdf
    other = render_form(dataclasses.replace(form, document_id="doc-other"))
    assert other.pdf != first.pdf


# -- reading damaged or foreign PDFs ----------------------------------------------------------


def replace_attachment(pdf: bytes, position: int, data: bytes) -> bytes:
    """The PDF with the ``position``-th embedded file's bytes swapped (an incremental
    update, as anyone could append)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    pairs = writer.root["/Names"]["/EmbeddedFiles"]["/Names"]
    spec_ref = pairs.raw_get(2 * position + 1)
    spec = spec_ref.get_object()
    stream = EmbeddedFileObject.from_file_data(writer, data)
    spec["/EF"] = generic.DictionaryObject(
        {
            generic.pdf_name("/F"): stream.ef_stream_ref,
            generic.pdf_name("/UF"): stream.ef_stream_ref,
        }
    )
    writer.mark_update(spec_ref)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_swapped_item_is_caught(signer: Signer) -> None:
    pdf = render_form(form_of("temporary-orders", signer, 3)).pdf
    swapped = replace_attachment(pdf, 0, b'{"order":"something else"}')
    with pytest.raises(FormAttachmentsError) as caught:
        read_embedded_items(swapped)
    assert caught.value.code == "form-attachments-invalid"
    assert "SHA-256" in str(caught.value)


def test_a_pdf_without_items_or_no_pdf_at_all(signer: Signer) -> None:
    pdf = render_form(form_of("temporary-orders", signer, 2)).pdf
    without_manifest = replace_attachment(pdf, 4, b"not json")
    with pytest.raises(FormAttachmentsError):
        read_embedded_items(without_manifest)
    with pytest.raises(FormPDFError) as caught:
        read_embedded_items(b"%PDF-1.7\nnot really")
    assert caught.value.code == "form-pdf-unreadable"


# -- limits on input ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(signer: Signer) -> Form:
    return form_of("long-term-orders", signer, 2)


def with_line(form: Form, **changes: object) -> Form:
    line = form.lines[0]
    item_changes = {k: v for k, v in changes.items() if hasattr(line.item, k)}
    sig_changes = {k: v for k, v in changes.items() if k not in item_changes}
    new = FormLine(
        dataclasses.replace(line.item, **item_changes),  # type: ignore[type-var]
        dataclasses.replace(line.signature, **sig_changes),  # type: ignore[arg-type]
    )
    return dataclasses.replace(form, lines=(new, *form.lines[1:]))


def replace(form: Form, **changes: object) -> Form:
    return dataclasses.replace(form, **changes)  # type: ignore[arg-type]


TOO_MANY = "form-too-many-lines"
TOO_LONG = "form-field-too-long"
INVALID = "form-field-invalid"
CONTENT = "form-content-invalid"
TOO_LARGE = "form-item-too-large"
CASES: dict[str, tuple[type[Exception], str, Callable[[Form], Form]]] = {
    "too many lines": (
        FormTooManyLinesError,
        TOO_MANY,
        lambda f: replace(f, lines=f.lines[:1] * (MAX_LINES + 1)),
    ),
    "no lines": (FormFieldInvalidError, INVALID, lambda f: replace(f, lines=())),
    "long order": (
        FormFieldTooLongError,
        TOO_LONG,
        lambda f: with_line(f, text="医" * (MAX_TEXT + 1)),
    ),
    "long hospital": (FormFieldTooLongError, TOO_LONG, lambda f: replace(f, hospital="院" * 41)),
    "naive time": (
        FormFieldInvalidError,
        INVALID,
        lambda f: with_line(f, start=dt.datetime(2026, 11, 23, 8)),
    ),
    "bidi override": (
        FormFieldInvalidError,
        INVALID,
        lambda f: with_line(f, text="口服\u202e日3次"),
    ),
    "control character": (
        FormFieldInvalidError,
        INVALID,
        lambda f: replace(f, patient=dataclasses.replace(PATIENT, name="赵\x00秀兰")),
    ),
    "stop on a temporary order": (
        FormFieldInvalidError,
        INVALID,
        lambda f: replace(with_line(f, stop=START), order_term=OrderTerm.TEMPORARY),
    ),
    "drug on an order sheet": (
        FormFieldInvalidError,
        INVALID,
        lambda f: replace(f, lines=(FormLine(DRUGS[0], f.lines[0].signature),)),
    ),
    "bad request id": (
        FormFieldInvalidError,
        INVALID,
        lambda f: with_line(f, request_id="sr 1/../x"),
    ),
    "bad url": (
        FormFieldInvalidError,
        INVALID,
        lambda f: with_line(f, verification_url="javascript:alert(1)"),
    ),
    "bad document id": (FormFieldInvalidError, INVALID, lambda f: replace(f, document_id="../x")),
    "content not canonical": (
        FormContentError,
        CONTENT,
        lambda f: with_line(f, content=b'{"b": 1, "a": 2}'),
    ),
    "content not json": (FormContentError, CONTENT, lambda f: with_line(f, content=b"\xff\xfe")),
    "cms not signed data": (
        FormContentError,
        CONTENT,
        lambda f: with_line(f, cms=b"\x30\x03\x02\x01\x01"),
    ),
    "huge content": (
        FormItemTooLargeError,
        TOO_LARGE,
        lambda f: with_line(f, content=b"[" + b"1," * 40000 + b"1]"),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_input_limits_raise_input_errors_with_stable_codes(small: Form, case: str) -> None:
    error, code, change = CASES[case]
    with pytest.raises(error) as caught:
        render_form(change(small))
    assert isinstance(caught.value, FormInputError)
    assert caught.value.code == code
    assert caught.value.status == 422
    public = caught.value.public_message()
    assert PATIENT.name not in public and "医医医" not in public


def longest(limit: int) -> str:
    return ("患者神志清楚精神可诉胸闷较前缓解" * limit)[:limit]


@pytest.mark.parametrize("kind", ["prescription", "long-term-orders", "nursing-record"])
def test_the_longest_allowed_fields_still_fit(signer: Signer, kind: str) -> None:
    """A table row never splits across pages: the limits keep the tallest patient block
    and the tallest row within one page."""
    form = form_of(kind, signer, 6)
    patient = dataclasses.replace(
        PATIENT,
        name=longest(MAX_NAME),
        number="9" * MAX_SHORT,
        ward=longest(MAX_SHORT),
        diagnosis=longest(MAX_DIAGNOSIS),
    )
    form = dataclasses.replace(
        form,
        hospital=longest(MAX_NAME),
        department=longest(MAX_SHORT),
        patient=patient,
        lines=tuple(
            FormLine(
                stretch(line.item),
                dataclasses.replace(
                    line.signature, signer_name=longest(MAX_NAME), signer_title=longest(MAX_SHORT)
                ),
            )
            for line in form.lines
        ),
    )
    result = render_form(form)
    assert result.page_count >= 2
    assert squeeze(longest(MAX_TEXT if kind != "prescription" else MAX_MEDIUM))[:60] in squeeze(
        run_text(result.pdf)
    )


def stretch(item: PrescriptionItem | MedicalOrder | NursingEntry) -> object:
    if isinstance(item, PrescriptionItem):
        return dataclasses.replace(
            item,
            drug=longest(MAX_MEDIUM),
            specification=longest(MAX_MEDIUM),
            note=longest(MAX_MEDIUM),
            dose=longest(MAX_SHORT),
            route=longest(MAX_SHORT),
            frequency=longest(MAX_SHORT),
        )
    if isinstance(item, MedicalOrder):
        return dataclasses.replace(item, text=longest(MAX_TEXT))
    return dataclasses.replace(item, observation=longest(MAX_TEXT), measures=longest(MAX_TEXT))


def run_text(pdf: bytes) -> str:
    return subprocess.run(
        ["pdftotext", "-raw", "-", "-"], input=pdf, capture_output=True, timeout=60, check=True
    ).stdout.decode()


def test_the_manifest_holds_ids_and_hashes_only(rendered: Rendered, tmp_path: Path) -> None:
    run("pdfdetach", "-saveall", "-o", tmp_path, rendered.path)
    manifest = (tmp_path / "manifest.json").read_bytes()
    assert rfc8785.dumps(__import__("json").loads(manifest)) == manifest
    assert PATIENT.name.encode() not in manifest
    first = rendered.form.lines[0].signature
    assert hashlib.sha256(first.content).hexdigest().encode() in manifest


# -- what comes after: the seal, and the next document ---------------------------------------


def test_the_seal_area_takes_a_pyhanko_seal(signer: Signer, tmp_path: Path) -> None:
    """The sealer's step, as pyHanko does it: a signature field on the returned page and
    rectangle, appended as an incremental update that leaves the items readable."""
    result = render_form(form_of("temporary-orders", signer, 4))
    key, cert = tmp_path / "seal.key", tmp_path / "seal.pem"
    key.write_bytes(
        signer.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert.write_bytes(signer.certificate.public_bytes(serialization.Encoding.PEM))
    seal = result.seal
    sealed = signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(result.pdf)),
        signers.PdfSignatureMetadata(field_name="HospitalSeal"),
        signer=signers.SimpleSigner.load(str(key), str(cert)),
        new_field_spec=fields.SigFieldSpec("HospitalSeal", on_page=seal.page_index, box=seal.rect),
    ).getvalue()
    (embedded,) = PdfFileReader(io.BytesIO(sealed)).embedded_signatures
    placed = [float(v) for v in embedded.sig_field["/Rect"]]
    assert placed == pytest.approx(list(seal.rect), abs=0.01)
    assert [i.content for i in read_embedded_items(sealed)] == [
        i.content for i in read_embedded_items(result.pdf)
    ]
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    assert subprocess.run(["qpdf", "--check", str(path)], capture_output=True).returncode == 0


def test_a_later_document_gets_its_own_characters() -> None:
    """reportlab keeps the first font registered under a name; each document's cut-down
    font must replace the previous one, or characters only it uses come out blank."""
    font = cjk_font(Face.SERIF)
    if not font.embedded:
        pytest.skip("no CJK font installed")
    with embedded_fonts("甲", font):
        assert ord("甲") in pdfmetrics.getFont(font.name).face.charToGlyph
    with embedded_fonts("乙", font):
        assert ord("乙") in pdfmetrics.getFont(font.name).face.charToGlyph


def test_a_cut_down_font_keeps_its_timestamp() -> None:
    """fontTools stamps a saved font with the current time unless told not to; the same
    form would then give other bytes in every process (the cache hides it within one)."""
    font = cjk_font(Face.SERIF)
    if font.kind == "cid":
        pytest.skip("no CJK font installed")
    cut = FontFile(io.BytesIO(truetype_subset(font.path, font.index, "处方笺")))
    with FontFile(font.path, fontNumber=font.index, lazy=True) as original:
        assert cut["head"].modified == original["head"].modified
