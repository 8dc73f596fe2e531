"""The clinician's phone: JSON endpoints behind the pages under ``/m/``.

Authority comes from two HttpOnly, SameSite=Strict cookies: the device token the phone got
at enrolment and the session token it got when the clinician last unlocked it (PIN) or
enrolled. Every state-changing call must also carry ``X-Medsign-Phone: 1``: a cross-site
form cannot set that header and a cross-site script cannot send it without a CORS
preflight, which medsign never grants. Everything is addressed to the signer themself:
there is no application credential here, and a clinician sees only their own requests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from medsign.api.deps import RuntimeDep
from medsign.api.problems import PROBLEM_RESPONSES
from medsign.db.tables import ApplicationRow, StaffRow
from medsign.documents.handwriting import (
    MAX_PHOTO_BYTES,
    Handwriting,
    HandwritingService,
    check_photo_size,
)
from medsign.errors import ForbiddenError, InputError, MedsignError, StateError
from medsign.identity.devices import PhoneSession, PhoneSessionError
from medsign.intake.requests import SignRequest
from medsign.intent.passkeys import Passkey, PasskeyService
from medsign.runtime import Runtime
from medsign.workflow import DeviceSignature

router = APIRouter(prefix="/m/api", tags=["phone"], responses=PROBLEM_RESPONSES)

DEVICE_COOKIE = "medsign_device"
SESSION_COOKIE = "medsign_session"
PHONE_HEADER = "X-Medsign-Phone"
_NO_STORE = {"Cache-Control": "no-store"}


def set_device_cookie(response: Response, runtime: Runtime, token: str) -> None:
    response.set_cookie(
        DEVICE_COOKIE,
        token,
        max_age=400 * 24 * 3600,  # browsers cap cookie lifetimes at 400 days
        path="/m",
        httponly=True,
        samesite="strict",
        secure=runtime.settings.public_base_url.startswith("https://"),
    )


def set_session_cookie(response: Response, runtime: Runtime, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(runtime.phone.lifetime.total_seconds()),
        path="/m",
        httponly=True,
        samesite="strict",
        secure=runtime.settings.public_base_url.startswith("https://"),
    )


def phone_session(request: Request, runtime: RuntimeDep) -> PhoneSession:
    return runtime.phone.authenticate(
        request.cookies.get(SESSION_COOKIE), request.cookies.get(DEVICE_COOKIE)
    )


def require_phone_header(
    x_medsign_phone: Annotated[str | None, Header(alias=PHONE_HEADER)] = None,
) -> None:
    if x_medsign_phone != "1":
        raise ForbiddenError(f"phone requests must carry the {PHONE_HEADER} header")


PhoneDep = Annotated[PhoneSession, Depends(phone_session)]
_WRITE = [Depends(require_phone_header)]


def _actor(session: PhoneSession) -> str:
    return f"staff:{session.staff_id}@{session.device_id}"


def client_label(request: Request, session: PhoneSession) -> str:
    host = request.client.host if request.client else ""
    return f"phone:{session.device_id}@{host}"[:200]


# -- schemas -----------------------------------------------------------------------------------


class MePublic(BaseModel):
    staff_id: str
    employee_no: str
    name: str
    department: str
    title: str
    device_id: str
    session_expires_at: dt.datetime
    methods: list[str] = Field(description="Intention methods this signer can use")


class PhoneDocumentPublic(BaseModel):
    """A PDF request's statement as the signer reads it: which PDF (its hash and size), where
    the signature goes and how it looks. The intention binds exactly this."""

    pdf_sha256: str
    pdf_bytes: int
    pages: int
    field: str
    page: int | None = Field(description="Page of the signature, 1 the first")
    rect: list[float] | None
    level: str = Field(description="PAdES level: B-T, B-LT or B-LTA")
    certify: int | None = Field(description="DocMDP permission when this certifies the PDF")
    reason: str | None
    location: str | None
    visible: bool
    handwriting: bool = Field(description="The appearance shows the handwritten signature")
    qr: bool
    url: str = Field(description="GET: the PDF itself (the signed one once signed)")


class RequestPublic(BaseModel):
    id: str
    application: str
    batch_id: str | None
    kind: str
    scene: str
    scene_label: str
    summary: str
    record_id: str
    content_kind: str = Field(description="json, digest or pdf")
    record: Any | None = Field(description="The JSON record that is signed (JSON requests)")
    document: PhoneDocumentPublic | None = Field(
        default=None, description="For a PDF request: the PDF and where it is signed"
    )
    digest_algorithm: str
    digest: str
    state: str
    reject_reason: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    signed_at: dt.datetime | None
    timestamp_time: dt.datetime | None


class RequestListPublic(BaseModel):
    items: list[RequestPublic]


class UnlockSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: str = Field(min_length=1, max_length=16)


class IntentStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=500
    )
    method: Literal["pin", "passkey"] = "pin"


class DevicePayloadPublic(BaseModel):
    request_id: str
    message: str = Field(description="Raw signature's message, base64 (ECDSA-SHA256 over it)")
    signed_attributes: str = Field(description="CMS signed attributes DER, base64")


class IntentStarted(BaseModel):
    id: str
    method: str
    request_ids: list[str]
    expires_at: dt.datetime
    device_payloads: list[DevicePayloadPublic] = Field(
        description="When this phone holds the signing key: what it must sign (else empty)"
    )
    passkey_options: dict[str, Any] | None = Field(
        default=None,
        description="For method passkey: PublicKeyCredentialRequestOptions (base64url fields);"
        " the challenge is derived from exactly the digests to be signed",
    )


class DeviceSignatureSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=64)
    raw: str = Field(min_length=1, max_length=200, description="r || s, base64")
    cms: str = Field(min_length=1, max_length=200, description="r || s, base64")


class IntentConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: str | None = Field(default=None, min_length=1, max_length=16)
    assertion: dict[str, Any] | None = Field(
        default=None, description="The passkey's PublicKeyCredential (JSON form)"
    )
    device_signatures: list[DeviceSignatureSubmit] | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _one_proof(self) -> IntentConfirm:
        if (self.pin is None) == (self.assertion is None):
            raise ValueError("give the PIN or a passkey assertion")
        return self


class PasskeyRegister(BaseModel):
    model_config = ConfigDict(extra="forbid")
    credential: dict[str, Any] = Field(description="navigator.credentials.create() in JSON form")
    label: str = Field(min_length=1, max_length=128)


class PasskeyPublic(BaseModel):
    id: str
    label: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class RejectSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=500
    )
    reason: str = Field(min_length=1, max_length=500)


class PINChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    old_pin: str = Field(min_length=1, max_length=16)
    new_pin: str = Field(min_length=1, max_length=16)


class DevicePublic(BaseModel):
    id: str
    label: str
    key_mode: str
    created_at: dt.datetime
    last_seen_at: dt.datetime
    revoked_at: dt.datetime | None
    current: bool


class Done(BaseModel):
    ok: bool = True


class HandwritingPublic(BaseModel):
    id: str
    state: Literal["proposed", "active", "retired"]
    sha256: str = Field(description="SHA-256 of the PNG")
    width: int
    height: int
    created_at: dt.datetime
    decided_at: dt.datetime | None
    png_url: str = Field(description="GET: the transparent PNG")


class HandwritingImagesPublic(BaseModel):
    active: HandwritingPublic | None = Field(description="The image PDF signatures show")
    proposed: HandwritingPublic | None = Field(description="Awaiting confirmation")
    max_photo_bytes: int


# -- helpers -----------------------------------------------------------------------------------


class _Names:
    """Application names and scene labels for one response (looked up once each)."""

    def __init__(self, runtime: Runtime, lang: str) -> None:
        self._runtime = runtime
        self._lang = lang
        self._apps: dict[str, str] = {}

    def application(self, application_id: str) -> str:
        if application_id not in self._apps:
            with self._runtime.database.session() as session:
                row = session.get(ApplicationRow, application_id)
                self._apps[application_id] = row.name if row else application_id
        return self._apps[application_id]

    def scene(self, code: str) -> str:
        try:
            scene = self._runtime.workflow.intake.scenes.get(code)
        except MedsignError:
            return code
        return scene.label_en if self._lang == "en" else scene.label_zh


def lang_of(request: Request) -> str:
    return "en" if request.cookies.get("medsign_lang") == "en" else "zh-CN"


def public_list(names: _Names, requests: list[SignRequest]) -> list[RequestPublic]:
    return [public_request(names, r, with_record=False) for r in requests]


def public_request(names: _Names, r: SignRequest, *, with_record: bool) -> RequestPublic:
    record = None
    if with_record and r.content_kind == "json" and r.content is not None:
        record = json.loads(r.content)
    document = None
    if r.content_kind == "pdf" and r.content is not None:
        document = public_document(r.id, json.loads(r.content))
    return RequestPublic(
        id=r.id,
        application=names.application(r.application_id),
        batch_id=r.batch_id,
        kind=r.kind,
        scene=r.scene,
        scene_label=names.scene(r.scene),
        summary=r.summary,
        record_id=r.record_id,
        content_kind=r.content_kind,
        record=record,
        document=document,
        digest_algorithm=r.digest_algorithm,
        digest=r.digest.hex(),
        state=r.state,
        reject_reason=r.reject_reason,
        created_at=r.created_at,
        expires_at=r.expires_at,
        signed_at=r.signed_at,
        timestamp_time=r.timestamp_time,
    )


def public_document(request_id: str, statement: dict[str, Any]) -> PhoneDocumentPublic:
    """From the request's statement (its content, which the intention binds), not from the
    PDF: the signer reads what they will be held to."""
    appearance = statement["appearance"]
    return PhoneDocumentPublic(
        pdf_sha256=statement["pdf_sha256"],
        pdf_bytes=statement["pdf_bytes"],
        pages=statement["pages"],
        field=statement["field"],
        page=statement["page"],
        rect=statement["rect"],
        level=statement["level"],
        certify=statement["certify"],
        reason=statement.get("reason"),
        location=statement.get("location"),
        visible=bool(appearance["visible"]),
        handwriting=bool(appearance["handwriting"]),
        qr=bool(appearance["qr"]),
        url=f"/m/api/requests/{request_id}/document.pdf",
    )


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError("a signature is not base64") from exc


def _methods(runtime: Runtime) -> list[str]:
    return sorted(m for m in runtime.workflow.secrets if m != "sms")


# -- session -----------------------------------------------------------------------------------


@router.post(
    "/unlock",
    response_model=Done,
    dependencies=_WRITE,
    summary="Unlock this enrolled phone with the signing PIN (opens a session)",
)
def unlock(body: UnlockSubmit, request: Request, response: Response, runtime: RuntimeDep) -> Done:
    device = runtime.phone.device_for(request.cookies.get(DEVICE_COOKIE))
    host = request.client.host if request.client else ""
    # Wrong PINs count towards the same lock-out as signing: the PIN is one secret.
    runtime.pins.verify_pin(device.staff_id, body.pin, client=f"unlock:{device.id}@{host}")
    opened = runtime.phone.open_session(request.cookies.get(DEVICE_COOKIE), method="pin")
    set_session_cookie(response, runtime, opened.token)
    response.headers.update(_NO_STORE)
    return Done()


@router.post("/logout", response_model=Done, dependencies=_WRITE, summary="End this session")
def logout(request: Request, response: Response, runtime: RuntimeDep) -> Done:
    runtime.phone.end_session(request.cookies.get(SESSION_COOKIE))
    response.delete_cookie(SESSION_COOKIE, path="/m")
    return Done()


@router.get("/me", response_model=MePublic, summary="Who is signed in on this phone")
def me(session: PhoneDep, runtime: RuntimeDep, response: Response) -> MePublic:
    response.headers.update(_NO_STORE)
    with runtime.database.session() as db:
        staff = db.get(StaffRow, session.staff_id)
        if staff is None:
            raise PhoneSessionError("the staff member is gone")
        return MePublic(
            staff_id=staff.id,
            employee_no=staff.employee_no,
            name=staff.name,
            department=staff.department,
            title=staff.title,
            device_id=session.device_id,
            session_expires_at=session.expires_at,
            methods=_methods(runtime),
        )


# -- requests ----------------------------------------------------------------------------------


@router.get("/pending", response_model=RequestListPublic, summary="Requests waiting for me")
def pending(
    session: PhoneDep, request: Request, runtime: RuntimeDep, response: Response
) -> RequestListPublic:
    response.headers.update(_NO_STORE)
    names = _Names(runtime, lang_of(request))
    items = runtime.workflow.signer_pending(session.staff_id)
    return RequestListPublic(items=public_list(names, items))


@router.get("/history", response_model=RequestListPublic, summary="Requests I decided")
def history(
    session: PhoneDep, request: Request, runtime: RuntimeDep, response: Response
) -> RequestListPublic:
    response.headers.update(_NO_STORE)
    names = _Names(runtime, lang_of(request))
    items = runtime.workflow.signer_history(session.staff_id)
    return RequestListPublic(items=public_list(names, items))


@router.get(
    "/requests/{request_id}",
    response_model=RequestPublic,
    summary="One request addressed to me, with the record that would be signed",
)
def request_detail(
    request_id: Annotated[str, Field(min_length=1, max_length=64)],
    session: PhoneDep,
    request: Request,
    runtime: RuntimeDep,
    response: Response,
) -> RequestPublic:
    response.headers.update(_NO_STORE)
    names = _Names(runtime, lang_of(request))
    found = runtime.workflow.signer_request(session.staff_id, request_id)
    return public_request(names, found, with_record=True)


@router.get(
    "/requests/{request_id}/document.pdf",
    summary="The PDF of one of my PDF requests: as submitted while pending, signed once signed",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def request_document(
    request_id: Annotated[str, Field(min_length=1, max_length=64)],
    session: PhoneDep,
    runtime: RuntimeDep,
) -> Response:
    document = runtime.workflow.signer_document(session.staff_id, request_id)
    signed = document.signed is not None
    data = document.signed if document.signed is not None else document.original
    name = f"{request_id}{'-signed' if signed else ''}.pdf"
    return Response(
        data,
        media_type="application/pdf",
        headers={
            # inline: the phone's own viewer opens it; the clinician reads before signing.
            "Content-Disposition": f'inline; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Medsign-Document": "signed" if signed else "original",
        },
    )


@router.post(
    "/intents",
    response_model=IntentStarted,
    status_code=201,
    dependencies=_WRITE,
    summary="Ask to sign these requests; the answer is confirmed with the PIN",
)
def start_intent(body: IntentStart, session: PhoneDep, runtime: RuntimeDep) -> IntentStarted:
    challenge = runtime.workflow.signer_start_intent(
        session.staff_id, body.request_ids, body.method
    )
    payloads = runtime.workflow.device_payloads(session.staff_id, challenge.id)
    passkey_options = None
    if challenge.method == "passkey" and runtime.passkeys is not None:
        passkey_options = runtime.passkeys.authentication_options(challenge)
    return IntentStarted(
        passkey_options=passkey_options,
        id=challenge.id,
        method=challenge.method,
        request_ids=list(challenge.request_ids),
        expires_at=challenge.expires_at,
        device_payloads=[
            DevicePayloadPublic(
                request_id=p.request_id,
                message=base64.b64encode(p.message).decode("ascii"),
                signed_attributes=base64.b64encode(p.signed_attributes).decode("ascii"),
            )
            for p in payloads
        ],
    )


@router.post(
    "/intents/{intent_id}/confirm",
    response_model=RequestListPublic,
    dependencies=_WRITE,
    summary="Confirm with the PIN: signs every request of the intent",
)
def confirm_intent(
    intent_id: Annotated[str, Field(min_length=1, max_length=64)],
    body: IntentConfirm,
    session: PhoneDep,
    request: Request,
    runtime: RuntimeDep,
) -> RequestListPublic:
    device_signatures = None
    if body.device_signatures is not None:
        device_signatures = {
            d.request_id: DeviceSignature(raw=_b64(d.raw), cms=_b64(d.cms))
            for d in body.device_signatures
        }
    secret = body.pin if body.pin is not None else json.dumps(body.assertion)
    signed = runtime.workflow.signer_confirm(
        session.staff_id,
        intent_id,
        secret,
        client=client_label(request, session),
        device_signatures=device_signatures,
    )
    names = _Names(runtime, lang_of(request))
    return RequestListPublic(items=public_list(names, signed))


@router.post(
    "/requests:reject",
    response_model=RequestListPublic,
    dependencies=_WRITE,
    summary="Refuse requests, with a reason the application receives",
)
def reject(
    body: RejectSubmit, session: PhoneDep, request: Request, runtime: RuntimeDep
) -> RequestListPublic:
    rejected = runtime.workflow.signer_reject(session.staff_id, body.request_ids, body.reason)
    names = _Names(runtime, lang_of(request))
    return RequestListPublic(items=public_list(names, rejected))


@router.get(
    "/events",
    summary="Server-Sent Events: the pending list whenever it changes",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(request: Request, session: PhoneDep, runtime: RuntimeDep) -> StreamingResponse:
    interval = runtime.settings.phone_events_poll_seconds
    names = _Names(runtime, lang_of(request))
    device_token = request.cookies.get(DEVICE_COOKIE)
    session_token = request.cookies.get(SESSION_COOKIE)

    def snapshot() -> str | None:
        try:
            runtime.phone.authenticate(session_token, device_token)
        except PhoneSessionError:
            return None
        items = runtime.workflow.signer_pending(session.staff_id)
        listed = public_list(names, items)
        return json.dumps(
            {"items": [i.model_dump(mode="json") for i in listed]}, ensure_ascii=False
        )

    async def stream() -> AsyncIterator[str]:
        # Polling the database (not an in-process queue) keeps this right on a cluster:
        # whichever node took the request, every node sees the row.
        last: str | None = None
        quiet = 0.0
        yield "retry: 3000\n\n"
        while not await request.is_disconnected():
            current = await run_in_threadpool(snapshot)
            if current is None:
                yield "event: session-ended\ndata: {}\n\n"
                return
            if current != last:
                last = current
                quiet = 0.0
                yield f"event: pending\ndata: {current}\n\n"
            elif quiet >= 15:
                quiet = 0.0
                yield ": keep-alive\n\n"  # proxies close silent connections
            await asyncio.sleep(interval)
            quiet += interval

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# -- QR-code login ------------------------------------------------------------------------------


class LoginDecisionPublic(BaseModel):
    id: str
    state: str


@router.post(
    "/logins/{login_id}/{decision}",
    response_model=LoginDecisionPublic,
    dependencies=_WRITE,
    summary="Approve or decline a QR-code login shown on this phone",
)
def decide_login(
    login_id: Annotated[str, Field(min_length=1, max_length=64)],
    decision: Literal["approve", "decline"],
    session: PhoneDep,
    runtime: RuntimeDep,
) -> LoginDecisionPublic:
    decide = runtime.logins.approve if decision == "approve" else runtime.logins.decline
    login = decide(login_id, staff_id=session.staff_id, device_id=session.device_id)
    return LoginDecisionPublic(id=login.id, state=login.state)


# -- passkeys ---------------------------------------------------------------------------------


def _passkey_public(p: Passkey) -> PasskeyPublic:
    return PasskeyPublic(
        id=p.id,
        label=p.label,
        created_at=p.created_at,
        last_used_at=p.last_used_at,
        revoked_at=p.revoked_at,
    )


def _passkeys(runtime: Runtime) -> PasskeyService:
    if runtime.passkeys is None:
        raise StateError(
            "passkeys are off: medsign must be reached by a domain name (see passkey_rp_id)"
        )
    return runtime.passkeys


@router.get("/passkeys", response_model=list[PasskeyPublic], summary="My passkeys")
def list_passkeys(session: PhoneDep, runtime: RuntimeDep) -> list[PasskeyPublic]:
    if runtime.passkeys is None:
        return []
    return [_passkey_public(p) for p in runtime.passkeys.list_passkeys(session.staff_id)]


@router.post(
    "/passkeys/options",
    dependencies=_WRITE,
    summary="Start registering a passkey (PublicKeyCredentialCreationOptions, base64url)",
)
def passkey_options(session: PhoneDep, runtime: RuntimeDep) -> dict[str, Any]:
    return _passkeys(runtime).registration_options(session.id, session.staff_id)


@router.post(
    "/passkeys",
    response_model=PasskeyPublic,
    status_code=201,
    dependencies=_WRITE,
    summary="Finish registering a passkey (user verification required)",
)
def register_passkey(
    body: PasskeyRegister, session: PhoneDep, runtime: RuntimeDep
) -> PasskeyPublic:
    return _passkey_public(
        _passkeys(runtime).finish_registration(
            session.id, session.staff_id, body.credential, label=body.label
        )
    )


@router.delete(
    "/passkeys/{passkey_id}",
    response_model=Done,
    dependencies=_WRITE,
    summary="Revoke one of my passkeys",
)
def revoke_passkey(
    passkey_id: Annotated[str, Field(min_length=1, max_length=64)],
    session: PhoneDep,
    runtime: RuntimeDep,
) -> Done:
    _passkeys(runtime).revoke(session.staff_id, passkey_id, actor=_actor(session))
    return Done()


# -- settings ----------------------------------------------------------------------------------


@router.post(
    "/pin",
    response_model=Done,
    dependencies=_WRITE,
    summary="Change the signing PIN (the old one must be right; wrong ones count)",
)
def change_pin(body: PINChange, session: PhoneDep, request: Request, runtime: RuntimeDep) -> Done:
    runtime.pins.change_pin(
        session.staff_id, body.old_pin, body.new_pin, client=client_label(request, session)
    )
    return Done()


@router.get("/devices", response_model=list[DevicePublic], summary="My enrolled phones")
def devices(session: PhoneDep, runtime: RuntimeDep) -> list[DevicePublic]:
    return [
        DevicePublic(
            id=d.id,
            label=d.label,
            key_mode=d.key_mode,
            created_at=d.created_at,
            last_seen_at=d.last_seen_at,
            revoked_at=d.revoked_at,
            current=d.id == session.device_id,
        )
        for d in runtime.phone.list_devices(session.staff_id)
    ]


@router.delete(
    "/devices/{device_id}",
    response_model=Done,
    dependencies=_WRITE,
    summary="Unbind one of my phones (its sessions end at once)",
)
def revoke_device(
    device_id: Annotated[str, Field(min_length=1, max_length=64)],
    session: PhoneDep,
    runtime: RuntimeDep,
) -> Done:
    runtime.phone.revoke_device(session.staff_id, device_id, actor=_actor(session))
    return Done()


# -- handwritten signature ---------------------------------------------------------------------


def handwriting_service(runtime: Runtime) -> HandwritingService:
    # Stateless over the database and the clock: cheap to make per call.
    return HandwritingService(runtime.database, runtime.clock)


def handwriting_public(h: Handwriting) -> HandwritingPublic:
    return HandwritingPublic(
        id=h.id,
        state=h.state,
        sha256=h.sha256,
        width=h.width,
        height=h.height,
        created_at=h.created_at,
        decided_at=h.decided_at,
        png_url=f"/m/api/handwriting/{h.id}.png",
    )


async def _read_photo(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        check_photo_size(int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        # Checked while streaming too: a chunked body declares no length up front.
        check_photo_size(size)
        chunks.append(chunk)
    return b"".join(chunks)


@router.get(
    "/handwriting",
    response_model=HandwritingImagesPublic,
    summary="My handwritten signature: the active image and a proposal awaiting confirmation",
)
def handwriting(
    session: PhoneDep, runtime: RuntimeDep, response: Response
) -> HandwritingImagesPublic:
    response.headers.update(_NO_STORE)
    images = handwriting_service(runtime).images(session.staff_id)
    return HandwritingImagesPublic(
        active=handwriting_public(images.active) if images.active else None,
        proposed=handwriting_public(images.proposed) if images.proposed else None,
        max_photo_bytes=MAX_PHOTO_BYTES,
    )


@router.post(
    "/handwriting",
    response_model=HandwritingPublic,
    status_code=201,
    dependencies=_WRITE,
    summary="Upload a photo of my signature on white paper; the cut-out ink becomes a proposal",
    description="The body is the photo itself (JPEG or PNG bytes, e.g. `Content-Type:"
    f" image/jpeg`), at most {MAX_PHOTO_BYTES} bytes. The answer is the proposal: look at its"
    " PNG, then confirm or discard it. Refusals: `image-too-large` (413), `image-unreadable`,"
    " `image-too-small`, `image-too-dark`, `no-ink-found` (422).",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def propose_handwriting(
    request: Request, session: PhoneDep, runtime: RuntimeDep
) -> HandwritingPublic:
    photo = await _read_photo(request)
    # Image filtering is CPU work: off the event loop.
    proposed = await run_in_threadpool(
        handwriting_service(runtime).propose, session.staff_id, photo, actor=_actor(session)
    )
    return handwriting_public(proposed)


@router.get(
    "/handwriting/{image_id}.png",
    summary="One of my handwritten-signature images (transparent PNG)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def handwriting_png(
    image_id: Annotated[str, Field(min_length=1, max_length=64)],
    session: PhoneDep,
    runtime: RuntimeDep,
) -> Response:
    png = handwriting_service(runtime).png(session.staff_id, image_id)
    return Response(
        png,
        media_type="image/png",
        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
    )


@router.post(
    "/handwriting/{image_id}/confirm",
    response_model=HandwritingPublic,
    dependencies=_WRITE,
    summary="Confirm my proposal: it becomes the image my PDF signatures show",
)
def confirm_handwriting(
    image_id: Annotated[str, Field(min_length=1, max_length=64)],
    session: PhoneDep,
    runtime: RuntimeDep,
) -> HandwritingPublic:
    confirmed = handwriting_service(runtime).confirm(
        session.staff_id, image_id, actor=_actor(session)
    )
    return handwriting_public(confirmed)


@router.delete(
    "/handwriting/{image_id}",
    response_model=Done,
    dependencies=_WRITE,
    summary="Discard my proposal (the active image stays until another is confirmed)",
)
def discard_handwriting(
    image_id: Annotated[str, Field(min_length=1, max_length=64)],
    session: PhoneDep,
    runtime: RuntimeDep,
) -> Done:
    handwriting_service(runtime).discard(session.staff_id, image_id, actor=_actor(session))
    return Done()
