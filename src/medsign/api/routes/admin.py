"""Operator API for the certificate authority (bearer admin token)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import Response

from medsign.api.convert import certificate_public
from medsign.api.deps import AdminDep, RuntimeDep
from medsign.api.problems import PROBLEM_RESPONSES
from medsign.api.schemas import (
    CertificateCreate,
    CertificateEventPublic,
    CertificatePublic,
    ExternalCertificateImport,
    ExternalCSRCreate,
    ExternalCSRPublic,
    RenewalCreate,
    RevocationCreate,
)
from medsign.crypto.types import KeyAlgorithm

router = APIRouter(prefix="/admin/v1", tags=["admin"], responses=PROBLEM_RESPONSES)


@router.post(
    "/certificates",
    status_code=status.HTTP_201_CREATED,
    response_model=CertificatePublic,
    summary="Issue a certificate from a PKCS#10 CSR",
)
def issue_certificate(
    body: CertificateCreate, runtime: RuntimeDep, actor: AdminDep
) -> CertificatePublic:
    record = runtime.authority.issue_from_csr(body.csr.encode(), body.profile, actor=actor)
    return certificate_public(record)


@router.get("/certificates", response_model=list[CertificatePublic], summary="List certificates")
def list_certificates(
    runtime: RuntimeDep,
    actor: AdminDep,
    status_: Annotated[Literal["good", "revoked", "hold"] | None, Query(alias="status")] = None,
    profile: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[CertificatePublic]:
    records = runtime.authority.list(status=status_, profile=profile, limit=limit)
    return [certificate_public(r) for r in records]


@router.get("/certificates/{serial}", response_model=CertificatePublic, summary="One certificate")
def get_certificate(serial: str, runtime: RuntimeDep, actor: AdminDep) -> CertificatePublic:
    return certificate_public(runtime.authority.get(serial))


@router.get(
    "/certificates/{serial}/history",
    response_model=list[CertificateEventPublic],
    summary="Status history of a certificate",
)
def certificate_history(
    serial: str, runtime: RuntimeDep, actor: AdminDep
) -> list[CertificateEventPublic]:
    return [
        CertificateEventPublic(action=e.action, reason=e.reason, actor=e.actor, at=e.at)
        for e in runtime.authority.history(serial)
    ]


@router.post(
    "/certificates/{serial}/revoke",
    response_model=CertificatePublic,
    summary="Revoke with an RFC 5280 reason",
)
def revoke_certificate(
    serial: str, body: RevocationCreate, runtime: RuntimeDep, actor: AdminDep
) -> CertificatePublic:
    return certificate_public(runtime.authority.revoke(serial, body.reason, actor=actor))


@router.post(
    "/certificates/{serial}/hold",
    response_model=CertificatePublic,
    summary="Put on hold (freeze): certificateHold",
)
def hold_certificate(serial: str, runtime: RuntimeDep, actor: AdminDep) -> CertificatePublic:
    return certificate_public(runtime.authority.hold(serial, actor=actor))


@router.post(
    "/certificates/{serial}/release",
    response_model=CertificatePublic,
    summary="Release from hold (unfreeze): removeFromCRL",
)
def release_certificate(serial: str, runtime: RuntimeDep, actor: AdminDep) -> CertificatePublic:
    return certificate_public(runtime.authority.release(serial, actor=actor))


@router.post(
    "/certificates/{serial}/renew",
    status_code=status.HTTP_201_CREATED,
    response_model=CertificatePublic,
    summary="Renew with the same key or re-key",
)
def renew_certificate(
    serial: str, body: RenewalCreate, runtime: RuntimeDep, actor: AdminDep
) -> CertificatePublic:
    csr = body.csr.encode() if body.csr else None
    return certificate_public(
        runtime.authority.renew(serial, rekey=body.rekey, csr=csr, actor=actor)
    )


@router.post(
    "/cas/{ca_id}/crl",
    response_class=Response,
    responses={200: {"content": {"application/pkix-crl": {}}}},
    summary="Publish a fresh CRL now",
)
def publish_crl(ca_id: str, runtime: RuntimeDep, actor: AdminDep) -> Response:
    runtime.authority.ca_certificate(ca_id)
    return Response(runtime.crls.publish(ca_id), media_type="application/pkix-crl")


@router.post(
    "/ra/csrs",
    status_code=status.HTTP_201_CREATED,
    response_model=ExternalCSRPublic,
    summary="RA mode: generate a key and a CSR for an external (licensed) CA",
)
def create_external_csr(
    body: ExternalCSRCreate, runtime: RuntimeDep, actor: AdminDep
) -> ExternalCSRPublic:
    csr_id, csr_pem = runtime.authority.ra.create_external_csr(
        KeyAlgorithm(body.algorithm), body.subject, body.profile, actor=actor
    )
    return ExternalCSRPublic(id=csr_id, csr_pem=csr_pem)


@router.post(
    "/ra/csrs/{csr_id}/certificate",
    status_code=status.HTTP_201_CREATED,
    response_model=CertificatePublic,
    summary="RA mode: import the certificate the external CA issued",
)
def import_external_certificate(
    csr_id: str, body: ExternalCertificateImport, runtime: RuntimeDep, actor: AdminDep
) -> CertificatePublic:
    record = runtime.authority.ra.import_external_certificate(
        csr_id, body.certificate.encode(), [c.encode() for c in body.chain], actor=actor
    )
    return certificate_public(record)
