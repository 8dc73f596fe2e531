"""Bodies of the verification API: signatures in, reports out."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_BASE64 = 16 * 1024 * 1024  # characters; the app body limit applies first
HEX_DIGEST = r"^[0-9a-fA-F]{2,128}$"
CERTIFICATE = Field(
    min_length=1, max_length=64_000, description="X.509 certificate, PEM or base64 DER"
)


class _Content(BaseModel):
    """What was signed: ``data`` (base64) or ``digest`` (hex) with ``digest_algorithm``."""

    data: str | None = Field(default=None, max_length=MAX_BASE64, description="Base64 data")
    digest: str | None = Field(default=None, pattern=HEX_DIGEST, description="Hex digest")
    digest_algorithm: Literal["sha256", "sm3"] | None = None

    @model_validator(mode="after")
    def _digest_algorithm(self) -> _Content:
        if self.digest is not None and self.digest_algorithm is None:
            raise ValueError("digest_algorithm is required with digest")
        return self


class RawSignatureVerifyCreate(_Content):
    """A bare signature value with the signer's certificate and scheme.

    For a raw signature ``digest`` is the digest the key signed: SHA-256 of the data, or for
    SM2 SM3(Z_A || data) with the standard ID 1234567812345678.
    """

    model_config = ConfigDict(extra="forbid")
    type: Literal["raw"]
    signature: str = Field(min_length=4, max_length=4096, description="Base64 signature")
    signature_encoding: Literal["der", "raw"] = Field(
        default="der", description="ECDSA/SM2: DER SEQUENCE{r,s} or fixed-width r||s"
    )
    scheme: Literal["rsa-pkcs1-sha256", "rsa-pss-sha256", "ecdsa-sha256", "sm2-sm3"]
    certificate: str = CERTIFICATE
    chain: list[Annotated[str, CERTIFICATE]] = Field(
        default_factory=list, max_length=10, description="Intermediate CA certificates"
    )
    signing_time: dt.datetime | None = Field(
        default=None, description="Claimed signing time (unproven unless timestamped)"
    )
    timestamp_token: str | None = Field(
        default=None,
        max_length=64_000,
        description="Base64 RFC 3161 token whose imprint is the hash of the signature bytes",
    )


class CMSVerifyCreate(_Content):
    """CMS/PKCS#7 SignedData; for detached content give ``data`` or ``digest``."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["cms"]
    cms: str = Field(
        min_length=4, max_length=MAX_BASE64, description="ContentInfo(SignedData), base64 DER"
    )
    certificates: list[Annotated[str, CERTIFICATE]] = Field(
        default_factory=list,
        max_length=10,
        description="Certificates missing from the SignedData (signer, intermediates)",
    )


class PdfVerifyCreate(BaseModel):
    """A signed PDF: every signature in it is checked, with what changed after each."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["pdf"]
    pdf: str = Field(min_length=8, max_length=MAX_BASE64, description="The PDF file, base64")


DataVerifyCreate = Annotated[
    RawSignatureVerifyCreate | CMSVerifyCreate, Field(discriminator="type")
]
VerifyCreate = Annotated[
    RawSignatureVerifyCreate | CMSVerifyCreate | PdfVerifyCreate, Field(discriminator="type")
]


class VerifyBatchCreate(BaseModel):
    """Data signatures only: PDFs are verified one per request."""

    model_config = ConfigDict(extra="forbid")
    items: list[DataVerifyCreate] = Field(min_length=1, max_length=100)


class CheckPublic(BaseModel):
    name: str = Field(examples=["signature"])
    indication: Literal["passed", "failed", "indeterminate"]
    sub_indication: str | None = Field(examples=["HASH_FAILURE"])
    message: str


class SignerPublic(BaseModel):
    subject: str
    common_name: str | None
    employee_number: str | None = Field(description="The subject serialNumber")
    organization: str | None
    organizational_unit: str | None
    certificate_serial: str = Field(description="Upper-case hex, as `openssl x509 -serial`")
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    policies: list[str]
    profile: str | None = Field(description="medsign profile named by a policy OID")
    key_algorithm: str | None


class TimestampPublic(BaseModel):
    time: dt.datetime
    tsa: str
    serial_number: str
    policy: str
    hash_algorithm: str


class VerificationReportPublic(BaseModel):
    kind: Literal["raw", "cms", "document-timestamp"]
    indication: Literal["passed", "failed", "indeterminate"]
    sub_indication: str | None = Field(
        description="ETSI EN 319 102-1 style reason when not passed", examples=["REVOKED"]
    )
    validation_time: dt.datetime
    signing_time: dt.datetime | None
    signing_time_source: Literal["timestamp", "claimed", "none"]
    claimed_signing_time: dt.datetime | None
    scheme: str | None
    signer: SignerPublic | None
    timestamp: TimestampPublic | None
    chain: list[str] = Field(description="Subjects from the signer's certificate to the anchor")
    checks: list[CheckPublic]
    notes: list[str]


class VerificationBatchPublic(BaseModel):
    reports: list[VerificationReportPublic]


class PdfChangePublic(BaseModel):
    revision: int = Field(description="0 is the original document")
    level: Literal["none", "lta-updates", "form-filling", "annotations", "other"] = Field(
        description="pyHanko's classification of everything from the signed revision up to this one"
    )
    allowed: bool = Field(description="Whether this signature allows the change")
    reason: str | None = Field(description="Why a change of level 'other' is not allowed")
    objects: int = Field(description="Objects written in this revision")
    fields: list[str] = Field(description="Form fields this revision wrote")
    signatures: list[str] = Field(description="Signature fields signed in this revision")
    dss: bool = Field(description="The document security store was written")


class PdfSignaturePublic(BaseModel):
    field_name: str
    type: Literal["approval", "certification", "document-timestamp"]
    docmdp: int | None = Field(description="DocMDP permission in force (1, 2 or 3)")
    sub_filter: str | None = Field(examples=["/ETSI.CAdES.detached"])
    revision: int | None = Field(description="The revision the signature covers")
    byte_range: list[int] | None
    coverage: Literal["entire-file", "entire-revision", "invalid"]
    digest_algorithm: str
    digest: str | None = Field(description="Hex digest of the bytes the byte range names")
    indication: Literal["passed", "failed", "indeterminate"]
    sub_indication: str | None
    checks: list[CheckPublic] = Field(description="format, byte-range, modifications")
    signature: VerificationReportPublic | None = Field(
        description="The CMS signature's (or the timestamp token's) own report"
    )
    changes: list[PdfChangePublic]
    claimed_time: dt.datetime | None = Field(
        description="/M of the signature dictionary: the signer's own, unproven time"
    )


class PdfVerificationReportPublic(BaseModel):
    kind: Literal["pdf"]
    indication: Literal["passed", "failed", "indeterminate"]
    sub_indication: str | None = Field(examples=["DOCUMENT_MODIFIED"])
    validation_time: dt.datetime
    size: int
    revisions: int
    signatures: list[PdfSignaturePublic]
    checks: list[CheckPublic] = Field(description="The document's own: signatures, file-end")
    notes: list[str]
