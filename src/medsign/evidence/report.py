"""Evidence reports: the evidence package of a signed request, as a PDF a person can read.

The report is rendered from the package itself (``build_package``, then its files) and from
``verify_package``'s offline result, so it states what the package proves and no more. Only
the real-name enrolment and the certificate profile come from the server's records (they are
not in the package), and the report says so. The footer of every page carries the SHA-256 of
the package the report was rendered from; ``render_report_and_package`` returns both so the
two can be kept together.

Labels are bilingual, Chinese first, in Noto Sans CJK cut down to the report's characters
and embedded (``medsign.fonts``; without a CJK font, the reader's STSong-Light).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import segno
from asn1crypto import cms as asn1_cms
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from sqlalchemy import select

from medsign.clock import ensure_utc
from medsign.db.tables import EnrolmentRow, SignRequestRow
from medsign.errors import NotFoundError
from medsign.evidence.events import list_events
from medsign.evidence.notes import Checkpoint, parse_note
from medsign.evidence.package import PackageReport, PackageSources, build_package, verify_package
from medsign.fonts import CJKFont, Face, cjk_font, embedded_fonts, mono_font
from medsign.intake.scenes import BUILT_IN_SCENES, VOID_SCENE
from medsign.verify.chain import parse_certificate
from medsign.verify.report import Indication

MEDIA_TYPE = "application/pdf"

# Always in the cut-down font: what the page footer draws.
_BASE_CHARS = "第页证据报告包·：，（）—…"
_INDICATION_LABELS = {
    Indication.PASSED: "通过 PASSED",
    Indication.FAILED: "未通过 FAILED",
    Indication.INDETERMINATE: "无法确定 INDETERMINATE",
}
_METHOD_LABELS = {
    "pin": "签名口令 PIN",
    "sms": "短信验证码 SMS code",
    "passkey": "通行密钥 Passkey",
}
_KEY_LOCATIONS = {
    "server": "服务器密钥库 server key store",
    "device": "签名人手机 the signer's phone",
}
_ENROLMENT_STEPS = {
    "enrolment:create": "开始实名登记 enrolment opened",
    "enrolment:send-code": "发送短信验证码 SMS code sent",
    "enrolment:verify-code": "手机号验证通过 phone number verified (SMS code)",
    "enrolment:confirm-identity": "身份证号核验通过 national ID number confirmed",
    "enrolment:complete": "证书签发，登记完成 certificate issued, enrolment complete",
}
_SCENES = {s.code: s for s in (*BUILT_IN_SCENES, VOID_SCENE)}


def report_font() -> CJKFont:
    """The report's CJK font (Noto Sans CJK SC when installed)."""
    return cjk_font(Face.SANS)


# -- gathering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Enrolment:
    id: str
    key_algorithm: str
    key_location: str
    created_at: dt.datetime
    completed_at: dt.datetime | None
    steps: tuple[tuple[str, str], ...]  # (time, event type)


@dataclass(frozen=True)
class _Server:
    """What the report takes from the server's records rather than the package."""

    certificate_profile: str
    enrolment: _Enrolment | None


def _server_records(sources: PackageSources, request_id: str) -> _Server:
    with sources.database.session() as session:
        row = session.get(SignRequestRow, request_id)
        if row is None or row.certificate_id is None:
            raise NotFoundError(f"no signed request {request_id}")
        certificate_id = row.certificate_id
        enrolment = session.scalars(
            select(EnrolmentRow)
            .where(EnrolmentRow.certificate_id == certificate_id)
            .order_by(EnrolmentRow.created_at.desc())
            .limit(1)
        ).first()
        found = (
            None
            if enrolment is None
            else (
                enrolment.id,
                enrolment.key_algorithm,
                enrolment.key_location,
                ensure_utc(enrolment.created_at),
                ensure_utc(enrolment.completed_at) if enrolment.completed_at else None,
            )
        )
    profile = sources.authority.get_by_id(certificate_id).profile
    if found is None:
        return _Server(profile, None)
    events = list_events(sources.database, subject=found[0], limit=100)
    steps = tuple((_time(e.at), e.type) for e in events if e.type.startswith("enrolment:"))
    return _Server(profile, _Enrolment(*found, steps=steps))


@dataclass(frozen=True)
class _Package:
    files: dict[str, bytes]
    manifest: dict[str, Any]
    request: dict[str, Any]
    intent: dict[str, Any]
    events: list[tuple[int, dict[str, Any]]]
    checkpoint: Checkpoint | None


def _read_package(data: bytes) -> _Package:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    trail = json.loads(files["log/events.json"])
    events = [(int(e["leaf_index"]), json.loads(e["record"])) for e in trail["events"]]
    try:
        checkpoint: Checkpoint | None = Checkpoint.parse(
            parse_note(files["log/checkpoint.txt"]).text
        )
    except ValueError:
        checkpoint = None
    return _Package(
        files=files,
        manifest=json.loads(files["manifest.json"]),
        request=json.loads(files["request.json"]),
        intent=json.loads(files["intent.json"]),
        events=events,
        checkpoint=checkpoint,
    )


def _timestamp_time(token: bytes) -> str:
    content = asn1_cms.ContentInfo.load(token)["content"]
    info = content["encap_content_info"]["content"].parsed
    return _time(info["gen_time"].native)


# -- rendering ---------------------------------------------------------------------------------


def _time(value: dt.datetime | str | None) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    utc = ensure_utc(value)
    beijing = utc.astimezone(dt.timezone(dt.timedelta(hours=8)))
    return (
        f"{utc.strftime('%Y-%m-%d %H:%M:%S')} UTC ({beijing.strftime('%Y-%m-%d %H:%M:%S')} UTC+8)"
    )


class _Styles:
    """Paragraph styles; every text set through ``p`` is remembered, so the embedded font
    can be cut down to exactly the characters the report uses."""

    def __init__(self, font: str, mono: str) -> None:
        self.chars: set[str] = set()
        base = ParagraphStyle(
            "body", fontName=font, fontSize=9, leading=12.5, alignment=TA_LEFT, wordWrap="CJK"
        )
        self.body = base
        self.small = ParagraphStyle("small", parent=base, fontSize=7.5, leading=10)
        self.mono = ParagraphStyle("mono", parent=base, fontName=mono, fontSize=8, leading=10.5)
        self.title = ParagraphStyle("title", parent=base, fontSize=17, leading=23, spaceAfter=2)
        self.subtitle = ParagraphStyle(
            "subtitle", parent=base, fontSize=9, leading=12, textColor=colors.HexColor("#555555")
        )
        self.heading = ParagraphStyle(
            "heading",
            parent=base,
            fontSize=12,
            leading=16,
            spaceBefore=10,
            spaceAfter=4,
            textColor=colors.HexColor("#1F3A5F"),
        )
        self.verdict = ParagraphStyle("verdict", parent=base, fontSize=13, leading=18)

    def p(self, text: str, style: ParagraphStyle) -> Paragraph:
        self.chars.update(text)
        return Paragraph(escape(text).replace("\n", "<br/>"), style)


def _fields(
    rows: Sequence[tuple[str, str]],
    s: _Styles,
    *,
    mono: Sequence[int] = (),
    widths: tuple[float, float] = (52, 122),
) -> Table:
    data = [
        [s.p(label, s.body), s.p(value, s.mono if i in mono else s.body)]
        for i, (label, value) in enumerate(rows)
    ]
    table = Table(data, colWidths=[widths[0] * mm, widths[1] * mm])
    table.setStyle(_GRID)
    return table


def _grid(
    header: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float], s: _Styles
) -> Table:
    data = [[s.p(h, s.small) for h in header]]
    data += [[s.p(cell, s.small) for cell in row] for row in rows]
    table = Table(data, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(
        TableStyle(
            [*_GRID.getCommands(), ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#E8EEF5"))]
        )
    )
    return table


_GRID = TableStyle(
    [
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#9AA5B1")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 4),
        ("RIGHTPADDING", (0, 0), (-1, -1), 4),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
    ]
)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _qr_image(url: str) -> Image:
    buffer = io.BytesIO()
    segno.make_qr(url, error="m").save(buffer, kind="png", scale=6, border=2)
    buffer.seek(0)
    return Image(buffer, width=34 * mm, height=34 * mm)


def _summary(
    package: _Package, report: PackageReport, url: str, signer: str, s: _Styles
) -> Flowable:
    request = package.request
    scene = _SCENES.get(str(request["scene"]))
    scene_label = f"{scene.label_zh} {scene.label_en}" if scene else str(request["scene"])
    verdict = _INDICATION_LABELS[report.indication]
    if report.sub_indication is not None:
        verdict += f" ({report.sub_indication.value})"
    left = [
        s.p(f"离线验证结果 Offline verification result: {verdict}", s.verdict),
        Spacer(1, 3),
        _fields(
            [
                ("签名人 Signer", signer),
                ("签名事项 Scene", scene_label),
                (
                    "可信时间 Trusted time (timestamp)",
                    _timestamp_time(package.files["timestamp.tsr"]),
                ),
                ("签名请求 Request", str(request["request_id"])),
            ],
            s,
            widths=(40, 86),
        ),
    ]
    right = [
        _qr_image(url),
        s.p("扫码在线验证 Scan to verify online:", s.small),
        s.p(url, ParagraphStyle("url", parent=s.mono, fontSize=6.5, leading=8)),
    ]
    table = Table([[left, right]], colWidths=[130 * mm, 44 * mm])
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("LEFTPADDING", (1, 0), (1, 0), 6),
            ]
        )
    )
    return table


def _certificate_rows(der: bytes, profile: str | None) -> list[tuple[str, str]]:
    cert = parse_certificate(der)
    validity = cert["tbs_certificate"]["validity"]
    rows = [
        ("主体 Subject", cert.subject.human_friendly),
        ("序列号 Serial number", format(cert.serial_number, "x")),
        ("颁发者 Issuer", cert.issuer.human_friendly),
        ("生效 Not before", _time(validity["not_before"].native)),
        ("失效 Not after", _time(validity["not_after"].native)),
        ("公钥算法 Key algorithm", str(cert.public_key.algorithm).upper()),
        ("SHA-256 指纹 Fingerprint", _sha256(der)),
    ]
    if profile is not None:
        rows.insert(5, ("证书模板 Profile", profile))
    return rows


def _subject_field(der: bytes, name: str) -> str:
    value = parse_certificate(der).subject.native.get(name, "")
    return str(value[0] if isinstance(value, list) else value)


def _story(
    package: _Package,
    report: PackageReport,
    server: _Server,
    url: str,
    package_sha256: str,
    generated_at: dt.datetime,
    font: CJKFont,
    s: _Styles,
) -> list[Flowable]:
    request, intent, files = package.request, package.intent, package.files
    signer_der = files["chain/00.der"]
    name = _subject_field(signer_der, "common_name")
    employee_no = _subject_field(signer_der, "serial_number")
    signer = f"{name}（工号 employee no. {employee_no}）" if employee_no else name
    story: list[Flowable] = [
        s.p("电子签名证据报告", s.title),
        s.p("Electronic Signature Evidence Report", s.heading),
        s.p(
            f"生成时间 Generated: {_time(generated_at)}　·　证据包 Evidence package SHA-256:"
            f" {package_sha256}",
            s.subtitle,
        ),
        Spacer(1, 6),
        _summary(package, report, url, signer, s),
    ]

    story += [s.p("一、签名事项 What was signed", s.heading)]
    scene = _SCENES.get(str(request["scene"]))
    story.append(
        _fields(
            [
                ("请求编号 Request ID", str(request["request_id"])),
                ("业务系统 Application ID", str(request["application_id"])),
                ("类型 Kind", str(request["kind"])),
                (
                    "签名事项 Scene",
                    f"{scene.label_zh} {scene.label_en} ({scene.code})"
                    if scene
                    else str(request["scene"]),
                ),
                ("记录号 SHA-256 Record ID SHA-256", str(request["record_id_sha256"])),
                ("内容形式 Content", str(request["content_kind"])),
                (
                    f"内容摘要 Content digest ({request['digest_algorithm']})",
                    str(request["digest"]),
                ),
                ("签名算法 Signature scheme", str(request["signature_scheme"])),
                ("签名时间 Signed at (server)", _time(request.get("signed_at"))),
                ("时间戳时间 Timestamp time", _time(request.get("timestamp_time"))),
            ],
            s,
            mono=(4, 6),
        )
    )

    story += [s.p("二、签名人与实名核验 Signer and real-name verification", s.heading)]
    cert = parse_certificate(signer_der).subject.native
    story.append(
        _fields(
            [
                ("姓名 Name", name),
                ("工号 Employee no.", employee_no or "—"),
                ("机构 Organization", str(cert.get("organization_name", "—"))),
                ("科室 Department", str(cert.get("organizational_unit_name", "—"))),
                ("职称 Title", str(cert.get("title", "—"))),
            ],
            s,
        )
    )
    enrolment = server.enrolment
    if enrolment is None:
        story.append(
            s.p("未找到该证书的实名登记记录。No enrolment record for this certificate.", s.body)
        )
    else:
        story.append(Spacer(1, 4))
        story.append(
            _fields(
                [
                    ("登记编号 Enrolment ID", enrolment.id),
                    ("开始 Started", _time(enrolment.created_at)),
                    ("完成 Completed", _time(enrolment.completed_at)),
                    ("密钥算法 Key algorithm", enrolment.key_algorithm),
                    (
                        "密钥位置 Key held by",
                        _KEY_LOCATIONS.get(enrolment.key_location, enrolment.key_location),
                    ),
                ],
                s,
            )
        )
        if enrolment.steps:
            story.append(Spacer(1, 4))
            story.append(
                _grid(
                    ["时间 Time", "步骤 Step", "事件 Event"],
                    [(at, _ENROLMENT_STEPS.get(t, t), t) for at, t in enrolment.steps],
                    [58, 76, 40],
                    s,
                )
            )
        story.append(
            s.p(
                "实名登记信息取自服务器记录（不在证据包内），其事件同样记入证据日志。"
                " Enrolment details come from the server's records (not in the evidence"
                " package); its events are in the same evidence log.",
                s.small,
            )
        )

    story += [s.p("三、签名意愿 Intention to sign", s.heading)]
    method = str(intent.get("method"))
    story.append(
        _fields(
            [
                ("意愿编号 Challenge ID", str(intent.get("challenge_id"))),
                ("核验方式 Method", _METHOD_LABELS.get(method, method)),
                ("发起 Created", _time(intent.get("created_at"))),
                ("确认 Confirmed", _time(intent.get("confirmed_at"))),
                ("使用 Consumed", _time(intent.get("consumed_at"))),
                ("签名请求 Requests covered", ", ".join(intent.get("request_ids", []))),
            ],
            s,
        )
    )
    attempts = intent.get("attempts") or []
    if attempts:
        story.append(Spacer(1, 4))
        story.append(
            _grid(
                ["时间 Time", "方式 Method", "结果 Outcome", "终端 Client"],
                [
                    (
                        _time(a.get("at")),
                        _METHOD_LABELS.get(str(a.get("method")), str(a.get("method"))),
                        str(a.get("outcome")),
                        str(a.get("client") or "—"),
                    )
                    for a in attempts
                ],
                [58, 34, 26, 56],
                s,
            )
        )
    story.append(
        s.p(
            "只记录方式、结果与终端标识，口令与验证码从不保存。"
            " Only the method, outcome and client label are kept; PINs and codes never are.",
            s.small,
        )
    )

    story += [s.p("四、证书 Certificates", s.heading)]
    story.append(s.p("签名证书 Signer certificate", s.body))
    story.append(_fields(_certificate_rows(signer_der, server.certificate_profile), s, mono=(1, 7)))
    tsa = sorted(p for p in files if p.startswith("tsa/"))
    if tsa:
        story.append(Spacer(1, 4))
        story.append(s.p("时间戳服务证书 Timestamp authority certificate", s.body))
        story.append(_fields(_certificate_rows(files[tsa[0]], None), s, mono=(1, 6)))
    chain = sorted(p for p in files if p.startswith("chain/"))
    story.append(Spacer(1, 4))
    story.append(
        _grid(
            ["证书链 Chain", "主体 Subject", "序列号 Serial"],
            [
                (
                    path,
                    parse_certificate(files[path]).subject.human_friendly,
                    format(parse_certificate(files[path]).serial_number, "x"),
                )
                for path in chain
            ],
            [22, 100, 52],
            s,
        )
    )

    story += [s.p("五、证据事件时间线 Timeline of evidence events", s.heading)]
    story.append(
        _grid(
            ["叶序号 Leaf index", "时间 Time", "类型 Type", "事件编号 Event ID"],
            [
                (str(i), _time(e.get("at")), str(e.get("type")), str(e.get("id")))
                for i, e in package.events
            ],
            [20, 62, 40, 52],
            s,
        )
    )

    story += [s.p("六、哈希值 Hash values", s.heading)]
    checkpoint = package.checkpoint
    hashes = [
        (f"内容摘要 Content digest ({request['digest_algorithm']})", str(request["digest"])),
        ("原始签名 SHA-256 Raw signature", _sha256(files["signature.raw"])),
        ("CMS 签名 SHA-256 CMS signature", _sha256(files["signature.p7s"])),
        ("时间戳 SHA-256 Timestamp token", _sha256(files["timestamp.tsr"])),
        ("日志 Log origin", checkpoint.origin if checkpoint else "—"),
        ("检查点大小 Checkpoint size", str(checkpoint.size) if checkpoint else "—"),
        (
            "检查点根哈希 Checkpoint root hash (hex)",
            checkpoint.root_hash.hex() if checkpoint else "—",
        ),
        (
            "根哈希 Root hash (base64)",
            base64.b64encode(checkpoint.root_hash).decode() if checkpoint else "—",
        ),
        ("证据包 SHA-256 Evidence package", package_sha256),
    ]
    story.append(_fields(hashes, s, mono=(0, 1, 2, 3, 6, 7, 8)))

    story += [s.p("七、离线验证 Offline verification of the evidence package", s.heading)]
    story.append(
        s.p(
            f"结果 Result: {_INDICATION_LABELS[report.indication]}"
            + (f" ({report.sub_indication.value})" if report.sub_indication else "")
            + "　以证据包自带的根证书为信任锚，不需服务器或网络。"
            " Checked with the package's own root certificates as trust anchors, offline.",
            s.body,
        )
    )
    story.append(Spacer(1, 3))
    story.append(
        _grid(
            ["检查 Check", "结果 Result", "说明 Detail"],
            [
                (
                    c.name,
                    _INDICATION_LABELS[c.indication]
                    + (f" {c.sub_indication.value}" if c.sub_indication else ""),
                    c.message,
                )
                for c in report.checks
            ],
            [36, 30, 108],
            s,
        )
    )
    for note in report.notes:
        story.append(s.p(f"注 Note: {note}", s.small))

    story += [s.p("八、证据包文件 Files of the evidence package", s.heading)]
    story.append(
        _grid(
            ["文件 File", "用途 Role", "字节 Bytes", "SHA-256"],
            [
                (str(f["path"]), str(f["role"]), str(f["size"]), str(f["sha256"]))
                for f in package.manifest["files"]
            ],
            [32, 52, 16, 74],
            s,
        )
    )
    story.append(Spacer(1, 6))
    story.append(
        KeepTogether(
            [
                s.p(
                    "如何核验 How to check: 用 `medsign verify evidence.zip` 离线核验证据包，并比对"
                    "其 SHA-256 与本报告页脚一致；或扫描首页二维码在线验证。"
                    " Verify the evidence package offline with `medsign verify evidence.zip` and"
                    " compare its SHA-256 with the footer of this report, or scan the QR code on"
                    " page 1.",
                    s.small,
                ),
                s.p(
                    f"字体 Font: {font.describe()}",
                    s.small,
                ),
            ]
        )
    )
    return story


def _numbered_canvas(footer: Sequence[str], font: str) -> type[Canvas]:
    class NumberedCanvas(Canvas):
        """Draws "page N / M" and the footer once the page count is known."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "initialFontName": font})
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()  # type: ignore[attr-defined]  # what showPage does after

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self._footer(total)
                super().showPage()
            super().save()

        def _footer(self, total: int) -> None:
            width, _ = A4
            self.saveState()
            self.setStrokeColor(colors.HexColor("#9AA5B1"))
            self.line(18 * mm, 16 * mm, width - 18 * mm, 16 * mm)
            self.setFont(font, 7)
            self.setFillColor(colors.HexColor("#555555"))
            for line, text in enumerate(footer):
                self.drawString(18 * mm, (12 - 3.5 * line) * mm, text)
            self.drawRightString(
                width - 18 * mm,
                12 * mm,
                f"第 {self.getPageNumber()} / {total} 页 Page {self.getPageNumber()} of {total}",
            )
            self.restoreState()

    return NumberedCanvas


def render_report_and_package(
    sources: PackageSources,
    request_id: str,
    *,
    verification_url: str,
    application_id: str | None = None,
) -> tuple[bytes, bytes]:
    """(PDF, the evidence package it was rendered from)."""
    package_bytes = build_package(sources, request_id, application_id=application_id)
    package = _read_package(package_bytes)
    report = verify_package(package_bytes, clock=sources.clock)
    server = _server_records(sources, request_id)
    package_sha256 = _sha256(package_bytes)
    font = report_font()
    styles = _Styles(font.name, mono_font())
    footer = (
        f"medsign 证据报告 Evidence report · {request_id}",
        f"证据包 Evidence package SHA-256: {package_sha256}",
    )
    story = _story(
        package, report, server, verification_url, package_sha256, sources.clock.now(), font, styles
    )
    title = f"电子签名证据报告 Evidence report {request_id}"
    for text in (*footer, title):
        styles.chars.update(text)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=22 * mm,
        title=title,
        author="medsign",
        subject=f"evidence package SHA-256 {package_sha256}",
        invariant=True,
    )
    with embedded_fonts((*styles.chars, _BASE_CHARS), font):
        doc.build(story, canvasmaker=_numbered_canvas(footer, font.name))
    return buffer.getvalue(), package_bytes


def render_report(
    sources: PackageSources,
    request_id: str,
    *,
    verification_url: str,
    application_id: str | None = None,
) -> bytes:
    """The evidence report of a signed request, as PDF bytes.

    ``verification_url`` is what the QR code opens (``medsign.web.verify.verification_link``;
    passed in so this module stays free of the web layer). ``application_id`` scopes the
    lookup to one application's requests, as for ``build_package``. A request that is not
    signed raises ``PackageNotReadyError``."""
    return render_report_and_package(
        sources, request_id, verification_url=verification_url, application_id=application_id
    )[0]


__all__ = [
    "MEDIA_TYPE",
    "render_report",
    "render_report_and_package",
    "report_font",
]
