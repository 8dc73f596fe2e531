"""The hospital seal on PDFs, for applications an administrator gave the right to it
(`seal_purposes`): a seal job over one or many PDFs (an archive), its progress, each sealed
record. Jobs run in the server's background and resume after a restart; `wait=true` seals a
small job within the call."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from medsign.api.auth import ApplicationDep, DocumentApplicationDep
from medsign.api.deps import AdminDep, RuntimeDep
from medsign.api.problems import PROBLEM_RESPONSES
from medsign.api.routes.documents import PDF_MEDIA_TYPE
from medsign.api.signing_schemas import IDEMPOTENCY_KEY
from medsign.documents.errors import PdfUnreadableError
from medsign.documents.images import prepare_uploaded_seal
from medsign.documents.sealing import SealJob, SealOptions, check_purpose
from medsign.documents.signing import Level
from medsign.errors import ForbiddenError, InputError, NotFoundError
from medsign.evidence import record_event
from medsign.identity.organizations import list_organizations
from medsign.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["seals"], responses=PROBLEM_RESPONSES)
MAX_RECORDS_PER_CALL = 200
MAX_WAIT_RECORDS = 10


class SealNotAllowedError(ForbiddenError):
    code = "seal-not-allowed"
    title = "This application may not apply that seal"


class SealRecordCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    record_id: str = Field(min_length=1, max_length=200, examples=["MR-2026-000123"])
    pdf: str = Field(min_length=8, description="The PDF, base64")


class SealJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[SealRecordCreate] = Field(min_length=1, max_length=MAX_RECORDS_PER_CALL)
    purpose: str = Field(
        default="",
        max_length=20,
        description='Which seal: "" the official seal, or a purpose such as "病案专用章"',
    )
    level: Literal["B-T", "B-LT", "B-LTA"] = Field(
        default="B-LTA", description="PAdES level; archives want B-LTA (document timestamp)"
    )
    page: int | None = Field(default=None, ge=1, description="Default: the last page")
    rect: tuple[float, float, float, float] | None = Field(
        default=None, description="Default: true size, bottom right of the page"
    )
    cross_page: bool = Field(
        default=False, description="Also a paging seal (骑缝章) across every page's right edge"
    )
    reason: str | None = Field(default=None, min_length=1, max_length=200)
    idempotency_key: str | None = Field(default=None, pattern=IDEMPOTENCY_KEY)


class SealRecordPublic(BaseModel):
    position: int
    record_id: str
    state: Literal["pending", "sealed", "failed"]
    original_sha256: str
    sealed_sha256: str | None
    sealed_at: dt.datetime | None
    error_code: str | None
    error: str | None
    download_url: str | None


class SealJobPublic(BaseModel):
    id: str
    state: Literal["queued", "done", "cancelled"]
    total: int
    sealed: int
    failed: int
    pending: int
    purpose: str
    level: str
    created_at: dt.datetime
    finished_at: dt.datetime | None
    records: list[SealRecordPublic]


def _public(base: str, job: SealJob) -> SealJobPublic:
    return SealJobPublic(
        id=job.id,
        state=job.state,
        total=job.total,
        sealed=job.sealed,
        failed=job.failed,
        pending=job.pending,
        purpose=job.options.purpose,
        level=job.options.level.value,
        created_at=job.created_at,
        finished_at=job.finished_at,
        records=[
            SealRecordPublic(
                position=i.position,
                record_id=i.record_id,
                state=i.state,
                original_sha256=i.original_sha256,
                sealed_sha256=i.sealed_sha256,
                sealed_at=i.sealed_at,
                error_code=i.error_code,
                error=i.error,
                download_url=f"{base}/api/v1/seal-jobs/{job.id}/records/{i.position}.pdf"
                if i.state == "sealed"
                else None,
            )
            for i in job.items
        ],
    )


@router.post(
    "/seal-jobs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SealJobPublic,
    summary="Seal PDFs with the hospital seal (a job; `wait=true` seals up to 10 at once)",
)
async def create_seal_job(
    body: SealJobCreate,
    response: Response,
    runtime: RuntimeDep,
    app: DocumentApplicationDep,
    wait: bool = False,
) -> SealJobPublic:
    purpose = check_purpose(body.purpose)
    rights = runtime.applications.find(app.id).seal_purposes
    if purpose not in rights:
        raise SealNotAllowedError(
            f"application {app.id} may not apply the seal {purpose or '(official)'!r}"
        )
    if wait and len(body.records) > MAX_WAIT_RECORDS:
        raise InputError(f"wait=true takes at most {MAX_WAIT_RECORDS} records")
    records = []
    for record in body.records:
        try:
            records.append((record.record_id, base64.b64decode(record.pdf, validate=True)))
        except (binascii.Error, ValueError) as exc:
            raise PdfUnreadableError(f"record {record.record_id}: pdf is not base64") from exc
    options = SealOptions(
        purpose=purpose,
        level=Level(body.level),
        page=body.page,
        rect=body.rect,
        cross_page=body.cross_page,
        reason=body.reason,
    )
    job, replayed = await run_in_threadpool(
        lambda: runtime.seal_jobs.create(
            organization_id=app.organization_id,
            actor=f"app:{app.id}",
            items=records,
            options=options,
            application_id=app.id,
            idempotency_key=body.idempotency_key,
        )
    )
    if wait and job.state == "queued":
        sealer = runtime.organization_sealer(app.organization_id)
        job = await run_in_threadpool(runtime.seal_jobs.run, job.id, sealer)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    if job.state == "done" or replayed:
        response.status_code = status.HTTP_200_OK
    return _public(runtime.settings.public_base_url, job)


@router.get("/seal-jobs/{job_id}", response_model=SealJobPublic, summary="Progress and results")
def get_seal_job(job_id: str, runtime: RuntimeDep, app: ApplicationDep) -> SealJobPublic:
    job = runtime.seal_jobs.get(job_id, application_id=app.id)
    return _public(runtime.settings.public_base_url, job)


@router.post(
    "/seal-jobs/{job_id}/cancel",
    response_model=SealJobPublic,
    summary="Stop a queued job (records already sealed stay sealed)",
)
def cancel_seal_job(job_id: str, runtime: RuntimeDep, app: ApplicationDep) -> SealJobPublic:
    runtime.seal_jobs.cancel(job_id, application_id=app.id)
    return _public(runtime.settings.public_base_url, runtime.seal_jobs.get(job_id))


@router.get(
    "/seal-jobs/{job_id}/records/{position}.pdf",
    summary="One sealed record",
    response_class=Response,
    responses={200: {"content": {PDF_MEDIA_TYPE: {}}}},
)
def sealed_record(job_id: str, position: int, runtime: RuntimeDep, app: ApplicationDep) -> Response:
    _, pdf = runtime.seal_jobs.sealed_pdf(job_id, position, application_id=app.id)
    return Response(
        pdf,
        media_type=PDF_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{job_id}-{position}.pdf"',
            "Cache-Control": "no-store",
        },
    )


# -- the seal images (administrators) ---------------------------------------------------------

admin_router = APIRouter(prefix="/admin/v1", tags=["admin"], responses=PROBLEM_RESPONSES)


class SealImageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    purpose: str = Field(default="", max_length=20, description='"" the official seal')
    image: str = Field(
        min_length=8, description="A scan or photo of the seal on white paper (PNG/JPEG), base64"
    )
    width_mm: float = Field(
        default=42.0, ge=20, le=60, description="The seal's real diameter (42 official, 40 special)"
    )
    organization_id: str | None = Field(default=None, max_length=64)


class SealImagePublic(BaseModel):
    id: str
    purpose: str
    sha256: str
    width_mm: float
    height_mm: float


def _organization_id(runtime: Runtime, given: str | None) -> str:
    organizations = list_organizations(runtime.database)
    if given is not None:
        if not any(o.id == given for o in organizations):
            raise NotFoundError(f"no organisation {given}")
        return given
    if len(organizations) != 1:
        raise InputError("name the organisation (organization_id)")
    return organizations[0].id


@admin_router.put(
    "/seal-images",
    response_model=SealImagePublic,
    summary="Upload the image of a seal (white becomes transparent, red kept, true size)",
)
def put_seal_image(body: SealImageCreate, runtime: RuntimeDep, actor: AdminDep) -> SealImagePublic:
    purpose = check_purpose(body.purpose)
    organization_id = _organization_id(runtime, body.organization_id)
    try:
        raw = base64.b64decode(body.image, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError("image is not base64") from exc
    seal = prepare_uploaded_seal(raw, width_mm=body.width_mm)
    with runtime.database.session() as session:
        image_id = runtime.seal_images.replace(session, organization_id, purpose, seal.png)
        record_event(
            session,
            runtime.clock.now(),
            "seal:image",
            image_id=image_id,
            organization_id=organization_id,
            actor=actor,
            sha256=hashlib.sha256(seal.png).hexdigest(),
        )
    return SealImagePublic(
        id=image_id,
        purpose=purpose,
        sha256=hashlib.sha256(seal.png).hexdigest(),
        width_mm=round(seal.width_mm, 2),
        height_mm=round(seal.height_mm, 2),
    )


@admin_router.get(
    "/seal-images/current.png",
    summary="The seal image in use for a purpose (drawn in the standard form if none uploaded)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def get_seal_image(
    runtime: RuntimeDep, actor: AdminDep, purpose: str = "", organization_id: str | None = None
) -> Response:
    purpose = check_purpose(purpose)
    organization_id = _organization_id(runtime, organization_id)
    organization = next(o for o in list_organizations(runtime.database) if o.id == organization_id)
    with runtime.database.session() as session:
        png = runtime.seal_images.active(session, organization_id, organization.name, purpose)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
