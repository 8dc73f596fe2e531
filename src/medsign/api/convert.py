"""Domain values to API schemas."""

from __future__ import annotations

from medsign.api.schemas import CertificatePublic
from medsign.ca.authority import CertificateRecord
from medsign.ca.names import openssl_serial


def certificate_public(record: CertificateRecord) -> CertificatePublic:
    return CertificatePublic(
        id=record.id,
        serial=openssl_serial(record.serial_hex),
        profile=record.profile,
        subject=record.subject,
        status=record.status,
        revocation_reason=record.revocation_reason,
        revoked_at=record.revoked_at,
        not_before=record.not_before,
        not_after=record.not_after,
        issuer_ca_id=record.issuer_ca_id,
        key_id=record.key_id,
        certificate_pem=record.pem(),
    )
