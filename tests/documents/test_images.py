"""Signature photos, generated seals, cross-page slices and uploaded seals.

Inputs are made here: a synthetic "phone photo" of a pen signature on off-white paper under
uneven light, with a shadow, paper texture, sensor noise and specks, JPEG-compressed and
stored sideways with an EXIF orientation. The strokes are drawn on a separate mask first, so
the test knows exactly where the ink is. Outputs worth a human look are written to
``test-artifacts/documents/`` (ignored by git).
"""

from __future__ import annotations

import functools
import io
import math
import random
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from medsign.documents import images
from medsign.documents.images import (
    MAX_NAME_CHARS,
    MAX_PURPOSE_CHARS,
    MAX_SPLIT_PAGES,
    SEAL_RED,
    SIGNATURE_INK,
    CJKFontMissingError,
    ImageTooDarkError,
    ImageTooLargeError,
    ImageTooSmallError,
    ImageUnreadableError,
    NoInkFoundError,
    SealImage,
    SealNotRedError,
    SealSpecError,
    SealSplitError,
    extract_signature,
    prepare_uploaded_seal,
    render_seal,
    split_seal,
)
from medsign.errors import ConfigurationError, InputError

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "documents"
HOSPITAL = "北京市第一人民医院"
PHOTO = (2000, 1500)
PAPER = (238, 233, 222)
BLUE_BLACK = (30, 38, 105)


def _save(name: str, png: bytes) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / name).write_bytes(png)


def _rgba(png: bytes) -> Image.Image:
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        return image.convert("RGBA")


# --- synthetic photos -------------------------------------------------------------------------


@functools.cache
def _strokes(size: tuple[int, int] = PHOTO) -> Image.Image:
    """The ink as a coverage mask: a wavy cursive stroke, a cross and a pen dot."""
    width, height = size
    ss = 2  # drawn at twice the size and shrunk, so stroke edges are soft like a photo's
    mask = Image.new("L", (width * ss, height * ss), 0)
    draw = ImageDraw.Draw(mask)
    pen = 8 * ss
    x0, y0, length = 0.3 * width * ss, 0.45 * height * ss, 0.4 * width * ss
    wave = [
        (
            x0 + length * t / 200 + 40 * ss * math.sin(t / 7),
            y0 + 90 * ss * math.sin(t / 200 * 5 * math.pi) + 30 * ss * math.cos(t / 13),
        )
        for t in range(201)
    ]
    draw.line(wave, fill=255, width=pen, joint="curve")
    right = x0 + length
    draw.line([(right + 60 * ss, y0 - 60 * ss), (right + 220 * ss, y0 - 70 * ss)], 255, pen)
    draw.line([(right + 140 * ss, y0 - 140 * ss), (right + 150 * ss, y0 + 110 * ss)], 255, pen)
    dot, cx, cy = 9 * ss, right + 250 * ss, y0 + 40 * ss
    draw.ellipse((cx - dot, cy - dot, cx + dot, cy + dot), fill=255)
    return mask.resize(size, Image.Resampling.LANCZOS)


def _grey(image: Image.Image) -> Image.Image:
    return Image.merge("RGB", [image] * 3)


def _photo(
    *,
    ink: tuple[int, int, int] = BLUE_BLACK,
    strokes: bool = True,
    hard_shadow: bool = False,
    table: bool = False,
    seed: int = 1,
) -> Image.Image:
    rng = random.Random(seed)
    width, height = PHOTO
    paper = Image.new("RGB", PHOTO, PAPER)
    image = Image.composite(Image.new("RGB", PHOTO, ink), paper, _strokes()) if strokes else paper
    # Light falls off to the left: the left edge gets 55 % of the right edge's light.
    light = Image.linear_gradient("L").rotate(90).resize(PHOTO)
    image = ImageChops.multiply(
        image, _grey(light.point([140 + v * 115 // 255 for v in range(256)]))
    )
    # A hand's soft shadow over the lower left, its edge across the start of the signature.
    shadow = Image.new("L", PHOTO, 255)
    ImageDraw.Draw(shadow).ellipse(
        (int(-0.2 * width), int(0.4 * height), int(0.5 * width), int(1.4 * height)), fill=140
    )
    image = ImageChops.multiply(image, _grey(shadow.filter(ImageFilter.GaussianBlur(40))))
    if hard_shadow:
        # A sharp-edged shadow (a phone held under a lamp) through the middle of the strokes.
        edge = Image.new("L", PHOTO, 255)
        ImageDraw.Draw(edge).rectangle((0, 0, int(0.45 * width), height), fill=120)
        image = ImageChops.multiply(image, _grey(edge.filter(ImageFilter.GaussianBlur(6))))
    cells = (width // 8, height // 8)
    texture = Image.frombytes("L", cells, rng.randbytes(cells[0] * cells[1]))
    texture = texture.resize(PHOTO, Image.Resampling.BICUBIC).point(
        [v * 12 // 255 for v in range(256)]
    )
    noise = Image.frombytes("L", PHOTO, rng.randbytes(width * height))
    image = ImageChops.add(image, _grey(texture), offset=-6)
    image = ImageChops.add(
        image, _grey(noise.point([v * 16 // 255 for v in range(256)])), offset=-8
    )
    draw = ImageDraw.Draw(image)
    for _ in range(25):  # dust on the paper
        x, y = rng.randrange(width), rng.randrange(height)
        draw.ellipse((x, y, x + 2, y + 2), fill=(110, 105, 100))
    if table:
        draw.rectangle((int(0.92 * width), 0, width, height), fill=(50, 40, 35))
    return image


def _jpeg(image: Image.Image, *, orientation: int = 1, quality: int = 82) -> bytes:
    """JPEG bytes as a phone stores them: orientation 6 means stored turned 90° to the left,
    to be turned right for display."""
    stored = image.transpose(Image.Transpose.ROTATE_90) if orientation == 6 else image
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=quality, exif=exif.tobytes())
    return out.getvalue()


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@functools.cache
def _phone_photo() -> bytes:
    return _jpeg(_photo(), orientation=6)


def _check_clean_cutout(result: images.SignatureImage) -> None:
    """The crop hugs the known strokes, the paper is fully transparent, the ink opaque."""
    known = _strokes().getbbox()
    assert known is not None
    left, top, right, bottom = result.source_box
    size = max(known[2] - known[0], known[3] - known[1])
    slack = 0.04 * size + 12  # the margin added around the ink, plus soft edges
    assert known[0] - slack <= left <= known[0]
    assert known[1] - slack <= top <= known[1]
    assert known[2] <= right <= known[2] + slack
    assert known[3] <= bottom <= known[3] + slack

    output = _rgba(result.png)
    assert output.size == (result.width, result.height)
    alpha = output.getchannel("A")
    expected = _strokes().crop(result.source_box).resize(output.size, Image.Resampling.BILINEAR)
    near_ink = expected.filter(ImageFilter.MaxFilter(9))
    far = ImageChops.multiply(alpha, ImageChops.invert(near_ink.point([0] + [255] * 255)))
    assert far.getbbox() is None, "ink (or a speck) where the paper was"
    core = expected.point([0] * 200 + [255] * 56).filter(ImageFilter.MinFilter(3))
    core_pixels = core.histogram()[255]
    opaque_core = ImageChops.multiply(core, alpha.point([0] * 255 + [255])).histogram()[255]
    assert core_pixels > 1000 and opaque_core >= 0.97 * core_pixels
    edges = sum(alpha.histogram()[1:255])
    assert edges > 0.05 * core_pixels, "stroke edges should be soft, not a hard threshold"


# --- signatures -------------------------------------------------------------------------------


def test_phone_photo_signature_is_cut_out_upright_and_clean() -> None:
    result = extract_signature(_phone_photo())
    _save("signature.png", result.png)

    _check_clean_cutout(result)
    assert result.ink_colour == SIGNATURE_INK
    data = _rgba(result.png).tobytes()
    colours = {data[i : i + 3] for i in range(0, len(data), 4) if data[i + 3]}
    assert colours == {bytes(SIGNATURE_INK)}
    assert 0.01 < result.ink_coverage < 0.2


def test_pen_colour_can_be_kept() -> None:
    result = extract_signature(_phone_photo(), keep_pen_colour=True)
    _save("signature-pen-colour.png", result.png)

    red, green, blue = result.ink_colour
    assert blue > red + 30 and blue > green + 30  # still a blue-black pen


def test_hard_shadow_and_table_edge_do_not_become_ink() -> None:
    shadowed = extract_signature(_jpeg(_photo(hard_shadow=True)))
    on_table = extract_signature(_jpeg(_photo(table=True)))
    _save("signature-hard-shadow.png", shadowed.png)

    _check_clean_cutout(shadowed)
    _check_clean_cutout(on_table)


def test_output_is_bounded() -> None:
    result = extract_signature(_phone_photo(), max_width=400, max_height=300)

    assert result.width <= 400 and result.height <= 300
    assert max(result.width / 400, result.height / 300) > 0.99  # scaled to fit, not further


def test_transparent_png_signature_is_accepted() -> None:
    drawn = Image.new("RGBA", PHOTO, (0, 0, 0, 0))
    drawn.putalpha(_strokes())

    result = extract_signature(_png(drawn))

    _check_clean_cutout(result)


def test_tightly_cropped_scan_keeps_strokes_that_touch_its_borders() -> None:
    box = _strokes().getbbox()
    assert box is not None
    scan = Image.new("RGB", PHOTO, "white")
    scan.paste((20, 20, 20), (0, 0), _strokes())
    cropped = scan.crop(box)

    result = extract_signature(_png(cropped))

    alpha = _rgba(result.png).getchannel("A")
    assert result.source_box == (0, 0, cropped.width, cropped.height)
    assert sum(alpha.histogram()[255:]) > 0.8 * sum(_strokes().histogram()[255:])


def test_blank_and_speckled_paper_have_no_ink() -> None:
    blank = _jpeg(_photo(strokes=False))
    pristine = _png(Image.new("RGB", (800, 600), PAPER))

    for data in (blank, pristine):
        with pytest.raises(NoInkFoundError) as caught:
            extract_signature(data)
        assert caught.value.code == "no-ink-found"


def test_dark_photo_is_refused() -> None:
    dark = Image.new("RGB", (1600, 1200), (30, 28, 26))
    ImageDraw.Draw(dark).rectangle((100, 100, 500, 400), fill=(240, 240, 240))
    checker = Image.new("RGB", (1600, 1200), (245, 245, 245))
    draw = ImageDraw.Draw(checker)
    for x in range(0, 1600, 40):
        for y in range(0, 1200, 40):
            if (x // 40 + y // 40) % 2:
                draw.rectangle((x, y, x + 39, y + 39), fill=(20, 20, 20))

    for image in (dark, checker):
        with pytest.raises(ImageTooDarkError) as caught:
            extract_signature(_jpeg(image))
        assert caught.value.code == "image-too-dark"


def _bomb_png(width: int, height: int) -> bytes:
    """A valid small PNG whose header claims ``width`` × ``height``."""
    data = bytearray(_png(Image.new("L", (64, 64), 255)))
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)


def test_unreadable_oversized_and_tiny_images_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gif = io.BytesIO()
    Image.new("RGB", (200, 200), "white").save(gif, "GIF")
    truncated = _phone_photo()[:5000]
    for data in (b"", b"not an image", b"%PDF-1.7", gif.getvalue(), truncated):
        with pytest.raises(ImageUnreadableError) as unreadable:
            extract_signature(data)
        assert unreadable.value.code == "image-unreadable"

    with pytest.raises(ImageTooLargeError) as bomb:
        extract_signature(_bomb_png(30_000, 30_000))
    assert bomb.value.code == "image-too-large"
    with pytest.raises(ImageTooLargeError):
        extract_signature(_bomb_png(5000, 4000))  # 20 megapixels: under Pillow's own limit

    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 1000)
    with pytest.raises(ImageTooLargeError):
        extract_signature(_phone_photo())
    monkeypatch.undo()

    with pytest.raises(ImageTooSmallError):
        extract_signature(_png(Image.new("RGB", (40, 300), "white")))
    assert issubclass(ImageTooSmallError, InputError)


# --- seals ------------------------------------------------------------------------------------


def _alpha_at(image: Image.Image, radius: float, degrees: float) -> int:
    """Opacity at a point given in polar form from the centre (0° = up, clockwise)."""
    centre = image.width / 2
    x = centre + radius * math.sin(math.radians(degrees))
    y = centre - radius * math.cos(math.radians(degrees))
    value = image.getchannel("A").getpixel((int(x), int(y)))
    assert isinstance(value, int)
    return value


def _ink_in(image: Image.Image, box: tuple[float, float, float, float]) -> int:
    """Opaque pixels inside a box given in fractions of the seal's size."""
    size = image.width
    crop = image.getchannel("A").crop(tuple(round(v * size) for v in box))
    return sum(crop.histogram()[128:])


@functools.cache
def _official() -> SealImage:
    return render_seal(HOSPITAL)


def test_official_seal_has_true_size_red_ring_star_and_name() -> None:
    seal = _official()
    _save("seal-official.png", seal.png)
    image = _rgba(seal.png)

    assert seal.width_mm == seal.height_mm == 42.0
    assert seal.width_px == seal.height_px == round(42 / 25.4 * 600) == image.width == 992
    assert seal.width_pt == pytest.approx(42 / 25.4 * 72)
    assert seal.dpi == pytest.approx(600, rel=0.001)
    radius = image.width / 2
    border = 1.2 / 42 * image.width
    for degrees in range(0, 360, 15):
        assert _alpha_at(image, radius - border / 2, degrees) == 255  # the ring
    for degrees in range(20, 75, 5):  # outside the ring, in the square's corners
        for quadrant in range(4):
            assert _alpha_at(image, radius + 3, degrees + 90 * quadrant) == 0
    for x, y in ((0, 0), (image.width - 1, 0), (0, image.height - 1)):
        assert image.getpixel((x, y)) == (230, 0, 18, 0)
    assert image.getpixel((image.width // 2, image.height // 2)) == (*SEAL_RED, 255)
    star = image.width / 6  # 14 mm tip to tip on a 42 mm seal
    for tip in range(0, 360, 72):
        assert _alpha_at(image, 0.9 * star, tip) == 255
        assert _alpha_at(image, 0.9 * star, tip + 36) == 0  # between the arms
    assert _ink_in(image, (0.2, 0.07, 0.8, 0.3)) > 5000  # the name along the top
    assert _ink_in(image, (0.35, 0.72, 0.65, 0.9)) == 0  # nothing at the bottom


def test_special_seal_is_40mm_with_its_purpose_under_the_star() -> None:
    seal = render_seal(HOSPITAL, purpose="病案专用章")
    _save("seal-special.png", seal.png)
    image = _rgba(seal.png)

    assert seal.width_mm == 40.0 and seal.width_px == round(40 / 25.4 * 600)
    assert _ink_in(image, (0.3, 0.64, 0.7, 0.78)) > 3000  # the purpose line
    assert _ink_in(image, (0.4, 0.8, 0.6, 0.94)) == 0  # nothing under it


def test_serial_code_runs_along_the_bottom() -> None:
    seal = render_seal("上海交通大学医学院附属瑞金医院", serial="3101010012345", dpi=300)
    _save("seal-serial.png", seal.png)
    image = _rgba(seal.png)

    assert seal.width_px == round(42 / 25.4 * 300)
    assert _ink_in(image, (0.3, 0.82, 0.7, 0.95)) > 200


def test_seal_output_is_deterministic() -> None:
    assert render_seal(HOSPITAL).png == _official().png
    assert render_seal(" 北京市 第一人民医院\n").png == _official().png  # stray spaces
    textured = render_seal(HOSPITAL, texture=True)
    _save("seal-textured.png", textured.png)
    assert render_seal(HOSPITAL, texture=True).png == textured.png
    assert textured.png != _official().png


@pytest.mark.parametrize("length", [30, MAX_NAME_CHARS])
def test_long_names_fit_on_the_arc(length: int) -> None:
    name = ("中国医学科学院北京协和医学院附属某某省某某市第一人民医院集团总院" * 2)[:length]
    seal = render_seal(name, purpose="财务专用章", serial="3101010012345", dpi=300)
    if length == 30:
        _save("seal-long-name.png", seal.png)
    image = _rgba(seal.png)

    radius = image.width / 2
    ring_inside = radius - 1.0 / 40 * image.width
    # Glyphs stay inside the ring: just within it, all round, there is paper.
    for degrees in range(0, 360, 5):
        assert _alpha_at(image, ring_inside - 2, degrees) < 255
    assert _ink_in(image, (0.05, 0.05, 0.3, 0.5)) > 500  # the name reaches the left ...
    assert _ink_in(image, (0.7, 0.05, 0.95, 0.5)) > 500  # ... and the right


def test_seal_requests_that_cannot_be_engraved() -> None:
    for call in (
        lambda: render_seal(""),
        lambda: render_seal("   "),
        lambda: render_seal("医" * (MAX_NAME_CHARS + 1)),
        lambda: render_seal(HOSPITAL, purpose="病" * (MAX_PURPOSE_CHARS + 1)),
        lambda: render_seal("某某医院\u200b"),  # an invisible format character
        lambda: render_seal("某某医院🏥"),  # not in the seal font
        lambda: render_seal(HOSPITAL, serial="编号123"),
        lambda: render_seal(HOSPITAL, diameter_mm=10),
        lambda: render_seal(HOSPITAL, dpi=5000),
    ):
        with pytest.raises(SealSpecError) as caught:
            call()
        assert caught.value.code == "seal-spec-invalid"


def test_missing_cjk_font_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(CJKFontMissingError) as caught:
        render_seal(HOSPITAL, font_path=tmp_path / "missing.ttc")

    assert isinstance(caught.value, ConfigurationError)
    assert caught.value.code == "cjk-font-missing"
    assert str(tmp_path) not in caught.value.public_message()


# --- cross-page seals -------------------------------------------------------------------------


def test_split_seal_slices_reassemble_to_the_seal() -> None:
    seal = render_seal(HOSPITAL, dpi=300)
    slices = split_seal(seal, 3)
    whole = _rgba(seal.png)

    assert [piece.index for piece in slices] == [0, 1, 2]
    assert sum(piece.width_px for piece in slices) == seal.width_px
    assert sum(piece.width_pt for piece in slices) == pytest.approx(seal.width_pt)
    assert [piece.offset_pt for piece in slices] == pytest.approx(
        [0.0, slices[0].width_pt, slices[0].width_pt + slices[1].width_pt]
    )
    joined = Image.new("RGBA", whole.size)
    x = 0
    for piece in slices:
        image = _rgba(piece.png)
        assert image.size == (piece.width_px, piece.height_px) and piece.height_pt == seal.height_pt
        joined.paste(image, (x, 0))
        x += image.width
    assert ImageChops.difference(joined, whole).getbbox() is None
    _save("seal-slice-0.png", slices[0].png)

    assert len(split_seal(seal, 1)) == 1
    for pages in (0, -1, MAX_SPLIT_PAGES + 1, seal.width_px):
        with pytest.raises(SealSplitError):
            split_seal(seal, pages)


# --- uploaded seals ---------------------------------------------------------------------------


def _scanned(seal: SealImage, *, grey: bool = False) -> bytes:
    stamp = _rgba(seal.png)
    page = Image.new("RGBA", (stamp.width + 300, stamp.height + 200), (*PAPER, 255))
    page.alpha_composite(stamp, (150, 80))
    rgb = page.convert("RGB")
    rng = random.Random(3)
    noise = Image.frombytes("L", rgb.size, rng.randbytes(rgb.width * rgb.height))
    rgb = ImageChops.add(rgb, _grey(noise.point([v * 14 // 255 for v in range(256)])), offset=-7)
    if grey:
        rgb = rgb.convert("L").convert("RGB")
    return _jpeg(rgb, quality=88)


def test_uploaded_seal_loses_its_paper_and_keeps_its_red() -> None:
    seal = render_seal(HOSPITAL, dpi=300)

    uploaded = prepare_uploaded_seal(_scanned(seal), width_mm=42)
    _save("seal-uploaded.png", uploaded.png)
    image = _rgba(uploaded.png)

    assert abs(uploaded.width_px - seal.width_px) <= 4  # cropped to the ring
    assert uploaded.width_mm == 42 and uploaded.height_mm == pytest.approx(42, abs=0.5)
    assert uploaded.width_pt == pytest.approx(seal.width_pt)
    red, green, blue, _ = image.getpixel((image.width // 2, image.height // 2))
    assert red > 180 and green < 60 and blue < 70
    assert _alpha_at(image, image.width / 2 + 1, 45) == 0
    assert image.getchannel("A").getpixel((image.width // 2, int(image.height * 0.8))) == 0


def test_uploaded_seal_cropped_to_its_edge_is_accepted() -> None:
    seal = render_seal(HOSPITAL, purpose="病案专用章", dpi=300)
    flat = Image.new("RGBA", (seal.width_px, seal.height_px), "white")
    flat.alpha_composite(_rgba(seal.png))

    for data in (seal.png, _png(flat.convert("RGB"))):
        uploaded = prepare_uploaded_seal(data, width_mm=40)
        assert abs(uploaded.width_px - seal.width_px) <= 2
        assert uploaded.width_pt == pytest.approx(seal.width_pt)


def test_uploaded_seal_must_be_red_unless_told_otherwise() -> None:
    grey = _scanned(render_seal(HOSPITAL, dpi=300), grey=True)

    with pytest.raises(SealNotRedError) as caught:
        prepare_uploaded_seal(grey)
    assert caught.value.code == "seal-not-red"
    assert prepare_uploaded_seal(grey, require_red=False).width_px > 400
    with pytest.raises(SealSpecError):
        prepare_uploaded_seal(grey, width_mm=5)
