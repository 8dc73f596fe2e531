"""Request and response bodies (``XCreate`` in, ``XPublic`` out)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RevocationReasonName = Literal[
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "privilegeWithdrawn",
    "aACompromise",
]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    code: str = Field(description="Stable machine-readable error code")


class HealthPublic(BaseModel):
    status: Literal["ok"]


class ReadinessPublic(BaseModel):
    status: Literal["ready", "not-ready"]
    checks: dict[str, str]


class CertificateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    csr: str = Field(
        min_length=1,
        max_length=64_000,
        description="PKCS#10 certificate signing request, PEM (or base64 DER)",
    )
    profile: str = Field(min_length=1, max_length=64, examples=["staff-signing"])


class CertificatePublic(BaseModel):
    id: str
    serial: str = Field(description="Serial number, upper-case hex as `openssl x509 -serial`")
    profile: str
    subject: str
    status: Literal["good", "revoked", "hold"]
    revocation_reason: str | None
    revoked_at: dt.datetime | None
    not_before: dt.datetime
    not_after: dt.datetime
    issuer_ca_id: str | None
    key_id: str | None
    certificate_pem: str


class CertificateEventPublic(BaseModel):
    action: str
    reason: str | None
    actor: str
    at: dt.datetime


class RevocationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: RevocationReasonName = "unspecified"


class RenewalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rekey: bool = False
    csr: str | None = Field(
        default=None, max_length=64_000, description="New CSR when re-keying a CSR-issued cert"
    )


class CertificateAuthorityPublic(BaseModel):
    id: str
    name: str
    family: str
    level: str
    parent_id: str | None
    certificate_pem: str
    certificate_url: str
    crl_url: str


class ExternalCSRCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    algorithm: Literal["rsa-2048", "rsa-3072", "ec-p256", "sm2"]
    subject: str = Field(min_length=3, max_length=500, examples=["CN=张三,O=示例人民医院,C=CN"])
    profile: str = Field(min_length=1, max_length=64)


class ExternalCSRPublic(BaseModel):
    id: str
    csr_pem: str


class ExternalCertificateImport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    certificate: str = Field(min_length=1, max_length=64_000, description="PEM certificate")
    chain: list[str] = Field(
        min_length=1,
        max_length=10,
        description="PEM certificates from the issuer up to and including the root",
    )
