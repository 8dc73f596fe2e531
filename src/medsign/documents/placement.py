"""Where a visible signature goes in an existing PDF: next to a label such as "医师签名：".

``find_anchor`` reads the text of the PDF's pages with its positions (pdfminer.six, without
its layout analysis: only the glyphs, their boxes and their direction are needed) and finds
the label the way a person reads the page:

- glyphs are grouped into lines by direction and baseline, then ordered by position, so a
  label drawn in several pieces (several text-show operators, fonts or text objects, in any
  order) is still one string;
- matching ignores white space and compares NFKC forms, so "医师签名:" finds "医师签名：" and
  "医 师 签 名" finds "医师签名"; a wide gap on a line (another column) is never bridged;
- occurrences are counted in reading order: page by page, lines top to bottom as the page is
  displayed, left to right within a row.

Coordinates are the page's default user space (points, origin bottom-left, before /Rotate),
which is what a widget's /Rect and pyHanko's field boxes use; pdfminer's own coordinates
(the displayed, rotated page with the MediaBox moved to the origin) are mapped back.

``signature_box`` puts a box of a given size after (or below) the anchor *in the text's own
direction*, so it lands right of the label on screen even on a rotated page, and clips it
to the visible page (CropBox within MediaBox).

Not handled: vertical writing (CJK fonts with a ``-V`` CMap), whose glyphs stack downwards;
such a label is not found.

Limits: ``MAX_PDF_BYTES``, at most ``max_pages`` pages read, ``MAX_GLYPHS_PER_PAGE`` glyphs,
``MAX_STREAM_BYTES`` for any content, form or font stream once inflated (checked with a
bounded inflate before pdfminer inflates it). Anything pdfminer cannot read, in any way,
becomes ``PdfUnreadableError``.
"""

from __future__ import annotations

import io
import math
import unicodedata
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from pdfminer.layout import LTChar
from pdfminer.pdfcolor import PDFColorSpace
from pdfminer.pdfdevice import PDFTextDevice
from pdfminer.pdfdocument import PDFDocument, PDFPasswordIncorrect
from pdfminer.pdffont import PDFFont, PDFUnicodeNotDefined
from pdfminer.pdfinterp import PDFGraphicState, PDFPageInterpreter, PDFResourceManager
from pdfminer.pdfpage import PDFPage
from pdfminer.pdfparser import PDFParser
from pdfminer.pdftypes import PDFStream, resolve1
from pdfminer.utils import Matrix

from medsign.documents.errors import (
    PdfEncryptedError,
    PdfTooLargeError,
    PdfUnreadableError,
    PlacementError,
)
from medsign.errors import InputError, MedsignError

Box = tuple[float, float, float, float]
"""(x1, y1, x2, y2) in points, x1 < x2 and y1 < y2."""

MAX_PDF_BYTES: Final = 64 * 1024 * 1024
MAX_PAGES: Final = 500
"""Default number of pages read when no page is named."""
MAX_GLYPHS_PER_PAGE: Final = 200_000
MAX_STREAM_BYTES: Final = 64 * 1024 * 1024
MAX_ANCHOR_CHARS: Final = 200

# A gap wider than this many glyph heights on a line separates columns: never matched across.
_COLUMN_GAP = 3.0


class AnchorNotFoundError(InputError):
    code = "anchor-not-found"
    title = "The anchor text was not found in the PDF"


@dataclass(frozen=True)
class Anchor:
    """One occurrence of an anchor text."""

    page: int
    """0-based page index."""
    box: Box
    """The text's bounding box in the page's default user space."""
    page_box: Box
    """The visible area of the page (CropBox within MediaBox), same space."""
    rotation: int
    """The page's /Rotate: 0, 90, 180 or 270 (clockwise, as displayed)."""
    direction: int
    """The text's reading direction in user space: 0, 90, 180 or 270 degrees
    counter-clockwise from +x (0 for ordinary text on an unrotated page)."""
    occurrence: int
    """Which occurrence this is, from 1, in reading order over the pages searched."""


# --- geometry ---------------------------------------------------------------------------------


def _invert(matrix: Matrix) -> Matrix:
    a, b, c, d, e, f = matrix
    det = a * d - b * c
    if det == 0:
        raise PdfUnreadableError("the page has a degenerate coordinate system")
    return (d / det, -b / det, -c / det, a / det, (c * f - d * e) / det, (b * e - a * f) / det)


def _apply(matrix: Matrix, x: float, y: float) -> tuple[float, float]:
    a, b, c, d, e, f = matrix
    return a * x + c * y + e, b * x + d * y + f


def _map_box(matrix: Matrix, box: Box) -> Box:
    x1, y1, x2, y2 = box
    points = [_apply(matrix, x, y) for x, y in ((x1, y1), (x1, y2), (x2, y1), (x2, y2))]
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    return min(xs), min(ys), max(xs), max(ys)


def _frame(direction: int) -> Matrix:
    """User space → the text's frame, where the text runs along +X and up is +Y."""
    cos = round(math.cos(math.radians(direction)))
    sin = round(math.sin(math.radians(direction)))
    return (cos, -sin, sin, cos, 0.0, 0.0)


def _unframe(direction: int) -> Matrix:
    return _invert(_frame(direction))


def _normal_box(raw: object) -> Box | None:
    values = resolve1(raw)
    if not isinstance(values, list | tuple) or len(values) != 4:
        return None
    try:
        x1, y1, x2, y2 = (float(resolve1(value)) for value in values)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return None
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def _intersect(first: Box, second: Box) -> Box | None:
    x1, y1 = max(first[0], second[0]), max(first[1], second[1])
    x2, y2 = min(first[2], second[2]), min(first[3], second[3])
    if x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2


def _union(boxes: Sequence[Box]) -> Box:
    return (
        min(box[0] for box in boxes),
        min(box[1] for box in boxes),
        max(box[2] for box in boxes),
        max(box[3] for box in boxes),
    )


# --- reading glyphs with pdfminer -------------------------------------------------------------


@dataclass(frozen=True)
class _Glyph:
    text: str
    box: Box
    """Default user space."""
    frame_box: Box
    """In the frame of the glyph's direction."""
    shown_box: Box
    """As displayed (pdfminer's device space): orders lines for reading."""
    direction: int


@dataclass(frozen=True)
class _Page:
    index: int
    glyphs: list[_Glyph]
    page_box: Box
    rotation: int


class _TooManyGlyphsError(Exception):
    pass


def _check_stream(value: object) -> None:
    """Refuse a Flate stream that inflates past ``MAX_STREAM_BYTES`` before pdfminer, which
    inflates without a bound, gets to it."""
    stream = resolve1(value)
    if not isinstance(stream, PDFStream) or stream.data is not None:
        return  # not a stream, or already inflated by pdfminer (it keeps the result)
    if stream.rawdata is None or stream.decipher:
        # Encrypted data cannot be test-inflated before pdfminer deciphers it.
        return
    filters = stream.get_filters()
    if not filters or getattr(filters[0][0], "name", None) not in ("FlateDecode", "Fl"):
        return
    inflater = zlib.decompressobj()
    try:
        inflated = inflater.decompress(stream.rawdata, MAX_STREAM_BYTES + 1)
    except zlib.error:
        return  # damaged: pdfminer decides what it can read
    if len(inflated) > MAX_STREAM_BYTES:
        raise PdfTooLargeError(f"a stream inflates to more than {MAX_STREAM_BYTES} bytes")


class _Resources(PDFResourceManager):
    def __init__(self) -> None:
        super().__init__(caching=True)
        self._checked: set[object] = set()

    def get_font(self, objid: object, spec: Mapping[str, object]) -> PDFFont:
        # Every page asks again for its fonts; an embedded CJK font can be megabytes, so
        # each is test-inflated once.
        if objid is None or objid not in self._checked:
            _check_stream(spec.get("ToUnicode"))
            descriptor = resolve1(spec.get("FontDescriptor"))
            if isinstance(descriptor, dict):
                for key in ("FontFile", "FontFile2", "FontFile3"):
                    _check_stream(descriptor.get(key))
            if objid is not None:
                self._checked.add(objid)
        return super().get_font(objid, spec)


class _Interpreter(PDFPageInterpreter):
    def execute(self, streams: Sequence[object]) -> None:
        for stream in streams:
            _check_stream(stream)
        super().execute(streams)


class _GlyphCollector(PDFTextDevice):
    """A pdfminer device that keeps each glyph's text, box and direction, nothing else."""

    def __init__(self, resources: PDFResourceManager) -> None:
        super().__init__(resources)
        self.to_user: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
        self.glyphs: list[_Glyph] = []
        self.count = 0

    def begin_page(self, page: PDFPage, ctm: Matrix) -> None:
        # pdfminer maps user space to the displayed page with this matrix; its inverse
        # takes every glyph back to user space.
        self.to_user = _invert(ctm)
        self.glyphs = []
        self.count = 0

    def render_char(
        self,
        matrix: Matrix,
        font: PDFFont,
        fontsize: float,
        scaling: float,
        rise: float,
        cid: int,
        ncs: PDFColorSpace,
        graphicstate: PDFGraphicState,
    ) -> float:
        self.count += 1
        if self.count > MAX_GLYPHS_PER_PAGE:
            raise _TooManyGlyphsError
        try:
            text = font.to_unichr(cid)
        except PDFUnicodeNotDefined:
            text = ""
        glyph = LTChar(
            matrix,
            font,
            fontsize,
            scaling,
            rise,
            text,
            font.char_width(cid),
            font.char_disp(cid),
            ncs,
            graphicstate,
        )
        # Invisible text counts (the OCR layer of a scanned record lies over the picture of
        # its words); text with no extent at all (size 0) does not.
        if text.strip() and (glyph.width > 0 or glyph.height > 0):
            shown = (glyph.x0, glyph.y0, glyph.x1, glyph.y1)
            # The baseline's direction (text space +x) taken to user space.
            ux, uy = _apply(self.to_user, matrix[0], matrix[1])
            ox, oy = _apply(self.to_user, 0.0, 0.0)
            angle = math.degrees(math.atan2(uy - oy, ux - ox))
            direction = round(angle / 90) % 4 * 90
            box = _map_box(self.to_user, shown)
            self.glyphs.append(
                _Glyph(text, box, _map_box(_frame(direction), box), shown, direction)
            )
        return float(glyph.adv)


def _read_pages(pdf: bytes, *, page: int | None, max_pages: int) -> Iterator[_Page]:
    """The glyphs of the requested page, or of the first ``max_pages`` pages."""
    parser = PDFParser(io.BytesIO(pdf))
    document = PDFDocument(parser)
    resources = _Resources()
    device = _GlyphCollector(resources)
    interpreter = _Interpreter(resources, device)
    found = False
    for index, pdf_page in enumerate(PDFPage.create_pages(document)):
        if page is not None and index != page:
            continue
        if page is None and index >= max_pages:
            break
        found = True
        media = _normal_box(pdf_page.attrs.get("MediaBox")) or _normal_box(pdf_page.mediabox)
        if media is None:
            raise PdfUnreadableError(f"page {index + 1} has no usable MediaBox")
        crop = _normal_box(pdf_page.attrs.get("CropBox")) or media
        visible = _intersect(media, crop) or media
        interpreter.process_page(pdf_page)
        yield _Page(index, device.glyphs, visible, pdf_page.rotate % 360)
        if page is not None:
            return
    if page is not None and not found:
        raise PlacementError(f"the PDF has no page {page + 1}")


# --- lines and matching -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    glyphs: list[_Glyph | None]
    """In reading order; None marks a column gap."""
    direction: int
    shown: Box


def _lines(glyphs: list[_Glyph]) -> list[_Line]:
    lines: list[_Line] = []
    for direction in (0, 90, 180, 270):
        same = [glyph for glyph in glyphs if glyph.direction == direction]
        same.sort(key=lambda glyph: -(glyph.frame_box[1] + glyph.frame_box[3]) / 2)
        current: list[_Glyph] = []
        centre = height = 0.0
        for glyph in same:
            glyph_centre = (glyph.frame_box[1] + glyph.frame_box[3]) / 2
            glyph_height = glyph.frame_box[3] - glyph.frame_box[1]
            if current and abs(glyph_centre - centre) <= 0.5 * max(height, glyph_height):
                current.append(glyph)
                continue
            if current:
                lines.append(_line(current, direction))
            current, centre, height = [glyph], glyph_centre, glyph_height
        if current:
            lines.append(_line(current, direction))
    return _reading_order(lines)


def _line(glyphs: list[_Glyph], direction: int) -> _Line:
    glyphs = sorted(glyphs, key=lambda glyph: glyph.frame_box[0])
    ordered: list[_Glyph | None] = []
    previous: _Glyph | None = None
    for glyph in glyphs:
        if previous is not None:
            size = max(
                glyph.frame_box[3] - glyph.frame_box[1],
                previous.frame_box[3] - previous.frame_box[1],
            )
            if glyph.frame_box[0] - previous.frame_box[2] > _COLUMN_GAP * size:
                ordered.append(None)
            elif glyph.text == previous.text and _overprint(glyph.frame_box, previous.frame_box):
                # Fake bold: the same text drawn again a hair to the side.
                continue
        ordered.append(glyph)
        previous = glyph
    shown = _union([glyph.shown_box for glyph in glyphs])
    return _Line(ordered, direction, shown)


def _overprint(first: Box, second: Box) -> bool:
    overlap = _intersect(first, second)
    if overlap is None:
        return False
    area = (overlap[2] - overlap[0]) * (overlap[3] - overlap[1])
    smaller = min((b[2] - b[0]) * (b[3] - b[1]) for b in (first, second))
    return area >= 0.7 * smaller


def _reading_order(lines: list[_Line]) -> list[_Line]:
    """Top to bottom as displayed; lines side by side (one row) left to right."""
    lines = sorted(lines, key=lambda line: -(line.shown[1] + line.shown[3]) / 2)
    rows: list[list[_Line]] = []
    for line in lines:
        centre = (line.shown[1] + line.shown[3]) / 2
        if rows:
            first = rows[-1][0]
            row_centre = (first.shown[1] + first.shown[3]) / 2
            if abs(centre - row_centre) <= 0.5 * (first.shown[3] - first.shown[1]):
                rows[-1].append(line)
                continue
        rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda line: line.shown[0])]


def _normalise(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def _matches(line: _Line, needle: str) -> Iterator[list[_Glyph]]:
    """The glyphs of each occurrence of ``needle`` on the line, left to right."""
    text: list[str] = []
    owners: list[_Glyph | None] = []
    for glyph in line.glyphs:
        if glyph is None:
            text.append("\x00")  # never in a needle: a column gap stops a match
            owners.append(None)
            continue
        for char in _normalise(glyph.text):
            text.append(char)
            owners.append(glyph)
    haystack = "".join(text)
    start = haystack.find(needle)
    while start >= 0:
        found: list[_Glyph] = []
        for owner in owners[start : start + len(needle)]:
            if owner is not None and (not found or found[-1] is not owner):
                found.append(owner)
        yield found
        start = haystack.find(needle, start + len(needle))


# --- the public functions ---------------------------------------------------------------------


def find_anchor(
    pdf: bytes,
    text: str,
    *,
    page: int | None = None,
    occurrence: int = 1,
    max_pages: int = MAX_PAGES,
) -> Anchor:
    """Find the ``occurrence``-th appearance of ``text`` on page ``page`` (0-based), or on the
    first ``max_pages`` pages when ``page`` is None.

    Raises ``AnchorNotFoundError`` (code ``anchor-not-found``) when there are fewer
    occurrences, ``PlacementError`` for a page the PDF does not have or bad arguments, and
    ``PdfUnreadableError`` / ``PdfEncryptedError`` / ``PdfTooLargeError`` for a PDF that
    cannot be read within the limits.
    """
    needle = _normalise(text)
    if not needle or len(needle) > MAX_ANCHOR_CHARS:
        raise PlacementError(f"an anchor text is 1 to {MAX_ANCHOR_CHARS} visible characters")
    if occurrence < 1:
        raise PlacementError("occurrence counts from 1")
    if page is not None and page < 0:
        raise PlacementError("page indexes count from 0")
    if max_pages < 1:
        raise PlacementError("max_pages must be at least 1")
    if len(pdf) > MAX_PDF_BYTES:
        raise PdfTooLargeError(f"the PDF is {len(pdf)} bytes; the limit is {MAX_PDF_BYTES}")

    seen = 0
    try:
        for pdf_page in _read_pages(pdf, page=page, max_pages=max_pages):
            for line in _lines(pdf_page.glyphs):
                for glyphs in _matches(line, needle):
                    seen += 1
                    if seen == occurrence:
                        return Anchor(
                            page=pdf_page.index,
                            box=_union([glyph.box for glyph in glyphs]),
                            page_box=pdf_page.page_box,
                            rotation=pdf_page.rotation,
                            direction=line.direction,
                            occurrence=occurrence,
                        )
    except MedsignError:
        raise
    except PDFPasswordIncorrect as exc:
        raise PdfEncryptedError("the PDF needs a password") from exc
    except _TooManyGlyphsError as exc:
        raise PdfTooLargeError(f"a page draws more than {MAX_GLYPHS_PER_PAGE} glyphs") from exc
    except Exception as exc:
        # pdfminer raises whatever the damage leads it to (syntax, key, type, value, EOF,
        # recursion...): all of it means the same to the caller.
        raise PdfUnreadableError(f"pdfminer could not read the PDF: {type(exc).__name__}") from exc

    where = f"page {page + 1}" if page is not None else f"the first {max_pages} pages"
    found = f"found {seen} time{'s' if seen != 1 else ''}" if seen else "not found"
    raise AnchorNotFoundError(
        f"anchor text {text!r} {found} in {where}; occurrence {occurrence} was asked for"
    )


def signature_box(
    anchor: Anchor,
    width: float,
    height: float,
    *,
    position: Literal["right", "below"] = "right",
    gap: float = 4.0,
    page_box: Box | None = None,
) -> Box:
    """A ``width`` × ``height`` box (points, measured along and across the text) next to the
    anchor: ``right`` starts ``gap`` after the text's end, centred on its line; ``below``
    starts under the text's start, ``gap`` below it. The result is in user space, clipped to
    the page's visible area (and to ``page_box`` if given, e.g. the MediaBox another reader
    found). Raises ``PlacementError`` when nothing of the box is left on the page.
    """
    if not (width > 0 and height > 0 and gap >= 0) or not all(
        math.isfinite(value) for value in (width, height, gap)
    ):
        raise PlacementError("a signature box needs a positive width and height")
    frame = _frame(anchor.direction)
    x1, y1, x2, y2 = _map_box(frame, anchor.box)
    if position == "right":
        middle = (y1 + y2) / 2
        wanted = (x2 + gap, middle - height / 2, x2 + gap + width, middle + height / 2)
    elif position == "below":
        wanted = (x1, y1 - gap - height, x1 + width, y1 - gap)
    else:
        raise PlacementError(f"unknown position {position!r}")
    box = _map_box(_unframe(anchor.direction), wanted)
    area = anchor.page_box if page_box is None else _intersect(anchor.page_box, page_box)
    clipped = None if area is None else _intersect(box, area)
    if clipped is None or clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
        raise PlacementError("the signature box would lie outside the page")
    return clipped


def box_after_anchor(
    anchor: Anchor, width: float, height: float, page_box: Box | None = None
) -> Box:
    """``signature_box`` to the right of the anchor (after it, in its reading direction)."""
    return signature_box(anchor, width, height, position="right", page_box=page_box)


__all__ = [
    "MAX_ANCHOR_CHARS",
    "MAX_GLYPHS_PER_PAGE",
    "MAX_PAGES",
    "MAX_PDF_BYTES",
    "MAX_STREAM_BYTES",
    "Anchor",
    "AnchorNotFoundError",
    "Box",
    "box_after_anchor",
    "find_anchor",
    "signature_box",
]
