"""A clinician's handwritten signature, the image their PDF signatures show.

The clinician photographs a signature on white paper; ``extract_signature`` cuts the ink out
as a transparent, cropped PNG, which is kept as a *proposal* until the clinician has seen it
and confirms it. Confirming makes it the *active* image (the one ``DocumentService`` draws
into appearances) and retires the previous one. Retired images are kept, so an appearance
signed last year can still be explained; a discarded proposal is deleted, because it never
appeared anywhere and a handwriting sample is personal data nobody asked to keep.

Every change is one transaction with its evidence event (ids and SHA-256 hashes only, never
the image). Changes to one clinician's images are serialised on their staff row, so two
phones confirming at once cannot leave two active images.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import Session

from medsign.clock import Clock
from medsign.db import Database
from medsign.db.tables import SignatureImageRow, StaffRow
from medsign.documents.images import ImageTooLargeError, extract_signature
from medsign.errors import NotFoundError, StateError
from medsign.evidence import record_event
from medsign.ids import new_id

MAX_PHOTO_BYTES: Final = 12 * 1024 * 1024
"""Largest accepted photo. Phone cameras write 2–8 MB; the phone page shrinks anything wider
than the extractor's working size (2400 px) before sending, so this is rarely reached."""

OWNER_KIND: Final = "staff"
KIND: Final = "handwriting"
PROPOSED: Final = "proposed"
ACTIVE: Final = "active"
RETIRED: Final = "retired"


class HandwritingNotFoundError(NotFoundError):
    code = "handwriting-not-found"
    title = "No such handwritten signature"


class HandwritingNotProposedError(StateError):
    code = "handwriting-not-proposed"
    title = "The handwritten signature is not a proposal (already confirmed or retired)"


@dataclass(frozen=True)
class Handwriting:
    """One handwritten-signature image of a clinician (the PNG itself comes from ``png``)."""

    id: str
    staff_id: str
    state: str
    sha256: str
    width: int
    height: int
    created_at: dt.datetime
    decided_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: SignatureImageRow) -> Handwriting:
        width, height = png_size(row.png)
        return cls(
            id=row.id,
            staff_id=row.owner_id,
            state=row.state,
            sha256=row.sha256,
            width=width,
            height=height,
            created_at=row.created_at,
            decided_at=row.decided_at,
        )


@dataclass(frozen=True)
class HandwritingImages:
    """A clinician's current images: the one in use and the one awaiting their decision."""

    active: Handwriting | None
    proposed: Handwriting | None


def check_photo_size(size: int) -> None:
    """Refuse a photo over ``MAX_PHOTO_BYTES`` (callers check while the body streams in)."""
    if size > MAX_PHOTO_BYTES:
        raise ImageTooLargeError(
            f"photo of at least {size} bytes exceeds {MAX_PHOTO_BYTES}",
            public=f"the photo is over {MAX_PHOTO_BYTES // (1024 * 1024)} MB",
        )


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, without decoding the image."""
    if len(png) < 24 or png[12:16] != b"IHDR":
        return (0, 0)
    width, height = struct.unpack(">II", png[16:24])
    return (int(width), int(height))


class HandwritingService:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    # -- reading ----------------------------------------------------------------------------

    def images(self, staff_id: str) -> HandwritingImages:
        with self._db.session() as session:
            rows = session.scalars(
                _owned(staff_id).where(SignatureImageRow.state.in_((ACTIVE, PROPOSED)))
            ).all()
            newest = sorted(rows, key=lambda r: r.created_at, reverse=True)
            active = next((r for r in newest if r.state == ACTIVE), None)
            proposed = next((r for r in newest if r.state == PROPOSED), None)
            return HandwritingImages(
                active=Handwriting.from_row(active) if active else None,
                proposed=Handwriting.from_row(proposed) if proposed else None,
            )

    def png(self, staff_id: str, image_id: str) -> bytes:
        """One of the clinician's own images (any state); another's is not found."""
        with self._db.session() as session:
            return self._row(session, staff_id, image_id).png

    # -- changing ---------------------------------------------------------------------------

    def propose(self, staff_id: str, photo: bytes, *, actor: str) -> Handwriting:
        """Cut the signature out of ``photo`` and keep it as the clinician's proposal.

        A clinician has at most one proposal: an earlier one is discarded. Raises the
        ``InputError``s of ``extract_signature`` (``image-unreadable``, ``no-ink-found``,
        ``image-too-dark``, ...) and ``image-too-large`` over ``MAX_PHOTO_BYTES``."""
        check_photo_size(len(photo))
        # CPU work outside any transaction: a write lock must not wait on image filtering.
        extracted = extract_signature(photo)
        png = extracted.png
        now = self._clock.now()
        with self._db.session() as session:
            _lock_staff(session, staff_id)
            earlier = session.scalars(
                _owned(staff_id).where(SignatureImageRow.state == PROPOSED)
            ).all()
            for row in earlier:
                self._discard(session, now, row, actor=actor, reason="superseded")
            row = SignatureImageRow(
                id=new_id("img"),
                owner_kind=OWNER_KIND,
                owner_id=staff_id,
                kind=KIND,
                purpose="",
                png=png,
                sha256=hashlib.sha256(png).hexdigest(),
                state=PROPOSED,
                created_at=now,
                decided_at=None,
            )
            session.add(row)
            session.flush()
            record_event(
                session,
                now,
                "handwriting:propose",
                staff_id=staff_id,
                image_id=row.id,
                image_sha256=row.sha256,
                photo_sha256=hashlib.sha256(photo).hexdigest(),
                actor=actor,
            )
            return Handwriting.from_row(row)

    def confirm(self, staff_id: str, image_id: str, *, actor: str) -> Handwriting:
        """Make the clinician's proposal ``image_id`` their active image; the previous
        active one is retired."""
        now = self._clock.now()
        with self._db.session() as session:
            _lock_staff(session, staff_id)
            row = self._row(session, staff_id, image_id)
            if row.state != PROPOSED:
                raise HandwritingNotProposedError(f"image {image_id} is {row.state}")
            retired = session.scalars(
                _owned(staff_id).where(SignatureImageRow.state == ACTIVE)
            ).all()
            retired_ids = sorted(r.id for r in retired)
            session.execute(
                update(SignatureImageRow)
                .where(SignatureImageRow.id.in_(retired_ids))
                .values(state=RETIRED, decided_at=now)
            )
            row.state = ACTIVE
            row.decided_at = now
            record_event(
                session,
                now,
                "handwriting:confirm",
                staff_id=staff_id,
                image_id=row.id,
                image_sha256=row.sha256,
                retired_image_ids=retired_ids,
                actor=actor,
            )
            return Handwriting.from_row(row)

    def discard(self, staff_id: str, image_id: str, *, actor: str) -> None:
        """Drop the clinician's proposal ``image_id`` (an active image is not discarded:
        it is replaced by confirming a new one)."""
        now = self._clock.now()
        with self._db.session() as session:
            _lock_staff(session, staff_id)
            row = self._row(session, staff_id, image_id)
            if row.state != PROPOSED:
                raise HandwritingNotProposedError(f"image {image_id} is {row.state}")
            self._discard(session, now, row, actor=actor, reason="discarded")

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _row(session: Session, staff_id: str, image_id: str) -> SignatureImageRow:
        row = session.scalar(_owned(staff_id).where(SignatureImageRow.id == image_id))
        if row is None:
            # The same answer for another clinician's image as for none at all.
            raise HandwritingNotFoundError(f"staff {staff_id} has no handwriting {image_id}")
        return row

    @staticmethod
    def _discard(
        session: Session, now: dt.datetime, row: SignatureImageRow, *, actor: str, reason: str
    ) -> None:
        record_event(
            session,
            now,
            "handwriting:discard",
            staff_id=row.owner_id,
            image_id=row.id,
            image_sha256=row.sha256,
            reason=reason,
            actor=actor,
        )
        session.execute(delete(SignatureImageRow).where(SignatureImageRow.id == row.id))


def _owned(staff_id: str) -> Select[SignatureImageRow]:
    return select(SignatureImageRow).where(
        SignatureImageRow.owner_kind == OWNER_KIND,
        SignatureImageRow.owner_id == staff_id,
        SignatureImageRow.kind == KIND,
    )


def _lock_staff(session: Session, staff_id: str) -> None:
    if session.scalar(select(StaffRow.id).where(StaffRow.id == staff_id).with_for_update()) is None:
        raise NotFoundError(f"no staff member {staff_id}")


__all__ = [
    "MAX_PHOTO_BYTES",
    "Handwriting",
    "HandwritingImages",
    "HandwritingNotFoundError",
    "HandwritingNotProposedError",
    "HandwritingService",
    "check_photo_size",
    "png_size",
]
