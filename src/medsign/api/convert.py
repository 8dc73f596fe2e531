"""Domain values to API schemas."""

from __future__ import annotations

import base64
import textwrap

from medsign.api.schemas import CertificatePublic
from medsign.ca.authority import CertificateRecord


def pem(der: bytes, label: str = "CERTIFICATE") -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


def openssl_serial(serial_hex: str) -> str:
    """Upper-case, even-length hex: what `openssl x509 -serial` prints."""
    text = serial_hex.upper()
    return text if len(text) % 2 == 0 else "0" + text


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
        certificate_pem=pem(record.certificate_der),
    )
