"""Forms from signed data: a prescription (处方笺), medical-order sheet (医嘱单) or nursing
record (护理记录单) drawn from the application's signed requests and sealed with the hospital
seal, in one call (see docs/integration/forms.md).

Each line is one signed request. What the line prints comes from the request's signed JSON
record (keys named by the body's ``field_map``), who signed and when from the signing
service (the staff member, the signature timestamp's time, the certificate serial), so the
form shows exactly what was signed; the PDF embeds every signed record with its CMS. The
application must hold the right to the seal it asks for, as for seal jobs."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785
from fastapi import APIRouter, Response

from medsign.api.auth import ApplicationDep, AuthenticatedApplication
from medsign.api.deps import RuntimeDep
from medsign.api.form_schemas import (
    PATIENT_NUMBER,
    REQUIRED_LINE_FIELDS,
    FormCreate,
)
from medsign.api.problems import PROBLEM_RESPONSES
from medsign.api.routes.documents import PDF_MEDIA_TYPE
from medsign.api.routes.seals import SealNotAllowedError
from medsign.api.routes.signing import AppCaller
from medsign.db.tables import OrganizationRow
from medsign.documents.forms import (
    Form,
    FormKind,
    FormLine,
    LineSignature,
    MedicalOrder,
    NursingEntry,
    OrderTerm,
    Patient,
    PrescriptionCategory,
    PrescriptionInfo,
    PrescriptionItem,
    render_form,
)
from medsign.documents.sealing import SealOptions, check_purpose
from medsign.documents.signing import Level
from medsign.errors import InputError, NotFoundError, StateError
from medsign.evidence import record_event
from medsign.intake.requests import SIGNED, SignRequest
from medsign.runtime import Runtime
from medsign.web.verify import verification_link

__all__ = [
    "FormLineFieldInvalidError",
    "FormLineFieldMissingError",
    "FormLineNotARecordError",
    "FormLineNotSignedError",
    "FormLinePatientMismatchError",
    "router",
]

router = APIRouter(prefix="/api/v1", tags=["forms"], responses=PROBLEM_RESPONSES)
SHA256_HEADER = "Medsign-Form-Sha256"
PAGES_HEADER = "Medsign-Form-Pages"
EVENT_HEADER = "Medsign-Evidence-Event"


# -- refusals: they name the line, the field and the record key, never a value -----------------


class FormLineNotSignedError(StateError):
    code = "form-line-not-signed"
    title = "A line's request is not signed"


class FormLineNotARecordError(InputError):
    """The request signed a digest or a PDF, or is a void statement: nothing to print."""

    code = "form-line-not-a-record"
    title = "A line's request did not sign a JSON record"


class FormLineFieldMissingError(InputError):
    code = "form-line-field-missing"
    title = "A line's signed record lacks a field the form prints"


class FormLineFieldInvalidError(InputError):
    """A value of the wrong JSON type, or a time without its UTC offset."""

    code = "form-line-field-invalid"
    title = "A field of a line's signed record cannot be printed"


class FormLinePatientMismatchError(InputError):
    code = "form-line-patient-mismatch"
    title = "A line's signed record is for another patient"


# -- the endpoint ------------------------------------------------------------------------------


@router.post(
    "/forms",
    summary="Make a prescription, medical-order sheet or nursing record from signed requests"
    " and seal it with the hospital seal (the sealed PDF)",
    response_class=Response,
    responses={
        200: {
            "content": {PDF_MEDIA_TYPE: {}},
            "description": f"The sealed PDF; headers {SHA256_HEADER} (its SHA-256, hex),"
            f" {PAGES_HEADER}, {EVENT_HEADER} (the form:seal evidence event)",
        },
        403: {"description": "seal-not-allowed: the application may not apply that seal"},
    },
)
def create_form(body: FormCreate, runtime: RuntimeDep, app: ApplicationDep) -> Response:
    # A sync route: rendering and sealing are CPU work, kept off the event loop.
    purpose = check_purpose(body.seal.purpose)
    if purpose not in runtime.applications.find(app.id).seal_purposes:
        raise SealNotAllowedError(
            f"application {app.id} may not apply the seal {purpose or '(official)'!r}"
        )
    lines = _Lines(runtime, app, body).build()
    form = Form(
        kind=FormKind(body.kind),
        document_id=body.document_id,
        created_at=body.created_at or max(line.signature.signed_at for line in lines),
        hospital=body.hospital or _organization_name(runtime, app.organization_id),
        department=body.department,
        patient=_patient(body),
        lines=lines,
        order_term=OrderTerm(body.order_term or OrderTerm.LONG_TERM.value),
        prescription=_prescription(body),
        verification_url=body.verification_url or "",
    )
    rendered = render_form(form)
    options = SealOptions(
        purpose=purpose,
        level=Level(body.seal.level),
        page=rendered.seal.page_index + 1,
        rect=rendered.seal.rect,
        reason=body.seal.reason,
    )
    sealed = runtime.organization_sealer(app.organization_id)(rendered.pdf, options)
    sealed_sha256 = hashlib.sha256(sealed.pdf).hexdigest()
    now = runtime.clock.now()
    with runtime.database.session() as session:
        event_id = record_event(
            session,
            now,
            "form:seal",
            application_id=app.id,
            kind=body.kind,
            document_id_sha256=hashlib.sha256(body.document_id.encode()).hexdigest(),
            request_ids=[line.signature.request_id for line in lines],
            form_sha256=hashlib.sha256(rendered.pdf).hexdigest(),
            sealed_sha256=sealed_sha256,
            cms_sha256=hashlib.sha256(sealed.cms).hexdigest(),
            purpose_sha256=hashlib.sha256(purpose.encode()).hexdigest(),
            level=options.level.value,
            pages=rendered.page_count,
        )
    return Response(
        sealed.pdf,
        media_type=PDF_MEDIA_TYPE,
        headers={
            SHA256_HEADER: sealed_sha256,
            PAGES_HEADER: str(rendered.page_count),
            EVENT_HEADER: event_id,
            "Content-Disposition": f'attachment; filename="{body.document_id}.pdf"',
            "Cache-Control": "no-store",
        },
    )


def _organization_name(runtime: Runtime, organization_id: str) -> str:
    with runtime.database.session() as session:
        organization = session.get(OrganizationRow, organization_id)
        if organization is None:
            raise NotFoundError(f"no organisation {organization_id}")
        return organization.name


def _patient(body: FormCreate) -> Patient:
    p = body.patient
    return Patient(
        name=p.name,
        sex=p.sex,
        age=p.age,
        number=p.number,
        bed=p.bed,
        ward=p.ward,
        diagnosis=p.diagnosis,
        admitted_on=p.admitted_on,
    )


def _prescription(body: FormCreate) -> PrescriptionInfo:
    info = body.prescription
    if info is None:
        return PrescriptionInfo()
    return PrescriptionInfo(
        category=PrescriptionCategory(info.category),
        number=info.number,
        fee_category=info.fee_category,
        insurance_number=info.insurance_number,
        issued_on=info.issued_on,
        amount=info.amount,
        reviewer=info.reviewer,
        dispenser=info.dispenser,
        checker=info.checker,
    )


# -- lines: the signed requests and what their records say -------------------------------------


@dataclass(frozen=True)
class _Signer:
    name: str
    title: str


class _Lines:
    """Builds the form's lines from the body's request ids, one lookup per distinct signer
    and certificate."""

    def __init__(self, runtime: Runtime, app: AuthenticatedApplication, body: FormCreate) -> None:
        self._runtime = runtime
        self._caller = AppCaller(app)
        self._body = body
        self._signers: dict[str, _Signer] = {}
        self._serials: dict[str, str] = {}

    def build(self) -> tuple[FormLine, ...]:
        return tuple(
            self._line(number, line.request_id)
            for number, line in enumerate(self._body.lines, start=1)
        )

    def _line(self, number: int, request_id: str) -> FormLine:
        try:
            request = self._runtime.workflow.get(self._caller, request_id)
        except NotFoundError as exc:
            # Another application's request looks exactly like a missing one.
            raise NotFoundError(f"line {number}: no request {request_id}", line=number) from exc
        if request.state != SIGNED or request.cms is None or request.timestamp_time is None:
            raise FormLineNotSignedError(
                f"line {number}: request {request_id} is {request.state}, not signed",
                line=number,
                state=request.state,
            )
        if request.kind != "sign" or request.content_kind != "json" or request.content is None:
            raise FormLineNotARecordError(
                f"line {number}: request {request_id} did not sign a JSON record", line=number
            )
        record = json.loads(request.content)
        fields = _Fields(number, record, self._body.field_map)
        self._check_patient(fields)
        return FormLine(item=_item(self._body.kind, fields), signature=self._signature(request))

    def _check_patient(self, fields: _Fields) -> None:
        mapped = PATIENT_NUMBER in self._body.field_map
        value = fields.text(PATIENT_NUMBER, required=mapped)
        if value is not None and value != self._body.patient.number:
            raise FormLinePatientMismatchError(
                f"line {fields.line}: the signed record's {fields.key(PATIENT_NUMBER)!r} is not"
                " patient.number",
                line=fields.line,
                field=PATIENT_NUMBER,
                key=fields.key(PATIENT_NUMBER),
            )

    def _signature(self, request: SignRequest) -> LineSignature:
        assert request.content is not None and request.cms is not None
        assert request.timestamp_time is not None and request.certificate_id is not None
        signer = self._signer(request.staff_id)
        return LineSignature(
            signer_name=signer.name,
            signer_title=signer.title,
            signed_at=request.timestamp_time,
            request_id=request.id,
            certificate_serial=self._serial(request.certificate_id),
            verification_url=verification_link(self._runtime, request.id),
            content=request.content,
            cms=request.cms,
        )

    def _signer(self, staff_id: str) -> _Signer:
        found = self._signers.get(staff_id)
        if found is None:
            staff = self._runtime.staff.get_by_id(staff_id)
            found = self._signers[staff_id] = _Signer(staff.name, staff.title)
        return found

    def _serial(self, certificate_id: str) -> str:
        found = self._serials.get(certificate_id)
        if found is None:
            found = self._runtime.authority.get_by_id(certificate_id).serial_hex
            self._serials[certificate_id] = found
        return found


def _item(kind: str, fields: _Fields) -> PrescriptionItem | MedicalOrder | NursingEntry:
    required = REQUIRED_LINE_FIELDS[kind]

    def text(name: str) -> str:
        return fields.text(name, required=name in required) or ""

    def time(name: str) -> dt.datetime | None:
        return fields.time(name, required=name in required)

    if kind == FormKind.PRESCRIPTION.value:
        return PrescriptionItem(
            drug=text("drug"),
            specification=text("specification"),
            quantity=text("quantity"),
            dose=text("dose"),
            route=text("route"),
            frequency=text("frequency"),
            note=text("note"),
        )
    if kind == FormKind.MEDICAL_ORDER.value:
        start = time("start")
        assert start is not None  # required
        return MedicalOrder(
            start=start, text=text("text"), stop=time("stop"), executed=time("executed")
        )
    at = time("time")
    assert at is not None  # required
    return NursingEntry(
        time=at,
        observation=text("observation"),
        measures=text("measures"),
        temperature=text("temperature"),
        pulse=text("pulse"),
        respiration=text("respiration"),
        blood_pressure=text("blood_pressure"),
        spo2=text("spo2"),
        intake=text("intake"),
        output=text("output"),
    )


class _Fields:
    """The printed fields of one line, read from its signed record."""

    def __init__(self, line: int, record: Any, field_map: Mapping[str, str]) -> None:
        self.line = line
        self._record = record
        self._map = field_map

    def key(self, name: str) -> str:
        return self._map.get(name, name)

    def _value(self, name: str, required: bool) -> Any:
        found, value = _lookup(self._record, self.key(name))
        if not found or value is None:
            if required:
                raise FormLineFieldMissingError(
                    f"line {self.line}: the signed record has no {self.key(name)!r}"
                    f" for the field {name!r}",
                    line=self.line,
                    field=name,
                    key=self.key(name),
                )
            return None
        return value

    def _invalid(self, name: str, what: str) -> FormLineFieldInvalidError:
        return FormLineFieldInvalidError(
            f"line {self.line}: the signed record's {self.key(name)!r} (field {name!r}) {what}",
            line=self.line,
            field=name,
            key=self.key(name),
        )

    def text(self, name: str, *, required: bool) -> str | None:
        """A string as signed; a number as its RFC 8785 text, i.e. as the signed bytes
        spell it."""
        value = self._value(name, required)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return rfc8785.dumps(value).decode()
        raise self._invalid(name, "is not a string or a number")

    def time(self, name: str, *, required: bool) -> dt.datetime | None:
        value = self._value(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._invalid(name, "is not an ISO 8601 time")
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise self._invalid(name, "is not an ISO 8601 time") from exc
        if parsed.utcoffset() is None:
            raise self._invalid(name, "has no UTC offset")
        return parsed


def _lookup(record: Any, key: str) -> tuple[bool, Any]:
    """(found, value) of a top-level key or an RFC 6901 JSON Pointer ("/drug/name")."""
    if not key.startswith("/"):
        if isinstance(record, dict) and key in record:
            return True, record[key]
        return False, None
    node = record
    for part in key[1:].split("/"):
        step = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif (
            isinstance(node, list)
            and step.isascii()
            and step.isdigit()
            and (step == "0" or not step.startswith("0"))
            and int(step) < len(node)
        ):
            node = node[int(step)]
        else:
            return False, None
    return True, node
