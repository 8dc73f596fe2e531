"""Finding "医师签名：" in PDFs and placing a signature box next to it.

Every PDF is made here: with reportlab (the built-in CID font STSong-Light, and an embedded
TrueType font built with fontTools so no font file is needed), or written out by hand when a
test needs a MediaBox offset, a CropBox or a text matrix reportlab does not make.
"""

from __future__ import annotations

import io
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen
from reportlab.lib.pdfencrypt import StandardEncryption
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from medsign.documents import placement
from medsign.documents.errors import (
    PdfEncryptedError,
    PdfTooLargeError,
    PdfUnreadableError,
    PlacementError,
)
from medsign.documents.placement import (
    Anchor,
    AnchorNotFoundError,
    box_after_anchor,
    find_anchor,
    signature_box,
)
from medsign.errors import InputError, MedsignError

LABEL = "医师签名："
CID = "STSong-Light"
TTF = "MedsignTestBox"
A4 = (595.2756, 841.8898)


# --- PDF makers -------------------------------------------------------------------------------


def _box_font(chars: str) -> bytes:
    """A TrueType font whose every glyph is a box, one em wide (1000 units)."""
    names = [".notdef", *(f"uni{ord(char):04X}" for char in chars)]
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder(names)
    builder.setupCharacterMap({ord(char): f"uni{ord(char):04X}" for char in chars})
    glyphs = {}
    for name in names:
        pen = TTGlyphPen(None)
        pen.moveTo((100, -80))
        pen.lineTo((100, 780))
        pen.lineTo((900, 780))
        pen.lineTo((900, -80))
        pen.closePath()
        glyphs[name] = pen.glyph()
    builder.setupGlyf(glyphs)
    builder.setupHorizontalMetrics({name: (1000, 100) for name in names})
    builder.setupHorizontalHeader(ascent=880, descent=-120)
    builder.setupNameTable({"familyName": TTF, "styleName": "Regular"})
    builder.setupOS2(
        sTypoAscender=880, sTypoDescender=-120, usWinAscent=880, usWinDescent=120, fsType=0
    )
    builder.setupPost()
    out = io.BytesIO()
    builder.save(out)
    return out.getvalue()


@pytest.fixture(scope="module", autouse=True)
def _fonts() -> None:
    pdfmetrics.registerFont(UnicodeCIDFont(CID))
    pdfmetrics.registerFont(TTFont(TTF, io.BytesIO(_box_font("医师护士签名日期：:"))))


def _pdf(*pages: Callable[[Canvas], None], encrypt: StandardEncryption | None = None) -> bytes:
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, encrypt=encrypt)
    for draw in pages:
        draw(canvas)
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def _text(
    x: float, y: float, text: str, font: str = CID, size: float = 12
) -> Callable[[Canvas], None]:
    def draw(canvas: Canvas) -> None:
        canvas.setFont(font, size)
        canvas.drawString(x, y, text)

    return draw


def _all(*draws: Callable[[Canvas], None]) -> Callable[[Canvas], None]:
    def draw(canvas: Canvas) -> None:
        for one in draws:
            one(canvas)

    return draw


@dataclass(frozen=True)
class RawPage:
    content: bytes
    media: tuple[float, float, float, float] = (0, 0, 612, 792)
    crop: tuple[float, float, float, float] | None = None
    rotate: int = 0
    compress: bool = False


def _raw_pdf(pages: Sequence[RawPage], *, to_unicode: bytes | None = None) -> bytes:
    """A PDF written byte by byte: Helvetica as /F1 (with ``to_unicode``, deflated, as its
    /ToUnicode), whatever boxes and rotation we like."""
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding"
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # the page tree, once the page numbers are known
        font + (b" /ToUnicode 4 0 R >>" if to_unicode is not None else b" >>"),
    ]
    if to_unicode is not None:
        data = zlib.compress(to_unicode)
        objects.append(
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(data), data)
        )
    kids = []
    for page in pages:
        data = zlib.compress(page.content) if page.compress else page.content
        flate = b" /Filter /FlateDecode" if page.compress else b""
        objects.append(b"<< /Length %d%s >>\nstream\n%s\nendstream" % (len(data), flate, data))
        content_number = len(objects)
        entries = b"/MediaBox [%s]" % " ".join(f"{v:g}" for v in page.media).encode()
        if page.crop is not None:
            entries += b" /CropBox [%s]" % " ".join(f"{v:g}" for v in page.crop).encode()
        objects.append(
            b"<< /Type /Page /Parent 2 0 R %s /Rotate %d "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
            % (entries, page.rotate, content_number)
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _near(actual: float, expected: float, tolerance: float = 0.5) -> bool:
    return abs(actual - expected) <= tolerance


# --- finding the anchor -----------------------------------------------------------------------


def test_cid_font_label_is_found_where_it_was_drawn() -> None:
    pdf = _pdf(_text(100, 200, LABEL))

    anchor = find_anchor(pdf, LABEL)

    assert anchor.page == 0
    assert anchor.occurrence == 1
    assert anchor.rotation == 0 and anchor.direction == 0
    x1, y1, x2, y2 = anchor.box
    assert _near(x1, 100) and _near(x2, 100 + 5 * 12)  # five full-width glyphs at 12 pt
    assert y1 < 200 < y2 and 10 <= y2 - y1 <= 14
    assert anchor.page_box == pytest.approx((0, 0, *A4), abs=0.01)


def test_embedded_truetype_label_is_found_where_it_was_drawn() -> None:
    pdf = _pdf(_text(72, 500, LABEL, font=TTF, size=14))

    x1, y1, x2, y2 = find_anchor(pdf, LABEL).box

    assert _near(x1, 72) and _near(x2, 72 + 5 * 14)
    assert y1 < 500 < y2 and 12 <= y2 - y1 <= 16


def test_label_split_over_text_show_operators_fonts_and_text_objects() -> None:
    def pieces(canvas: Canvas) -> None:
        text = canvas.beginText(100, 600)
        text.setFont(CID, 12)
        text.textOut("医")
        text.setFont(TTF, 12)
        text.textOut("师")
        text.setCharSpace(1.5)
        text.setFont(CID, 12)
        text.textOut("签名")
        canvas.drawText(text)
        # The colon in a text object of its own, drawn before nothing else on that line.
        canvas.setFont(TTF, 12)
        canvas.drawString(100 + 2 * 12 + 2 * 12 + 3 * 1.5, 600, "：")

    def backwards(canvas: Canvas) -> None:
        # Drawn right half first: reading order, not drawing order, makes the string.
        canvas.setFont(CID, 12)
        canvas.drawString(124, 300, "签名：")
        canvas.drawString(100, 300, "医师")

    pdf = _pdf(pieces, backwards)

    first = find_anchor(pdf, LABEL)
    second = find_anchor(pdf, LABEL, occurrence=2)

    assert first.page == 0 and _near(first.box[0], 100) and first.box[2] > 150
    assert second.page == 1 and _near(second.box[0], 100) and _near(second.box[2], 160)


def test_matching_ignores_white_space_and_full_width_forms() -> None:
    pdf = _pdf(_text(100, 200, "医 师  签 名 ："))

    spaced = find_anchor(pdf, LABEL)
    ascii_colon = find_anchor(pdf, "医师签名:")
    typed_with_spaces = find_anchor(pdf, " 医师 签名 ")

    assert spaced.box == ascii_colon.box
    assert typed_with_spaces.box[0] == spaced.box[0]
    assert typed_with_spaces.box[2] < spaced.box[2]


def test_occurrences_count_in_reading_order() -> None:
    page_one = _all(
        _text(100, 300, LABEL),  # drawn first, but lower on the page
        _text(350, 700, LABEL),  # same row as the next one, to its right
        _text(50, 700, LABEL),
    )
    pdf = _pdf(page_one, _text(100, 400, LABEL))

    found = [find_anchor(pdf, LABEL, occurrence=n) for n in (1, 2, 3, 4)]

    assert [(a.page, round(a.box[0]), round(a.box[1] + 3)) for a in found] == [
        (0, 50, 700),
        (0, 350, 700),
        (0, 100, 300),
        (1, 100, 400),
    ]
    assert [a.occurrence for a in found] == [1, 2, 3, 4]
    on_page_two = find_anchor(pdf, LABEL, page=1)
    assert on_page_two.page == 1 and on_page_two.occurrence == 1


def test_other_labels_and_columns_are_not_matched() -> None:
    pdf = _pdf(
        _all(
            _text(50, 500, "护士签名："),
            # "医师" and "签名：" on one line but far apart: two columns, not one label.
            _text(50, 400, "医师"),
            _text(400, 400, "签名："),
        )
    )

    with pytest.raises(AnchorNotFoundError) as caught:
        find_anchor(pdf, LABEL)

    assert caught.value.code == "anchor-not-found"
    assert LABEL in caught.value.public_message()
    assert isinstance(caught.value, InputError)


def test_missing_occurrence_says_how_many_there_are() -> None:
    pdf = _pdf(_text(100, 200, LABEL))

    with pytest.raises(AnchorNotFoundError, match="found 1 time"):
        find_anchor(pdf, LABEL, occurrence=2)


def test_search_is_bounded_to_max_pages() -> None:
    pdf = _pdf(_text(100, 200, "日期："), _text(100, 200, LABEL))

    assert find_anchor(pdf, LABEL).page == 1
    with pytest.raises(AnchorNotFoundError, match="first 1 pages"):
        find_anchor(pdf, LABEL, max_pages=1)


def test_page_that_does_not_exist_and_bad_arguments() -> None:
    pdf = _pdf(_text(100, 200, LABEL))

    for call in (
        lambda: find_anchor(pdf, LABEL, page=1),
        lambda: find_anchor(pdf, LABEL, page=-1),
        lambda: find_anchor(pdf, LABEL, occurrence=0),
        lambda: find_anchor(pdf, "   "),
        lambda: find_anchor(pdf, "x" * 201),
    ):
        with pytest.raises(PlacementError):
            call()


# --- rotation, offsets and boxes --------------------------------------------------------------


def test_rotated_page_reports_user_space() -> None:
    def rotated(canvas: Canvas) -> None:
        canvas.setPageRotation(90)
        _text(300, 500, LABEL)(canvas)

    pdf = _pdf(_text(100, 100, "日期："), rotated)

    anchor = find_anchor(pdf, LABEL)

    assert anchor.page == 1 and anchor.rotation == 90 and anchor.direction == 0
    assert _near(anchor.box[0], 300) and _near(anchor.box[2], 360)
    box = box_after_anchor(anchor, 120, 40)
    assert _near(box[0], 364) and _near(box[2], 484)
    assert _near((box[1] + box[3]) / 2, (anchor.box[1] + anchor.box[3]) / 2)


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_mediabox_offset_cropbox_and_rotation(rotate: int) -> None:
    page = RawPage(
        content=b"BT /F1 12 Tf 200 300 Td (Sig) Tj (nature:) Tj ET",
        media=(50, 100, 662, 892),
        crop=(60, 110, 600, 800),
        rotate=rotate,
    )
    pdf = _raw_pdf([page])

    anchor = find_anchor(pdf, "Signature:")

    assert anchor.rotation == rotate and anchor.direction == 0
    assert anchor.page_box == (60, 110, 600, 800)
    x1, y1, x2, y2 = anchor.box
    width = pdfmetrics.stringWidth("Signature:", "Helvetica", 12)
    assert _near(x1, 200) and _near(x2, 200 + width)
    assert y1 < 300 < y2


def test_text_set_upright_on_a_rotated_page_gets_its_box_along_the_text() -> None:
    # /Rotate 90 turns the page clockwise for display; text drawn along +y (Tm rotated 90°
    # counter-clockwise) then reads left to right on screen, as landscape forms do.
    page = RawPage(
        content=b"BT /F1 12 Tf 0 1 -1 0 300 200 Tm (Signature:) Tj ET",
        rotate=90,
    )
    pdf = _raw_pdf([page])

    anchor = find_anchor(pdf, "Signature:")

    assert anchor.direction == 90
    x1, y1, x2, y2 = anchor.box
    width = pdfmetrics.stringWidth("Signature:", "Helvetica", 12)
    assert _near(y1, 200) and _near(y2, 200 + width)
    assert x1 < 300 < x2  # the glyphs stand on x = 300, ascenders towards -x
    right = signature_box(anchor, 100, 30, gap=5)
    assert _near(right[1], y2 + 5) and _near(right[3], y2 + 105)
    assert _near((right[0] + right[2]) / 2, (x1 + x2) / 2) and _near(right[2] - right[0], 30)
    below = signature_box(anchor, 100, 30, position="below", gap=5)
    # Below the text, as read, is +x in user space on this page.
    assert _near(below[0], x2 + 5) and _near(below[2], x2 + 35)
    assert _near(below[1], y1) and _near(below[3], y1 + 100)


def test_box_below_and_clipping_to_the_visible_page() -> None:
    page = RawPage(
        content=b"BT /F1 12 Tf 500 130 Td (Signature:) Tj ET",
        media=(50, 100, 662, 892),
        crop=(60, 110, 600, 800),
    )
    anchor = find_anchor(_raw_pdf([page]), "Signature:")

    right = box_after_anchor(anchor, 200, 60)
    assert right[2] == 600  # the CropBox's right edge, not the MediaBox's
    assert right[1] == 110  # the box centred on the text would hang below the CropBox
    below = signature_box(anchor, 80, 40, position="below", gap=2)
    assert below == pytest.approx((500, 110, 580, anchor.box[1] - 2))
    narrower = box_after_anchor(anchor, 50, 20, page_box=(50, 100, 590, 892))
    assert narrower[2] <= 590

    with pytest.raises(PlacementError):
        signature_box(anchor, 80, 40, position="below", gap=40)
    with pytest.raises(PlacementError):
        signature_box(anchor, 0, 40)


def test_anchor_is_a_frozen_value() -> None:
    anchor = Anchor(0, (1, 2, 3, 4), (0, 0, 10, 10), 0, 0, 1)
    with pytest.raises(AttributeError):
        anchor.page = 1  # type: ignore[misc]


# --- damaged, encrypted and oversized PDFs ----------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"%PDF-1.7\n%%EOF\n", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj"],
)
def test_garbage_is_unreadable(data: bytes) -> None:
    with pytest.raises(PdfUnreadableError) as caught:
        find_anchor(data, LABEL)
    assert caught.value.code == "pdf-unreadable"


def test_damaged_pdfs_never_escape_as_foreign_exceptions() -> None:
    pdf = _pdf(_text(100, 200, LABEL), _text(100, 300, LABEL))
    rng = random.Random(6)
    damaged = [pdf[: len(pdf) * k // 8] for k in range(1, 8)]
    for _ in range(12):
        data = bytearray(pdf)
        for _ in range(8):
            data[rng.randrange(len(data))] = rng.randrange(256)
        damaged.append(bytes(data))

    for data in damaged:
        try:
            find_anchor(data, LABEL, occurrence=2)
        except MedsignError as exc:
            assert exc.code in {"pdf-unreadable", "anchor-not-found", "pdf-too-large"}


def test_password_protected_pdf_is_refused_but_owner_only_protection_is_read() -> None:
    locked = _pdf(_text(100, 200, LABEL), encrypt=StandardEncryption("user", "owner"))
    # (An embedded font: pdfminer does not decrypt the strings that name a CID font's
    # character collection, so STSong-Light text in an encrypted file reads as CIDs.)
    owner_only = _pdf(_text(100, 200, LABEL, font=TTF), encrypt=StandardEncryption("", "owner"))

    with pytest.raises(PdfEncryptedError):
        find_anchor(locked, LABEL)
    assert _near(find_anchor(owner_only, LABEL).box[0], 100)


def test_inflation_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(placement, "MAX_STREAM_BYTES", 100_000)
    content = b"BT /F1 12 Tf 100 100 Td (Signature:) Tj ET" + b" " * 200_000
    pdf = _raw_pdf([RawPage(content=content, compress=True)])

    with pytest.raises(PdfTooLargeError) as caught:
        find_anchor(pdf, "Signature:")
    assert caught.value.code == "pdf-too-large"


def test_inflation_bomb_in_a_font_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(placement, "MAX_STREAM_BYTES", 100_000)
    page = RawPage(content=b"BT /F1 12 Tf 100 100 Td (Signature:) Tj ET")
    pdf = _raw_pdf([page], to_unicode=b"%" * 200_000)

    with pytest.raises(PdfTooLargeError):
        find_anchor(pdf, "Signature:")


def test_small_compressed_content_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(placement, "MAX_STREAM_BYTES", 100_000)
    content = b"BT /F1 12 Tf 100 100 Td (Signature:) Tj ET"
    pdf = _raw_pdf([RawPage(content=content, compress=True)])

    assert _near(find_anchor(pdf, "Signature:").box[0], 100)


def test_oversized_pdf_and_glyph_flood_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(placement, "MAX_PDF_BYTES", 1000)
    with pytest.raises(PdfTooLargeError):
        find_anchor(b"%PDF-1.7\n" + b" " * 1000, LABEL)
    monkeypatch.setattr(placement, "MAX_PDF_BYTES", 10_000_000)
    monkeypatch.setattr(placement, "MAX_GLYPHS_PER_PAGE", 50)
    flood = _raw_pdf([RawPage(content=b"BT /F1 12 Tf 100 100 Td (" + b"x" * 60 + b") Tj ET")])
    with pytest.raises(PdfTooLargeError):
        find_anchor(flood, "Signature:")
