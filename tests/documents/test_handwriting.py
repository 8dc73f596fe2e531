"""The clinician's handwritten signature: propose from a photo, confirm, discard, retire.

``signature_photo`` makes the input the phone sends: a cursive pen signature drawn with
Pillow on off-white paper under light that falls off to one side, with sensor noise, JPEG
compressed. The API and browser tests use it too."""

from __future__ import annotations

import io
import itertools
import json
import math
import random

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter
from sqlalchemy import select

from medsign.clock import FixedClock
from medsign.db import Database
from medsign.db.tables import EvidenceEventRow, OrganizationRow, SignatureImageRow, StaffRow
from medsign.documents.handwriting import (
    MAX_PHOTO_BYTES,
    HandwritingNotFoundError,
    HandwritingNotProposedError,
    HandwritingService,
    png_size,
)
from medsign.documents.images import ImageTooDarkError, ImageTooLargeError, NoInkFoundError
from medsign.documents.service import DocumentService

PAPER = (240, 235, 224)
INK = (26, 30, 78)  # a blue-black ballpoint


def _stroke_mask(size: tuple[int, int], seed: int) -> Image.Image:
    """A cursive signature as an ink-coverage mask: loops of varying height joined by one
    pen line, a closing flourish underneath, and a dot. Drawn at twice the size and shrunk,
    so edges are soft like a photo's."""
    rng = random.Random(seed)
    width, height = size
    ss = 2
    mask = Image.new("L", (width * ss, height * ss), 0)
    draw = ImageDraw.Draw(mask)
    left, base = 0.2 * width * ss, 0.55 * height * ss
    span = 0.55 * width * ss
    loops = 6
    heights = [rng.uniform(0.10, 0.24) * height * ss for _ in range(loops + 1)]
    points = []
    for i in range(601):
        t = i / 600
        phase = t * loops * 2 * math.pi
        lobe = heights[min(loops, int(t * loops))]
        x = left + span * t - 0.03 * width * ss * math.sin(phase)
        y = base - lobe * (0.5 - 0.5 * math.cos(phase)) + 0.02 * height * ss * math.sin(t * 7)
        points.append((x, y))
    pen = 7 * ss
    for (x1, y1), (x2, y2) in itertools.pairwise(points):
        # A ballpoint leaves thinner lines where the hand moves fast (long steps).
        speed = math.hypot(x2 - x1, y2 - y1)
        draw.line([(x1, y1), (x2, y2)], fill=255, width=max(3 * ss, int(pen - speed / 3)))
        draw.ellipse((x2 - pen / 3, y2 - pen / 3, x2 + pen / 3, y2 + pen / 3), fill=255)
    flourish = [
        (
            left - 0.05 * width * ss + 0.7 * width * ss * t,
            base + 0.1 * height * ss - 0.06 * height * ss * math.sin(t * math.pi),
        )
        for t in (j / 200 for j in range(201))
    ]
    draw.line(flourish, fill=255, width=5 * ss, joint="curve")
    cx, cy, r = left + span + 0.06 * width * ss, base - 0.2 * height * ss, 6 * ss
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    return mask.resize(size, Image.Resampling.LANCZOS)


def signature_photo(
    *, size: tuple[int, int] = (1600, 1200), seed: int = 3, ink: bool = True, quality: int = 82
) -> bytes:
    """A phone photo (JPEG) of a pen signature on off-white paper in uneven light."""
    image = Image.new("RGB", size, PAPER)
    if ink:
        image = Image.composite(Image.new("RGB", size, INK), image, _stroke_mask(size, seed))
    # Light falls off towards the left edge: 60 % there of the right edge's light.
    light = Image.linear_gradient("L").rotate(90).resize(size)
    light = light.point([153 + v * 102 // 255 for v in range(256)])
    image = ImageChops.multiply(image, Image.merge("RGB", [light] * 3))
    # Sensor noise, a little blurred the way a camera pipeline leaves it.
    noise = Image.effect_noise(size, 10).filter(ImageFilter.GaussianBlur(0.6))
    image = ImageChops.add(image, Image.merge("RGB", [noise] * 3), scale=1.0, offset=-128)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def dark_photo() -> bytes:
    """A photo of a dark table: no white paper anywhere."""
    out = io.BytesIO()
    Image.new("RGB", (800, 600), (38, 30, 26)).save(out, "JPEG", quality=85)
    return out.getvalue()


def alpha_of(png: bytes) -> Image.Image:
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.mode == "RGBA"
        return image.getchannel("A").copy()


@pytest.fixture
def staffed(database: Database, clock: FixedClock) -> Database:
    now = clock.now()
    with database.session() as s:
        s.add(OrganizationRow(id="org_1", code="h", name="H", demo=False, created_at=now))
        s.flush()
        for staff_id in ("stf_a", "stf_b"):
            s.add(
                StaffRow(
                    id=staff_id,
                    organization_id="org_1",
                    employee_no=staff_id,
                    name="x",
                    created_at=now,
                    updated_at=now,
                )
            )
    return database


@pytest.fixture
def service(staffed: Database, clock: FixedClock) -> HandwritingService:
    return HandwritingService(staffed, clock)


def events(database: Database, prefix: str = "handwriting:") -> list[dict[str, object]]:
    with database.session() as s:
        rows = s.scalars(
            select(EvidenceEventRow)
            .where(EvidenceEventRow.type.startswith(prefix))
            .order_by(EvidenceEventRow.seq)
        )
        return [json.loads(r.record) for r in rows]


def test_a_photo_becomes_a_transparent_proposal_then_the_active_image(
    service: HandwritingService, staffed: Database
) -> None:
    photo = signature_photo()
    proposed = service.propose("stf_a", photo, actor="staff:stf_a@dev_1")
    assert proposed.state == "proposed" and proposed.staff_id == "stf_a"
    png = service.png("stf_a", proposed.id)
    assert (proposed.width, proposed.height) == png_size(png)
    alpha = alpha_of(png)
    # Cropped to the ink: far smaller than the photo, every corner clear, strokes opaque.
    assert proposed.width < 1600 * 0.8 and proposed.height < 1200 * 0.6
    w, h = alpha.size
    assert [alpha.getpixel(p) for p in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1))] == [0] * 4
    assert alpha.getextrema() == (0, 255)
    # Not in use until confirmed.
    with staffed.session() as s:
        assert DocumentService.active_image(s, "staff", "stf_a") is None
    assert service.images("stf_a").proposed == proposed

    active = service.confirm("stf_a", proposed.id, actor="staff:stf_a@dev_1")
    assert active.state == "active" and active.decided_at is not None
    with staffed.session() as s:
        assert DocumentService.active_image(s, "staff", "stf_a") == png
    images = service.images("stf_a")
    assert images.active == active and images.proposed is None

    # The evidence holds ids and hashes, never the image or the photo.
    propose, confirm = events(staffed)
    assert propose["type"] == "handwriting:propose"
    assert propose["image_id"] == proposed.id and propose["image_sha256"] == proposed.sha256
    assert len(str(propose["photo_sha256"])) == 64
    assert confirm["type"] == "handwriting:confirm" and confirm["retired_image_ids"] == []
    assert all(len(json.dumps(e)) < 1000 for e in (propose, confirm))


def test_confirming_a_new_image_retires_the_old_one_and_keeps_it(
    service: HandwritingService, staffed: Database
) -> None:
    first = service.propose("stf_a", signature_photo(seed=1), actor="t")
    service.confirm("stf_a", first.id, actor="t")
    second = service.propose("stf_a", signature_photo(seed=2), actor="t")
    service.confirm("stf_a", second.id, actor="t")
    with staffed.session() as s:
        states = {r.id: r.state for r in s.scalars(select(SignatureImageRow))}
    assert states == {first.id: "retired", second.id: "active"}
    assert events(staffed)[-1]["retired_image_ids"] == [first.id]
    # Retired and active images cannot be confirmed or discarded again.
    for image_id in (first.id, second.id):
        with pytest.raises(HandwritingNotProposedError):
            service.confirm("stf_a", image_id, actor="t")
        with pytest.raises(HandwritingNotProposedError):
            service.discard("stf_a", image_id, actor="t")


def test_proposals_are_discarded_or_superseded_and_then_gone(
    service: HandwritingService, staffed: Database
) -> None:
    first = service.propose("stf_a", signature_photo(seed=4), actor="t")
    second = service.propose("stf_a", signature_photo(seed=5), actor="t")
    with pytest.raises(HandwritingNotFoundError):
        service.png("stf_a", first.id)
    service.discard("stf_a", second.id, actor="t")
    with pytest.raises(HandwritingNotFoundError):
        service.confirm("stf_a", second.id, actor="t")
    assert service.images("stf_a").proposed is None
    reasons = [(e["type"], e.get("reason")) for e in events(staffed)]
    assert reasons == [
        ("handwriting:propose", None),
        ("handwriting:discard", "superseded"),
        ("handwriting:propose", None),
        ("handwriting:discard", "discarded"),
    ]


def test_one_clinician_cannot_see_confirm_or_discard_anothers_image(
    service: HandwritingService,
) -> None:
    proposed = service.propose("stf_a", signature_photo(), actor="t")
    with pytest.raises(HandwritingNotFoundError):
        service.confirm("stf_b", proposed.id, actor="t")
    with pytest.raises(HandwritingNotFoundError):
        service.discard("stf_b", proposed.id, actor="t")
    with pytest.raises(HandwritingNotFoundError):
        service.png("stf_b", proposed.id)
    assert service.images("stf_b").proposed is None
    assert service.images("stf_a").proposed == proposed


def test_bad_photos_are_refused_and_nothing_is_kept(
    service: HandwritingService, staffed: Database
) -> None:
    with pytest.raises(NoInkFoundError):
        service.propose("stf_a", signature_photo(ink=False), actor="t")
    with pytest.raises(ImageTooDarkError):
        service.propose("stf_a", dark_photo(), actor="t")
    with pytest.raises(ImageTooLargeError):
        service.propose("stf_a", b"\xff" * (MAX_PHOTO_BYTES + 1), actor="t")
    with staffed.session() as s:
        assert s.scalars(select(SignatureImageRow)).all() == []
    assert events(staffed) == []
