"""The hospital's seal on PDFs, one at a time or as a job over an archive.

A seal is applied by the organisation, not by a person, so there is no PIN: what authorises
it is an application's right to that seal (``applications.seal_purposes``, granted by an
administrator) or an administrator at the command line, and every seal is an evidence event.

Jobs are resumable. Each record is claimed with a lease, sealed outside any transaction,
then stored by one guarded UPDATE (``state = 'pending'``) together with its evidence event
and the job's counters; a crash anywhere leaves the record pending (its lease runs out and
another run takes it), and the guard means no record is ever stored sealed twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from PIL import Image
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medsign.clock import Clock
from medsign.db import Database, rowcount
from medsign.db.tables import SealItemRow, SealJobRow, SignatureImageRow
from medsign.documents.errors import PlacementError
from medsign.documents.images import SealImage, render_seal, split_seal
from medsign.documents.signing import (
    FieldBox,
    Level,
    PageStamp,
    PdfInfo,
    SignatureSpec,
    SignedPdf,
    read_pdf,
)
from medsign.errors import InputError, MedsignError, NotFoundError, StateError
from medsign.evidence import record_event
from medsign.ids import new_id

QUEUED, DONE, CANCELLED = "queued", "done", "cancelled"
PENDING, SEALED, FAILED = "pending", "sealed", "failed"
LEASE = dt.timedelta(minutes=5)
MAX_ITEMS = 10_000
MARGIN_PT = 36.0  # the seal's distance from the page edges when no place is given
MAX_PURPOSE = 20
SEAL_FIELD = "HospitalSeal"
DEFAULT_SEAL_DPI = 600
MM_PER_INCH = 25.4


class SealJobConflictError(StateError):
    code = "idempotency-conflict"
    title = "This idempotency key was used with a different body"


@dataclass(frozen=True)
class SealOptions:
    purpose: str = ""  # "" the official seal; else its purpose, e.g. 病案专用章
    level: Level = Level.B_LTA
    page: int | None = None  # 1-based; None: the last page
    rect: tuple[float, float, float, float] | None = None  # None: bottom right, true size
    cross_page: bool = False  # also a paging seal across the right edges of every page
    reason: str | None = None

    def canonical(self) -> dict[str, Any]:
        return {
            "purpose": self.purpose,
            "level": self.level.value,
            "page": self.page,
            "rect": None if self.rect is None else list(self.rect),
            "cross_page": self.cross_page,
            "reason": self.reason,
        }

    @classmethod
    def from_canonical(cls, data: dict[str, Any]) -> SealOptions:
        rect = data["rect"]
        return cls(
            purpose=data["purpose"],
            level=Level(data["level"]),
            page=data["page"],
            rect=None if rect is None else (rect[0], rect[1], rect[2], rect[3]),
            cross_page=data["cross_page"],
            reason=data["reason"],
        )


@dataclass(frozen=True)
class SealItem:
    position: int
    record_id: str
    state: str
    original_sha256: str
    sealed_sha256: str | None
    sealed_at: dt.datetime | None
    error_code: str | None
    error: str | None


@dataclass(frozen=True)
class SealJob:
    id: str
    organization_id: str
    application_id: str | None
    state: str
    total: int
    sealed: int
    failed: int
    options: SealOptions
    created_at: dt.datetime
    finished_at: dt.datetime | None
    items: tuple[SealItem, ...] = field(default=())

    @property
    def pending(self) -> int:
        return self.total - self.sealed - self.failed


def check_purpose(purpose: str) -> str:
    purpose = purpose.strip()
    if len(purpose) > MAX_PURPOSE or (purpose and not purpose.isprintable()):
        raise InputError(f"a seal's purpose is at most {MAX_PURPOSE} printable characters")
    return purpose


def seal_image(png: bytes) -> SealImage:
    """A stored seal PNG with its physical size, from the resolution written into it."""
    with Image.open(io.BytesIO(png), formats=("PNG",)) as image:
        width, height = image.size
        dpi = image.info.get("dpi", (DEFAULT_SEAL_DPI, DEFAULT_SEAL_DPI))[0] or DEFAULT_SEAL_DPI
    return SealImage(
        png=png,
        width_px=width,
        height_px=height,
        width_mm=width / float(dpi) * MM_PER_INCH,
        height_mm=height / float(dpi) * MM_PER_INCH,
    )


def seal_spec(
    info: PdfInfo, options: SealOptions, seal: SealImage, *, appearance: bytes
) -> SignatureSpec:
    """Where the seal goes on this PDF: ``options.rect`` on ``options.page``, or at its true
    size at the bottom right of the page; plus the paging slices when asked for."""
    page = (options.page or len(info.pages)) - 1
    if not 0 <= page < len(info.pages):
        raise PlacementError(f"page {page + 1} does not exist: the PDF has {len(info.pages)}")
    _, y1, x2, _ = info.pages[page]
    if options.rect is not None:
        box = options.rect
    else:
        left, bottom = x2 - MARGIN_PT - seal.width_pt, y1 + MARGIN_PT
        box = (left, bottom, left + seal.width_pt, bottom + seal.height_pt)
    stamps: tuple[PageStamp, ...] = ()
    if options.cross_page and len(info.pages) > 1:
        slices = split_seal(seal, len(info.pages))
        placed = []
        for piece, media in zip(slices, info.pages, strict=True):
            _, py1, px2, py2 = media
            middle = (py1 + py2) / 2
            half = piece.height_pt / 2
            place = FieldBox(piece.index, (px2 - piece.width_pt, middle - half, px2, middle + half))
            placed.append(PageStamp(place, piece.png))
        stamps = tuple(placed)
    name = SEAL_FIELD
    taken = {f.name for f in info.fields}
    n = 1
    while name in taken:
        n += 1
        name = f"{SEAL_FIELD}{n}"
    return SignatureSpec(
        field_name=name,
        new_field=FieldBox(page, box),
        level=options.level,
        reason=options.reason or (options.purpose or "单位电子印章"),
        appearance_png=appearance,
        page_stamps=stamps,
    )


class SealImages:
    """An organisation's seal images by purpose: uploaded by an administrator, or drawn in
    the standard form the first time a purpose is used."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def active(
        self, session: Session, organization_id: str, organization_name: str, purpose: str
    ) -> bytes:
        png = session.scalar(
            select(SignatureImageRow.png).where(
                SignatureImageRow.owner_kind == "organization",
                SignatureImageRow.owner_id == organization_id,
                SignatureImageRow.kind == "seal",
                SignatureImageRow.purpose == purpose,
                SignatureImageRow.state == "active",
            )
        )
        if png is not None:
            return png
        drawn = render_seal(organization_name, purpose=purpose or None).png
        self.replace(session, organization_id, purpose, drawn)
        return drawn

    def replace(self, session: Session, organization_id: str, purpose: str, png: bytes) -> str:
        """Make ``png`` the active seal image for ``purpose``; the old one is retired."""
        now = self._clock.now()
        session.execute(
            update(SignatureImageRow)
            .where(
                SignatureImageRow.owner_kind == "organization",
                SignatureImageRow.owner_id == organization_id,
                SignatureImageRow.kind == "seal",
                SignatureImageRow.purpose == purpose,
                SignatureImageRow.state == "active",
            )
            .values(state="retired", decided_at=now)
        )
        image_id = new_id("img")
        session.add(
            SignatureImageRow(
                id=image_id,
                owner_kind="organization",
                owner_id=organization_id,
                kind="seal",
                purpose=purpose,
                png=png,
                sha256=hashlib.sha256(png).hexdigest(),
                state="active",
                created_at=now,
                decided_at=now,
            )
        )
        return image_id


Sealer = Callable[[bytes, SealOptions], SignedPdf]


class SealJobs:
    def __init__(
        self, database: Database, clock: Clock, *, max_bytes: int, max_items: int = MAX_ITEMS
    ) -> None:
        self._db = database
        self._clock = clock
        self.max_bytes = max_bytes
        self.max_items = max_items

    # -- opening -----------------------------------------------------------------------------

    def create(
        self,
        *,
        organization_id: str,
        actor: str,
        items: Sequence[tuple[str, bytes]],
        options: SealOptions,
        application_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[SealJob, bool]:
        """A queued job over ``items`` (record id, PDF); every PDF is checked first, so a job
        never holds a record that cannot be sealed for a reason known now. Returns the job
        and whether it is a replay of an earlier identical call."""
        if not 1 <= len(items) <= self.max_items:
            raise InputError(f"a seal job has 1 to {self.max_items} records")
        check_purpose(options.purpose)
        infos = []
        for index, (record_id, pdf) in enumerate(items):
            if not record_id.strip() or len(record_id) > 200:
                raise InputError(f"record {index + 1}: record_id is 1 to 200 characters")
            try:
                infos.append(read_pdf(pdf, max_bytes=self.max_bytes))
            except MedsignError as exc:
                exc.args = (f"record {index + 1} ({record_id}): {exc}",)
                raise
        body: dict[str, Any] = {
            "options": options.canonical(),
            "items": [[r, i.sha256.hex()] for (r, _), i in zip(items, infos, strict=True)],
        }
        body_digest = hashlib.sha256(rfc8785.dumps(body)).hexdigest()
        now = self._clock.now()
        if idempotency_key is not None:
            found = self._by_key(application_id, idempotency_key)
            if found is not None:
                return self._replay(found, body_digest), True
        job_id = new_id("sjob")
        try:
            with self._db.session() as session:
                session.add(
                    SealJobRow(
                        id=job_id,
                        organization_id=organization_id,
                        application_id=application_id,
                        actor=actor,
                        idempotency_key=idempotency_key,
                        body_digest=body_digest,
                        options=json.dumps(options.canonical(), ensure_ascii=False),
                        state=QUEUED,
                        total=len(items),
                        sealed=0,
                        failed=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
                session.flush()
                for position, ((record_id, pdf), info) in enumerate(zip(items, infos, strict=True)):
                    session.add(
                        SealItemRow(
                            job_id=job_id,
                            position=position,
                            record_id=record_id,
                            original=pdf,
                            original_sha256=info.sha256.hex(),
                            state=PENDING,
                        )
                    )
                record_event(
                    session,
                    now,
                    "seal:job-open",
                    job_id=job_id,
                    application_id=application_id,
                    actor=actor,
                    records=len(items),
                    body_digest=body_digest,
                    purpose_sha256=hashlib.sha256(options.purpose.encode()).hexdigest(),
                )
        except IntegrityError:
            # The same key raced us: answer as the winner did.
            found = self._by_key(application_id, idempotency_key)
            if found is None:
                raise
            return self._replay(found, body_digest), True
        return self.get(job_id), False

    def _by_key(self, application_id: str | None, key: str | None) -> SealJobRow | None:
        with self._db.session() as session:
            return session.scalar(
                select(SealJobRow).where(
                    SealJobRow.application_id == application_id,
                    SealJobRow.idempotency_key == key,
                )
            )

    def _replay(self, row: SealJobRow, body_digest: str) -> SealJob:
        if row.body_digest != body_digest:
            raise SealJobConflictError("this idempotency key was used with a different body")
        return self.get(row.id)

    # -- reading -----------------------------------------------------------------------------

    def get(
        self, job_id: str, *, application_id: str | None = None, with_items: bool = True
    ) -> SealJob:
        with self._db.session() as session:
            row = self._row(session, job_id, application_id)
            items: tuple[SealItem, ...] = ()
            if with_items:
                items = tuple(
                    SealItem(
                        position=i.position,
                        record_id=i.record_id,
                        state=i.state,
                        original_sha256=i.original_sha256,
                        sealed_sha256=i.sealed_sha256,
                        sealed_at=i.sealed_at,
                        error_code=i.error_code,
                        error=i.error,
                    )
                    for i in session.execute(
                        select(
                            SealItemRow.position,
                            SealItemRow.record_id,
                            SealItemRow.state,
                            SealItemRow.original_sha256,
                            SealItemRow.sealed_sha256,
                            SealItemRow.sealed_at,
                            SealItemRow.error_code,
                            SealItemRow.error,
                        )
                        .where(SealItemRow.job_id == job_id)
                        .order_by(SealItemRow.position)
                    )
                )
            return _job(row, items)

    def sealed_pdf(
        self, job_id: str, position: int, *, application_id: str | None = None
    ) -> tuple[str, bytes]:
        """(record id, sealed PDF) of one sealed record."""
        with self._db.session() as session:
            self._row(session, job_id, application_id)
            item = session.get(SealItemRow, (job_id, position))
            if item is None:
                raise NotFoundError(f"job {job_id} has no record {position}")
            if item.sealed is None:
                raise StateError(f"record {position} of job {job_id} is {item.state}")
            return item.record_id, item.sealed

    @staticmethod
    def _row(session: Session, job_id: str, application_id: str | None) -> SealJobRow:
        row = session.get(SealJobRow, job_id)
        # Another application's job is as unknown as a missing one.
        if row is None or (application_id is not None and row.application_id != application_id):
            raise NotFoundError(f"no seal job {job_id}")
        return row

    def queued(self, limit: int = 10) -> list[str]:
        with self._db.session() as session:
            return list(
                session.scalars(
                    select(SealJobRow.id)
                    .where(SealJobRow.state == QUEUED)
                    .order_by(SealJobRow.created_at)
                    .limit(limit)
                )
            )

    def cancel(self, job_id: str, *, application_id: str | None = None) -> SealJob:
        now = self._clock.now()
        with self._db.session() as session:
            row = self._row(session, job_id, application_id)
            if row.state == QUEUED:
                row.state, row.updated_at, row.finished_at = CANCELLED, now, now
                record_event(session, now, "seal:job-cancel", job_id=job_id)
        return self.get(job_id, with_items=False)

    # -- running -----------------------------------------------------------------------------

    def run(
        self,
        job_id: str,
        sealer: Sealer,
        *,
        progress: Callable[[SealJob], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> SealJob:
        """Seal the job's pending records in order until none is left (or ``should_stop``);
        safe to run from several processes at once and again after a crash."""
        while not should_stop():
            claimed = self._claim(job_id)
            if claimed is None:
                break
            position, record_id, pdf, options = claimed
            try:
                result = sealer(pdf, options)
            except MedsignError as exc:
                self._fail(job_id, position, exc)
            else:
                self._store(job_id, position, record_id, pdf, result)
            if progress is not None:
                progress(self.get(job_id, with_items=False))
        return self._finish(job_id)

    def _claim(self, job_id: str) -> tuple[int, str, bytes, SealOptions] | None:
        now = self._clock.now()
        with self._db.session() as session:
            job = session.get(SealJobRow, job_id)
            if job is None or job.state != QUEUED:
                return None
            for position in session.scalars(
                select(SealItemRow.position)
                .where(
                    SealItemRow.job_id == job_id,
                    SealItemRow.state == PENDING,
                    (SealItemRow.lease_until.is_(None)) | (SealItemRow.lease_until < now),
                )
                .order_by(SealItemRow.position)
                .limit(20)
            ):
                taken = rowcount(
                    session.execute(
                        update(SealItemRow)
                        .where(
                            SealItemRow.job_id == job_id,
                            SealItemRow.position == position,
                            SealItemRow.state == PENDING,
                            (SealItemRow.lease_until.is_(None)) | (SealItemRow.lease_until < now),
                        )
                        .values(lease_until=now + LEASE)
                        .execution_options(synchronize_session=False)
                    )
                )
                if taken == 1:
                    item = session.get(SealItemRow, (job_id, position))
                    assert item is not None
                    options = SealOptions.from_canonical(json.loads(job.options))
                    return position, item.record_id, item.original, options
            return None

    def _store(
        self, job_id: str, position: int, record_id: str, original: bytes, result: SignedPdf
    ) -> None:
        now = self._clock.now()
        sealed_sha256 = hashlib.sha256(result.pdf).hexdigest()
        with self._db.session() as session:
            stored = rowcount(
                session.execute(
                    update(SealItemRow)
                    .where(
                        SealItemRow.job_id == job_id,
                        SealItemRow.position == position,
                        SealItemRow.state == PENDING,
                    )
                    .values(
                        state=SEALED,
                        sealed=result.pdf,
                        sealed_sha256=sealed_sha256,
                        sealed_at=now,
                        lease_until=None,
                    )
                    .execution_options(synchronize_session=False)
                )
            )
            if stored != 1:
                return  # another run stored it first; this signature is simply not kept
            session.execute(
                update(SealJobRow)
                .where(SealJobRow.id == job_id)
                .values(sealed=SealJobRow.sealed + 1, updated_at=now)
            )
            record_event(
                session,
                now,
                "seal:apply",
                job_id=job_id,
                position=position,
                record_id_sha256=hashlib.sha256(record_id.encode()).hexdigest(),
                original_sha256=hashlib.sha256(original).hexdigest(),
                sealed_sha256=sealed_sha256,
                cms_sha256=hashlib.sha256(result.cms).hexdigest(),
            )

    def _fail(self, job_id: str, position: int, exc: MedsignError) -> None:
        now = self._clock.now()
        with self._db.session() as session:
            failed = rowcount(
                session.execute(
                    update(SealItemRow)
                    .where(
                        SealItemRow.job_id == job_id,
                        SealItemRow.position == position,
                        SealItemRow.state == PENDING,
                    )
                    .values(
                        state=FAILED,
                        error_code=exc.code,
                        error=exc.public_message()[:500],
                        lease_until=None,
                    )
                    .execution_options(synchronize_session=False)
                )
            )
            if failed == 1:
                session.execute(
                    update(SealJobRow)
                    .where(SealJobRow.id == job_id)
                    .values(failed=SealJobRow.failed + 1, updated_at=now)
                )
                record_event(
                    session, now, "seal:fail", job_id=job_id, position=position, code=exc.code
                )

    def _finish(self, job_id: str) -> SealJob:
        now = self._clock.now()
        with self._db.session() as session:
            left = session.scalar(
                select(func.count())
                .select_from(SealItemRow)
                .where(SealItemRow.job_id == job_id, SealItemRow.state == PENDING)
            )
            if left == 0:
                done = rowcount(
                    session.execute(
                        update(SealJobRow)
                        .where(SealJobRow.id == job_id, SealJobRow.state == QUEUED)
                        .values(state=DONE, finished_at=now, updated_at=now)
                        .execution_options(synchronize_session=False)
                    )
                )
                if done == 1:
                    job = session.get(SealJobRow, job_id)
                    assert job is not None
                    record_event(
                        session,
                        now,
                        "seal:job-done",
                        job_id=job_id,
                        sealed=job.sealed,
                        failed=job.failed,
                    )
        return self.get(job_id)


def _job(row: SealJobRow, items: tuple[SealItem, ...]) -> SealJob:
    return SealJob(
        id=row.id,
        organization_id=row.organization_id,
        application_id=row.application_id,
        state=row.state,
        total=row.total,
        sealed=row.sealed,
        failed=row.failed,
        options=SealOptions.from_canonical(json.loads(row.options)),
        created_at=row.created_at,
        finished_at=row.finished_at,
        items=items,
    )


__all__ = [
    "SEAL_FIELD",
    "SealImages",
    "SealItem",
    "SealJob",
    "SealJobConflictError",
    "SealJobs",
    "SealOptions",
    "Sealer",
    "check_purpose",
    "seal_image",
    "seal_spec",
]
