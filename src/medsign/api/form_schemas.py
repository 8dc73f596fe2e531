"""Bodies of the forms API: a prescription, medical-order sheet or nursing record made from
signed data items (see docs/integration/forms.md).

A line names one of the application's signed requests; what it prints comes from that
request's signed JSON record, never from the body, so the form shows what was signed. The
record's keys default to the printed fields' names (``LINE_FIELDS``); ``field_map`` names
other keys, or JSON Pointers (RFC 6901) into nested records."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "DOCUMENT_ID",
    "LINE_FIELDS",
    "PATIENT_NUMBER",
    "REQUIRED_LINE_FIELDS",
    "FormCreate",
    "FormLineCreate",
    "FormPatientCreate",
    "FormPrescriptionCreate",
    "FormSealCreate",
    "is_record_key",
]

FormKindName = Literal["prescription", "medical-order", "nursing-record"]
DOCUMENT_ID = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$"  # as medsign.documents.forms takes it
REQUEST_ID = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$"
PATIENT_NUMBER = "patient_number"  # checked against the patient block when a record has it

# The printed fields of a line, by form kind: required ones first. Time fields are ISO 8601
# strings with their UTC offset; the others are strings or numbers (printed as signed).
LINE_FIELDS: dict[str, tuple[str, ...]] = {
    "prescription": (
        "drug",
        "specification",
        "quantity",
        "dose",
        "route",
        "frequency",
        "note",
    ),
    "medical-order": ("start", "text", "stop", "executed"),
    "nursing-record": (
        "time",
        "observation",
        "measures",
        "temperature",
        "pulse",
        "respiration",
        "blood_pressure",
        "spo2",
        "intake",
        "output",
    ),
}
REQUIRED_LINE_FIELDS: dict[str, frozenset[str]] = {
    "prescription": frozenset({"drug", "specification", "quantity", "dose", "route", "frequency"}),
    "medical-order": frozenset({"start", "text"}),
    "nursing-record": frozenset({"time", "observation"}),
}
_POINTER = re.compile(r"(/([^~/]|~[01])*)+")


def is_record_key(value: str) -> bool:
    """A top-level key of the record, or a JSON Pointer (RFC 6901) starting with "/"."""
    if value.startswith("/"):
        return _POINTER.fullmatch(value) is not None
    return bool(value)


class FormPatientCreate(BaseModel):
    """The patient block, printed as given ("67岁", "3月龄")."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=40, examples=["赵秀兰"])
    sex: str = Field(min_length=1, max_length=16, examples=["女"])
    age: str = Field(min_length=1, max_length=16, examples=["67岁"])
    number: str = Field(
        min_length=1,
        max_length=32,
        description="门诊/住院病历号; a record holding `patient_number` must match it",
        examples=["ZY20261123017"],
    )
    bed: str = Field(default="", max_length=16)
    ward: str = Field(default="", max_length=32)
    diagnosis: str = Field(default="", max_length=200)
    admitted_on: dt.date | None = Field(default=None, description="Nursing records")


class FormPrescriptionCreate(BaseModel):
    """What only a prescription has; pharmacists' names are printed as given."""

    model_config = ConfigDict(extra="forbid")
    category: Literal["general", "emergency", "pediatric"] = "general"
    number: str = Field(default="", max_length=32, description="处方编号")
    fee_category: str = Field(default="", max_length=16, description="费别: 医保, 自费 ...")
    insurance_number: str = Field(default="", max_length=32)
    issued_on: dt.date | None = Field(default=None, description="Default: the form's date")
    amount: str = Field(default="", max_length=16, description="药品金额, as printed")
    reviewer: str = Field(default="", max_length=40, description="审核药师")
    dispenser: str = Field(default="", max_length=40, description="调配药师/士")
    checker: str = Field(default="", max_length=40, description="核对、发药药师")


class FormSealCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    purpose: str = Field(
        default="",
        max_length=20,
        description='Which seal: "" the official seal, or a purpose the application holds'
        ' the right to, such as "处方专用章"',
    )
    level: Literal["B-T", "B-LT", "B-LTA"] = Field(
        default="B-T", description="PAdES level of the seal; B-LTA adds a document timestamp"
    )
    reason: str | None = Field(default=None, min_length=1, max_length=200)


class FormLineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(
        pattern=REQUEST_ID,
        description="One of this application's signed requests with a JSON record",
        examples=["sig_2JZ4Q7M6XW3TB"],
    )


class FormCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: FormKindName
    document_id: str = Field(
        pattern=DOCUMENT_ID,
        description="Your id of this form: printed, and it fixes the PDF's /ID",
        examples=["RX-20261123-0001"],
    )
    hospital: str | None = Field(
        default=None, min_length=1, max_length=40, description="Default: the organisation"
    )
    department: str = Field(min_length=1, max_length=32, examples=["心血管内科"])
    created_at: AwareDatetime | None = Field(
        default=None,
        description="Printed as the form's time; default: the latest signature time of its"
        " lines, so the same body gives the same form",
    )
    patient: FormPatientCreate
    prescription: FormPrescriptionCreate | None = Field(
        default=None, description="Prescriptions only"
    )
    order_term: Literal["long-term", "temporary"] | None = Field(
        default=None, description="Medical-order sheets only; default long-term"
    )
    field_map: dict[str, str] = Field(
        default_factory=dict,
        description="Printed field → the record's key, or a JSON Pointer such as"
        ' "/drug/name"; unnamed fields are read from the key of their own name.'
        " Mapping `patient_number` makes it required in every record",
        examples=[{"specification": "/drug/spec", "quantity": "qty", "frequency": "freq"}],
    )
    verification_url: str | None = Field(
        default=None,
        max_length=512,
        description="An http(s) URL for the QR code in every page's footer (none by default)",
    )
    lines: list[FormLineCreate] = Field(min_length=1, max_length=500)
    seal: FormSealCreate = Field(default_factory=FormSealCreate)

    @model_validator(mode="after")
    def _fits_kind(self) -> FormCreate:
        if self.prescription is not None and self.kind != "prescription":
            raise ValueError("prescription is for prescriptions only")
        if self.order_term is not None and self.kind != "medical-order":
            raise ValueError("order_term is for medical-order sheets only")
        known = {*LINE_FIELDS[self.kind], PATIENT_NUMBER}
        for printed, key in self.field_map.items():
            if printed not in known:
                raise ValueError(
                    f"field_map: {printed!r} is not a field of a {self.kind} line"
                    f" (one of {', '.join(sorted(known))})"
                )
            if len(key) > 200 or not is_record_key(key):
                raise ValueError(
                    f"field_map.{printed}: a record key or a JSON Pointer, at most 200 characters"
                )
        seen: set[str] = set()
        for number, line in enumerate(self.lines, start=1):
            if line.request_id in seen:
                raise ValueError(f"lines[{number}]: request {line.request_id} is listed twice")
            seen.add(line.request_id)
        return self
