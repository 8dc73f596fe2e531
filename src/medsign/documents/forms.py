"""Forms from signed data: a prescription (处方笺), a medical-order sheet (长期/临时医嘱单) or a
nursing record (护理记录单) drawn from signed data items, as an A4 PDF that carries them.

Every line of a form is one signed data item. Its business fields are printed where the paper
form prints them, and with them who signed, when (the signature timestamp's genTime, never the
client's clock) and a reference: the sign request (a link to its verification page), the
signer's certificate serial and the first 16 hex digits of the CMS's SHA-256. The PDF carries
every item as an embedded file, so each line can be re-checked against what was signed::

    item-001.json   the exact signed content (RFC 8785 canonical JSON)
    item-001.p7s    the CMS SignedData over it (DER)
    ...
    manifest.json   {"format", "version", "document_id", "kind", "items": [{"index",
                    "request_id", "certificate_serial", "signed_at", "verification_url",
                    "content", "content_sha256", "cms", "cms_sha256"}]}: ids and hashes only

(``openssl cms -verify -binary -inform DER -in item-001.p7s -content item-001.json``). The
names are flat, not ``items/001.json``: ``pdfdetach -saveall`` and readers' "save all" treat
a name as a path and fail when the directory does not exist. ``read_embedded_items`` reads
them back and checks them against the manifest.

The form is not sealed here. ``render_form`` leaves a square after the last line for the
hospital seal and returns where it is (page index and rectangle in PDF points, origin at the
bottom left, as pyHanko's ``SigFieldSpec`` takes them), for the sealer to put the seal there.

The layouts follow the paper forms:

- 处方笺: 《处方管理办法》(2007) 第五、六、十八条 and 附件1 (处方标准): front matter (前记:
  fee category, patient, department and bed, clinical diagnosis, date), the body under "Rp"
  (正文: drug, form and strength, quantity, dose, route, frequency) and the back matter (后记:
  prescriber, amount, 审核/调配/核对·发药 pharmacists). At most five drugs a sheet (第六条),
  so a longer prescription takes several sheets, each a complete prescription; the category
  (普通/急诊/儿科) at top right and the paper tinted as 附件1 prescribes (急诊 light yellow,
  儿科 light green).
- 长期医嘱单: 起始 date and time, the order, 医师签名, 停止 date and time; 临时医嘱单: date,
  time, the order, 医师签名, 执行时间. Both repeat the patient line on every page.
- 护理记录单: date, time, vital signs (T, P, R, BP, SpO2), intake and output, 病情观察及护理
  措施 and the nurse's signature.

The same form gives the same bytes: the caller fixes the document id and the creation date,
reportlab runs in invariant mode and the PDF's /ID derives from the document id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import rfc8785
import segno
from asn1crypto import cms as asn1_cms
from pyhanko.pdf_utils import generic as pdf_generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfdoc import (
    PDFArray,
    PDFDictionary,
    PDFName,
    PDFStream,
    PDFString,
    PDFZCompress,
)
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    KeepTogether,
    LayoutError,
    PageBreak,
    PageTemplate,
    Paragraph,
    Table,
    TableStyle,
)

from medsign.errors import InputError, VerificationError
from medsign.fonts import Face, cjk_font, embedded_fonts, mono_font

__all__ = [
    "BEIJING_TIME",
    "DRUGS_PER_SHEET",
    "MAX_ATTACHED_BYTES",
    "MAX_ITEM_BYTES",
    "MAX_LINES",
    "MAX_PDF_BYTES",
    "MEDIA_TYPE",
    "EmbeddedItem",
    "Form",
    "FormAttachmentsError",
    "FormContentError",
    "FormFieldInvalidError",
    "FormFieldTooLongError",
    "FormInputError",
    "FormItemTooLargeError",
    "FormKind",
    "FormLine",
    "FormPDFError",
    "FormTooManyLinesError",
    "LineSignature",
    "MedicalOrder",
    "NursingEntry",
    "OrderTerm",
    "Patient",
    "PrescriptionCategory",
    "PrescriptionInfo",
    "PrescriptionItem",
    "RenderedForm",
    "SealArea",
    "check_form",
    "read_embedded_items",
    "render_form",
]

MEDIA_TYPE = "application/pdf"
BEIJING_TIME = dt.timezone(dt.timedelta(hours=8), "CST")

# -- inputs ------------------------------------------------------------------------------------


class FormKind(StrEnum):
    PRESCRIPTION = "prescription"  # 处方笺
    MEDICAL_ORDER = "medical-order"  # 医嘱单 (long-term or temporary: ``Form.order_term``)
    NURSING_RECORD = "nursing-record"  # 护理记录单


class PrescriptionCategory(StrEnum):
    """The label at the top right of a prescription, which also tints its paper."""

    GENERAL = "general"  # 普通
    EMERGENCY = "emergency"  # 急诊
    PEDIATRIC = "pediatric"  # 儿科


class OrderTerm(StrEnum):
    LONG_TERM = "long-term"  # 长期医嘱单
    TEMPORARY = "temporary"  # 临时医嘱单


@dataclass(frozen=True)
class Patient:
    """The patient block, as printed (strings are printed as given: "45岁", "3月龄")."""

    name: str
    sex: str
    age: str
    number: str  # 门诊/住院病历号 (outpatient or inpatient number)
    bed: str = ""
    ward: str = ""  # 病区
    diagnosis: str = ""  # 临床诊断 / 入院诊断
    admitted_on: dt.date | None = None  # 入院日期 (nursing records)


@dataclass(frozen=True)
class PrescriptionInfo:
    """What only a prescription has. Pharmacist names are printed as given (their checks
    are signed elsewhere); empty ones leave the line blank, as on paper."""

    category: PrescriptionCategory = PrescriptionCategory.GENERAL
    number: str = ""  # 处方编号
    fee_category: str = ""  # 费别: 医保, 自费, 公费 ...
    insurance_number: str = ""  # 医保卡号 / 医疗证号
    issued_on: dt.date | None = None  # 开具日期; default: the creation date
    amount: str = ""  # 药品金额
    reviewer: str = ""  # 审核药师
    dispenser: str = ""  # 调配药师/士
    checker: str = ""  # 核对、发药药师


@dataclass(frozen=True)
class LineSignature:
    """The signature facts of one line, as the signing service recorded them."""

    signer_name: str
    signer_title: str  # 职称: 主治医师, 主管护师 ...
    signed_at: dt.datetime  # the signature timestamp's genTime (aware)
    request_id: str
    certificate_serial: str  # hexadecimal
    verification_url: str
    content: bytes = field(repr=False)  # the RFC 8785 canonical JSON that was signed
    cms: bytes = field(repr=False)  # CMS SignedData over ``content``, DER

    @property
    def cms_sha256(self) -> str:
        return hashlib.sha256(self.cms).hexdigest()


@dataclass(frozen=True)
class PrescriptionItem:
    drug: str  # 药品名称 (generic name)
    specification: str  # 剂型、规格: "胶囊 0.25g×24粒/盒"
    quantity: str  # 数量: "2盒"
    dose: str  # 单次剂量: "0.5g"
    route: str  # 用法: "口服"
    frequency: str  # 频次: "每日3次"
    note: str = ""  # 备注: "饭后", "皮试阴性"


@dataclass(frozen=True)
class MedicalOrder:
    start: dt.datetime  # 起始 (long-term) or 下达 (temporary) time
    text: str  # the order as written: "0.9%氯化钠注射液 100ml + 头孢曲松钠 2g 静滴 qd"
    stop: dt.datetime | None = None  # 停止 time: long-term orders only
    executed: dt.datetime | None = None  # 执行时间: temporary orders only


@dataclass(frozen=True)
class NursingEntry:
    time: dt.datetime
    observation: str  # 病情观察
    measures: str = ""  # 护理措施
    temperature: str = ""  # ℃
    pulse: str = ""  # 次/分
    respiration: str = ""  # 次/分
    blood_pressure: str = ""  # mmHg
    spo2: str = ""  # %
    intake: str = ""  # 入量, ml
    output: str = ""  # 出量, ml


LineItem = PrescriptionItem | MedicalOrder | NursingEntry


@dataclass(frozen=True)
class FormLine:
    item: LineItem
    signature: LineSignature


@dataclass(frozen=True)
class Form:
    kind: FormKind
    document_id: str  # fixed by the caller: the same form gives the same PDF
    created_at: dt.datetime  # the PDF's creation date (aware)
    hospital: str
    department: str  # 科别
    patient: Patient
    lines: tuple[FormLine, ...]
    order_term: OrderTerm = OrderTerm.LONG_TERM  # medical orders only
    prescription: PrescriptionInfo = field(default_factory=PrescriptionInfo)
    verification_url: str = ""  # of the whole document: a QR code in every page's footer
    display_timezone: dt.tzinfo = BEIJING_TIME  # times are printed in it


# -- outputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealArea:
    """Where the hospital seal goes: a page (0-based) and a rectangle (x1, y1, x2, y2) in
    PDF points, origin at the bottom left of the page."""

    page_index: int
    rect: tuple[float, float, float, float]


@dataclass(frozen=True)
class RenderedForm:
    pdf: bytes
    page_count: int
    seal: SealArea


@dataclass(frozen=True)
class EmbeddedItem:
    """One signed item read back from a form's PDF, checked against its manifest entry."""

    index: int  # 1-based, the line's number on the form
    request_id: str
    certificate_serial: str
    signed_at: dt.datetime
    verification_url: str
    content: bytes = field(repr=False)
    cms: bytes = field(repr=False)


# -- errors ------------------------------------------------------------------------------------


class FormInputError(InputError):
    """The form cannot be made from this input; subclasses say why. Messages name the field
    and the limit, never its value."""

    code = "form-invalid"
    title = "The form cannot be made from this input"


class FormFieldInvalidError(FormInputError):
    """A field is missing, has characters a form cannot show (control, format or private-use
    characters), a naive time, a malformed id or URL, or does not fit the form's kind."""

    code = "form-field-invalid"
    title = "A field of the form is not valid"


class FormFieldTooLongError(FormInputError):
    code = "form-field-too-long"
    title = "A field of the form is too long"


class FormTooManyLinesError(FormInputError):
    code = "form-too-many-lines"
    title = "The form has too many lines"


class FormItemTooLargeError(FormInputError):
    """A line's signed content or CMS, or all of them together, exceed the limits."""

    code = "form-item-too-large"
    title = "A signed item is too large to embed"


class FormContentError(FormInputError):
    """The signed content is not RFC 8785 canonical JSON, or the CMS is not SignedData."""

    code = "form-content-invalid"
    title = "A signed item is not in the expected format"


class FormPDFError(InputError):
    code = "form-pdf-unreadable"
    title = "The PDF cannot be read"


class FormAttachmentsError(VerificationError):
    """The PDF's embedded items are missing, malformed or do not match their manifest."""

    code = "form-attachments-invalid"
    title = "The form's embedded signed items do not check out"


# -- limits ------------------------------------------------------------------------------------

MAX_LINES = 500
DRUGS_PER_SHEET = 5  # 《处方管理办法》第六条: 每张处方不得超过5种药品
# Field lengths, in characters. They keep the tallest patient block plus the tallest table
# row (a nursing entry with the longest observation and measures) within one page.
MAX_TINY = 16  # sex, vital signs, fee category, amount, quantity
MAX_SHORT = 32  # numbers, bed, ward, department, dose, route, frequency, titles
MAX_NAME = 40  # people and the hospital
MAX_MEDIUM = 100  # drug, specification, note
MAX_DIAGNOSIS = 200
MAX_TEXT = 300  # an order, an observation, measures
MAX_URL = 512
MAX_ITEM_BYTES = 64 * 1024  # one signed content, one CMS
MAX_ATTACHED_BYTES = 16 * 1024 * 1024  # everything embedded in one form
MAX_PDF_BYTES = 64 * 1024 * 1024  # what read_embedded_items accepts
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_SERIAL = re.compile(r"[0-9A-Fa-f]{1,64}")
_URL = re.compile(r"https?://[!#$%&'()*+,\-./0-9:;=?@A-Z\[\]_a-z~]+")  # printable, no quotes
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_MANIFEST = "manifest.json"
_FORMAT = "medsign-form-items"


def _item_name(index: int, suffix: str) -> str:
    return f"item-{index:03d}.{suffix}"


# -- checking ----------------------------------------------------------------------------------


def check_form(form: Form) -> None:
    """Raise a ``FormInputError`` if ``form`` cannot be rendered; ``render_form`` calls it."""
    if form.kind not in set(FormKind):
        raise FormFieldInvalidError("kind: unknown form kind")
    if not _ID.fullmatch(form.document_id):
        raise FormFieldInvalidError("document_id: 1-64 letters, digits and ._:-")
    _time(form.created_at, "created_at")
    if not isinstance(form.display_timezone, dt.tzinfo):
        raise FormFieldInvalidError("display_timezone: not a time zone")
    _text(form.hospital, "hospital", MAX_NAME)
    _text(form.department, "department", MAX_SHORT)
    if form.verification_url:
        _url(form.verification_url, "verification_url")
    patient = form.patient
    for name, limit, required in (
        ("name", MAX_NAME, True),
        ("sex", MAX_TINY, True),
        ("age", MAX_TINY, True),
        ("number", MAX_SHORT, True),
        ("bed", MAX_TINY, False),
        ("ward", MAX_SHORT, False),
        ("diagnosis", MAX_DIAGNOSIS, False),
    ):
        _text(getattr(patient, name), f"patient.{name}", limit, required=required)
    info = form.prescription
    if form.kind == FormKind.PRESCRIPTION:
        if info.category not in set(PrescriptionCategory):
            raise FormFieldInvalidError("prescription.category: unknown category")
        for name, limit in (
            ("number", MAX_SHORT),
            ("fee_category", MAX_TINY),
            ("insurance_number", MAX_SHORT),
            ("amount", MAX_TINY),
            ("reviewer", MAX_NAME),
            ("dispenser", MAX_NAME),
            ("checker", MAX_NAME),
        ):
            _text(getattr(info, name), f"prescription.{name}", limit, required=False)
    if form.kind == FormKind.MEDICAL_ORDER and form.order_term not in set(OrderTerm):
        raise FormFieldInvalidError("order_term: unknown order term")
    if not form.lines:
        raise FormFieldInvalidError("lines: a form needs at least one line")
    if len(form.lines) > MAX_LINES:
        raise FormTooManyLinesError(
            f"lines: {len(form.lines)} lines, at most {MAX_LINES}",
            public=f"A form has at most {MAX_LINES} lines",
        )
    attached = 0
    for number, line in enumerate(form.lines, start=1):
        where = f"lines[{number}]"
        _check_item(form, line.item, f"{where}.item")
        attached += _check_signature(line.signature, f"{where}.signature")
    if attached > MAX_ATTACHED_BYTES:
        raise FormItemTooLargeError(
            f"lines: {attached} bytes of signed items, at most {MAX_ATTACHED_BYTES}",
            public=f"The signed items of a form take at most {MAX_ATTACHED_BYTES} bytes",
        )


def _check_item(form: Form, item: LineItem, where: str) -> None:
    if form.kind == FormKind.PRESCRIPTION:
        if not isinstance(item, PrescriptionItem):
            raise FormFieldInvalidError(f"{where}: a prescription's lines are drugs")
        for name, limit in (
            ("drug", MAX_MEDIUM),
            ("specification", MAX_MEDIUM),
            ("quantity", MAX_TINY),
            ("dose", MAX_SHORT),
            ("route", MAX_SHORT),
            ("frequency", MAX_SHORT),
        ):
            _text(getattr(item, name), f"{where}.{name}", limit)
        _text(item.note, f"{where}.note", MAX_MEDIUM, required=False)
    elif form.kind == FormKind.MEDICAL_ORDER:
        if not isinstance(item, MedicalOrder):
            raise FormFieldInvalidError(f"{where}: a medical-order sheet's lines are orders")
        _time(item.start, f"{where}.start")
        _text(item.text, f"{where}.text", MAX_TEXT, multiline=True)
        long_term = form.order_term == OrderTerm.LONG_TERM
        if item.stop is not None:
            if not long_term:
                raise FormFieldInvalidError(f"{where}.stop: only long-term orders stop")
            _time(item.stop, f"{where}.stop")
        if item.executed is not None:
            if long_term:
                raise FormFieldInvalidError(f"{where}.executed: only temporary orders")
            _time(item.executed, f"{where}.executed")
    else:
        if not isinstance(item, NursingEntry):
            raise FormFieldInvalidError(f"{where}: a nursing record's lines are entries")
        _time(item.time, f"{where}.time")
        _text(item.observation, f"{where}.observation", MAX_TEXT, multiline=True)
        _text(item.measures, f"{where}.measures", MAX_TEXT, required=False, multiline=True)
        for name in (
            "temperature",
            "pulse",
            "respiration",
            "blood_pressure",
            "spo2",
            "intake",
            "output",
        ):
            _text(getattr(item, name), f"{where}.{name}", MAX_TINY, required=False)


def _check_signature(signature: LineSignature, where: str) -> int:
    _text(signature.signer_name, f"{where}.signer_name", MAX_NAME)
    _text(signature.signer_title, f"{where}.signer_title", MAX_SHORT, required=False)
    _time(signature.signed_at, f"{where}.signed_at")
    if not _ID.fullmatch(signature.request_id):
        raise FormFieldInvalidError(f"{where}.request_id: 1-64 letters, digits and ._:-")
    if not _SERIAL.fullmatch(signature.certificate_serial):
        raise FormFieldInvalidError(f"{where}.certificate_serial: 1-64 hexadecimal digits")
    _url(signature.verification_url, f"{where}.verification_url")
    for name, data in (("content", signature.content), ("cms", signature.cms)):
        if not data:
            raise FormFieldInvalidError(f"{where}.{name}: empty")
        if len(data) > MAX_ITEM_BYTES:
            raise FormItemTooLargeError(
                f"{where}.{name}: {len(data)} bytes, at most {MAX_ITEM_BYTES}",
                public=f"A signed item's {name} takes at most {MAX_ITEM_BYTES} bytes",
            )
    try:
        canonical = rfc8785.dumps(json.loads(signature.content))
    except (ValueError, rfc8785.CanonicalizationError) as exc:
        raise FormContentError(f"{where}.content: not JSON ({type(exc).__name__})") from exc
    if canonical != signature.content:
        raise FormContentError(f"{where}.content: not RFC 8785 canonical JSON")
    try:
        info = asn1_cms.ContentInfo.load(signature.cms, strict=True)
        content_type = info["content_type"].dotted
    except (ValueError, TypeError) as exc:
        raise FormContentError(f"{where}.cms: not DER ContentInfo") from exc
    # id-signedData, or its GM/T 0010 (SM2) counterpart.
    if content_type not in ("1.2.840.113549.1.7.2", "1.2.156.10197.6.1.4.2.2"):
        raise FormContentError(f"{where}.cms: not SignedData")
    return len(signature.content) + len(signature.cms)


def _text(
    value: str, where: str, limit: int, *, required: bool = True, multiline: bool = False
) -> None:
    if not isinstance(value, str):
        raise FormFieldInvalidError(f"{where}: not text")
    if required and not value.strip():
        raise FormFieldInvalidError(f"{where}: required")
    if len(value) > limit:
        raise FormFieldTooLongError(
            f"{where}: {len(value)} characters, at most {limit}",
            public=f"{where} has at most {limit} characters",
        )
    for char in value:
        if char == "\n" and multiline:
            continue
        # Bidi overrides and invisible characters could make the printed form say
        # something other than what the text holds.
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise FormFieldInvalidError(
                f"{where}: character U+{ord(char):04X} cannot be shown on a form"
            )


def _time(value: dt.datetime, where: str) -> None:
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        raise FormFieldInvalidError(f"{where}: a time with its UTC offset is required")


def _url(value: str, where: str) -> None:
    if not isinstance(value, str) or len(value) > MAX_URL or not _URL.fullmatch(value):
        raise FormFieldInvalidError(f"{where}: an http(s) URL of at most {MAX_URL} characters")


# -- rendering ---------------------------------------------------------------------------------

_PAGE_WIDTH, _PAGE_HEIGHT = A4
_MARGIN = 15 * mm
_BODY_WIDTH = _PAGE_WIDTH - 2 * _MARGIN
_HEADER_TOP = _PAGE_HEIGHT - 33 * mm  # below the hospital name and the title
_FOOTER_TOP = 21 * mm
_SEAL_SIZE = 44 * mm  # a 42 mm round hospital seal and a little air
_INK = colors.HexColor("#1A1A1A")
_GREY = colors.HexColor("#5A5A5A")
_PAPER = {
    PrescriptionCategory.EMERGENCY: colors.HexColor("#FFF8D2"),  # 淡黄色
    PrescriptionCategory.PEDIATRIC: colors.HexColor("#E6F4DF"),  # 淡绿色
}
_CATEGORY_LABELS = {
    PrescriptionCategory.GENERAL: "普通",
    PrescriptionCategory.EMERGENCY: "急诊",
    PrescriptionCategory.PEDIATRIC: "儿科",
}


def render_form(form: Form) -> RenderedForm:
    """Check ``form`` and draw it: the PDF (with the signed items embedded), its page count
    and the place left for the hospital seal."""
    check_form(form)
    body, bold = cjk_font(Face.SERIF), cjk_font(Face.SANS_BOLD)
    s = _Styles(body.name, bold.name, mono_font())
    # Every text is made before the fonts are cut down to the characters it uses.
    layout = _layout(form, s)
    pages = _Pages(form, layout, s)
    seal: list[SealArea] = []
    story = [*layout.story, _SealBlock(s, form, seal.append)]
    title = f"{form.hospital} {layout.title}"
    s.chars.update(title)
    attachments = _attachments(form)
    buffer = io.BytesIO()
    with embedded_fonts(s.chars, body, bold):
        doc = BaseDocTemplate(
            buffer,
            pagesize=A4,
            title=title,
            author=form.hospital,
            subject=f"{layout.title} {form.document_id}",
            creator="medsign",
            invariant=True,
            # Else every page names Helvetica, a font the PDF would not embed.
            initialFontName=body.name,
            pageTemplates=[
                PageTemplate(
                    "form", [pages.frame()], onPage=pages.background, onPageEnd=pages.furniture
                )
            ],
        )
        try:
            doc.build(story, canvasmaker=_canvas_class(form, pages, attachments))
        except LayoutError as exc:  # the limits are meant to make this unreachable
            raise FormFieldTooLongError("a line does not fit on one page") from exc
    return RenderedForm(pdf=buffer.getvalue(), page_count=pages.count, seal=seal[-1])


class _Styles:
    """Paragraph styles and markup; every text set through ``p``, ``text`` or ``label`` is
    remembered, so the embedded fonts
    can be cut down to exactly the characters the form uses."""

    def __init__(self, body: str, bold: str, mono: str) -> None:
        self.chars: set[str] = set()
        self.body_font, self.bold_font, self.mono_font = body, bold, mono
        self.body = ParagraphStyle(
            "body", fontName=body, fontSize=8.5, leading=11, wordWrap="CJK", textColor=_INK
        )
        self.field = ParagraphStyle("field", parent=self.body, fontSize=9.5, leading=13)
        self.head = ParagraphStyle(
            "head", parent=self.body, fontName=bold, fontSize=8.5, leading=10.5, alignment=TA_CENTER
        )
        self.cell = ParagraphStyle("cell", parent=self.body, alignment=TA_CENTER)
        self.drug = ParagraphStyle("drug", parent=self.body, fontSize=10.5, leading=14)
        self.usage = ParagraphStyle("usage", parent=self.body, fontSize=9.5, leading=13)
        self.ref = ParagraphStyle(
            "ref", parent=self.body, fontSize=6.5, leading=8.4, textColor=_GREY
        )
        self.small = ParagraphStyle("small", parent=self.body, fontSize=7.5, leading=10)
        self.centred_small = ParagraphStyle("centred-small", parent=self.small, alignment=TA_CENTER)
        self.signer_title = ParagraphStyle("signer-title", parent=self.ref, alignment=TA_CENTER)
        self.quantity = ParagraphStyle("quantity", parent=self.drug, alignment=TA_RIGHT)

    def p(self, text: str, style: ParagraphStyle) -> Paragraph:
        return Paragraph(self.text(text), style)

    def markup(self, markup: str, style: ParagraphStyle) -> Paragraph:
        """A paragraph of markup made with ``text``, ``label`` and ``mono``."""
        return Paragraph(markup, style)

    def text(self, text: str) -> str:
        """``text`` as paragraph markup, its characters remembered."""
        self.chars.update(text)
        return escape(text).replace("\n", "<br/>")

    def label(self, text: str) -> str:
        return f'<font face="{self.bold_font}">{self.text(text)}</font>'

    def table(
        self,
        rows: Sequence[Sequence[Any]],
        widths: Sequence[float],
        commands: Sequence[tuple[Any, ...]],
        *,
        repeat_rows: int = 0,
    ) -> Table:
        """A table, column widths in mm. Its cell font is named: Table sets it around every
        cell, and the default (Helvetica) would be a font the PDF does not embed."""
        table = Table(
            [list(row) for row in rows], colWidths=[w * mm for w in widths], repeatRows=repeat_rows
        )
        table.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), self.body_font), *commands]))
        return table

    def mono(self, text: str) -> str:
        """In the monospaced font: ids and hashes (ASCII, not in the cut-down CJK fonts)."""
        return f'<font face="{self.mono_font}">{escape(text)}</font>'


@dataclass(frozen=True)
class _Layout:
    title: str  # 处方笺, 长期医嘱单 ...
    headers: tuple[Flowable, ...]  # the patient block; one per sheet for prescriptions
    back_matter: tuple[Flowable, ...]  # prescriptions: 后记, one per sheet
    story: tuple[Flowable, ...]
    indent: float  # of the body, right of "Rp" on prescriptions
    cursor: _SheetCursor  # prescriptions: the sheet being drawn


def _layout(form: Form, s: _Styles) -> _Layout:
    if form.kind == FormKind.PRESCRIPTION:
        return _prescription(form, s)
    if form.kind == FormKind.MEDICAL_ORDER:
        return _orders(form, s)
    return _nursing(form, s)


def _local(form: Form, value: dt.datetime) -> dt.datetime:
    return value.astimezone(form.display_timezone)


def _when(form: Form, value: dt.datetime) -> str:
    return _local(form, value).strftime("%Y-%m-%d %H:%M:%S")


def _date(form: Form, value: dt.datetime | None) -> str:
    return "" if value is None else _local(form, value).strftime("%Y-%m-%d")


def _clock(form: Form, value: dt.datetime | None) -> str:
    return "" if value is None else _local(form, value).strftime("%H:%M")


def _reference(form: Form, line: FormLine, s: _Styles, *, with_signer: bool) -> Paragraph:
    """The line's signature facts: signer (where no column shows it), trusted time, request
    (linked to its verification page), certificate serial, CMS SHA-256 prefix."""
    sig = line.signature
    markup = s.label("电子签名") + " "
    if with_signer:
        signer = sig.signer_name + (f"（{sig.signer_title}）" if sig.signer_title else "")
        markup += s.text(signer) + " "
    link = f"<a href={quoteattr(sig.verification_url)}>{s.mono(sig.request_id)}</a>"
    markup += s.text(" · ").join(
        (
            s.mono(_when(form, sig.signed_at)),
            s.text("请求 ") + link,
            s.text("证书 ") + s.mono(sig.certificate_serial.lower()),
            "CMS " + s.mono(sig.cms_sha256[:16]),
        )
    )
    return s.markup(markup, s.ref)


def _signer_cell(line: FormLine, s: _Styles) -> list[Flowable]:
    sig = line.signature
    cell: list[Flowable] = [s.p(sig.signer_name, s.cell)]
    if sig.signer_title:
        cell.append(s.p(sig.signer_title, s.signer_title))
    return cell


def _fields(rows: Sequence[Sequence[tuple[str, str, float]]], s: _Styles) -> Table:
    """The patient block: rows of "label：value" cells (width in mm), no rules inside."""
    inner = []
    for row in rows:
        cells = [
            s.markup(s.label(label + "：") + s.text(value), s.field) for label, value, _ in row
        ]
        inner.append([s.table([cells], [w for _, _, w in row], _NO_PADDING)])
    return s.table(inner, [_BODY_WIDTH / mm], [*_NO_PADDING, ("TOPPADDING", (0, 1), (-1, -1), 1.5)])


_NO_PADDING: list[tuple[Any, ...]] = [
    ("LEFTPADDING", (0, 0), (-1, -1), 0),
    ("RIGHTPADDING", (0, 0), (-1, -1), 2),
    ("TOPPADDING", (0, 0), (-1, -1), 0),
    ("BOTTOMPADDING", (0, 0), (-1, -1), 0),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
]


def _patient_rows(form: Form) -> list[list[tuple[str, str, float]]]:
    p = form.patient
    return [
        [
            ("姓名", p.name, 28),
            ("性别", p.sex, 15),
            ("年龄", p.age, 19),
            ("科别", form.department, 34),
            ("病区", p.ward, 28),
            ("床号", p.bed, 15),
            ("住院号", p.number, 41),
        ]
    ]


# -- prescriptions -------------------------------------------------------------------------


def _prescription(form: Form, s: _Styles) -> _Layout:
    info, p = form.prescription, form.patient
    issued = info.issued_on or _local(form, form.created_at).date()
    sheets = [
        form.lines[i : i + DRUGS_PER_SHEET] for i in range(0, len(form.lines), DRUGS_PER_SHEET)
    ]
    ward_bed = "/".join(v for v in (p.ward, f"{p.bed}床" if p.bed else "") if v)
    department = f"{form.department}（{ward_bed}）" if ward_bed else form.department
    headers: list[Flowable] = []
    back: list[Flowable] = []
    story: list[Flowable] = []
    cursor = _SheetCursor()
    for number, sheet in enumerate(sheets, start=1):
        numbering = info.number or form.document_id
        if len(sheets) > 1:
            numbering += f"（第 {number}/{len(sheets)} 张）"
        headers.append(
            _fields(
                [
                    [
                        ("费别", info.fee_category, 40),
                        ("医保卡号", info.insurance_number, 62),
                        ("处方编号", numbering, 78),
                    ],
                    [
                        ("姓名", p.name, 40),
                        ("性别", p.sex, 25),
                        ("年龄", p.age, 37),
                        ("门诊/住院病历号", p.number, 78),
                    ],
                    [
                        ("科别（病区/床位号）", department, 102),
                        ("开具日期", f"{issued.year}年{issued.month:02d}月{issued.day:02d}日", 78),
                    ],
                    [("临床诊断", p.diagnosis, 180)],
                ],
                s,
            )
        )
        doctors = dict.fromkeys(line.signature.signer_name for line in sheet)
        back.append(
            _fields(
                [
                    [
                        ("医师", "、".join(doctors) + "（电子签名）", 102),
                        ("药品金额", info.amount, 78),
                    ],
                    [
                        ("审核药师", info.reviewer, 60),
                        ("调配药师/士", info.dispenser, 60),
                        ("核对、发药药师", info.checker, 60),
                    ],
                ],
                s,
            )
        )
        if number > 1:
            story.append(PageBreak())
        story.append(_SheetStart(number - 1, cursor))
        offset = (number - 1) * DRUGS_PER_SHEET
        for index, line in enumerate(sheet, start=offset + 1):
            story.append(_drug(form, index, line, s))
        story.append(s.p("（以下空白）", s.centred_small))
    return _Layout(
        title="处方笺",
        headers=tuple(headers),
        back_matter=tuple(back),
        story=tuple(story),
        indent=14 * mm,
        cursor=cursor,
    )


def _drug(form: Form, index: int, line: FormLine, s: _Styles) -> Flowable:
    item = line.item
    assert isinstance(item, PrescriptionItem)  # check_form made sure
    usage = f"用法：每次 {item.dose}　{item.route}　{item.frequency}"
    if item.note:
        usage += f"　{item.note}"
    rows: list[list[Any]] = [
        [
            s.p(f"{index}.", s.drug),
            s.p(item.drug, s.drug),
            s.p(item.specification, s.drug),
            s.p(f"× {item.quantity}", s.quantity),
        ],
        ["", s.p(usage, s.usage), "", ""],
        ["", _reference(form, line, s, with_signer=True), "", ""],
    ]
    table = s.table(
        rows,
        [8, 70, 60, 28],
        [
            *_NO_PADDING,
            ("SPAN", (1, 1), (3, 1)),
            ("SPAN", (1, 2), (3, 2)),
            ("TOPPADDING", (0, 1), (-1, -1), 1),
            ("BOTTOMPADDING", (0, 2), (-1, 2), 7),
        ],
    )
    return KeepTogether([table])


# -- medical orders ------------------------------------------------------------------------


def _orders(form: Form, s: _Styles) -> _Layout:
    long_term = form.order_term == OrderTerm.LONG_TERM
    rows: list[list[Any]] = []
    if long_term:
        widths = [19, 11, 93, 26, 19, 12]
        rows.append([s.p(t, s.head) for t in ("起始", "", "长期医嘱", "医师签名", "停止", "")])
        rows.append([s.p(t, s.head) for t in ("日期", "时间", "", "", "日期", "时间")])
        spans = [
            ("SPAN", (0, 0), (1, 0)),
            ("SPAN", (2, 0), (2, 1)),
            ("SPAN", (3, 0), (3, 1)),
            ("SPAN", (4, 0), (5, 0)),
        ]
        header_rows = 2
    else:
        widths = [19, 11, 100, 26, 24]
        rows.append([s.p(t, s.head) for t in ("日期", "时间", "临时医嘱", "医师签名", "执行时间")])
        spans = []
        header_rows = 1
    for line in form.lines:
        order = line.item
        assert isinstance(order, MedicalOrder)  # check_form made sure
        text = [s.p(order.text, s.body), _reference(form, line, s, with_signer=False)]
        row: list[Any] = [
            s.p(_date(form, order.start), s.cell),
            s.p(_clock(form, order.start), s.cell),
            text,
            _signer_cell(line, s),
        ]
        if long_term:
            row += [s.p(_date(form, order.stop), s.cell), s.p(_clock(form, order.stop), s.cell)]
        else:
            executed = order.executed
            row.append(
                s.p(
                    "" if executed is None else _local(form, executed).strftime("%m-%d %H:%M"),
                    s.cell,
                )
            )
        rows.append(row)
    table = s.table(rows, widths, [*_GRID, *spans], repeat_rows=header_rows)
    return _Layout(
        title="长期医嘱单" if long_term else "临时医嘱单",
        headers=(_fields(_patient_rows(form), s),),
        back_matter=(),
        story=(table,),
        indent=0,
        cursor=_SheetCursor(),
    )


_GRID: list[tuple[Any, ...]] = [
    ("GRID", (0, 0), (-1, -1), 0.6, _INK),
    ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ("LEFTPADDING", (0, 0), (-1, -1), 2.5),
    ("RIGHTPADDING", (0, 0), (-1, -1), 2.5),
    ("TOPPADDING", (0, 0), (-1, -1), 2.5),
    ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
]


# -- nursing records -----------------------------------------------------------------------


def _nursing(form: Form, s: _Styles) -> _Layout:
    p = form.patient
    admitted = p.admitted_on.strftime("%Y-%m-%d") if p.admitted_on else ""
    header = _fields(
        [
            *_patient_rows(form),
            [("入院日期", admitted, 50), ("诊断", p.diagnosis, 130)],
        ],
        s,
    )
    widths = [17, 10, 10, 10, 10, 16, 9, 14, 66, 18]
    rows: list[list[Any]] = [
        [
            s.p(t, s.head)
            for t in (
                "日期",
                "时间",
                "生命体征",
                "",
                "",
                "",
                "",
                "出入量",
                "病情观察及护理措施",
                "签名",
            )
        ],
        [
            s.p(t, s.head)
            for t in (
                "",
                "",
                "体温\n℃",
                "脉搏\n次/分",
                "呼吸\n次/分",
                "血压\nmmHg",
                "血氧\n%",
                "ml",
                "",
                "",
            )
        ],
    ]
    for line in form.lines:
        entry = line.item
        assert isinstance(entry, NursingEntry)  # check_form made sure
        balance = "\n".join(
            f"{label} {value}"
            for label, value in (("入", entry.intake), ("出", entry.output))
            if value
        )
        notes: list[Flowable] = [s.p(entry.observation, s.body)]
        if entry.measures:
            notes.append(s.p(entry.measures, s.body))
        notes.append(_reference(form, line, s, with_signer=False))
        rows.append(
            [
                s.p(_date(form, entry.time), s.cell),
                s.p(_clock(form, entry.time), s.cell),
                s.p(entry.temperature, s.cell),
                s.p(entry.pulse, s.cell),
                s.p(entry.respiration, s.cell),
                s.p(entry.blood_pressure, s.cell),
                s.p(entry.spo2, s.cell),
                s.p(balance, s.cell),
                notes,
                _signer_cell(line, s),
            ]
        )
    table = s.table(
        rows,
        widths,
        [
            *_GRID,
            ("SPAN", (0, 0), (0, 1)),
            ("SPAN", (1, 0), (1, 1)),
            ("SPAN", (2, 0), (6, 0)),
            ("SPAN", (8, 0), (8, 1)),
            ("SPAN", (9, 0), (9, 1)),
            ("LEFTPADDING", (2, 0), (7, -1), 1),
            ("RIGHTPADDING", (2, 0), (7, -1), 1),
        ],
        repeat_rows=2,
    )
    return _Layout(
        title="护理记录单",
        headers=(header,),
        back_matter=(),
        story=(table,),
        indent=0,
        cursor=_SheetCursor(),
    )


# -- pages ---------------------------------------------------------------------------------


def _height(flowable: Flowable, width: float) -> float:
    return float(flowable.wrap(width, _PAGE_HEIGHT)[1])


class _SheetCursor:
    """The prescription sheet being drawn: its pages show its number and prescribers."""

    sheet = 0


class _SheetStart(Flowable):
    """Moves the cursor when a sheet's first drug is laid out (page furniture is drawn after
    the page's body, so the page around it shows the right sheet)."""

    def __init__(self, sheet: int, cursor: _SheetCursor) -> None:
        super().__init__()
        self.sheet, self.cursor = sheet, cursor

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        return 0, 0

    def draw(self) -> None:
        self.cursor.sheet = self.sheet


class _Pages:
    """What is drawn around the body of every page: paper tint, title, patient block, Rp,
    back matter and footer; the page count comes last, when the canvas is saved."""

    def __init__(self, form: Form, layout: _Layout, s: _Styles) -> None:
        self.form, self.layout, self.s = form, layout, s
        self.frame_top = self.header_height = 0.0
        self.count = 0
        title = layout.title
        self.category = ""
        if form.kind == FormKind.PRESCRIPTION:
            self.category = _CATEGORY_LABELS[form.prescription.category]
        self.spaced_title = " ".join(title)
        self.footer = (
            f"{form.hospital} · {title} · 文档编号 {form.document_id}",
            f"共 {len(form.lines)} 条电子签名记录；签名内容与 CMS 签名附于本 PDF"
            f"（{_item_name(1, 'json')}、{_item_name(1, 'p7s')} … 及 {_MANIFEST}），"
            f"可逐条核验。时间为 {_offset(form)}，签名时间取自可信时间戳。",
        )
        # The footer's text ends left of the QR code; the page number is centred under it.
        self.text_right = _PAGE_WIDTH - _MARGIN
        if form.verification_url:
            self.text_right -= _QR_SIZE + 3 * mm
        self.number_x = (_MARGIN + self.text_right) / 2
        for text in (form.hospital, self.spaced_title, self.category, *self.footer):
            s.chars.update(text)
        s.chars.update("Rp第页共/扫码核验")

    def frame(self) -> Frame:
        """The body's frame: below the tallest patient block, above the footer (and the
        prescription's back matter). Measuring needs the fonts registered."""
        self.header_height = max(_height(h, _BODY_WIDTH) for h in self.layout.headers)
        back = max((_height(b, _BODY_WIDTH) for b in self.layout.back_matter), default=0)
        self.frame_top = _HEADER_TOP - self.header_height - 3 * mm
        bottom = _FOOTER_TOP + (back + 4 * mm if back else 2 * mm)
        return Frame(
            _MARGIN,
            bottom,
            _BODY_WIDTH,
            self.frame_top - bottom,
            leftPadding=self.layout.indent,
            rightPadding=0,
            topPadding=0,
            bottomPadding=0,
            id="body",
        )

    def background(self, canvas: Canvas, doc: Any) -> None:
        if self.form.kind == FormKind.PRESCRIPTION:
            paper = _PAPER.get(self.form.prescription.category)
            if paper is not None:
                canvas.saveState()
                canvas.setFillColor(paper)
                canvas.rect(0, 0, _PAGE_WIDTH, _PAGE_HEIGHT, stroke=0, fill=1)
                canvas.restoreState()

    def furniture(self, canvas: Canvas, doc: Any) -> None:
        form, s = self.form, self.s
        self.count += 1
        sheet = self.layout.cursor.sheet
        canvas.saveState()
        canvas.setFillColor(_INK)
        canvas.setStrokeColor(_INK)
        # Long names shrink to stay clear of the prescription's category box.
        room = _BODY_WIDTH - 48 * mm
        size = min(15.0, room / stringWidth(form.hospital, s.bold_font, 1))
        canvas.setFont(s.bold_font, size)
        canvas.drawCentredString(_PAGE_WIDTH / 2, _PAGE_HEIGHT - 17 * mm, form.hospital)
        canvas.setFont(s.bold_font, 18)
        canvas.drawCentredString(_PAGE_WIDTH / 2, _PAGE_HEIGHT - 27 * mm, self.spaced_title)
        if form.kind == FormKind.PRESCRIPTION:
            self._category_box(canvas)
        header = self.layout.headers[sheet]
        header.wrapOn(canvas, _BODY_WIDTH, self.header_height)
        header.drawOn(canvas, _MARGIN, _HEADER_TOP - self.header_height)
        rule_y = _HEADER_TOP - self.header_height - 1.5 * mm
        canvas.setLineWidth(1.2 if form.kind == FormKind.PRESCRIPTION else 0.8)
        canvas.line(_MARGIN, rule_y, _PAGE_WIDTH - _MARGIN, rule_y)
        if form.kind == FormKind.PRESCRIPTION:
            self._rp(canvas)
            self._back_matter(canvas, sheet)
        self._footer(canvas)
        canvas.restoreState()

    def _category_box(self, canvas: Canvas) -> None:
        width, height = 20 * mm, 9 * mm
        x, y = _PAGE_WIDTH - _MARGIN - width, _PAGE_HEIGHT - 12 * mm - height
        canvas.setLineWidth(1)
        canvas.rect(x, y, width, height, stroke=1, fill=0)
        canvas.setFont(self.s.bold_font, 13)
        canvas.drawCentredString(x + width / 2, y + 2.7 * mm, self.category)

    def _rp(self, canvas: Canvas) -> None:
        canvas.saveState()
        canvas.setFont(self.s.body_font, 20)
        # Rp is printed in italics on the forms; the CJK fonts have no italic, so slant it.
        canvas.translate(_MARGIN + 1 * mm, self.frame_top - 8 * mm)
        canvas.skew(0, 12)
        canvas.drawString(0, 0, "Rp")
        canvas.restoreState()

    def _back_matter(self, canvas: Canvas, sheet: int) -> None:
        back = self.layout.back_matter[sheet]
        height = _height(back, _BODY_WIDTH)
        y = _FOOTER_TOP + 2 * mm
        canvas.setLineWidth(1.2)
        canvas.line(_MARGIN, y + height + 2 * mm, _PAGE_WIDTH - _MARGIN, y + height + 2 * mm)
        back.drawOn(canvas, _MARGIN, y)

    def _footer(self, canvas: Canvas) -> None:
        s, form = self.s, self.form
        canvas.setLineWidth(0.5)
        canvas.setStrokeColor(_GREY)
        right = _PAGE_WIDTH - _MARGIN
        if form.verification_url:
            _draw_qr(canvas, form.verification_url, right - _QR_SIZE, 3 * mm, _QR_SIZE)
            canvas.setFont(s.body_font, 5.5)
            canvas.setFillColor(_GREY)
            canvas.drawCentredString(right - _QR_SIZE / 2, 1.5 * mm, "扫码核验")
        canvas.line(_MARGIN, _FOOTER_TOP - 2 * mm, self.text_right, _FOOTER_TOP - 2 * mm)
        canvas.setFillColor(_GREY)
        canvas.setFont(s.body_font, 6.5)
        first, second = self.footer
        canvas.drawString(_MARGIN, _FOOTER_TOP - 6 * mm, first)
        lines = _wrap(second, s.body_font, 6.5, self.text_right - _MARGIN)
        for number, line in enumerate(lines):
            canvas.drawString(_MARGIN, _FOOTER_TOP - (9.2 + 3 * number) * mm, line)
        canvas.setFillColor(_INK)
        canvas.setFont(s.body_font, 8.5)
        canvas.drawRightString(self.number_x, 4 * mm, f"第 {canvas.getPageNumber()} 页 / ")
        # "共 n 页" is a form XObject defined when the canvas is saved and n is known.
        canvas.doForm(_PAGE_TOTAL)

    def draw_total(self, canvas: Canvas) -> None:
        canvas.beginForm(_PAGE_TOTAL)
        canvas.setFont(self.s.body_font, 8.5)
        canvas.setFillColor(_INK)
        canvas.drawString(self.number_x, 4 * mm, f"共 {self.count} 页")
        canvas.endForm()


_PAGE_TOTAL = "pageTotal"
_QR_SIZE = 15 * mm


def _offset(form: Form) -> str:
    """The display time zone as "UTC+08:00" (at the creation time, for zones with DST)."""
    offset = form.created_at.astimezone(form.display_timezone).utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` (CJK text breaks anywhere)."""
    lines, current = [], ""
    for char in text:
        if current and stringWidth(current + char, font, size) > width:
            lines.append(current)
            current = ""
        current += char
    return [*lines, current] if current else lines


def _draw_qr(canvas: Canvas, url: str, x: float, y: float, size: float) -> None:
    """A QR code as vector squares: sharp at any zoom, and no image to embed."""
    matrix = segno.make_qr(url, error="m").matrix
    count = len(matrix)
    module = size / (count + 2)  # one module of quiet zone each side; the page is white
    path = canvas.beginPath()
    for row, bits in enumerate(matrix):
        column = 0
        while column < count:
            if not bits[column]:
                column += 1
                continue
            start = column
            while column < count and bits[column]:
                column += 1
            path.rect(
                x + (1 + start) * module,
                y + size - (2 + row) * module,
                (column - start) * module,
                module,
            )
    canvas.saveState()
    canvas.setFillColor(colors.white)
    canvas.rect(x, y, size, size, stroke=0, fill=1)
    canvas.setFillColor(colors.black)
    canvas.drawPath(path, stroke=0, fill=1)
    canvas.restoreState()


class _SealBlock(Flowable):
    """The closing statement and the square left for the hospital seal; reports where the
    square landed."""

    def __init__(self, s: _Styles, form: Form, placed: Callable[[SealArea], None]) -> None:
        super().__init__()
        self.placed = placed
        created = _when(form, form.created_at)
        self.statement = s.p(
            f"以上 {len(form.lines)} 条记录均为电子签名数据，每条注明签名人、可信时间与签名"
            "索引；签名内容与 CMS 签名作为附件嵌入本文件，可逐条离线核验。"
            f"\n文档编号 {form.document_id}　生成时间 {created}",
            s.small,
        )
        self.caption = "医院电子签章"
        s.chars.update(self.caption)
        self.font = s.body_font
        self.height = _SEAL_SIZE + 8 * mm

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:
        self.width = availWidth
        return availWidth, self.height

    def drawOn(self, canvas: Canvas, x: float, y: float, *args: Any, **kwargs: Any) -> None:
        left = x + self.width - _SEAL_SIZE
        bottom = y + 5 * mm
        self.placed(
            SealArea(
                page_index=canvas.getPageNumber() - 1,
                rect=(
                    round(left, 2),
                    round(bottom, 2),
                    round(left + _SEAL_SIZE, 2),
                    round(bottom + _SEAL_SIZE, 2),
                ),
            )
        )
        super().drawOn(canvas, x, y, *args, **kwargs)

    def draw(self) -> None:
        canvas = self.canv
        text_width = self.width - _SEAL_SIZE - 8 * mm
        _, height = self.statement.wrap(text_width, self.height)
        self.statement.drawOn(canvas, 0, self.height - 4 * mm - height)
        left, bottom = self.width - _SEAL_SIZE, 5 * mm
        canvas.saveState()
        canvas.setStrokeColor(colors.HexColor("#B0B0B0"))
        canvas.setLineWidth(0.5)
        canvas.setDash(2, 2)
        canvas.rect(left, bottom, _SEAL_SIZE, _SEAL_SIZE, stroke=1, fill=0)
        canvas.setFillColor(colors.HexColor("#9A9A9A"))
        canvas.setFont(self.font, 7)
        canvas.drawCentredString(left + _SEAL_SIZE / 2, bottom - 3.5 * mm, self.caption)
        canvas.restoreState()


# -- the PDF file: page count, attachments, dates ----------------------------------------------


def _attachments(form: Form) -> list[tuple[str, bytes, str, str]]:
    """(name, data, media type, description) of every embedded file, manifest last."""
    files: list[tuple[str, bytes, str, str]] = []
    items: list[dict[str, Any]] = []
    for index, line in enumerate(form.lines, start=1):
        sig = line.signature
        content_name, cms_name = _item_name(index, "json"), _item_name(index, "p7s")
        files.append((content_name, sig.content, "application/json", f"第 {index} 条 签名内容"))
        files.append((cms_name, sig.cms, "application/pkcs7-signature", f"第 {index} 条 CMS 签名"))
        items.append(
            {
                "index": index,
                "request_id": sig.request_id,
                "certificate_serial": sig.certificate_serial.lower(),
                "signed_at": _utc_text(sig.signed_at),
                "verification_url": sig.verification_url,
                "content": content_name,
                "content_sha256": hashlib.sha256(sig.content).hexdigest(),
                "cms": cms_name,
                "cms_sha256": sig.cms_sha256,
            }
        )
    manifest: dict[str, Any] = {
        "format": _FORMAT,
        "version": 1,
        "document_id": form.document_id,
        "kind": form.kind.value,
        "items": items,
    }
    files.append((_MANIFEST, rfc8785.dumps(manifest), "application/json", "签名数据清单"))
    return files


def _utc_text(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class _IndirectDictionary(PDFDictionary):
    # Name-tree values are file specifications by reference, as readers expect.
    __RefOnly__ = 1


def _name(media_type: str) -> str:
    return "/" + media_type.replace("/", "#2F")


def _canvas_class(
    form: Form, pages: _Pages, attachments: list[tuple[str, bytes, str, str]]
) -> type[Canvas]:
    created = form.created_at.astimezone(dt.UTC).strftime("D:%Y%m%d%H%M%S+00'00'")

    class FormCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # reportlab's invariant mode fixes the date at 2000-01-01; the form has its own.
            self.setDateFormatter(lambda *_: created)

        def save(self) -> None:
            pages.draw_total(self)
            self.setCatalogEntry("Names", _embedded_files(attachments, created))
            super().save()

    return FormCanvas


def _embedded_files(attachments: list[tuple[str, bytes, str, str]], created: str) -> PDFDictionary:
    entries: list[Any] = []
    # A name tree's keys are sorted by their bytes.
    for name, data, media_type, description in sorted(attachments, key=lambda f: f[0]):
        stream = PDFStream(
            PDFDictionary(
                {
                    "Type": PDFName("EmbeddedFile"),
                    "Subtype": _name(media_type),
                    "Params": PDFDictionary(
                        {"Size": len(data), "CreationDate": PDFString(created)}
                    ),
                }
            ),
            data,
            [PDFZCompress],
        )
        spec = _IndirectDictionary(
            {
                "Type": PDFName("Filespec"),
                "F": PDFString(name),
                "UF": PDFString(name),
                "EF": PDFDictionary({"F": stream, "UF": stream}),
                "Desc": PDFString(description),
            }
        )
        entries += [PDFString(name), spec]
    return PDFDictionary({"EmbeddedFiles": PDFDictionary({"Names": PDFArray(entries)})})


# -- reading the items back --------------------------------------------------------------------


def read_embedded_items(pdf: bytes) -> tuple[EmbeddedItem, ...]:
    """The signed items embedded in a form's PDF, in line order, each checked against the
    manifest (names, SHA-256 digests). This proves only that the files belong together: the
    CMS signatures over the contents are what a verifier checks next."""
    if len(pdf) > MAX_PDF_BYTES:
        raise FormPDFError(f"PDF of {len(pdf)} bytes, at most {MAX_PDF_BYTES}")
    try:
        files = dict(_embedded(PdfFileReader(io.BytesIO(pdf))))
    except (PdfError, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise FormPDFError(f"cannot read the PDF's embedded files: {exc}") from exc
    if _MANIFEST not in files:
        raise FormAttachmentsError("no manifest.json embedded")
    try:
        manifest = json.loads(files[_MANIFEST])
        if manifest.get("format") != _FORMAT or manifest.get("version") != 1:
            raise FormAttachmentsError("manifest.json: unknown format or version")
        entries = manifest["items"]
        if not isinstance(entries, list) or not 0 < len(entries) <= MAX_LINES:
            raise FormAttachmentsError("manifest.json: items is not a list of 1 to 500")
        return tuple(_item(files, entry, n) for n, entry in enumerate(entries, start=1))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FormAttachmentsError(f"manifest.json: malformed ({type(exc).__name__})") from exc


def _item(files: dict[str, bytes], entry: dict[str, Any], number: int) -> EmbeddedItem:
    if entry["index"] != number:
        raise FormAttachmentsError(f"manifest.json: item {number} out of order")
    data = {}
    for role in ("content", "cms"):
        name = entry[role]
        if not isinstance(name, str) or name not in files:
            raise FormAttachmentsError(f"item {number}: {role} file not embedded")
        if hashlib.sha256(files[name]).hexdigest() != entry[f"{role}_sha256"]:
            raise FormAttachmentsError(f"item {number}: {name} does not match its SHA-256")
        data[role] = files[name]
    signed_at = dt.datetime.fromisoformat(str(entry["signed_at"]).replace("Z", "+00:00"))
    return EmbeddedItem(
        index=number,
        request_id=str(entry["request_id"]),
        certificate_serial=str(entry["certificate_serial"]),
        signed_at=signed_at,
        verification_url=str(entry["verification_url"]),
        content=data["content"],
        cms=data["cms"],
    )


_MAX_FILES = 2 * MAX_LINES + 1
_MAX_FILE_BYTES = 1024 * 1024  # an item is at most 64 KiB; the manifest of 500 items less
_MAX_TREE_DEPTH = 8


def _embedded(reader: PdfFileReader) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every file in the document's EmbeddedFiles name tree."""
    root = reader.root
    if "/Names" not in root or "/EmbeddedFiles" not in root["/Names"]:
        return
    pairs = _name_tree(root["/Names"]["/EmbeddedFiles"], 0)
    for seen, (key, spec) in enumerate(pairs, start=1):
        if seen > _MAX_FILES:
            raise FormAttachmentsError(f"more than {_MAX_FILES} embedded files")
        files = spec["/EF"]
        data = (files["/UF"] if "/UF" in files else files["/F"]).data
        if len(data) > _MAX_FILE_BYTES:
            raise FormAttachmentsError(f"embedded file {key!r} is too large")
        yield key, bytes(data)


def _name_tree(node: Any, depth: int) -> Iterator[tuple[str, Any]]:
    """The (key, value) pairs of a PDF name tree, leaves in order."""
    if depth > _MAX_TREE_DEPTH:
        raise FormAttachmentsError("embedded files name tree too deep")
    if "/Names" in node:
        pairs = node["/Names"]
        for i in range(0, len(pairs) - 1, 2):
            key = pairs[i]
            if isinstance(key, pdf_generic.TextStringObject):
                name = str(key)
            else:
                name = bytes(key.original_bytes).decode("latin-1")
            yield name, pairs[i + 1]
    if "/Kids" in node:
        for kid in node["/Kids"]:
            yield from _name_tree(kid.get_object(), depth + 1)
