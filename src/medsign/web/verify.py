"""The public verification page (no login): upload a CMS signature with its data (or an
evidence package), or open the link printed as a QR code on an evidence report, and see
passed / failed / indeterminate with every check listed.

The link of a signed request carries a capability: ``/v/r/{request id}/{token}`` where the
token is a keyed digest of the id (the data keyring's lookup key), so request ids cannot be
walked; the page shows who signed what kind of record when, and the checks, never the record.
"""

from __future__ import annotations

import base64
import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from medsign.api.deps import RuntimeDep
from medsign.api.problems import PROBLEM_RESPONSES
from medsign.api.routes.phone import lang_of
from medsign.api.routes.verify import _base64, report_public
from medsign.api.verify_schemas import VerificationReportPublic
from medsign.db.tables import SignRequestRow
from medsign.errors import InputError, MedsignError, NotFoundError
from medsign.evidence.package import is_package, verify_package
from medsign.runtime import Runtime, link_token, verification_url
from medsign.verify import CMSSignature, SignedContent
from medsign.web.i18n import catalogue, translator
from medsign.web.phone import CSP, _env, page_json

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/v/api", tags=["verify"], responses=PROBLEM_RESPONSES)
MAX_UPLOAD = 8 * 1024 * 1024  # base64 characters


def verification_link(runtime: Runtime, request_id: str) -> str:
    """The URL an evidence report's QR code opens."""
    return verification_url(runtime.settings.public_base_url, runtime.sealer, request_id)


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = lang_of(request)
    data = {"lang": lang, "messages": catalogue(lang, ("verify.", "common.", "error."))}
    html = _env.get_template(f"verify/{template}").render(
        t=translator(lang), lang=lang, page_data=page_json(data), **context
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@router.get("/v/", response_class=HTMLResponse)
def upload_page(request: Request) -> Response:
    return _page(request, "upload.html")


@router.get("/v/r/{request_id}/{token}", response_class=HTMLResponse)
def request_page(request_id: str, token: str, request: Request, runtime: RuntimeDep) -> Response:
    if not hmac.compare_digest(token.encode(), link_token(runtime.sealer, request_id).encode()):
        return _page(request, "result.html", status=404, report=None, request_info=None)
    try:
        report, info = verify_stored(runtime, request_id)
    except MedsignError:
        return _page(request, "result.html", status=404, report=None, request_info=None)
    return _page(request, "result.html", report=report, request_info=info)


def verify_stored(
    runtime: Runtime, request_id: str
) -> tuple[VerificationReportPublic, dict[str, str]]:
    """Re-verify a signed request's stored CMS against its stored digest, now."""
    with runtime.database.session() as session:
        row = session.get(SignRequestRow, request_id)
        if row is None or row.cms is None:
            raise NotFoundError(f"no signed request {request_id}")
        cms, digest, algorithm, scene = row.cms, row.digest, row.digest_algorithm, row.scene
        signed_at = row.signed_at
    report = runtime.verifier.verify(
        CMSSignature(cms=cms, content=SignedContent(digest=digest, digest_algorithm=algorithm))
    )
    info = {
        "request_id": request_id,
        "scene": scene,
        "digest": f"{algorithm}:{digest.hex()}",
        "signed_at": signed_at.isoformat() if signed_at else "",
    }
    return report_public(report), info


class PublicVerify(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cms: str = Field(
        min_length=1,
        max_length=MAX_UPLOAD,
        description="CMS (DER or PEM) or an evidence package (ZIP), base64",
    )
    data: str | None = Field(default=None, max_length=MAX_UPLOAD, description="Signed data, base64")


@api.post(
    "/verify",
    response_model=None,
    summary="Public verification of a detached CMS signature (with or without the data) or of"
    " an evidence package (ZIP, checked offline against this installation's roots)",
)
async def public_verify(body: PublicVerify, runtime: RuntimeDep) -> dict[str, Any]:
    blob = _base64(body.cms, "cms")
    if is_package(blob):
        if body.data is not None:
            raise InputError("an evidence package carries its own content: send it alone")
        roots = [ca.certificate_der for ca in runtime.authority.list_cas() if ca.level == "root"]
        checked = await run_in_threadpool(verify_package, blob, trust_anchors=roots)
        answer = checked.as_dict()
        signature = answer.get("signature") or {}
        # The page shows every report the same way: signer and time as for a CMS report.
        answer["signer"] = signature.get("signer")
        answer["signing_time"] = signature.get("signing_time")
        answer["signing_time_source"] = signature.get("signing_time_source")
        return answer
    if blob.lstrip().startswith(b"-----BEGIN"):
        blob = _pem_body(blob)
    content = SignedContent(data=_base64(body.data, "data")) if body.data is not None else None
    report = await run_in_threadpool(
        runtime.verifier.verify, CMSSignature(cms=blob, content=content)
    )
    return report_public(report).model_dump(mode="json")


def _pem_body(pem: bytes) -> bytes:
    lines = [
        line for line in pem.decode("ascii", "replace").splitlines() if not line.startswith("-----")
    ]
    try:
        return base64.b64decode("".join(lines), validate=True)
    except ValueError as exc:
        raise InputError("the PEM signature is not base64") from exc
