"""Images for visible signatures: handwritten signatures cut out of phone photos, generated
hospital seals, cross-page (骑缝章) seal slices and uploaded seal images.

Pure functions over bytes (Pillow only): nothing here touches a PDF, the database or a key.
Every function returns a PNG with a transparent background and the facts a PDF needs to place
it at its true size (``SealImage.width_pt``) or to scale it (``SignatureImage``).

Handwritten signatures
    A clinician photographs a signature on white paper. ``extract_signature`` turns the photo
    upright (EXIF orientation) and divides it by an estimate of the paper under every pixel (a
    morphological closing at a scale wider than a pen stroke), so gradients, shadows and
    tinted light fall away; picks the ink level with Otsu's method on the flattened image;
    gives every pixel an opacity on a ramp between the ink's core and the paper's noise floor
    (partly covered edge pixels stay partly opaque, so strokes stay smooth); keeps only marks
    that are also clearly darker than their paper in the photo itself (deep shadow magnifies
    noise); drops specks, shading and the edge of a dark table by connected components; crops
    to the ink with a small margin and recolours it.

Generated seals (``render_seal``)
    The State Council's rule on seals, 国务院关于国家行政机关和企业事业单位社会团体印章管理的规定
    (国发〔1999〕25号), makes the seal of an enterprise, public institution (事业单位, which a
    public hospital is) or social organisation round, at most 4.5 cm across, with a
    five-pointed star in the centre and the unit's name around it, left to right along the
    upper arc (or its first part along the arc, the rest in a line under the star). Characters
    are simplified and the type face is 宋体: we use Noto Serif CJK SC Bold (the Source Han
    Serif design), slightly emboldened as paste spreads, and fall back to Noto Sans CJK SC.
    Under that ceiling the exact sizes come from the provincial and public-security
    specifications seal makers work to, which we follow:

    - official seal (公章): 42 mm across, 1.2 mm border, star 14 mm tip to tip (D/3);
    - special-purpose seal (专用章, e.g. 病案专用章, 财务专用章): 40 mm across, 1.0 mm border,
      the purpose in one horizontal line under the star; we keep the star (hospital special
      seals usually carry one) at 12 mm (0.3·D) so the purpose line fits under it;
    - the optional seal code (印章编码, 13 digits in the public-security system) runs along
      the bottom arc, read left to right.

    Other sizes can be asked for (20–60 mm); every length scales with the diameter. Names of
    up to 40 characters fit: short names are spread over at least 160° with wider glyphs;
    longer ones take more of the circle, up to 300° (240° when a purpose line sits under the
    star, less when a code takes the bottom), then their glyphs are narrowed to half width
    (as seal makers cut them) and only then made smaller. Output is deterministic: the same
    inputs and font give the same bytes (the optional paste texture is seeded from the
    inputs). The red is close to seal paste, #E60012.

Cross-page seals (``split_seal``)
    A 骑缝章 is stamped over the fanned right edges of N pages; slice *i* (left to right) of
    the seal belongs on the right edge of page *i*.

Limits: input images are at most ``MAX_IMAGE_BYTES`` and ``MAX_IMAGE_PIXELS`` (JPEG) or
``MAX_PNG_PIXELS`` (PNG), checked from the header before anything is decoded; only PNG and
JPEG are parsed.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fontTools.ttLib import TTFont
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageMath, ImageOps, ImageStat

from medsign.errors import ConfigurationError, InputError
from medsign.fonts import FACE_CANDIDATES, Face

RGB = tuple[int, int, int]

MAX_IMAGE_BYTES: Final = 20 * 1024 * 1024
"""Largest accepted upload; a 50-megapixel phone JPEG is well under this."""

MAX_IMAGE_PIXELS: Final = 50_000_000
"""Largest accepted width × height of a JPEG, read from the header before decoding (a
decompression bomb declares a huge size in a few bytes). JPEGs this big are decoded at 1/2 to
1/8 scale, so they never exist at full size in memory."""

MAX_PNG_PIXELS: Final = 16_000_000
"""PNGs decode at full size (4 bytes a pixel): they are scans and screenshots, never 50 MP."""

MIN_IMAGE_SIDE: Final = 64

SIGNATURE_INK: Final[RGB] = (24, 24, 32)
"""Uniform colour of extracted signatures: a near-black that prints like a black pen."""

SEAL_RED: Final[RGB] = (230, 0, 18)
"""#E60012, close to the cinnabar seal paste on paper."""

OFFICIAL_SEAL_MM: Final = 42.0
SPECIAL_SEAL_MM: Final = 40.0
MIN_SEAL_MM: Final = 20.0
MAX_SEAL_MM: Final = 60.0
MIN_DPI: Final = 72
MAX_DPI: Final = 1200
MAX_NAME_CHARS: Final = 40
MAX_PURPOSE_CHARS: Final = 20
MAX_SERIAL_CHARS: Final = 20
MAX_SPLIT_PAGES: Final = 500

MM_PER_INCH: Final = 25.4
PT_PER_INCH: Final = 72.0

# Searched in order; Debian's fonts-noto-cjk puts them here.
# Seals are engraved in a bold Song (serif) face where there is one: the machine's CJK fonts
# as ``medsign.fonts`` knows them, that face first.
CJK_FONT_CANDIDATES: Final = tuple(
    dict.fromkeys(Path(path) for path, _ in FACE_CANDIDATES[Face.SERIF_BOLD])
)


# --- errors -----------------------------------------------------------------------------------


class ImageUnreadableError(InputError):
    code = "image-unreadable"
    title = "The file is not a readable PNG or JPEG image"


class ImageTooLargeError(InputError):
    code = "image-too-large"
    title = "The image is too large"
    status = 413


class ImageTooSmallError(InputError):
    code = "image-too-small"
    title = "The image is too small"


class ImageTooDarkError(InputError):
    """The photo is mostly dark: not a signature (or seal) on white paper."""

    code = "image-too-dark"
    title = "The photo is too dark; photograph the signature on white paper"


class NoInkFoundError(InputError):
    code = "no-ink-found"
    title = "No signature or seal was found in the image"


class SealNotRedError(InputError):
    code = "seal-not-red"
    title = "The uploaded seal is not red"


class SealSpecError(InputError):
    """A name, purpose or code that cannot be engraved, or a size out of range."""

    code = "seal-spec-invalid"
    title = "The seal cannot be made as asked"


class SealSplitError(InputError):
    code = "seal-split-invalid"
    title = "The seal cannot be split over that many pages"


class CJKFontMissingError(ConfigurationError):
    code = "cjk-font-missing"
    title = "No Chinese font is installed (install fonts-noto-cjk)"


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureImage:
    """A transparent PNG of the ink only, in one uniform colour."""

    png: bytes
    width: int
    height: int
    ink_coverage: float
    """Share of the output's area covered by ink (opacity-weighted), 0..1."""
    ink_colour: RGB
    source_box: tuple[int, int, int, int]
    """The crop (left, top, right, bottom) in pixels of the upright source photo."""


@dataclass(frozen=True)
class SealImage:
    """A transparent PNG of a seal and its physical size."""

    png: bytes
    width_px: int
    height_px: int
    width_mm: float
    height_mm: float

    @property
    def width_pt(self) -> float:
        return self.width_mm / MM_PER_INCH * PT_PER_INCH

    @property
    def height_pt(self) -> float:
        return self.height_mm / MM_PER_INCH * PT_PER_INCH

    @property
    def dpi(self) -> float:
        return self.width_px / (self.width_mm / MM_PER_INCH)


@dataclass(frozen=True)
class SealSlice:
    """Slice ``index`` (0-based, left to right) of a cross-page seal: it goes on the right edge
    of page ``index`` of the run, flush with the page edge."""

    index: int
    png: bytes
    width_px: int
    height_px: int
    width_pt: float
    height_pt: float
    offset_pt: float
    """Distance of the slice's left edge from the seal's left edge."""


# --- loading ----------------------------------------------------------------------------------

# Working resolution of the photo: enough for a signature that fills a quarter of the frame,
# small enough that the Pillow passes stay in the tens of milliseconds.
_WORK_MIN_SIDE = 1500
_WORK_MAX_SIDE = 2400


@dataclass(frozen=True)
class _Photo:
    rgb: Image.Image
    """Upright, on white, at working resolution."""
    scale: float
    """Source pixels per working pixel."""
    source_size: tuple[int, int]
    """Upright source size."""


def _open_image(data: bytes) -> Image.Image:
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageTooLargeError(f"image of {len(data)} bytes exceeds {MAX_IMAGE_BYTES}")
    try:
        image = Image.open(io.BytesIO(data), formats=("PNG", "JPEG"))
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError("image declares too many pixels") from exc
    except Exception as exc:
        # Pillow's parsers raise a zoo of types on malformed input; every one means the same.
        raise ImageUnreadableError(f"not a PNG or JPEG image: {type(exc).__name__}") from exc
    width, height = image.size
    limit = MAX_PNG_PIXELS if image.format == "PNG" else MAX_IMAGE_PIXELS
    if width * height > limit:
        raise ImageTooLargeError(f"image of {width}x{height} exceeds {limit} pixels")
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ImageTooSmallError(f"image of {width}x{height} is too small")
    return image


def _load_photo(data: bytes, *, work_max_side: int = _WORK_MAX_SIDE) -> _Photo:
    image = _open_image(data)
    header_size = image.size
    try:
        if image.format in ("JPEG", "MPO"):
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: a 12-megapixel photo never needs
            # to exist at full size in memory.
            long_side = max(image.size)
            factor = next(f for f in (8, 4, 2, 1) if f == 1 or long_side / f >= _WORK_MIN_SIDE)
            if factor > 1:
                image.draft("RGB", (image.width // factor, image.height // factor))
        image.load()
        source_width, source_height = _upright_size(image, header_size)
        image = ImageOps.exif_transpose(image)
        rgb = _on_white(image)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError("image declares too many pixels") from exc
    except Exception as exc:
        raise ImageUnreadableError(f"image data is damaged: {type(exc).__name__}") from exc
    long_side = max(rgb.size)
    if long_side > work_max_side:
        ratio = work_max_side / long_side
        size = (max(1, round(rgb.width * ratio)), max(1, round(rgb.height * ratio)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return _Photo(
        rgb=rgb, scale=source_width / rgb.width, source_size=(source_width, source_height)
    )


def _upright_size(image: Image.Image, header_size: tuple[int, int]) -> tuple[int, int]:
    """The size of the source as the photographer saw it (``draft`` may have decoded less)."""
    width, height = header_size
    orientation = image.getexif().get(0x0112, 1)
    if orientation in (5, 6, 7, 8):
        return height, width
    return width, height


def _on_white(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


# --- the ink extraction core ------------------------------------------------------------------

# The paper is estimated by a morphological closing (a running maximum, then a running
# minimum, over a square window of this share of the long side): dark marks narrower than the
# window are bridged, while edges of anything wider - the gradient of the light, a shadow, a
# table beside the sheet - are kept exactly, so dividing by the estimate flattens them away
# instead of leaving a dark band along them.
_SIGNATURE_WINDOW = 0.03
# Seals are one solid shape up to a third of the image wide (the star): the window must span
# it; uploads are scans or screenshots whose lighting is even anyway.
_SEAL_WINDOW = 0.6
_MIN_CONTRAST = 60  # ink must be this much darker than paper (of 255) to count
_DARK_MEDIAN = 70  # a photo whose median brightness is below this is not of white paper
_MAX_INK_SHARE = 0.30  # no signature covers a third of its photo
_MIN_DEPTH = 24  # levels (of 255) by which ink is darker than its paper in the photo
_MIN_CORE_SHARE = 0.12  # share of a mark that must be as dark as ink's core, not just shaded


@dataclass(frozen=True)
class _Ink:
    alpha: Image.Image
    """Opacity (mode L) at working resolution, specks removed."""
    box: tuple[int, int, int, int]
    colour: RGB
    """Mean colour of the ink's core, white-balanced against the paper."""


def _paper(band: Image.Image, window: float, *, steps: int) -> Image.Image:
    """The brightness of the paper under every pixel of one channel.

    The closing runs on a copy shrunk so the window is ``2 * steps + 1`` pixels: each 3×3
    pass grows it by two, which is far cheaper than one wide rank filter.
    """
    width, height = band.size
    factor = max(1, round(max(width, height) * window / (2 * steps + 1)))
    small = band.resize(
        (max(1, math.ceil(width / factor)), max(1, math.ceil(height / factor))),
        Image.Resampling.BOX,
    )
    for _ in range(steps):
        small = small.filter(ImageFilter.MaxFilter(3))
    for _ in range(steps):
        small = small.filter(ImageFilter.MinFilter(3))
    small = small.filter(ImageFilter.GaussianBlur(0.7))
    return small.resize((width, height), Image.Resampling.BILINEAR)


def _flatten(band: Image.Image, paper: Image.Image) -> Image.Image:
    """``band`` divided by ``paper``, scaled so paper comes out white."""
    # Under black the estimate may be 0; 16 keeps the quotient finite and dark stays dark.
    floor = paper.point([max(value, 16) for value in range(256)])
    flat = ImageMath.lambda_eval(
        lambda env: env["v"] * 255.0 / env["p"], v=band.convert("F"), p=floor.convert("F")
    )
    if not isinstance(flat, Image.Image):  # pragma: no cover - ImageMath returns images here
        raise TypeError("ImageMath returned no image")
    return flat.convert("L")


def _histogram_median(histogram: Sequence[int]) -> int:
    half = sum(histogram) / 2
    running = 0
    for value, count in enumerate(histogram):
        running += count
        if running >= half:
            return value
    return 255


def _otsu(histogram: Sequence[int]) -> int:
    """The level that best splits the histogram in two (Otsu 1979): values below it are one
    class. Maximises the between-class variance w0·w1·(μ0 − μ1)²."""
    total = sum(histogram)
    sum_all = sum(value * count for value, count in enumerate(histogram))
    weight_low = 0
    sum_low = 0
    best_level, best_score = 128, -1.0
    for value in range(255):
        weight_low += histogram[value]
        sum_low += value * histogram[value]
        weight_high = total - weight_low
        if weight_low == 0 or weight_high == 0:
            continue
        mean_low = sum_low / weight_low
        mean_high = (sum_all - sum_low) / weight_high
        score = weight_low * weight_high * (mean_low - mean_high) ** 2
        if score > best_score:
            best_level, best_score = value + 1, score
    return best_level


@dataclass(frozen=True)
class _Levels:
    paper: int
    threshold: int
    """Darkness values below this are ink."""
    ramp_low: int
    """At or below: fully opaque."""
    ramp_high: int
    """At or above: fully transparent."""


def _levels(histogram: Sequence[int]) -> _Levels | None:
    """Ink and paper levels of a flattened image, or None when there is no ink to speak of."""
    paper = max(range(256), key=lambda value: (histogram[value], value))
    # The paper's noise from its darker half only: the brighter half is clipped at 255, and
    # ink does not reach into the 40 levels under the paper.
    lower = range(max(0, paper - 40), paper + 1)
    weight = sum(histogram[value] for value in lower)
    spread = math.sqrt(sum(histogram[value] * (value - paper) ** 2 for value in lower) / weight)
    threshold = min(_otsu(histogram), round(paper - 4 * spread - 10))
    if threshold <= 0:
        return None
    dark = histogram[:threshold]
    dark_weight = sum(dark)
    if dark_weight == 0:
        return None
    ink = sum(value * count for value, count in enumerate(dark)) / dark_weight
    if paper - ink < _MIN_CONTRAST:
        return None
    ramp_low = round(ink + (threshold - ink) * 0.35)
    ramp_high = max(threshold + 1, round(paper - 3 * spread - 6))
    return _Levels(paper=paper, threshold=threshold, ramp_low=ramp_low, ramp_high=ramp_high)


def _ramp(levels: _Levels) -> list[int]:
    low, high = levels.ramp_low, levels.ramp_high
    table = []
    for value in range(256):
        if value <= low:
            table.append(255)
        elif value >= high:
            table.append(0)
        else:
            table.append(round(255 * (high - value) / (high - low)))
    return table


@dataclass(frozen=True)
class _Component:
    cells: list[int]
    area: float
    """Ink pixels (working resolution), estimated from the cells' coverage."""
    box: tuple[int, int, int, int]
    """In cells: left, top, right, bottom (exclusive)."""


def _components(grid: bytes, width: int, height: int, cell: int) -> list[_Component]:
    """8-connected components of the non-zero cells of a coverage grid."""
    seen = bytearray(len(grid))
    found: list[_Component] = []
    per_cell = cell * cell / 255
    for start, value in enumerate(grid):
        if value == 0 or seen[start]:
            continue
        seen[start] = 1
        stack = [start]
        cells: list[int] = []
        total = 0
        left, top, right, bottom = width, height, 0, 0
        while stack:
            index = stack.pop()
            cells.append(index)
            total += grid[index]
            y, x = divmod(index, width)
            left, right = min(left, x), max(right, x + 1)
            top, bottom = min(top, y), max(bottom, y + 1)
            for ny in (y - 1, y, y + 1):
                if ny < 0 or ny >= height:
                    continue
                row = ny * width
                for nx in (x - 1, x, x + 1):
                    if 0 <= nx < width:
                        neighbour = row + nx
                        if grid[neighbour] and not seen[neighbour]:
                            seen[neighbour] = 1
                            stack.append(neighbour)
        found.append(_Component(cells, total * per_cell, (left, top, right, bottom)))
    return found


def _keep(components: list[_Component], long_side_cells: int, cell: int) -> list[_Component]:
    """Drop specks: tiny components anywhere, and small ones far from the writing."""
    largest = max(component.area for component in components)
    # A pen dot is some stroke-widths across; paper fibres and noise are a few pixels.
    tiny = max(12.0, (0.004 * long_side_cells * cell) ** 2, 0.002 * largest)
    kept = [component for component in components if component.area >= tiny]
    if not kept:
        return []
    main = [component for component in kept if component.area >= 0.05 * largest]
    if not main:  # pragma: no cover - the largest component is always kept
        return []
    left = min(component.box[0] for component in main)
    top = min(component.box[1] for component in main)
    right = max(component.box[2] for component in main)
    bottom = max(component.box[3] for component in main)
    reach = 0.25 * max(right - left, bottom - top) + 2
    near = []
    for component in kept:
        c_left, c_top, c_right, c_bottom = component.box
        apart_x = max(left - c_right, c_left - right, 0)
        apart_y = max(top - c_bottom, c_top - bottom, 0)
        if component.area >= 0.05 * largest or max(apart_x, apart_y) <= reach:
            near.append(component)
    return near


def _extract_ink(photo: _Photo, *, seal: bool) -> _Ink:
    rgb = photo.rgb
    luminance = rgb.convert("L")
    if _histogram_median(luminance.histogram()) < _DARK_MEDIAN:
        raise ImageTooDarkError("median brightness too low for a photo of white paper")
    bands = rgb.split()
    if seal:
        papers = [_paper(band, _SEAL_WINDOW, steps=4) for band in bands]
        flat = [_flatten(band, paper) for band, paper in zip(bands, papers, strict=True)]
        # Darkness as the weakest channel: red paste is dark in green and blue, not in luminance.
        darkness = _darkest(flat)
        depth = ImageChops.subtract(_darkest(papers), _darkest(list(bands)))
    else:
        paper = _paper(luminance, _SIGNATURE_WINDOW, steps=6)
        darkness = _flatten(luminance, paper)
        depth = ImageChops.subtract(paper, luminance)
        # The colour only needs a rough white balance: a coarse estimate per channel will do.
        papers = [_paper(band, _SIGNATURE_WINDOW, steps=2) for band in bands]
    histogram = darkness.histogram()
    levels = _levels(histogram)
    if levels is None:
        raise NoInkFoundError("no ink darker than the paper")
    pixels = darkness.width * darkness.height
    if sum(histogram[: levels.threshold]) > _MAX_INK_SHARE * pixels:
        raise ImageTooDarkError("ink would cover too much of the photo")

    mask = darkness.point([255 if value < levels.threshold else 0 for value in range(256)])
    # Where the paper is in deep shadow, dividing by it magnifies the sensor's noise as much as
    # the ink: ink must also be darker than its paper by a margin in the photo itself.
    mask = ImageChops.multiply(
        mask, depth.point([255 if value >= _MIN_DEPTH else 0 for value in range(256)])
    )
    opacity = darkness.point(_ramp(levels))
    core = opacity.point([255 if value == 255 else 0 for value in range(256)])
    kept_mask = _despeckle(mask, core, beside_dark=not seal and _beside_dark(paper))
    if kept_mask is None:
        raise NoInkFoundError("only specks or shading darker than the paper")
    # A little beyond the thresholded strokes so their soft edges stay in.
    alpha = ImageChops.multiply(opacity, kept_mask.filter(ImageFilter.MaxFilter(5)))
    box = alpha.getbbox()
    if box is None:  # pragma: no cover - kept_mask is never empty here
        raise NoInkFoundError("no ink left after removing specks")
    if max(box[2] - box[0], box[3] - box[1]) < 0.03 * max(darkness.size):
        raise NoInkFoundError("the only ink is a dot")

    core = ImageChops.multiply(core, kept_mask)
    if core.getbbox() is None:
        core = kept_mask
    colour = tuple(
        min(255, round(255 * ImageStat.Stat(band, core).mean[0] / max(1.0, _mean(paper, core))))
        for band, paper in zip(bands, papers, strict=True)
    )
    return _Ink(alpha=alpha, box=box, colour=(colour[0], colour[1], colour[2]))


def _darkest(bands: list[Image.Image]) -> Image.Image:
    darkest = bands[0]
    for band in bands[1:]:
        darkest = ImageChops.darker(darkest, band)
    return darkest


def _mean(image: Image.Image, mask: Image.Image) -> float:
    return float(ImageStat.Stat(image, mask).mean[0])


def _borders_touched(box: tuple[int, int, int, int], width: int, height: int) -> int:
    left, top, right, bottom = box
    return (left == 0) + (top == 0) + (right == width) + (bottom == height)


def _beside_dark(paper: Image.Image) -> bool:
    """Whether part of the photo is not the sheet at all (a table, a deep shadow): where the
    paper estimate falls below half the typical paper."""
    histogram = paper.histogram()
    half = _histogram_median(histogram) // 2
    return sum(histogram[:half]) > 0.01 * paper.width * paper.height


def _despeckle(mask: Image.Image, core: Image.Image, *, beside_dark: bool) -> Image.Image | None:
    """The mask without specks, or None when nothing but specks is there."""
    width, height = mask.size
    # Components are found on a grid of cells at most ~500 wide; a cell with any ink is set.
    cell = max(1, min(15, math.ceil(max(width, height) / 500)))
    grid_image = mask.reduce(cell) if cell > 1 else mask
    grid = grid_image.tobytes()
    core_grid = (core.reduce(cell) if cell > 1 else core).tobytes()
    components = _components(grid, grid_image.width, grid_image.height, cell)
    # Shading (a shadow's edge, a crease) can cross the threshold but is rarely as dark as
    # the ink's core over much of its area.
    components = [
        component
        for component in components
        if sum(core_grid[index] for index in component.cells)
        >= _MIN_CORE_SHARE * sum(grid[index] for index in component.cells)
    ]
    if beside_dark:
        # Along the sheet's edge against a dark table the paper estimate, smoothed, is too
        # bright on the table's side, which leaves a dark line there. Such a line runs from
        # border to border of the photo; a signature photographed whole touches at most one.
        # (Only then: a tightly cropped scan touches every border and has no table.)
        components = [
            component
            for component in components
            if _borders_touched(component.box, grid_image.width, grid_image.height) < 2
        ]
    if not components:
        return None
    kept = _keep(components, max(grid_image.size), cell)
    if not kept:
        return None
    keep_grid = bytearray(len(grid))
    for component in kept:
        for index in component.cells:
            keep_grid[index] = 255
    keep_image = Image.frombytes("L", grid_image.size, bytes(keep_grid))
    if cell > 1:
        keep_image = keep_image.resize(
            (grid_image.width * cell, grid_image.height * cell), Image.Resampling.NEAREST
        ).crop((0, 0, width, height))
    return ImageChops.multiply(mask, keep_image)


def _crop_and_fit(
    alpha: Image.Image, box: tuple[int, int, int, int], max_width: int, max_height: int
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    left, top, right, bottom = box
    margin = max(4, round(0.04 * max(right - left, bottom - top)))
    crop = (left - margin, top - margin, right + margin, bottom + margin)
    # Outside the photo ``crop`` pads with 0, which is transparent here.
    cut = alpha.crop(crop)
    ratio = min(1.0, max_width / cut.width, max_height / cut.height)
    if ratio < 1.0:
        size = (max(1, round(cut.width * ratio)), max(1, round(cut.height * ratio)))
        cut = cut.resize(size, Image.Resampling.LANCZOS)
    return cut, crop


def _encode_png(image: Image.Image, dpi: float | None = None) -> bytes:
    buffer = io.BytesIO()
    if dpi is None:
        image.save(buffer, "PNG", compress_level=6)
    else:
        image.save(buffer, "PNG", compress_level=6, dpi=(dpi, dpi))
    return buffer.getvalue()


def _solid(colour: RGB, alpha: Image.Image) -> Image.Image:
    image = Image.new("RGBA", alpha.size, (*colour, 0))
    image.putalpha(alpha)
    return image


def _coverage(alpha: Image.Image) -> float:
    histogram = alpha.histogram()
    total = sum(value * count for value, count in enumerate(histogram))
    return total / (255 * alpha.width * alpha.height)


def _deepen(colour: RGB) -> RGB:
    """A pen's colour as it reads on paper: photos lighten thin strokes, so darken the mean
    colour towards its saturated self without changing its hue."""
    darkest = min(colour)
    return (
        round((colour[0] - darkest) * 0.9 + darkest * 0.6),
        round((colour[1] - darkest) * 0.9 + darkest * 0.6),
        round((colour[2] - darkest) * 0.9 + darkest * 0.6),
    )


# --- handwritten signatures -------------------------------------------------------------------


def extract_signature(
    data: bytes,
    *,
    max_width: int = 1200,
    max_height: int = 800,
    ink_colour: RGB = SIGNATURE_INK,
    keep_pen_colour: bool = False,
) -> SignatureImage:
    """Cut the ink of a photographed signature out of its paper.

    Returns a transparent, tightly cropped PNG no larger than ``max_width`` × ``max_height``,
    its ink in ``ink_colour`` or, with ``keep_pen_colour``, in the pen's own (white-balanced)
    colour, e.g. for blue pens. Raises ``ImageUnreadableError``, ``ImageTooLargeError``,
    ``ImageTooSmallError``, ``ImageTooDarkError`` or ``NoInkFoundError``.
    """
    if max_width < 16 or max_height < 16:
        raise InputError("max_width and max_height must be at least 16 pixels")
    photo = _load_photo(data)
    ink = _extract_ink(photo, seal=False)
    alpha, crop = _crop_and_fit(ink.alpha, ink.box, max_width, max_height)
    colour = _deepen(ink.colour) if keep_pen_colour else ink_colour
    png = _encode_png(_solid(colour, alpha))
    source_width, source_height = photo.source_size
    source_box = (
        max(0, math.floor(crop[0] * photo.scale)),
        max(0, math.floor(crop[1] * photo.scale)),
        min(source_width, math.ceil(crop[2] * photo.scale)),
        min(source_height, math.ceil(crop[3] * photo.scale)),
    )
    return SignatureImage(
        png=png,
        width=alpha.width,
        height=alpha.height,
        ink_coverage=_coverage(alpha),
        ink_colour=colour,
        source_box=source_box,
    )


# --- uploaded seals ---------------------------------------------------------------------------


def prepare_uploaded_seal(
    data: bytes,
    *,
    width_mm: float = OFFICIAL_SEAL_MM,
    max_side: int = 1200,
    require_red: bool = True,
) -> SealImage:
    """Make a scanned or drawn seal image usable: white becomes transparent, the paste's red is
    kept (as one uniform colour), the image is cropped to the seal and given its physical
    width ``width_mm`` (the seal's diameter for a round seal).

    Raises the image errors of ``extract_signature``, ``SealNotRedError`` when the ink is not
    red and ``require_red`` is set, and ``SealSpecError`` for a width out of range.
    """
    if not MIN_SEAL_MM <= width_mm <= MAX_SEAL_MM:
        raise SealSpecError(f"seal width {width_mm} mm outside {MIN_SEAL_MM}..{MAX_SEAL_MM}")
    photo = _load_photo(data)
    ink = _extract_ink(photo, seal=True)
    red, green, blue = ink.colour
    if require_red and not (red >= 120 and red >= 1.6 * green and red >= 1.4 * blue):
        raise SealNotRedError(f"ink colour {ink.colour} is not seal red")
    # A seal is cropped to its own edge: its box is its physical size.
    alpha = ink.alpha.crop(ink.box)
    ratio = min(1.0, max_side / max(alpha.size))
    if ratio < 1.0:
        size = (max(1, round(alpha.width * ratio)), max(1, round(alpha.height * ratio)))
        alpha = alpha.resize(size, Image.Resampling.LANCZOS)
    height_mm = width_mm * alpha.height / alpha.width
    dpi = alpha.width / (width_mm / MM_PER_INCH)
    return SealImage(
        png=_encode_png(_solid(ink.colour, alpha), dpi),
        width_px=alpha.width,
        height_px=alpha.height,
        width_mm=width_mm,
        height_mm=height_mm,
    )


# --- generated seals --------------------------------------------------------------------------


@dataclass(frozen=True)
class SealFont:
    path: Path
    index: int
    """Face index inside a .ttc collection."""
    name: str


@functools.lru_cache(maxsize=8)
def find_cjk_font(path: Path | None = None) -> SealFont:
    """The font seals are engraved in: ``path`` if given, else the first installed candidate
    of ``CJK_FONT_CANDIDATES``. In a collection, the Simplified Chinese (SC) face is chosen.

    Raises ``CJKFontMissingError`` when there is none.
    """
    candidates = (path,) if path is not None else CJK_FONT_CANDIDATES
    for candidate in candidates:
        if not candidate.is_file():
            continue
        faces: list[tuple[int, str]] = []
        for index in range(16):
            try:
                family, style = ImageFont.truetype(str(candidate), 16, index=index).getname()
            except OSError:
                break
            faces.append((index, f"{family} {style}"))
        for index, name in faces:
            # "Mono" faces have half-width Latin that looks wrong on a seal.
            if " SC" in name and "Mono" not in name:
                return SealFont(candidate, index, name)
        if faces and path is not None:
            return SealFont(candidate, faces[0][0], faces[0][1])
    raise CJKFontMissingError(
        f"no CJK font found at {[str(c) for c in candidates]}",
        public="No Chinese font is installed on the server",
    )


@functools.lru_cache(maxsize=8)
def _chars(font: SealFont) -> frozenset[str]:
    """Characters the font has glyphs for (a missing one would be engraved as a box)."""
    try:
        # Lazy: only the cmap table of the one face is read.
        face = TTFont(str(font.path), fontNumber=font.index, lazy=True)
        try:
            return frozenset(chr(point) for point in face.getBestCmap() or {})
        finally:
            face.close()
    except Exception as exc:
        # Pillow opened it, fontTools cannot: a damaged file is as good as none.
        raise CJKFontMissingError(
            f"cannot read the character map of {font.path}: {exc}",
            public="No usable Chinese font is installed on the server",
        ) from exc


@functools.lru_cache(maxsize=64)
def _font(font: SealFont, size: int) -> ImageFont.FreeTypeFont:
    # The basic layout engine: one glyph at a time needs no shaping, and output must not
    # depend on whether libraqm is installed.
    return ImageFont.truetype(
        str(font.path), size, index=font.index, layout_engine=ImageFont.Layout.BASIC
    )


def _clean_text(text: str, *, what: str, limit: int) -> str:
    """``text`` with its white space tidied: none next to a CJK character (stray spaces in a
    name typed into a HIS would leave gaps on the seal), single spaces between Latin words."""
    words = unicodedata.normalize("NFC", text).split()
    cleaned = ""
    for word in words:
        if cleaned and not _wide(cleaned[-1]) and not _wide(word[0]):
            cleaned += " "
        cleaned += word
    if any(unicodedata.category(char).startswith("C") for char in cleaned):
        raise SealSpecError(f"{what} contains control characters")
    if len(cleaned) > limit:
        raise SealSpecError(f"{what} has {len(cleaned)} characters, at most {limit} fit")
    return cleaned


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


@dataclass(frozen=True)
class _ArcLayout:
    em: float
    """Glyph size (em) in mm."""
    squeeze: float
    """Horizontal scale of each glyph."""
    radius: float
    """Radius of the glyphs' centres in mm."""
    span: float
    """Arc covered by the glyph slots, radians."""


def _name_layout(count: int, text_radius: float, diameter: float, max_span: float) -> _ArcLayout:
    """Fit ``count`` glyphs along the upper arc, their tops on the circle ``text_radius``."""
    em = 0.15 * diameter
    min_em = 0.065 * diameter
    # Seal makers cut the name a little narrow (长宋) with a tenth of a glyph between glyphs;
    # short names get wider glyphs, long ones narrower, then smaller.
    squeeze, widest, narrowest = 0.9, 1.1, 0.5
    spacing = 1.1
    min_span = math.radians(160)
    radius = text_radius - em / 2

    def span_of(squeeze: float, em: float, radius: float) -> float:
        return count * em * squeeze * spacing / radius

    if span_of(squeeze, em, radius) <= max_span:
        if span_of(squeeze, em, radius) < min_span:
            squeeze = min(widest, squeeze * min_span / span_of(squeeze, em, radius))
        # Still short: spread the glyphs, but by at most 0.6 of a glyph each.
        span = min(max(span_of(squeeze, em, radius), min_span), span_of(squeeze * 1.6, em, radius))
        return _ArcLayout(em=em, squeeze=squeeze, radius=radius, span=min(span, max_span))
    squeeze = squeeze * max_span / span_of(squeeze, em, radius)
    if squeeze < narrowest:
        # Narrowest glyphs still too wide: shrink them, which moves their centres outwards.
        squeeze = narrowest
        em = max_span * text_radius / (count * squeeze * spacing + max_span / 2)
        if em < min_em:
            raise SealSpecError(f"a name of {count} characters does not fit on the seal")
        radius = text_radius - em / 2
    return _ArcLayout(em=em, squeeze=squeeze, radius=radius, span=max_span)


_EMBOLDEN = 0.012  # outline stroke added to every glyph, in ems


class _Canvas:
    """A coverage mask in supersampled pixels, drawn on in millimetres from the centre."""

    def __init__(self, diameter_mm: float, size_px: int, supersample: int) -> None:
        self.size = size_px * supersample
        self.scale = self.size / diameter_mm
        self.centre = self.size / 2
        self.mask = Image.new("L", (self.size, self.size), 0)
        self.draw = ImageDraw.Draw(self.mask)

    def px(self, mm: float) -> float:
        return mm * self.scale

    def point(self, x_mm: float, y_mm: float) -> tuple[float, float]:
        """Millimetres right of and *below* the centre → pixel coordinates."""
        return self.centre + x_mm * self.scale, self.centre + y_mm * self.scale

    def disc(self, radius_mm: float, fill: int) -> None:
        r = self.px(radius_mm)
        c = self.centre
        self.draw.ellipse((c - r, c - r, c + r, c + r), fill=fill)

    def star(self, radius_mm: float, y_mm: float) -> None:
        inner = radius_mm * math.cos(math.radians(72)) / math.cos(math.radians(36))
        points = []
        for k in range(10):
            angle = math.radians(-90 + 36 * k)
            r = radius_mm if k % 2 == 0 else inner
            points.append(self.point(r * math.cos(angle), y_mm + r * math.sin(angle)))
        self.draw.polygon(points, fill=255)

    def glyph(
        self,
        font: ImageFont.FreeTypeFont,
        char: str,
        centre: tuple[float, float],
        squeeze: float,
        degrees_ccw: float,
    ) -> None:
        em = font.size
        tile = Image.new("L", (round(em * 1.5), round(em * 1.5)), 0)
        # Paste spreads on paper and engraved strokes are even: embolden the type face a
        # little, or the thin horizontals of 宋体 look printed rather than stamped.
        ImageDraw.Draw(tile).text(
            (tile.width / 2, tile.height / 2),
            char,
            fill=255,
            font=font,
            anchor="mm",
            stroke_width=round(em * _EMBOLDEN),
            stroke_fill=255,
        )
        if squeeze != 1.0:
            tile = tile.resize(
                (max(1, round(tile.width * squeeze)), tile.height), Image.Resampling.LANCZOS
            )
        if degrees_ccw:
            tile = tile.rotate(degrees_ccw, Image.Resampling.BICUBIC, expand=True)
        x = round(centre[0] - tile.width / 2)
        y = round(centre[1] - tile.height / 2)
        self.mask.paste(255, (x, y), tile)


def _glyph_font(font: SealFont, canvas: _Canvas, em_mm: float) -> ImageFont.FreeTypeFont:
    return _font(font, max(4, round(canvas.px(em_mm))))


def render_seal(
    organisation: str,
    *,
    purpose: str | None = None,
    serial: str | None = None,
    diameter_mm: float | None = None,
    dpi: int = 600,
    texture: bool = False,
    colour: RGB = SEAL_RED,
    font_path: Path | None = None,
) -> SealImage:
    """Draw a round seal: the name along the upper arc, a five-pointed star in the centre, the
    purpose (for a special seal such as 病案专用章) under the star and an optional code along
    the bottom arc.

    ``diameter_mm`` defaults to 42 mm for an official seal and 40 mm when a purpose is given
    (see the module notes). ``texture`` adds a seeded, deterministic unevenness of the paste.
    Raises ``SealSpecError`` for text or sizes that cannot be engraved and
    ``CJKFontMissingError`` when no Chinese font is installed.
    """
    name = _clean_text(organisation, what="organisation name", limit=MAX_NAME_CHARS)
    if not name:
        raise SealSpecError("organisation name is empty")
    purpose_text = _clean_text(purpose or "", what="purpose", limit=MAX_PURPOSE_CHARS)
    serial_text = _clean_text(
        "".join((serial or "").split()), what="seal code", limit=MAX_SERIAL_CHARS
    )
    if serial_text and not all(char.isascii() and char.isalnum() for char in serial_text):
        raise SealSpecError("seal code must be ASCII letters and digits")
    diameter = diameter_mm or (SPECIAL_SEAL_MM if purpose_text else OFFICIAL_SEAL_MM)
    if not MIN_SEAL_MM <= diameter <= MAX_SEAL_MM:
        raise SealSpecError(f"seal diameter {diameter} mm outside {MIN_SEAL_MM}..{MAX_SEAL_MM}")
    if not MIN_DPI <= dpi <= MAX_DPI:
        raise SealSpecError(f"resolution {dpi} dpi outside {MIN_DPI}..{MAX_DPI}")
    font = find_cjk_font(font_path)
    missing = sorted({char for char in name + purpose_text + serial_text} - _chars(font))
    if missing:
        raise SealSpecError(f"the seal font has no glyph for {''.join(missing)!r}")

    size_px = round(diameter / MM_PER_INCH * dpi)
    # Draw big and shrink: Pillow's shapes are not anti-aliased; glyphs are, but match them.
    supersample = max(1, min(4, 3000 // size_px))
    canvas = _Canvas(diameter, size_px, supersample)
    _draw_seal(canvas, font, diameter, name, purpose_text, serial_text)
    mask = canvas.mask.reduce(supersample) if supersample > 1 else canvas.mask
    if texture:
        seed = hashlib.sha256(
            "\x1f".join([name, purpose_text, serial_text, f"{diameter:.3f}", str(dpi)]).encode()
        ).digest()
        mask = _texture(mask, seed)
    return SealImage(
        png=_encode_png(_solid(colour, mask), dpi),
        width_px=size_px,
        height_px=size_px,
        width_mm=diameter,
        height_mm=diameter,
    )


def _draw_seal(
    canvas: _Canvas, font: SealFont, diameter: float, name: str, purpose: str, serial: str
) -> None:
    special = bool(purpose)
    radius = diameter / 2
    border = diameter * (1.0 / 40 if special else 1.2 / 42)  # 1.0 mm at 40, 1.2 mm at 42
    canvas.disc(radius, 255)
    canvas.disc(radius - border, 0)
    inner = radius - border
    gap = 0.025 * diameter  # between the border and the tops of the glyphs

    serial_span = 0.0
    if serial:
        em = 0.05 * diameter
        serial_radius = inner - gap * 0.8 - em / 2
        advance = 0.62 * em  # digits are half-width
        serial_span = len(serial) * advance / serial_radius
        digits = _glyph_font(font, canvas, em)
        for index, char in enumerate(serial):
            # Measured from the bottom, left to right; glyph tops point at the centre.
            angle = -serial_span / 2 + (index + 0.5) * serial_span / len(serial)
            centre = canvas.point(serial_radius * math.sin(angle), serial_radius * math.cos(angle))
            canvas.glyph(digits, char, centre, 1.0, math.degrees(angle))

    # The name must leave the bottom free for the purpose line or the code.
    max_span = math.radians(300 if not special else 240)
    if serial:
        max_span = min(max_span, 2 * math.pi - serial_span - math.radians(50))
    layout = _name_layout(len(name), inner - gap, diameter, max_span)
    glyphs = _glyph_font(font, canvas, layout.em)
    for index, char in enumerate(name):
        # Measured clockwise from the top; glyph tops point away from the centre.
        angle = -layout.span / 2 + (index + 0.5) * layout.span / len(name)
        centre = canvas.point(layout.radius * math.sin(angle), -layout.radius * math.cos(angle))
        canvas.glyph(glyphs, char, centre, layout.squeeze, -math.degrees(angle))

    star_radius = (0.15 if special else 1 / 6) * diameter
    star_y = -0.02 * diameter if special else 0.0
    canvas.star(star_radius, star_y)

    if purpose:
        em = 0.11 * diameter
        # The line sits under the star's lower points (at 0.81 of its radius below its centre);
        # a long purpose set smaller stays centred on the same line.
        middle = star_y + 0.81 * star_radius + 0.045 * diameter + em / 2
        width_allowed = 0.5 * diameter
        natural = len(purpose) * em
        squeeze = min(1.0, width_allowed / natural)
        if squeeze < 0.5:
            em *= squeeze / 0.5
            squeeze = 0.5
        letters = _glyph_font(font, canvas, em)
        step = em * squeeze
        first = -step * (len(purpose) - 1) / 2
        for index, char in enumerate(purpose):
            centre = canvas.point(first + index * step, middle)
            canvas.glyph(letters, char, centre, squeeze, 0.0)


def _texture(mask: Image.Image, seed: bytes) -> Image.Image:
    """Uneven paste: a seeded noise field thins the ink in patches. Deterministic per seed."""
    rng = random.Random(seed)
    width, height = mask.size
    fields = []
    for cells in (24, 90):
        noise = Image.frombytes("L", (cells, cells), rng.randbytes(cells * cells))
        fields.append(noise.resize((width, height), Image.Resampling.BICUBIC))
    noise = ImageChops.add(fields[0], fields[1], scale=2.0)
    # Most of the seal keeps full paste; the lightest noise patches lose up to half of it.
    table = [255 if value < 150 else round(255 - (value - 150) * 1.2) for value in range(256)]
    return ImageChops.multiply(mask, noise.point(table))


# --- cross-page seals -------------------------------------------------------------------------


def split_seal(seal: SealImage, pages: int) -> tuple[SealSlice, ...]:
    """Cut ``seal`` into ``pages`` vertical slices of (almost) equal width, left to right.

    Slice *i* goes on the right edge of page *i*: stamped over the fanned edges of a stack,
    the first page shows the seal's left part. Raises ``SealSplitError`` for fewer than one
    page, more than ``MAX_SPLIT_PAGES``, or slices narrower than two pixels.
    """
    if not 1 <= pages <= MAX_SPLIT_PAGES:
        raise SealSplitError(f"cannot split a seal over {pages} pages (1..{MAX_SPLIT_PAGES})")
    if seal.width_px < 2 * pages:
        raise SealSplitError(f"a seal {seal.width_px} px wide cannot be cut into {pages}")
    with Image.open(io.BytesIO(seal.png), formats=("PNG",)) as opened:
        image = opened.convert("RGBA")
    pt_per_px = seal.width_pt / seal.width_px
    slices = []
    for index in range(pages):
        left = round(index * seal.width_px / pages)
        right = round((index + 1) * seal.width_px / pages)
        piece = image.crop((left, 0, right, image.height))
        slices.append(
            SealSlice(
                index=index,
                png=_encode_png(piece, seal.dpi),
                width_px=right - left,
                height_px=image.height,
                width_pt=(right - left) * pt_per_px,
                height_pt=seal.height_pt,
                offset_pt=left * pt_per_px,
            )
        )
    return tuple(slices)
