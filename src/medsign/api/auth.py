"""The FastAPI dependency that authenticates calls from registered applications.

Use ``ApplicationDep`` on every ``/api/v1`` route a hospital system calls, and filter every
query by ``app.id``::

    @router.get("/api/v1/things/{thing_id}")
    def get_thing(thing_id: str, app: ApplicationDep, runtime: RuntimeDep) -> ThingPublic: ...

The dependency reads the raw body itself (bounded by the configured limit) and puts it back
where Starlette caches it, so the route can still declare a pydantic body.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from medsign.api.deps import RuntimeDep
from medsign.apps.auth import AuthenticatedApplication, RequestAuthenticator, SignedRequest
from medsign.errors import InputError

__all__ = [
    "ApplicationDep",
    "AuthenticatedApplication",
    "DocumentApplicationDep",
    "require_application",
    "require_document_application",
]


async def _read_body(
    request: Request, authenticator: RequestAuthenticator, limit: int | None
) -> bytes:
    cached: bytes | None = getattr(request, "_body", None)
    if cached is not None:
        return cached
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        # Checked while streaming: a chunked body has no Content-Length to refuse up front.
        authenticator.check_size(size, limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    # Starlette's own cache: later ``request.body()`` / pydantic bodies read it from here.
    request._body = body
    return body


async def require_application(request: Request, runtime: RuntimeDep) -> AuthenticatedApplication:
    """The application that signed this request; a problem+json refusal otherwise."""
    return await _require(request, runtime, None)


async def require_document_application(
    request: Request, runtime: RuntimeDep
) -> AuthenticatedApplication:
    """``require_application`` for routes that carry a PDF (base64 in JSON): the body may be
    as large as the largest accepted PDF, encoded."""
    return await _require(
        request, runtime, document_body_limit(runtime.settings.document_max_bytes)
    )


def document_body_limit(document_max_bytes: int) -> int:
    # base64 takes 4 characters per 3 bytes; 64 KiB more for the rest of the JSON.
    return -(-document_max_bytes // 3) * 4 + 64 * 1024


async def _require(
    request: Request, runtime: RuntimeDep, limit: int | None
) -> AuthenticatedApplication:
    authenticator = runtime.app_auth
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as exc:
            raise InputError("Content-Length is not a number") from exc
        authenticator.check_size(size, limit)
    body = await _read_body(request, authenticator, limit)
    signed = SignedRequest(
        method=request.method,
        path=request.url.path,
        query=request.scope.get("query_string", b"").decode("latin-1"),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
    )
    # Database work and HMACs stay off the event loop.
    return await run_in_threadpool(authenticator.authenticate, signed, max_body_bytes=limit)


ApplicationDep = Annotated[AuthenticatedApplication, Depends(require_application)]
DocumentApplicationDep = Annotated[AuthenticatedApplication, Depends(require_document_application)]
