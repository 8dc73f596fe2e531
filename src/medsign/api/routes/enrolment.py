"""Enrolment: opened by an application (HMAC), walked through on the person's phone.

The phone-side endpoints (``/m/api/enrolments/{token}/...``) carry no application
credentials: the 256-bit one-time token in the path is the authority, and it dies when the
enrolment completes, fails or expires.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from medsign.api.auth import ApplicationDep
from medsign.api.deps import RuntimeDep
from medsign.api.problems import PROBLEM_RESPONSES
from medsign.api.routes.phone import set_device_cookie, set_session_cookie
from medsign.api.routes.staff import addressable_staff
from medsign.ca.authority import pem_encode
from medsign.errors import InputError
from medsign.identity.enrolment import DeviceKeyProof, Enrolment, EnrolmentView
from medsign.identity.qr import qr_png, qr_svg
from medsign.runtime import Runtime

router = APIRouter(responses=PROBLEM_RESPONSES)

_TOKEN = Annotated[str, Field(min_length=1, max_length=128)]


class EnrolmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    employee_no: str = Field(min_length=1, max_length=64)
    key_algorithm: Literal["sm2", "ec-p256", "rsa-2048"] = "sm2"
    key_location: Literal["server", "device"] = Field(
        default="server",
        description='"server": the key store makes and keeps the key (default; any algorithm);'
        ' "device": the phone makes a non-extractable WebCrypto key and medsign certifies it'
        " (ec-p256 only; signing then happens on that phone)",
    )


class EnrolmentPublic(BaseModel):
    id: str
    employee_no: str
    staff_id: str
    state: Literal["pending", "authenticated", "failed", "expired"]
    step: str
    key_algorithm: str
    key_location: str
    failure_reason: str | None
    expires_at: dt.datetime
    created_at: dt.datetime
    completed_at: dt.datetime | None
    certificate_id: str | None
    certificate_serial: str | None = Field(description="Upper-case hex, as `openssl x509 -serial`")
    certificate_pem: str | None


class EnrolmentCreatedPublic(EnrolmentPublic):
    url: str = Field(description="One-time URL for the person's phone; shown only here")
    qr_svg_url: str
    qr_png_url: str


class EnrolmentStepPublic(BaseModel):
    """What the phone page shows. The name is the person's own; numbers are masked."""

    enrolment_id: str
    organization: str
    name: str
    department: str
    phone_masked: str | None
    state: str
    step: Literal["start", "code-sent", "code-verified", "identity-confirmed", "issuing", "done"]
    key_algorithm: str
    key_location: str
    expires_at: dt.datetime
    resend_at: dt.datetime | None


class CodeSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=16)


class IdentitySubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    national_id: str = Field(min_length=1, max_length=32)


class DeviceKeySubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    public_key: str = Field(
        min_length=1, max_length=400, description="The phone's P-256 SubjectPublicKeyInfo, base64"
    )
    proof: str = Field(
        min_length=1,
        max_length=200,
        description="ECDSA-SHA256 signature (r || s, base64) over"
        ' "medsign device key v1" 0x00 enrolment_id 0x00 public_key (DER)',
    )


class PINSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: str = Field(min_length=1, max_length=16)
    device_key: DeviceKeySubmit | None = Field(
        default=None, description="Required when the enrolment keeps the key on the phone"
    )


class EnrolmentDonePublic(BaseModel):
    enrolment_id: str
    state: str
    step: str
    certificate_serial: str | None


def _public(runtime: Runtime, enrolment: Enrolment) -> EnrolmentPublic:
    serial = pem = None
    if enrolment.certificate_id is not None:
        certificate = runtime.authority.get_by_id(enrolment.certificate_id)
        serial = certificate.serial_hex.upper()
        pem = pem_encode(certificate.certificate_der)
    return EnrolmentPublic(
        id=enrolment.id,
        employee_no=enrolment.employee_no,
        staff_id=enrolment.staff_id,
        state=enrolment.state,
        step=enrolment.step,
        key_algorithm=enrolment.key_algorithm,
        key_location=enrolment.key_location,
        failure_reason=enrolment.failure_reason,
        expires_at=enrolment.expires_at,
        created_at=enrolment.created_at,
        completed_at=enrolment.completed_at,
        certificate_id=enrolment.certificate_id,
        certificate_serial=serial,
        certificate_pem=pem,
    )


def _step(view: EnrolmentView) -> EnrolmentStepPublic:
    return EnrolmentStepPublic(
        enrolment_id=view.enrolment_id,
        organization=view.organization,
        name=view.name,
        department=view.department,
        phone_masked=view.phone_masked,
        state=view.state,
        step=view.step,
        key_algorithm=view.key_algorithm,
        key_location=view.key_location,
        expires_at=view.expires_at,
        resend_at=view.resend_at,
    )


def _b64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"{field} is not base64") from exc


def _client(request: Request) -> str:
    return f"phone:{request.client.host}" if request.client else "phone"


# -- application API ---------------------------------------------------------------------------


@router.post(
    "/api/v1/enrolments",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrolmentCreatedPublic,
    tags=["enrolment"],
    summary="Open a real-name authentication and enrolment for a staff member",
)
def create_enrolment(
    body: EnrolmentCreate, app: ApplicationDep, runtime: RuntimeDep
) -> EnrolmentCreatedPublic:
    addressable_staff(runtime, app, body.employee_no)
    ticket = runtime.enrolments.create(
        app.id,
        app.organization_id,
        body.employee_no,
        key_algorithm=body.key_algorithm,
        key_location=body.key_location,
    )
    base = f"/api/v1/enrolments/{ticket.enrolment.id}"
    return EnrolmentCreatedPublic(
        **_public(runtime, ticket.enrolment).model_dump(),
        url=ticket.url,
        qr_svg_url=f"{base}/qr.svg",
        qr_png_url=f"{base}/qr.png",
    )


@router.get(
    "/api/v1/enrolments/{enrolment_id}",
    response_model=EnrolmentPublic,
    tags=["enrolment"],
    summary="Status of an enrolment (only the application that opened it)",
)
def get_enrolment(enrolment_id: str, app: ApplicationDep, runtime: RuntimeDep) -> EnrolmentPublic:
    return _public(runtime, runtime.enrolments.get(app.id, enrolment_id))


@router.get(
    "/api/v1/enrolments/{enrolment_id}/qr.{kind}",
    tags=["enrolment"],
    summary="QR code of the one-time URL (while the enrolment is pending)",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}, "image/png": {}}}},
)
def enrolment_qr(
    enrolment_id: str, kind: Literal["svg", "png"], app: ApplicationDep, runtime: RuntimeDep
) -> Response:
    url = runtime.enrolments.url(app.id, enrolment_id)
    headers = {"Cache-Control": "no-store"}
    if kind == "svg":
        return Response(qr_svg(url), media_type="image/svg+xml", headers=headers)
    return Response(qr_png(url), media_type="image/png", headers=headers)


# -- phone side (the token authorises) ---------------------------------------------------------

_NO_STORE = {"Cache-Control": "no-store"}


@router.get(
    "/m/api/enrolments/{token}",
    response_model=EnrolmentStepPublic,
    tags=["phone"],
    summary="Who is asked, where the code goes, and the next step",
)
def phone_view(token: _TOKEN, runtime: RuntimeDep, response: Response) -> EnrolmentStepPublic:
    response.headers.update(_NO_STORE)
    return _step(runtime.enrolments.view(token))


@router.post(
    "/m/api/enrolments/{token}/send-code",
    response_model=EnrolmentStepPublic,
    tags=["phone"],
    summary="Text a six-digit code to the registered mobile number",
)
def phone_send_code(
    token: _TOKEN, request: Request, runtime: RuntimeDep, response: Response
) -> EnrolmentStepPublic:
    response.headers.update(_NO_STORE)
    return _step(runtime.enrolments.send_code(token, client=_client(request)))


@router.post(
    "/m/api/enrolments/{token}/verify-code",
    response_model=EnrolmentStepPublic,
    tags=["phone"],
    summary="Check the SMS code (five wrong codes fail the enrolment)",
)
def phone_verify_code(
    token: _TOKEN, body: CodeSubmit, request: Request, runtime: RuntimeDep, response: Response
) -> EnrolmentStepPublic:
    response.headers.update(_NO_STORE)
    return _step(runtime.enrolments.verify_code(token, body.code, client=_client(request)))


@router.post(
    "/m/api/enrolments/{token}/confirm-identity",
    response_model=EnrolmentStepPublic,
    tags=["phone"],
    summary="Confirm the national ID number registered by the hospital",
)
def phone_confirm_identity(
    token: _TOKEN, body: IdentitySubmit, runtime: RuntimeDep, response: Response
) -> EnrolmentStepPublic:
    response.headers.update(_NO_STORE)
    return _step(runtime.enrolments.confirm_identity(token, body.national_id))


@router.post(
    "/m/api/enrolments/{token}/pin",
    response_model=EnrolmentDonePublic,
    tags=["phone"],
    summary="Choose the signing PIN; creates the signing key and certificate and binds this"
    " phone (device and session cookies)",
)
def phone_set_pin(
    token: _TOKEN, body: PINSubmit, request: Request, runtime: RuntimeDep, response: Response
) -> EnrolmentDonePublic:
    response.headers.update(_NO_STORE)
    device_key = None
    if body.device_key is not None:
        device_key = DeviceKeyProof(
            public_key_der=_b64(body.device_key.public_key, "public_key"),
            signature=_b64(body.device_key.proof, "proof"),
        )
    # The phone that finished enrolment becomes the clinician's device, signed in at once.
    enrolment, binding = runtime.enrolments.finish_on_phone(
        token, body.pin, label=request.headers.get("user-agent", ""), device_key=device_key
    )
    set_device_cookie(response, runtime, binding.device_token)
    set_session_cookie(response, runtime, binding.session.token)
    serial = None
    if enrolment.certificate_id is not None:
        serial = runtime.authority.get_by_id(enrolment.certificate_id).serial_hex.upper()
    return EnrolmentDonePublic(
        enrolment_id=enrolment.id,
        state=enrolment.state,
        step=enrolment.step,
        certificate_serial=serial,
    )
