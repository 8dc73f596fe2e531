"""Bodies of the document (PDF) signing API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medsign.api.signing_schemas import EMPLOYEE_NO, IDEMPOTENCY_KEY


class DocumentPlacement(BaseModel):
    """Where the signature goes: an existing empty signature field (``field_name`` only), a
    new field on ``page`` at ``rect``, or a new field next to an ``anchor`` text found on
    the page (e.g. "医师签名："); ``width``/``height`` size a field placed at an anchor."""

    model_config = ConfigDict(extra="forbid")
    field_name: str | None = Field(default=None, min_length=1, max_length=100)
    page: int | None = Field(default=None, ge=1, description="1 is the first page")
    rect: tuple[float, float, float, float] | None = Field(
        default=None,
        description="x1, y1, x2, y2 in points, origin at the page's bottom-left corner",
        examples=[[360, 60, 540, 110]],
    )
    anchor: str | None = Field(default=None, min_length=1, max_length=100, examples=["医师签名："])
    anchor_occurrence: int = Field(default=1, ge=1, le=1000)
    width: float = Field(default=160, ge=10, le=600)
    height: float = Field(default=48, ge=10, le=600)

    @model_validator(mode="after")
    def _one_place(self) -> DocumentPlacement:
        if self.rect is not None and self.anchor is not None:
            raise ValueError("give rect or anchor, not both")
        return self


class DocumentAppearance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    visible: bool = Field(default=True, description="False: an invisible signature")
    handwriting: bool = Field(
        default=True, description="Show the signer's confirmed handwritten signature, if any"
    )
    qr: bool = Field(default=True, description="A small QR code to the verification page")


class EmptyFieldCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field_name: str = Field(min_length=1, max_length=100)
    page: int = Field(ge=1)
    rect: tuple[float, float, float, float]


class DocumentItemCreate(BaseModel):
    """One PDF to sign. The signer sees ``summary`` and can open the PDF itself."""

    model_config = ConfigDict(extra="forbid")
    scene: str = Field(min_length=1, max_length=64, examples=["discharge-summary"])
    summary: str = Field(min_length=1, max_length=2000, examples=["出院记录 张某某 住院号 A1234"])
    record_id: str = Field(min_length=1, max_length=200, examples=["DS-20261130-0001"])
    pdf: str = Field(min_length=8, description="The PDF, base64 (standard alphabet, padded)")
    placement: DocumentPlacement = Field(default_factory=DocumentPlacement)
    level: Literal["B-T", "B-LT", "B-LTA"] = Field(
        default="B-T",
        description="PAdES level: B-T (signature timestamp), B-LT (plus certificates, OCSP"
        " and CRLs in the DSS), B-LTA (plus a document timestamp)",
    )
    certify: Literal[1, 2, 3] | None = Field(
        default=None,
        description="Make this the certification signature with this DocMDP permission:"
        " 1 no changes, 2 form filling and signing, 3 also annotations",
    )
    reason: str | None = Field(default=None, min_length=1, max_length=200)
    location: str | None = Field(default=None, min_length=1, max_length=200)
    appearance: DocumentAppearance = Field(default_factory=DocumentAppearance)
    empty_fields: list[EmptyFieldCreate] = Field(
        default_factory=list,
        max_length=20,
        description="Unsigned signature fields added with this signature. A certified"
        " document only accepts later signatures in fields that exist, so the certifying"
        " signature lays out the fields of the signers after it",
    )


class DocumentRequestCreate(DocumentItemCreate):
    employee_no: str = EMPLOYEE_NO
    idempotency_key: str | None = Field(default=None, pattern=IDEMPOTENCY_KEY)
    expires_in_seconds: int | None = Field(default=None, ge=60, le=30 * 86400)


class DocumentBatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    employee_no: str = EMPLOYEE_NO
    idempotency_key: str | None = Field(default=None, pattern=IDEMPOTENCY_KEY)
    expires_in_seconds: int | None = Field(default=None, ge=60, le=30 * 86400)
    items: list[DocumentItemCreate] = Field(min_length=1, max_length=100)
