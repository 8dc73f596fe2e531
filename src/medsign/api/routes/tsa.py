"""The RFC 3161 time-stamping endpoint (HTTP transport as in RFC 3161 §3.4)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from medsign.api.deps import RuntimeDep
from medsign.api.problems import PROBLEM_RESPONSES
from medsign.errors import TimestampMediaTypeError
from medsign.tsa.authority import MAX_REQUEST_SIZE

router = APIRouter(prefix="/pki", tags=["pki"])

QUERY_TYPES = frozenset({"application/timestamp-query", "application/timestamp-request"})
REPLY_TYPE = "application/timestamp-reply"


@router.post(
    "/tsa",
    response_class=Response,
    responses={
        200: {"content": {REPLY_TYPE: {}}},
        400: {
            "description": "Not application/timestamp-query",
            "content": PROBLEM_RESPONSES[422]["content"],
        },
    },
    summary="RFC 3161 time-stamping unit",
    description="Body: DER TimeStampReq with Content-Type application/timestamp-query."
    " Always answers 200 with a TimeStampResp: `granted` with the token, or `rejection`"
    " with a failInfo (badAlg, badRequest, badDataFormat, unacceptedPolicy,"
    " unacceptedExtension, timeNotAvailable, systemFailure).",
)
async def timestamp(request: Request, runtime: RuntimeDep) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in QUERY_TYPES:
        raise TimestampMediaTypeError("a TimeStampReq must be sent as application/timestamp-query")
    body = await request.body()
    if len(body) > MAX_REQUEST_SIZE:
        body = b""  # answered as badDataFormat, like any other unusable request
    der = await run_in_threadpool(runtime.tsa.respond, body)
    return Response(der, media_type=REPLY_TYPE)
