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


VerifyCreate = Annotated[RawSignatureVerifyCreate | CMSVerifyCreate, Field(discriminator="type")]


class VerifyBatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[VerifyCreate] = Field(min_length=1, max_length=100)


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
    kind: Literal["raw", "cms"]
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
