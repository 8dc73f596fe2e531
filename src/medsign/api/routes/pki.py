"""Public PKI endpoints named in certificates: CA issuers (AIA), CRL DPs, OCSP."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from medsign.api.deps import RuntimeDep
from medsign.api.problems import PROBLEM_RESPONSES
from medsign.api.schemas import CertificateAuthorityPublic

router = APIRouter(prefix="/pki", tags=["pki"])

OCSP_REQUEST_LIMIT = 16 * 1024


@router.get("/cas", response_model=list[CertificateAuthorityPublic], summary="List the CAs")
def list_cas(runtime: RuntimeDep) -> list[CertificateAuthorityPublic]:
    base = runtime.settings.public_base_url
    return [
        CertificateAuthorityPublic(
            id=ca.id,
            name=ca.name,
            family=ca.family,
            level=ca.level,
            parent_id=ca.parent_id,
            certificate_pem=ca.pem(),
            certificate_url=f"{base}/pki/ca/{ca.id}.crt",
            crl_url=f"{base}/pki/crl/{ca.id}.crl",
        )
        for ca in runtime.authority.list_cas()
    ]


@router.get(
    "/ca/{ca_id}.crt",
    response_class=Response,
    responses={200: {"content": {"application/pkix-cert": {}}}, 404: PROBLEM_RESPONSES[404]},
    summary="CA certificate (DER), the AIA caIssuers target",
)
def ca_certificate(ca_id: str, runtime: RuntimeDep) -> Response:
    der = runtime.authority.ca_certificate(ca_id)
    return Response(der, media_type="application/pkix-cert")


@router.get(
    "/crl/{ca_id}.crl",
    response_class=Response,
    responses={200: {"content": {"application/pkix-crl": {}}}, 404: PROBLEM_RESPONSES[404]},
    summary="Current CRL (DER), the CRL distribution point target",
)
def crl(ca_id: str, runtime: RuntimeDep) -> Response:
    runtime.authority.ca_certificate(ca_id)  # 404 for unknown CAs
    der = runtime.crls.current(ca_id)
    return Response(der, media_type="application/pkix-crl", headers={"Cache-Control": "no-cache"})


@router.post(
    "/ocsp",
    response_class=Response,
    responses={200: {"content": {"application/ocsp-response": {}}}},
    summary="OCSP responder (RFC 6960, POST)",
    description="Body: DER OCSPRequest with Content-Type application/ocsp-request. Always"
    " answers with an OCSPResponse; malformed requests get `malformedRequest`.",
)
async def ocsp_post(request: Request, runtime: RuntimeDep) -> Response:
    body = await request.body()
    if len(body) > OCSP_REQUEST_LIMIT:
        body = b""  # answered as malformedRequest
    from starlette.concurrency import run_in_threadpool

    der = await run_in_threadpool(runtime.ocsp.respond, body)
    return Response(der, media_type="application/ocsp-response")


@router.get(
    "/ocsp/{encoded:path}",
    response_class=Response,
    responses={200: {"content": {"application/ocsp-response": {}}}},
    summary="OCSP responder (RFC 6960 appendix A.1, GET)",
)
def ocsp_get(encoded: str, runtime: RuntimeDep) -> Response:
    der = runtime.ocsp.respond_get(encoded[:OCSP_REQUEST_LIMIT])
    return Response(der, media_type="application/ocsp-response")
