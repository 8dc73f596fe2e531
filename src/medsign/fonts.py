"""Fonts for the PDFs medsign draws (evidence reports, forms from signed data).

Chinese text needs a CJK font embedded in the PDF, so every reader shows the same glyphs.
Debian's ``fonts-noto-cjk`` (Noto Sans/Serif CJK SC) is OpenType/CFF, which reportlab cannot
embed: a font is therefore cut down to the characters one document uses and converted to
TrueType outlines with fontTools before reportlab sees it (0.2-0.4 s per face). Without any
CJK font the built-in CID font ``STSong-Light`` is used, which is not embedded (the reader
must supply an Adobe-GB1 font).

Use::

    body = cjk_font(Face.SERIF)           # found once per process
    style = ParagraphStyle("body", fontName=body.name)
    ...                                   # make the story, remembering its characters
    with embedded_fonts(chars, body):     # register the cut-down fonts, then build
        doc.build(story)

reportlab's font registry is global and a cut-down font is registered under a fixed name,
so ``embedded_fonts`` holds one process-wide lock while the document is built.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, lru_cache
from pathlib import Path

from fontTools import subset
from fontTools.pens.cu2quPen import Cu2QuPen
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTFont as FontFile
from fontTools.ttLib import TTLibError, newTable
from reportlab.lib.fonts import addMapping
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont

__all__ = [
    "BASE_CHARS",
    "CID_FALLBACK",
    "FACE_CANDIDATES",
    "FONT_CANDIDATES",
    "MONO_CANDIDATES",
    "CJKFont",
    "Face",
    "cjk_font",
    "embedded_fonts",
    "mono_font",
    "truetype_subset",
]


class Face(StrEnum):
    """A CJK typeface: sans (黑体-like) for reports and headings, serif (宋体-like) for the
    body of hospital forms, which are traditionally set in Song."""

    SANS = "sans"
    SANS_BOLD = "sans-bold"
    SERIF = "serif"
    SERIF_BOLD = "serif-bold"  # engraved seals


_NOTO = "/usr/share/fonts/opentype/noto"
# (path, subfont index of Simplified Chinese in a collection), best first. A face falls back
# to another face's fonts before the CID font: any embedded CJK font beats a missing one.
FONT_CANDIDATES: tuple[tuple[str, int], ...] = (
    (f"{_NOTO}/NotoSansCJK-Regular.ttc", 2),
    (f"{_NOTO}/NotoSansCJKsc-Regular.otf", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),
)
FACE_CANDIDATES: dict[Face, tuple[tuple[str, int], ...]] = {
    Face.SANS: FONT_CANDIDATES,
    Face.SANS_BOLD: (
        (f"{_NOTO}/NotoSansCJK-Bold.ttc", 2),
        (f"{_NOTO}/NotoSansCJKsc-Bold.otf", 0),
        *FONT_CANDIDATES,
    ),
    Face.SERIF: (
        (f"{_NOTO}/NotoSerifCJK-Regular.ttc", 2),
        (f"{_NOTO}/NotoSerifCJKsc-Regular.otf", 0),
        *FONT_CANDIDATES,
    ),
    Face.SERIF_BOLD: (
        (f"{_NOTO}/NotoSerifCJK-Bold.ttc", 2),
        (f"{_NOTO}/NotoSansCJK-Bold.ttc", 2),
        (f"{_NOTO}/NotoSerifCJK-Regular.ttc", 2),
        *FONT_CANDIDATES,
    ),
}
_NAMES = {
    Face.SANS: "MedsignCJK",
    Face.SANS_BOLD: "MedsignCJKBold",
    Face.SERIF: "MedsignCJKSerif",
    Face.SERIF_BOLD: "MedsignCJKSerifBold",
}
MONO_CANDIDATES = ("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",)
MONO_NAME = "MedsignMono"
CID_FALLBACK = "STSong-Light"
# Always in a cut-down font, whatever the document says: printable ASCII.
BASE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F))


@dataclass(frozen=True)
class CJKFont:
    """A CJK font found on this machine, and the reportlab name documents give it."""

    name: str  # what styles and canvases use as fontName
    path: str  # a font file, or the CID font's name
    index: int  # subfont in a collection
    kind: str  # "cff" (converted to TrueType), "truetype" or "cid" (not embedded)

    @property
    def embedded(self) -> bool:
        return self.kind != "cid"

    def describe(self) -> str:
        if self.kind == "cid":
            return f"{self.path} (PDF 阅读器自带 supplied by the reader, Adobe-GB1)"
        return f"{Path(self.path).name}#{self.index}（子集嵌入 embedded subset）"


@cache
def cjk_font(face: Face = Face.SANS) -> CJKFont:
    """The first usable font of the face's candidates, else the built-in CID font."""
    for path, index in FACE_CANDIDATES[face]:
        kind = _font_kind(path, index)
        if kind is None:
            continue
        name = _NAMES[face]
        # Paragraphs look the family up when they are made, which is before the cut-down
        # font is registered: map every style of the family to the one face now.
        for bold in (0, 1):
            for italic in (0, 1):
                addMapping(name, bold, italic, name)
        return CJKFont(name, path, index, kind)
    return CJKFont(CID_FALLBACK, CID_FALLBACK, 0, "cid")


def _font_kind(path: str, index: int) -> str | None:
    if not Path(path).is_file():
        return None
    try:
        with FontFile(path, fontNumber=index, lazy=True) as font:
            if "cmap" not in font:
                return None
            return "cff" if "CFF " in font else "truetype"
    except (OSError, ValueError, TTLibError):
        return None


@cache
def mono_font() -> str:
    """A monospaced font for hashes and ids: DejaVu Sans Mono embedded, else Courier."""
    for path in MONO_CANDIDATES:
        if Path(path).is_file():
            try:
                pdfmetrics.registerFont(TTFont(MONO_NAME, path))
            except (TTFError, OSError):
                continue
            return MONO_NAME
    return "Courier"


# reportlab's font registry is global: one document at a time registers its cut-down fonts.
_REGISTRY_LOCK = threading.Lock()


@contextmanager
def embedded_fonts(chars: Iterable[str], *fonts: CJKFont) -> Iterator[None]:
    """Register ``fonts`` cut down to ``chars`` (plus ``BASE_CHARS``) and hold reportlab's
    font registry until the block ends: build the document inside it."""
    text = "".join(sorted(set(BASE_CHARS).union("".join(chars))))
    with _REGISTRY_LOCK:
        for font in dict.fromkeys(fonts):
            if font.kind == "cid":
                pdfmetrics.registerFont(UnicodeCIDFont(CID_FALLBACK))
            else:
                data = truetype_subset(font.path, font.index, text)
                _replace_font(TTFont(font.name, io.BytesIO(data)))
        yield


def _replace_font(font: TTFont) -> None:
    """Register ``font``, dropping what a previous document registered under its name.

    ``registerFont`` keeps the first TrueType font of a name (and of a face name) for good:
    a later document's cut-down font would be ignored, and the characters only it has drawn
    as empty boxes. reportlab has no public way to unregister a font.
    """
    registry = vars(pdfmetrics)
    registry["_fonts"].pop(font.fontName, None)
    registry["_dynFaceNames"].pop(font.face.name, None)
    pdfmetrics.registerFont(font)


# OpenType layout tables: reportlab does no shaping, so they are dropped unread (decoding
# them is most of the time a subset of Noto CJK takes).
_UNUSED_TABLES = ("GSUB", "GPOS", "GDEF", "BASE", "JSTF")


@lru_cache(maxsize=16)
def truetype_subset(path: str, index: int, chars: str) -> bytes:
    """The font cut down to ``chars``, with quadratic (TrueType) outlines."""
    # Saving would stamp the font's head table with the current time: the same document
    # would then give different bytes on every run.
    font = FontFile(path, fontNumber=index, lazy=True, recalcTimestamp=False)
    for table in _UNUSED_TABLES:
        if table in font:
            del font[table]
    options = subset.Options()
    options.layout_features = []
    options.name_IDs = ["*"]
    options.notdef_outline = True
    # The outlines are redrawn as TrueType anyway; flat charstrings make that cheaper.
    options.desubroutinize = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=chars)
    subsetter.subset(font)
    if "CFF " in font:
        _cff_to_glyf(font)
    buffer = io.BytesIO()
    font.save(buffer)
    return buffer.getvalue()


def _cff_to_glyf(font: FontFile) -> None:
    """Replace CFF outlines by TrueType ones (cubic to quadratic, within one font unit)."""
    order = font.getGlyphOrder()
    glyphs = font.getGlyphSet()
    glyf = newTable("glyf")
    glyf.glyphOrder = order
    glyf.glyphs = {}
    for name in order:
        pen = TTGlyphPen(glyphs)
        glyphs[name].draw(Cu2QuPen(pen, 1.0, reverse_direction=True))
        glyf.glyphs[name] = pen.glyph()
    font["glyf"] = glyf
    font["loca"] = newTable("loca")
    maxp = font["maxp"]
    maxp.tableVersion = 0x00010000
    # A TrueType maxp carries hinting limits; the converted outlines have no hints.
    for attribute in (
        "maxPoints",
        "maxContours",
        "maxCompositePoints",
        "maxCompositeContours",
        "maxTwilightPoints",
        "maxStorage",
        "maxFunctionDefs",
        "maxInstructionDefs",
        "maxStackElements",
        "maxSizeOfInstructions",
        "maxComponentElements",
        "maxComponentDepth",
    ):
        setattr(maxp, attribute, 0)
    maxp.maxZones = 1
    for table in ("CFF ", "VORG"):
        if table in font:
            del font[table]
    font["head"].glyphDataFormat = 0
    post = font["post"]
    post.formatType = 2.0
    post.extraNames = []
    post.mapping = {}
    post.glyphOrder = order
    font.sfntVersion = "\x00\x01\x00\x00"
