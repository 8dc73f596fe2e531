"""The visible face of a signature: the signer's handwriting or seal, a few lines of text
(name, title, trusted time) and a small QR code that opens this signature's verification
page, drawn into one transparent PNG at print resolution for the field's exact size.

One raster rather than PDF text operators: a CJK name needs no font subset embedded per
signature, the result looks the same in every viewer, and the field stays a few kilobytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import segno
from PIL import Image, ImageDraw, ImageFont

from medsign.errors import ConfigurationError, InputError
from medsign.fonts import Face, cjk_font

POINTS_PER_INCH = 72
DEFAULT_DPI = 300
MAX_LINES = 4
MAX_LINE_CHARS = 60
MAX_IMAGE_PIXELS = 40_000_000
_INK = (20, 20, 20, 255)


@dataclass(frozen=True)
class AppearanceSpec:
    width_pt: float
    height_pt: float
    lines: tuple[str, ...] = ()
    image_png: bytes | None = None  # handwriting or a seal, RGBA with a transparent ground
    qr_url: str | None = None
    dpi: int = DEFAULT_DPI


def render_appearance(spec: AppearanceSpec) -> bytes:
    """An RGBA PNG of ``spec``'s size in points at ``spec.dpi``."""
    if not (10 <= spec.width_pt <= 600 and 10 <= spec.height_pt <= 600):
        raise InputError("a signature box is 10 to 600 points on each side")
    if len(spec.lines) > MAX_LINES or any(len(line) > MAX_LINE_CHARS for line in spec.lines):
        raise InputError(f"at most {MAX_LINES} lines of {MAX_LINE_CHARS} characters")
    scale = spec.dpi / POINTS_PER_INCH
    width, height = round(spec.width_pt * scale), round(spec.height_pt * scale)
    canvas = Image.new("RGBA", (width, height), (255, 255, 255, 0))
    margin = max(2, round(height * 0.05))
    right = width - margin
    if spec.qr_url is not None:
        side = min(height - 2 * margin, width // 3)
        qr = _qr(spec.qr_url, side)
        canvas.alpha_composite(qr, (right - side, (height - side) // 2))
        right -= side + margin
    left = margin
    if spec.image_png is not None:
        picture = _picture(spec.image_png)
        text_share = 0.5 if spec.lines else 0.0
        box_w = max(1, round((right - left) * (1 - text_share)))
        box_h = height - 2 * margin
        picture.thumbnail((box_w, box_h), Image.Resampling.LANCZOS)
        canvas.alpha_composite(
            picture, (left + (box_w - picture.width) // 2, (height - picture.height) // 2)
        )
        left += box_w + margin
    if spec.lines:
        _text(canvas, spec.lines, (left, margin, right, height - margin))
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _picture(png: bytes) -> Image.Image:
    try:
        with Image.open(io.BytesIO(png)) as opened:
            if opened.width * opened.height > MAX_IMAGE_PIXELS:
                raise InputError("the signature image is too large")
            return opened.convert("RGBA")
    except InputError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError("the signature image cannot be read") from exc


def _qr(url: str, side: int) -> Image.Image:
    code = segno.make(url, error="m", micro=False)
    modules = code.symbol_size(scale=1, border=1)[0]
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=max(1, side // modules), border=1, dark="black")
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGBA")
    return image.resize((side, side), Image.Resampling.NEAREST)


def _text(canvas: Image.Image, lines: Sequence[str], box: tuple[int, int, int, int]) -> None:
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    if width <= 0:
        return
    size = max(6, int(height / (len(lines) * 1.3)))
    path, index = _font_file()
    # Shrink until the longest line fits the width.
    while size > 6:
        font = ImageFont.truetype(path, size, index=index)
        if max(font.getlength(line) for line in lines) <= width:
            break
        size -= 1
    font = ImageFont.truetype(path, size, index=index)
    draw = ImageDraw.Draw(canvas)
    line_height = size * 1.3
    y = top + (height - line_height * len(lines)) / 2
    for line in lines:
        draw.text((left, y), line, font=font, fill=_INK)
        y += line_height


def _font_file() -> tuple[str, int]:
    font = cjk_font(Face.SANS)
    if not font.embedded:
        raise ConfigurationError("no CJK font found: install Debian's fonts-noto-cjk")
    return font.path, font.index


__all__ = ["AppearanceSpec", "render_appearance"]
