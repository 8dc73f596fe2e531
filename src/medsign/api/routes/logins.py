"""QR-code login for applications (HMAC, docs/integration/qr-login.md) and the public chain
of the certificate that signs login assertions."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from fastapi import APIRouter, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from medsign.api.auth import ApplicationDep
from medsign.api.deps import RuntimeDep
from medsign.api.problems import PROBLEM_RESPONSES
from medsign.ca.authority import pem_encode
from medsign.identity.qr import qr_png, qr_svg
from medsign.intent.logins import MAX_WORKSTATION, Login, LoginState

router = APIRouter(responses=PROBLEM_RESPONSES)

_NO_STORE = {"Cache-Control": "no-store"}


class LoginCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    employee_no: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Only this staff member may approve; leave out to let any staff member of"
        " the organization whom the application may address approve",
        examples=["E1001"],
    )
    workstation: str = Field(
        max_length=MAX_WORKSTATION,
        description="Shown to the clinician on the phone; up to 128 printable characters",
        examples=["门诊3楼 诊室12 (PC-0312)"],
    )
    expires_in_seconds: int | None = Field(
        default=None,
        ge=10,
        le=600,
        description="Shorter than the installation's `login_lifetime_seconds` (default 120)"
        " if wanted; longer is refused",
    )


class LoginCreatedPublic(BaseModel):
    id: str
    state: LoginState
    url: str = Field(description="One-time URL for the clinician's phone (encoded in the QR code)")
    qr_svg_url: str
    qr_png_url: str
    expires_at: dt.datetime


class LoginPublic(BaseModel):
    id: str
    state: LoginState = Field(description="`expired` as soon as the deadline has passed")
    workstation: str
    staff_id: str | None = Field(description="Who approved; null unless `approved`")
    employee_no: str | None = Field(description="Who approved; null unless `approved`")
    assertion: str | None = Field(
        description="Compact JWS (ES256, x5c) signed by medsign; null unless `approved`."
        " Check it with `medsign.client.verify_login_assertion` before trusting it"
    )
    created_at: dt.datetime
    expires_at: dt.datetime
    decided_at: dt.datetime | None


def _public(login: Login) -> LoginPublic:
    approved = login.state is LoginState.APPROVED
    return LoginPublic(
        id=login.id,
        state=login.state,
        workstation=login.workstation,
        staff_id=login.staff_id if approved else None,
        employee_no=login.employee_no if approved else None,
        assertion=login.assertion if approved else None,
        created_at=login.created_at,
        expires_at=login.expires_at,
        decided_at=login.decided_at,
    )


@router.post(
    "/api/v1/logins",
    status_code=status.HTTP_201_CREATED,
    response_model=LoginCreatedPublic,
    tags=["login"],
    summary="Start a QR-code login",
    description="Returns the one-time URL to show as a QR code at the workstation. The"
    " clinician opens it on their enrolled phone and approves or declines; poll"
    " `GET /api/v1/logins/{id}` or wait for the `login:approved`, `login:declined` or"
    " `login:expired` webhook.",
)
def start_login(body: LoginCreate, app: ApplicationDep, runtime: RuntimeDep) -> LoginCreatedPublic:
    ticket = runtime.logins.start(
        app,
        employee_no=body.employee_no,
        workstation=body.workstation,
        ttl_seconds=body.expires_in_seconds,
    )
    base = f"/api/v1/logins/{ticket.login.id}"
    return LoginCreatedPublic(
        id=ticket.login.id,
        state=ticket.login.state,
        url=ticket.url,
        qr_svg_url=f"{base}/qr.svg",
        qr_png_url=f"{base}/qr.png",
        expires_at=ticket.login.expires_at,
    )


@router.get(
    "/api/v1/logins/{login_id}",
    response_model=LoginPublic,
    tags=["login"],
    summary="State of a login (only the application that started it)",
    description="Once `approved`, holds the staff id, the employee number and the signed"
    " assertion. Other applications get `404`.",
)
def get_login(
    login_id: str, app: ApplicationDep, runtime: RuntimeDep, response: Response
) -> LoginPublic:
    # The assertion is a short-lived credential: no cache may keep it.
    response.headers.update(_NO_STORE)
    return _public(runtime.logins.get(app.id, login_id))


@router.get(
    "/api/v1/logins/{login_id}/qr.{kind}",
    tags=["login"],
    summary="QR code of the login URL (while the login is pending)",
    description="`410 login-expired` once expired, `409 login-decided` or `409"
    " login-declined` once decided.",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}, "image/png": {}}}},
)
def login_qr(
    login_id: str, kind: Literal["svg", "png"], app: ApplicationDep, runtime: RuntimeDep
) -> Response:
    url = runtime.logins.url(app.id, login_id)
    if kind == "svg":
        return Response(qr_svg(url), media_type="image/svg+xml", headers=_NO_STORE)
    return Response(qr_png(url), media_type="image/png", headers=_NO_STORE)


@router.get(
    "/pki/login-assertion.pem",
    tags=["pki"],
    summary="Certificate chain that signs login assertions (PEM)",
    description="The current `login-assertion` certificate, then its issuing CA and root, as"
    " PEM. Every assertion carries its own chain in `x5c`; integrators need only the root"
    " (the last block) as their trust anchor. Made on first use if the installation has none.",
    response_class=Response,
    responses={200: {"content": {"application/pem-certificate-chain": {}}}},
)
def login_assertion_chain(runtime: RuntimeDep) -> Response:
    return Response(
        "".join(pem_encode(der) for der in runtime.logins.assertions.chain()),
        media_type="application/pem-certificate-chain",
        headers={"Cache-Control": "no-cache"},
    )
