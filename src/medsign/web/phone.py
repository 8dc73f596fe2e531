"""The clinician's phone pages under ``/m/`` (server-rendered; the JSON behind the buttons
lives in ``medsign.api.routes.phone``).

Every page is built for a 390×844 viewport, works without any external resource (hospital
intranets have no internet) and sends a strict Content-Security-Policy: scripts and styles
only from ``/m/static``, page data handed over in a non-executable JSON block.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import Field

from medsign.api.deps import RuntimeDep
from medsign.api.routes.phone import (
    DEVICE_COOKIE,
    SESSION_COOKIE,
    _Names,
    handwriting_public,
    handwriting_service,
    lang_of,
    public_list,
    public_request,
)
from medsign.documents.handwriting import MAX_PHOTO_BYTES
from medsign.errors import MedsignError
from medsign.identity.devices import DeviceUnknownError, PhoneSession, PhoneSessionError
from medsign.runtime import Runtime
from medsign.web.i18n import LANGUAGES, catalogue, translator

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
router = APIRouter(prefix="/m", include_in_schema=False)
_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_ID = Annotated[str, Field(min_length=1, max_length=128)]


def render(
    request: Request,
    template: str,
    *,
    page: str,
    data: dict[str, Any] | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    lang = lang_of(request)
    t = translator(lang)
    script_data = {
        "page": page,
        "lang": lang,
        "messages": catalogue(lang, ("common.", "home.", "pin.", "state.", "detail.", "doc.",
                                     "hw.", "settings.", "enrol.", "login.", "unlock.",
                                     "error.")),
        **(data or {}),
    }  # fmt: skip
    html = _env.get_template(f"phone/{template}").render(
        t=t,
        lang=lang,
        page=page,
        page_data=page_json(script_data),
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def page_json(value: Any) -> str:
    """JSON for a page's non-executable data block: "</" cannot end the block early once
    escaped; nothing else needs care in JSON."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


def _session(request: Request, runtime: Runtime) -> PhoneSession | None:
    try:
        return runtime.phone.authenticate(
            request.cookies.get(SESSION_COOKIE), request.cookies.get(DEVICE_COOKIE)
        )
    except PhoneSessionError:
        return None


def _to_unlock(request: Request) -> RedirectResponse:
    target = request.url.path
    return RedirectResponse(f"/m/unlock?next={quote(target, safe='/')}", status_code=303)


def _safe_next(value: str | None) -> str:
    # Only our own phone pages: an open redirect would make a fine phishing helper.
    if value and value.startswith("/m/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/m/"


@router.get("/lang/{lang}")
def set_language(lang: str, next: str | None = None) -> Response:
    response = RedirectResponse(_safe_next(next), status_code=303)
    if lang in LANGUAGES:
        response.set_cookie(
            "medsign_lang", lang, max_age=400 * 24 * 3600, path="/m", samesite="strict"
        )
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, runtime: RuntimeDep) -> Response:
    session = _session(request, runtime)
    if session is None:
        return _to_unlock(request)
    names = _Names(runtime, lang_of(request))
    items = public_list(names, runtime.workflow.signer_pending(session.staff_id))
    return render(
        request,
        "home.html",
        page="home",
        items=items,
        me=_staff_name(runtime, session.staff_id),
        data={
            "items": [i.model_dump(mode="json") for i in items],
            "passkey": _has_passkey(runtime, session.staff_id),
        },
    )


@router.get("/unlock", response_class=HTMLResponse)
def unlock_page(
    request: Request,
    runtime: RuntimeDep,
    next: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    try:
        device = runtime.phone.device_for(request.cookies.get(DEVICE_COOKIE))
    except DeviceUnknownError:
        return render(request, "message.html", page="message", status=403,
                      message_key="unlock.not_enrolled")  # fmt: skip
    return render(
        request,
        "unlock.html",
        page="unlock",
        me=_staff_name(runtime, device.staff_id),
        data={"next": _safe_next(next)},
    )


@router.get("/requests/{request_id}", response_class=HTMLResponse)
def request_page(request_id: _ID, request: Request, runtime: RuntimeDep) -> Response:
    session = _session(request, runtime)
    if session is None:
        return _to_unlock(request)
    names = _Names(runtime, lang_of(request))
    try:
        found = runtime.workflow.signer_request(session.staff_id, request_id)
    except MedsignError:
        return render(request, "message.html", page="message", status=404,
                      message_key="common.error")  # fmt: skip
    item = public_request(names, found, with_record=True)
    handwriting = None
    if item.document is not None and item.document.handwriting and item.state == "pending":
        active = handwriting_service(runtime).images(session.staff_id).active
        handwriting = handwriting_public(active) if active else None
    return render(
        request,
        "request.html",
        page="request",
        item=item,
        doc=item.document,
        handwriting=handwriting,
        me=_staff_name(runtime, session.staff_id),
        fields=flatten(item.record),
        data={
            "id": item.id,
            "state": item.state,
            "passkey": _has_passkey(runtime, session.staff_id),
        },
    )


@router.get("/s/{request_id}")
def scan_to_sign(request_id: _ID) -> RedirectResponse:
    """Target of a signature request's QR code: the detail page (after unlocking)."""
    return RedirectResponse(f"/m/requests/{quote(request_id, safe='')}", status_code=303)


@router.get("/login/{login_id}", response_class=HTMLResponse)
def login_page(login_id: _ID, request: Request, runtime: RuntimeDep) -> Response:
    """Target of a QR-code login: which application and workstation ask, approve/decline."""
    session = _session(request, runtime)
    if session is None:
        return _to_unlock(request)
    try:
        view = runtime.logins.view(login_id, session.staff_id)
    except MedsignError:
        return render(request, "message.html", page="message", status=404,
                      message_key="common.error")  # fmt: skip
    return render(
        request,
        "login.html",
        page="login",
        view=view,
        me=_staff_name(runtime, session.staff_id),
        data={"id": view.login_id, "state": view.state.value},
    )


@router.get("/history", response_class=HTMLResponse)
def history_page(request: Request, runtime: RuntimeDep) -> Response:
    session = _session(request, runtime)
    if session is None:
        return _to_unlock(request)
    names = _Names(runtime, lang_of(request))
    items = public_list(names, runtime.workflow.signer_history(session.staff_id))
    return render(request, "history.html", page="history", items=items)


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, runtime: RuntimeDep) -> Response:
    session = _session(request, runtime)
    if session is None:
        return _to_unlock(request)
    devices = runtime.phone.list_devices(session.staff_id)
    images = handwriting_service(runtime).images(session.staff_id)
    handwriting = {
        "active": handwriting_public(images.active) if images.active else None,
        "proposed": handwriting_public(images.proposed) if images.proposed else None,
    }
    return render(
        request,
        "settings.html",
        page="settings",
        me=_staff_name(runtime, session.staff_id),
        handwriting=handwriting,
        data={
            "handwriting": {
                **{k: v.model_dump(mode="json") if v else None for k, v in handwriting.items()},
                "max_photo_bytes": MAX_PHOTO_BYTES,
            }
        },
        devices=devices,
        current_device=session.device_id,
        passkeys_on=runtime.passkeys is not None,
        passkeys=runtime.passkeys.list_passkeys(session.staff_id) if runtime.passkeys else [],
    )


@router.get("/enrol/{token}", response_class=HTMLResponse)
def enrol_page(token: _ID, request: Request, runtime: RuntimeDep) -> Response:
    try:
        view = runtime.enrolments.view(token)
    except MedsignError:
        return render(request, "message.html", page="message", status=410,
                      message_key="enrol.closed")  # fmt: skip
    return render(
        request,
        "enrol.html",
        page="enrol",
        view=view,
        data={
            "token": token,
            "step": view.step,
            "phone": view.phone_masked or "",
            "enrolment_id": view.enrolment_id,
            "key_location": view.key_location,
        },
    )


def _has_passkey(runtime: Runtime, staff_id: str) -> bool:
    if runtime.passkeys is None:
        return False
    return any(p.revoked_at is None for p in runtime.passkeys.list_passkeys(staff_id))


def _staff_name(runtime: Runtime, staff_id: str) -> dict[str, str]:
    from medsign.db.tables import StaffRow

    with runtime.database.session() as db:
        staff = db.get(StaffRow, staff_id)
        if staff is None:
            return {"name": "", "department": "", "title": ""}
        return {"name": staff.name, "department": staff.department, "title": staff.title}


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A JSON record as (field path, text) rows, in the record's order, for reading."""
    rows: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            rows.extend(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list):
        for index, inner in enumerate(value, start=1):
            rows.extend(flatten(inner, f"{prefix}[{index}]"))
    elif value is not None or prefix:
        text = (
            "—" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        )
        rows.append((prefix, text))
    return rows
