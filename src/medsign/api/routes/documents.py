"""PDF signing for applications: open a PDF request (or a batch), then the same intention
and confirmation calls as data signatures (`/api/v1/intents`), then fetch the signed PDF.

The PDF travels base64 in JSON so the request is HMAC-signed like every other; these routes
accept bodies up to the configured `document_max_bytes`, encoded."""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Response, status

from medsign.api.auth import ApplicationDep, DocumentApplicationDep
from medsign.api.deps import RuntimeDep
from medsign.api.document_schemas import (
    DocumentBatchCreate,
    DocumentItemCreate,
    DocumentRequestCreate,
)
from medsign.api.problems import PROBLEM_RESPONSES
from medsign.api.routes.signing import (
    AppCaller,
    IdempotencyHeader,
    batch_public,
    open_items,
    request_public,
)
from medsign.api.signing_schemas import SignBatchPublic, SignRequestPublic
from medsign.documents.errors import PdfUnreadableError
from medsign.documents.signing import Level
from medsign.documents.specs import DocumentOptions
from medsign.intake.requests import ItemInput

router = APIRouter(prefix="/api/v1", tags=["documents"], responses=PROBLEM_RESPONSES)
PDF_MEDIA_TYPE = "application/pdf"


def _item(body: DocumentItemCreate) -> ItemInput:
    try:
        pdf = base64.b64decode(body.pdf, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PdfUnreadableError("pdf is not valid base64") from exc
    place = body.placement
    return ItemInput(
        scene=body.scene,
        summary=body.summary,
        record_id=body.record_id,
        document=pdf,
        document_options=DocumentOptions(
            field_name=place.field_name,
            page=place.page,
            rect=place.rect,
            anchor=place.anchor,
            anchor_occurrence=place.anchor_occurrence,
            width=place.width,
            height=place.height,
            level=Level(body.level),
            certify=body.certify,
            reason=body.reason,
            location=body.location,
            visible=body.appearance.visible,
            handwriting=body.appearance.handwriting,
            qr=body.appearance.qr,
            empty_fields=tuple((f.field_name, f.page, f.rect) for f in body.empty_fields),
        ),
    )


@router.post(
    "/document-requests",
    status_code=status.HTTP_201_CREATED,
    response_model=SignRequestPublic,
    summary="Ask a signer to sign a PDF (PAdES; visible signature by field, place or anchor)",
)
def open_document_request(
    body: DocumentRequestCreate,
    response: Response,
    runtime: RuntimeDep,
    app: DocumentApplicationDep,
    idempotency_key: IdempotencyHeader = None,
) -> SignRequestPublic:
    result = open_items(
        runtime, app, response, body, [_item(body)], header_key=idempotency_key, as_batch=False
    )
    return request_public(runtime, result.requests[0])


@router.post(
    "/document-batches",
    status_code=status.HTTP_201_CREATED,
    response_model=SignBatchPublic,
    summary="Ask a signer to sign several PDFs with one confirmation",
)
def open_document_batch(
    body: DocumentBatchCreate,
    response: Response,
    runtime: RuntimeDep,
    app: DocumentApplicationDep,
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
    "/sign-requests/{request_id}/document.pdf",
    summary="The PDF of a document request: signed once signed, else as submitted",
    response_class=Response,
    responses={200: {"content": {PDF_MEDIA_TYPE: {}}}},
)
def document_pdf(
    request_id: str, runtime: RuntimeDep, app: ApplicationDep, original: bool = False
) -> Response:
    document = runtime.workflow.document(AppCaller(app), request_id)
    signed = document.signed is not None and not original
    data = document.signed if signed and document.signed is not None else document.original
    name = f"{request_id}{'' if signed else '-original'}.pdf"
    return Response(
        data,
        media_type=PDF_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
            "Medsign-Document": "signed" if signed else "original",
        },
    )
