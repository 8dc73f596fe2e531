"""The signing API for applications: open requests and batches, ask for and confirm the
signer's intention, poll results, cancel, reject, void. HMAC-authenticated (see
docs/integration/authentication.md); an application only ever sees its own requests."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections import OrderedDict
from typing import Annotated, Literal, Protocol

from fastapi import APIRouter, Header, Request, Response, status
from starlette.concurrency import run_in_threadpool

from medsign.api.auth import ApplicationDep, AuthenticatedApplication
from medsign.api.deps import RuntimeDep
from medsign.api.problems import PROBLEM_RESPONSES
from medsign.api.signing_schemas import (
    DocumentPublic,
    IntentConfirm,
    IntentCreate,
    IntentItemPublic,
    IntentPublic,
    RejectCreate,
    SignaturePublic,
    SignBatchCreate,
    SignBatchPublic,
    SignedItemPublic,
    SignedResultPublic,
    SignItemCreate,
    SignRequestCreate,
    SignRequestPublic,
    VoidCreate,
)
from medsign.apps.registry import may_address
from medsign.ca.authority import pem_encode
from medsign.ca.names import openssl_serial
from medsign.errors import InputError
from medsign.evidence.package import MEDIA_TYPE, build_package
from medsign.evidence.report import MEDIA_TYPE as REPORT_MEDIA_TYPE
from medsign.evidence.report import render_report
from medsign.identity.qr import qr_png, qr_svg
from medsign.intake.requests import ItemInput, OpenResult, SignRequest
from medsign.runtime import Runtime
from medsign.web.verify import verification_link

router = APIRouter(prefix="/api/v1", tags=["signing"], responses=PROBLEM_RESPONSES)
IdempotencyHeader = Annotated[str | None, Header(alias="Idempotency-Key", max_length=128)]


class AppCaller:
    """Adapts the authenticated application to the workflow's ``Caller``."""

    def __init__(self, app: AuthenticatedApplication) -> None:
        self._app = app
        self.id = app.id
        self.organization_id = app.organization_id

    def may_address(self, department: str, staff_id: str) -> bool:
        return may_address(self._app, department, staff_id)


def idempotency_key_of(header: str | None, body: str | None) -> str:
    key = header or body
    if not key:
        raise InputError("an idempotency key is required (Idempotency-Key header or body field)")
    if header and body and header != body:
        raise InputError("Idempotency-Key header and body field differ")
    return key


def ttl(seconds: int | None) -> dt.timedelta | None:
    return None if seconds is None else dt.timedelta(seconds=seconds)


def _item(body: SignItemCreate) -> ItemInput:
    return ItemInput(
        scene=body.scene,
        summary=body.summary,
        record_id=body.record_id,
        record=body.record,
        digest=bytes.fromhex(body.digest) if body.digest else None,
        digest_algorithm=body.digest_algorithm,
    )


_CERTIFICATES: OrderedDict[tuple[int, str], tuple[str, str, list[str]]] = OrderedDict()


def _certificate(runtime: Runtime, certificate_id: str) -> tuple[str, str, list[str]]:
    """(PEM, serial, chain PEMs) of a signer certificate; certificates never change, so a
    small cache spares a batch of 100 results 200 lookups."""
    key = (id(runtime), certificate_id)
    found = _CERTIFICATES.get(key)
    if found is None:
        cert = runtime.authority.get_by_id(certificate_id)
        chain = runtime.authority.chain(cert.serial_hex)
        found = (cert.pem(), openssl_serial(cert.serial_hex), [pem_encode(d) for d in chain])
        _CERTIFICATES[key] = found
        while len(_CERTIFICATES) > 1024:
            _CERTIFICATES.popitem(last=False)
    return found


def request_public(runtime: Runtime, request: SignRequest) -> SignRequestPublic:
    signature = None
    if request.cms is not None and request.certificate_id is not None:
        assert request.timestamp_token and request.timestamp_time
        certificate_pem, serial, chain_pem = _certificate(runtime, request.certificate_id)
        signature = SignaturePublic(
            scheme=request.signature_scheme or "",
            value=None
            if request.signature is None
            else base64.b64encode(request.signature).decode(),
            cms=base64.b64encode(request.cms).decode(),
            timestamp_token=base64.b64encode(request.timestamp_token).decode(),
            timestamp_time=request.timestamp_time,
            certificate_pem=certificate_pem,
            certificate_serial=serial,
            chain_pem=chain_pem,
        )
    return SignRequestPublic(
        id=request.id,
        batch_id=request.batch_id,
        position=request.position,
        kind=request.kind,
        state=request.state,
        scene=request.scene,
        summary=request.summary,
        record_id=request.record_id,
        content_kind=request.content_kind,
        digest_algorithm=request.digest_algorithm,
        digest=request.digest.hex(),
        expires_at=request.expires_at,
        created_at=request.created_at,
        signed_at=request.signed_at,
        reject_reason=request.reject_reason,
        voids_request_id=request.voids_request_id,
        voided_by_request_id=request.voided_by_request_id,
        phone_url=_phone_url(runtime, request.id),
        verification_url=verification_link(runtime, request.id) if signature else None,
        signature=signature,
        document=_document(runtime, request) if request.content_kind == "pdf" else None,
    )


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _document(runtime: Runtime, request: SignRequest) -> DocumentPublic:
    """From the request's statement (its content); the signed PDF's hash from the store."""
    assert request.content is not None
    statement = json.loads(request.content)
    signed_sha256 = None
    if request.state in ("signed", "voided"):
        signed_sha256 = runtime.workflow.signed_document_sha256(request.id)
    return DocumentPublic(
        pdf_sha256=statement["pdf_sha256"],
        pdf_bytes=statement["pdf_bytes"],
        pages=statement["pages"],
        field=statement["field"],
        page=statement["page"],
        rect=statement["rect"],
        level=statement["level"],
        certify=statement["certify"],
        signed_pdf_sha256=signed_sha256,
        download_url=f"{runtime.settings.public_base_url}/api/v1/sign-requests/{request.id}"
        "/document.pdf",
    )


class _Opening(Protocol):
    employee_no: str
    idempotency_key: str | None
    expires_in_seconds: int | None


def open_items(
    runtime: Runtime,
    app: AuthenticatedApplication,
    response: Response,
    body: _Opening,
    items: list[ItemInput],
    *,
    header_key: str | None,
    as_batch: bool,
) -> OpenResult:
    """Open a request or a batch for one of the opening routes (data or PDF); a replay of
    the same idempotency key answers 200 with ``Idempotent-Replayed``."""
    result = runtime.workflow.open(
        AppCaller(app),
        body.employee_no,
        items,
        idempotency_key=idempotency_key_of(header_key, body.idempotency_key),
        as_batch=as_batch,
        expires_in=ttl(body.expires_in_seconds),
    )
    if result.replayed:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return result


def batch_public(runtime: Runtime, result: OpenResult) -> SignBatchPublic:
    assert result.batch_id is not None
    return SignBatchPublic(
        batch_id=result.batch_id, requests=[request_public(runtime, r) for r in result.requests]
    )


def _phone_url(runtime: Runtime, request_id: str) -> str:
    return f"{runtime.settings.public_base_url}/m/s/{request_id}"


@router.post(
    "/sign-requests",
    status_code=status.HTTP_201_CREATED,
    response_model=SignRequestPublic,
    summary="Ask a signer to sign one item",
)
def open_request(
    body: SignRequestCreate,
    response: Response,
    runtime: RuntimeDep,
    app: ApplicationDep,
    idempotency_key: IdempotencyHeader = None,
) -> SignRequestPublic:
    result = open_items(
        runtime, app, response, body, [_item(body)], header_key=idempotency_key, as_batch=False
    )
    return request_public(runtime, result.requests[0])


@router.post(
    "/sign-batches",
    status_code=status.HTTP_201_CREATED,
    response_model=SignBatchPublic,
    summary="Ask a signer to sign a batch of items (one confirmation, one signature each)",
)
def open_batch(
    body: SignBatchCreate,
    response: Response,
    runtime: RuntimeDep,
    app: ApplicationDep,
    idempotency_key: IdempotencyHeader = None,
) -> SignBatchPublic:
    result = open_items(
        runtime,
        app,
        response,
        body,
        [_item(i) for i in body.items],
        header_key=idempotency_key,
        as_batch=True,
    )
    return batch_public(runtime, result)


@router.get(
    "/sign-requests/{request_id}",
    response_model=SignRequestPublic,
    summary="Poll one request (with its signature once signed)",
)
def get_request(request_id: str, runtime: RuntimeDep, app: ApplicationDep) -> SignRequestPublic:
    return request_public(runtime, runtime.workflow.get(AppCaller(app), request_id))


@router.get(
    "/sign-requests/{request_id}/evidence-package",
    summary="The evidence package of a signed request (ZIP; `medsign verify` checks it offline)",
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPE: {}}}},
)
def evidence_package(
    request_id: str, runtime: RuntimeDep, app: ApplicationDep, content: bool = False
) -> Response:
    found = runtime.workflow.get(AppCaller(app), request_id)  # only the application's own
    data = build_package(runtime, found.id, include_content=content, application_id=app.id)
    return Response(
        data,
        media_type=MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="evidence-{found.id}.zip"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/sign-requests/{request_id}/evidence-report",
    summary="The evidence report of a signed request (PDF, for a court or a patient to read)",
    response_class=Response,
    responses={200: {"content": {REPORT_MEDIA_TYPE: {}}}},
)
def evidence_report(request_id: str, runtime: RuntimeDep, app: ApplicationDep) -> Response:
    found = runtime.workflow.get(AppCaller(app), request_id)  # only the application's own
    data = render_report(
        runtime,
        found.id,
        verification_url=verification_link(runtime, found.id),
        application_id=app.id,
    )
    return Response(
        data,
        media_type=REPORT_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="evidence-report-{found.id}.pdf"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/sign-requests/{request_id}/qr.{kind}",
    summary="QR code of the request's phone URL, for the signer to scan (QR-code signing)",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}, "image/png": {}}}},
)
def request_qr(
    request_id: str, kind: Literal["svg", "png"], runtime: RuntimeDep, app: ApplicationDep
) -> Response:
    found = runtime.workflow.get(AppCaller(app), request_id)  # only the application's own
    url = _phone_url(runtime, found.id)
    headers = {"Cache-Control": "no-store"}
    if kind == "svg":
        return Response(qr_svg(url), media_type="image/svg+xml", headers=headers)
    return Response(qr_png(url), media_type="image/png", headers=headers)


@router.get("/sign-batches/{batch_id}", response_model=SignBatchPublic, summary="Poll a batch")
def get_batch(batch_id: str, runtime: RuntimeDep, app: ApplicationDep) -> SignBatchPublic:
    requests = runtime.workflow.get_batch(AppCaller(app), batch_id)
    return SignBatchPublic(
        batch_id=batch_id, requests=[request_public(runtime, r) for r in requests]
    )


@router.get(
    "/signers/{employee_no}/pending",
    response_model=list[SignRequestPublic],
    summary="Requests waiting for this signer",
)
def pending(employee_no: str, runtime: RuntimeDep, app: ApplicationDep) -> list[SignRequestPublic]:
    return [
        request_public(runtime, r) for r in runtime.workflow.pending(AppCaller(app), employee_no)
    ]


@router.post(
    "/sign-requests/{request_id}/cancel",
    response_model=SignRequestPublic,
    summary="Withdraw a pending request",
)
def cancel(request_id: str, runtime: RuntimeDep, app: ApplicationDep) -> SignRequestPublic:
    return request_public(runtime, runtime.workflow.cancel(AppCaller(app), request_id))


@router.post(
    "/sign-requests:reject",
    response_model=list[SignRequestPublic],
    summary="The signer refuses one or more requests, with a reason",
)
def reject(body: RejectCreate, runtime: RuntimeDep, app: ApplicationDep) -> list[SignRequestPublic]:
    rejected = runtime.workflow.reject(
        AppCaller(app), body.employee_no, body.request_ids, body.reason
    )
    return [request_public(runtime, r) for r in rejected]


@router.post(
    "/sign-requests/{request_id}/void",
    status_code=status.HTTP_201_CREATED,
    response_model=SignRequestPublic,
    summary="Ask the signer to void a signed item (they sign a void statement)",
)
def void(
    request_id: str,
    body: VoidCreate,
    response: Response,
    runtime: RuntimeDep,
    app: ApplicationDep,
    idempotency_key: IdempotencyHeader = None,
) -> SignRequestPublic:
    result = runtime.workflow.request_void(
        AppCaller(app),
        request_id,
        body.reason,
        idempotency_key=idempotency_key_of(idempotency_key, body.idempotency_key),
        expires_in=ttl(body.expires_in_seconds),
    )
    if result.replayed:
        response.status_code = status.HTTP_200_OK
    return request_public(runtime, result.requests[0])


@router.post(
    "/intents",
    status_code=status.HTTP_201_CREATED,
    response_model=IntentPublic,
    summary="Ask the signer to confirm exactly these items (PIN or SMS code)",
)
def start_intent(body: IntentCreate, runtime: RuntimeDep, app: ApplicationDep) -> IntentPublic:
    caller = AppCaller(app)
    request_ids = list(body.request_ids)
    if body.batch_id is not None:
        request_ids += [
            r.id
            for r in runtime.workflow.get_batch(caller, body.batch_id)
            if r.state == "pending" and r.id not in request_ids
        ]
    challenge = runtime.workflow.start_intent(caller, body.employee_no, request_ids, body.method)
    items = [runtime.workflow.get(caller, rid) for rid in challenge.request_ids]
    return IntentPublic(
        id=challenge.id,
        method=challenge.method,
        state=challenge.state,
        expires_at=challenge.expires_at,
        binding_digest=challenge.binding_digest,
        items=[
            IntentItemPublic(
                request_id=i.id,
                scene=i.scene,
                summary=i.summary,
                digest_algorithm=i.digest_algorithm,
                digest=i.digest.hex(),
            )
            for i in items
        ],
    )


@router.post(
    "/intents/{intent_id}/confirm",
    response_model=SignedResultPublic,
    summary="Confirm with the PIN or SMS code; signs every item of the intent",
)
async def confirm_intent(
    intent_id: str,
    body: IntentConfirm,
    request: Request,
    runtime: RuntimeDep,
    app: ApplicationDep,
) -> SignedResultPublic:
    secret = body.pin if body.pin is not None else body.code
    assert secret is not None
    client = (request.client.host if request.client else "")[:64]
    signed = await run_in_threadpool(
        runtime.workflow.confirm, AppCaller(app), intent_id, secret, client=f"app:{app.id}@{client}"
    )
    return SignedResultPublic(
        signed=[
            SignedItemPublic(
                id=r.id, state=r.state, signed_at=r.signed_at, timestamp_time=r.timestamp_time
            )
            for r in signed
        ]
    )
