"""Bodies of the signing API (applications, HMAC-authenticated)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

IDEMPOTENCY_KEY = r"^[A-Za-z0-9._:\-]{1,128}$"
EMPLOYEE_NO = Field(min_length=1, max_length=64, examples=["E1001"])


class SignItemCreate(BaseModel):
    """One item: a JSON record (canonicalised with RFC 8785 before hashing) or a digest."""

    model_config = ConfigDict(extra="forbid")
    scene: str = Field(min_length=1, max_length=64, examples=["medical-order"])
    summary: str = Field(
        min_length=1,
        max_length=2000,
        description="What the signer is shown",
        examples=["长期医嘱：阿莫西林胶囊 0.5g 口服 tid"],
    )
    record_id: str = Field(min_length=1, max_length=200, examples=["MO-20261123-0001"])
    record: dict[str, Any] | None = Field(default=None, description="The JSON record to sign")
    digest: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{2,128}$", description="Hex digest you computed"
    )
    digest_algorithm: Literal["sha256", "sm3"] | None = None

    @model_validator(mode="after")
    def _one_content(self) -> SignItemCreate:
        if (self.record is None) == (self.digest is None):
            raise ValueError("give exactly one of record or digest")
        if self.digest is not None and self.digest_algorithm is None:
            raise ValueError("digest_algorithm is required with digest")
        return self


class SignRequestCreate(SignItemCreate):
    employee_no: str = EMPLOYEE_NO
    idempotency_key: str | None = Field(
        default=None,
        pattern=IDEMPOTENCY_KEY,
        description="Or the Idempotency-Key header; a retry with the same key and body"
        " returns the first answer and never signs twice",
    )
    expires_in_seconds: int | None = Field(default=None, ge=60, le=30 * 86400)


class SignBatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    employee_no: str = EMPLOYEE_NO
    idempotency_key: str | None = Field(default=None, pattern=IDEMPOTENCY_KEY)
    expires_in_seconds: int | None = Field(default=None, ge=60, le=30 * 86400)
    items: list[SignItemCreate] = Field(min_length=1, max_length=500)


class SignaturePublic(BaseModel):
    scheme: str
    value: str | None = Field(
        description="Raw signature over the record (or the digest), base64; null for a PDF,"
        " whose signature is the CMS inside it"
    )
    cms: str = Field(
        description="CMS SignedData with signature timestamp, base64 DER: detached over the"
        " record, or for a PDF the signature dictionary's /Contents"
    )
    timestamp_token: str = Field(description="RFC 3161 TimeStampToken, base64 DER")
    timestamp_time: dt.datetime
    certificate_pem: str
    certificate_serial: str
    chain_pem: list[str]


class DocumentPublic(BaseModel):
    """The PDF of a request and where its signature goes (the statement the signer's
    intention binds)."""

    pdf_sha256: str
    pdf_bytes: int
    pages: int
    field: str
    page: int | None
    rect: list[float] | None
    level: str
    certify: int | None
    signed_pdf_sha256: str | None = None
    download_url: str = Field(
        description="GET it (HMAC-authenticated): the signed PDF once signed, else the original"
    )


class SignRequestPublic(BaseModel):
    id: str
    batch_id: str | None
    position: int
    kind: Literal["sign", "void"]
    state: Literal["pending", "signed", "rejected", "cancelled", "expired", "voided"]
    scene: str
    summary: str
    record_id: str
    content_kind: Literal["json", "digest", "pdf"]
    digest_algorithm: str
    digest: str
    expires_at: dt.datetime
    created_at: dt.datetime
    signed_at: dt.datetime | None
    reject_reason: str | None
    voids_request_id: str | None
    voided_by_request_id: str | None
    phone_url: str = Field(
        description="Opens this request on the signer's enrolled phone (QR-code signing; the"
        " QR image is at `/api/v1/sign-requests/{id}/qr.svg` or `.png`)"
    )
    verification_url: str | None = Field(
        default=None,
        description="Once signed: the public verification page of this signature (no login;"
        " shows the checks and who signed when, never the record), e.g. for a printed QR code",
    )
    signature: SignaturePublic | None = None
    document: DocumentPublic | None = Field(
        default=None, description="For a PDF request: the PDF and where it is signed"
    )


class SignBatchPublic(BaseModel):
    batch_id: str
    requests: list[SignRequestPublic]


class IntentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    employee_no: str = EMPLOYEE_NO
    request_ids: list[str] = Field(default_factory=list, max_length=500)
    batch_id: str | None = None
    method: Literal["pin", "sms"] = "pin"

    @model_validator(mode="after")
    def _something(self) -> IntentCreate:
        if not self.request_ids and self.batch_id is None:
            raise ValueError("name request_ids or a batch_id")
        return self


class IntentItemPublic(BaseModel):
    request_id: str
    scene: str
    summary: str
    digest_algorithm: str
    digest: str


class IntentPublic(BaseModel):
    id: str
    method: str
    state: str
    expires_at: dt.datetime
    binding_digest: str
    items: list[IntentItemPublic]


class IntentConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: str | None = Field(default=None, pattern=r"^[0-9]{6}$")
    code: str | None = Field(default=None, pattern=r"^[0-9]{6}$")

    @model_validator(mode="after")
    def _one(self) -> IntentConfirm:
        if (self.pin is None) == (self.code is None):
            raise ValueError("give exactly one of pin or code")
        return self


class RejectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    employee_no: str = EMPLOYEE_NO
    request_ids: list[str] = Field(min_length=1, max_length=500)
    reason: str = Field(min_length=1, max_length=500)


class VoidCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)
    idempotency_key: str | None = Field(default=None, pattern=IDEMPOTENCY_KEY)
    expires_in_seconds: int | None = Field(default=None, ge=60, le=30 * 86400)


class SignedItemPublic(BaseModel):
    id: str
    state: str
    signed_at: dt.datetime | None
    timestamp_time: dt.datetime | None


class SignedResultPublic(BaseModel):
    """What one confirmation signed; fetch the signatures with GET (they are large)."""

    signed: list[SignedItemPublic]
