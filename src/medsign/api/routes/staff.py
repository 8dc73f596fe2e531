"""Staff directory for applications (HMAC) and PIN/SMS operations for operators (admin token).

Every application call is confined to the application's organization. Reading a staff member
needs the application's signer scope to include them (others are "not found", so scopes do
not leak who exists); changing the directory (HIS synchronisation, freezing, numbers) needs a
scope of everyone, which is what the HIS's own registration has.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from medsign.api.auth import ApplicationDep, AuthenticatedApplication
from medsign.api.deps import AdminDep, RuntimeDep
from medsign.api.problems import PROBLEM_RESPONSES
from medsign.apps.registry import may_address
from medsign.errors import ForbiddenError, InputError, NotFoundError
from medsign.identity.providers import list_outbox
from medsign.identity.staff import ImportReport, Staff, StaffInput
from medsign.runtime import Runtime

router = APIRouter(responses=PROBLEM_RESPONSES)

_EMPLOYEE_NO = Annotated[str, Field(min_length=1, max_length=64)]


class StaffUpsert(BaseModel):
    """One HIS record. Optional fields left out (or null) keep what is stored."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, examples=["张三"])
    national_id: str | None = Field(
        default=None, max_length=32, description="18-character resident ID number (sealed)"
    )
    phone: str | None = Field(
        default=None, max_length=32, description="Mainland mobile number (sealed)"
    )
    department: str | None = Field(default=None, max_length=64, examples=["心内科"])
    title: str | None = Field(default=None, max_length=64, examples=["主治医师"])
    roles: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, max_length=32)


class PhoneChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(min_length=1, max_length=32)


class StaffPublic(BaseModel):
    id: str
    employee_no: str
    name: str
    national_id_masked: str | None = Field(examples=["1101**********1234"])
    phone_masked: str | None = Field(examples=["138****0000"])
    department: str
    title: str
    roles: list[str]
    state: Literal["active", "frozen", "deregistered"]
    certificate_id: str | None
    enrolled_at: dt.datetime | None
    pin_set: bool


class StaffUpsertPublic(BaseModel):
    outcome: Literal["created", "updated", "unchanged"]
    changed: list[str]
    staff: StaffPublic


class ImportRowError(BaseModel):
    row: int = Field(description="1-based data row (for CSV, the row after the header is 1)")
    field: str | None
    code: str
    message: str


class ImportPublic(BaseModel):
    created: int
    updated: int
    unchanged: int
    errors: list[ImportRowError]


class SMSMessagePublic(BaseModel):
    id: str
    provider: str
    phone_masked: str
    body: str | None = Field(description="Only the development provider keeps the text")
    state: str
    error: str | None
    created_at: dt.datetime


def staff_public(staff: Staff) -> StaffPublic:
    return StaffPublic(
        id=staff.id,
        employee_no=staff.employee_no,
        name=staff.name,
        national_id_masked=staff.national_id_masked,
        phone_masked=staff.phone_masked,
        department=staff.department,
        title=staff.title,
        roles=list(staff.roles),
        state=staff.state,
        certificate_id=staff.certificate_id,
        enrolled_at=staff.enrolled_at,
        pin_set=staff.pin_set,
    )


def _actor(app: AuthenticatedApplication) -> str:
    return f"app:{app.id}"


def _require_directory_scope(app: AuthenticatedApplication) -> None:
    if not app.signer_scope.all:
        raise ForbiddenError(
            "changing the staff directory needs an application whose signer scope is everyone"
        )


def addressable_staff(runtime: Runtime, app: AuthenticatedApplication, employee_no: str) -> Staff:
    """The staff member of the application's organization it may address, else not found."""
    staff = runtime.staff.get(app.organization_id, employee_no)
    if not may_address(app, staff.department, staff.id):
        raise NotFoundError(f"no staff member {employee_no} in this organization")
    return staff


def _import_public(report: ImportReport) -> ImportPublic:
    return ImportPublic(
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        errors=[
            ImportRowError(row=e.row, field=e.field, code=e.code, message=e.message)
            for e in report.errors
        ],
    )


# -- application API --------------------------------------------------------------------------


@router.post(
    "/api/v1/staff:import",
    response_model=ImportPublic,
    tags=["staff"],
    summary="Bulk import: a JSON list of records or a CSV file with a header row",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": StaffUpsert.model_json_schema()}
                },
                "text/csv": {"schema": {"type": "string"}},
            },
            "required": True,
        }
    },
)
async def import_staff(request: Request, app: ApplicationDep, runtime: RuntimeDep) -> ImportPublic:
    from starlette.concurrency import run_in_threadpool

    _require_directory_scope(app)
    body = await request.body()
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "text/csv":
        report = await run_in_threadpool(
            runtime.staff.import_csv, app.organization_id, body, actor=_actor(app)
        )
    elif media_type in ("application/json", ""):
        try:
            records: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError("body is not JSON") from exc
        if not isinstance(records, list):
            raise InputError("body must be a JSON list of staff records")
        report = await run_in_threadpool(
            runtime.staff.import_records, app.organization_id, records, actor=_actor(app)
        )
    else:
        raise InputError("send application/json or text/csv")
    return _import_public(report)


@router.put(
    "/api/v1/staff/{employee_no}",
    response_model=StaffUpsertPublic,
    tags=["staff"],
    summary="Create or update one staff member (idempotent HIS synchronisation)",
    responses={201: {"model": StaffUpsertPublic, "description": "Created"}},
)
def upsert_staff(
    employee_no: _EMPLOYEE_NO,
    body: StaffUpsert,
    response: Response,
    app: ApplicationDep,
    runtime: RuntimeDep,
) -> StaffUpsertPublic:
    _require_directory_scope(app)
    record = StaffInput.parse({"employee_no": employee_no, **body.model_dump()})
    result = runtime.staff.upsert(app.organization_id, record, actor=_actor(app))
    if result.outcome == "created":
        response.status_code = status.HTTP_201_CREATED
    return StaffUpsertPublic(
        outcome=result.outcome, changed=list(result.changed), staff=staff_public(result.staff)
    )


@router.get(
    "/api/v1/staff/{employee_no}",
    response_model=StaffPublic,
    tags=["staff"],
    summary="One staff member (ID number and phone masked)",
)
def get_staff(employee_no: _EMPLOYEE_NO, app: ApplicationDep, runtime: RuntimeDep) -> StaffPublic:
    return staff_public(addressable_staff(runtime, app, employee_no))


@router.post(
    "/api/v1/staff/{employee_no}/{action}",
    response_model=StaffPublic,
    tags=["staff"],
    summary="Freeze, unfreeze or deregister (final; revokes the signing certificate)",
)
def change_staff_state(
    employee_no: _EMPLOYEE_NO,
    action: Literal["freeze", "unfreeze", "deregister"],
    app: ApplicationDep,
    runtime: RuntimeDep,
) -> StaffPublic:
    _require_directory_scope(app)
    operation = {
        "freeze": runtime.staff.freeze,
        "unfreeze": runtime.staff.unfreeze,
        "deregister": runtime.staff.deregister,
    }[action]
    return staff_public(operation(app.organization_id, employee_no, actor=_actor(app)))


@router.put(
    "/api/v1/staff/{employee_no}/phone",
    response_model=StaffPublic,
    tags=["staff"],
    summary="Change the mobile number (SMS codes sent to the old one stop working)",
)
def change_phone(
    employee_no: _EMPLOYEE_NO, body: PhoneChange, app: ApplicationDep, runtime: RuntimeDep
) -> StaffPublic:
    _require_directory_scope(app)
    staff = runtime.staff.change_phone(
        app.organization_id, employee_no, body.phone, actor=_actor(app)
    )
    return staff_public(staff)


# -- operator API -----------------------------------------------------------------------------


@router.post(
    "/admin/v1/staff/{staff_id}/unlock-pin",
    response_model=StaffPublic,
    tags=["admin"],
    summary="Clear a PIN lock-out (the PIN itself stays)",
)
def unlock_pin(staff_id: str, runtime: RuntimeDep, actor: AdminDep) -> StaffPublic:
    runtime.pins.unlock_pin(staff_id, actor=actor)
    return staff_public(runtime.staff.get_by_id(staff_id))


@router.get(
    "/admin/v1/sms/outbox",
    response_model=list[SMSMessagePublic],
    tags=["admin"],
    summary="Messages handed to the SMS provider, newest first",
)
def sms_outbox(
    runtime: RuntimeDep,
    actor: AdminDep,
    phone_last4: Annotated[str | None, Query(pattern=r"^\d{4}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[SMSMessagePublic]:
    return [
        SMSMessagePublic(
            id=row.id,
            provider=row.provider,
            phone_masked=row.phone_masked,
            body=row.body,
            state=row.state,
            error=row.error,
            created_at=row.created_at,
        )
        for row in list_outbox(runtime.database, phone_last4=phone_last4, limit=limit)
    ]
