"""Verification of data signatures: always a report, problem+json only for bad requests."""

from __future__ import annotations

import base64
import binascii
import datetime as dt

from fastapi import APIRouter

from medsign.api.auth import ApplicationDep
from medsign.api.deps import RuntimeDep
from medsign.api.problems import PROBLEM_RESPONSES
from medsign.api.verify_schemas import (
    CheckPublic,
    CMSVerifyCreate,
    PdfChangePublic,
    PdfSignaturePublic,
    PdfVerificationReportPublic,
    PdfVerifyCreate,
    RawSignatureVerifyCreate,
    SignerPublic,
    TimestampPublic,
    VerificationBatchPublic,
    VerificationReportPublic,
    VerifyBatchCreate,
    VerifyCreate,
)
from medsign.crypto.types import SignatureEncoding, SignatureScheme
from medsign.errors import InputError
from medsign.verify import (
    Check,
    CMSSignature,
    RawSignature,
    Report,
    SignedContent,
    load_certificates,
    verify_many,
)
from medsign.verify.pdf import PdfReport, PdfVerifier

router = APIRouter(prefix="/api/v1", tags=["verify"], responses=PROBLEM_RESPONSES)


def _base64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"{what} is not valid base64") from exc


def _certificates(values: list[str], what: str) -> tuple[bytes, ...]:
    out: list[bytes] = []
    for value in values:
        blob = value.encode("ascii", "replace")
        out.extend(load_certificates(blob if b"-----BEGIN" in blob else _base64(value, what)))
    return tuple(out)


def _content(body: RawSignatureVerifyCreate | CMSVerifyCreate) -> SignedContent | None:
    if body.data is None and body.digest is None:
        return None
    if body.data is not None and body.digest is not None:
        raise InputError("give either data or digest, not both")
    if body.data is not None:
        return SignedContent(data=_base64(body.data, "data"))
    assert body.digest is not None
    return SignedContent(digest=bytes.fromhex(body.digest), digest_algorithm=body.digest_algorithm)


def to_request(body: RawSignatureVerifyCreate | CMSVerifyCreate) -> RawSignature | CMSSignature:
    """API body to the verifier's input; ``InputError`` (422) for what cannot be checked."""
    content = _content(body)
    if isinstance(body, CMSVerifyCreate):
        return CMSSignature(
            cms=_base64(body.cms, "cms"),
            content=content,
            intermediates=_certificates(body.certificates, "certificates"),
        )
    if content is None:
        raise InputError("a raw signature needs the data or its digest")
    certificate = _certificates([body.certificate], "certificate")
    if len(certificate) != 1:
        raise InputError("certificate must be exactly one certificate")
    return RawSignature(
        signature=_base64(body.signature, "signature"),
        scheme=SignatureScheme(body.scheme),
        certificate=certificate[0],
        content=content,
        encoding=SignatureEncoding(body.signature_encoding),
        intermediates=_certificates(body.chain, "chain"),
        claimed_signing_time=_aware(body.signing_time),
        timestamp_token=(
            _base64(body.timestamp_token, "timestamp_token") if body.timestamp_token else None
        ),
    )


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise InputError("signing_time needs a time zone (e.g. Z)")
    return value


def report_public(report: Report) -> VerificationReportPublic:
    return VerificationReportPublic(
        kind=report.kind,
        indication=report.indication.value,
        sub_indication=report.sub_indication.value if report.sub_indication else None,
        validation_time=report.validation_time,
        signing_time=report.signing_time,
        signing_time_source=report.signing_time_source.value,
        claimed_signing_time=report.claimed_signing_time,
        scheme=report.scheme,
        signer=(
            SignerPublic.model_validate(report.signer, from_attributes=True)
            if report.signer is not None
            else None
        ),
        timestamp=(
            TimestampPublic.model_validate(report.timestamp, from_attributes=True)
            if report.timestamp is not None
            else None
        ),
        chain=list(report.chain),
        checks=_checks(report.checks),
        notes=list(report.notes),
    )


def _checks(checks: tuple[Check, ...]) -> list[CheckPublic]:
    return [
        CheckPublic(
            name=c.name.value,
            indication=c.indication.value,
            sub_indication=c.sub_indication.value if c.sub_indication else None,
            message=c.message,
        )
        for c in checks
    ]


def pdf_report_public(report: PdfReport) -> PdfVerificationReportPublic:
    return PdfVerificationReportPublic(
        kind="pdf",
        indication=report.indication.value,
        sub_indication=report.sub_indication.value if report.sub_indication else None,
        validation_time=report.validation_time,
        size=report.size,
        revisions=report.revisions,
        signatures=[
            PdfSignaturePublic(
                field_name=s.field_name,
                type=s.type,
                docmdp=s.docmdp,
                sub_filter=s.sub_filter,
                revision=s.revision,
                byte_range=list(s.byte_range) if s.byte_range is not None else None,
                coverage=s.coverage,
                digest_algorithm=s.digest_algorithm,
                digest=s.digest,
                indication=s.indication.value,
                sub_indication=s.sub_indication.value if s.sub_indication else None,
                checks=_checks(s.checks),
                signature=report_public(s.signature) if s.signature is not None else None,
                changes=[
                    PdfChangePublic.model_validate(c, from_attributes=True) for c in s.changes
                ],
                claimed_time=s.claimed_time,
            )
            for s in report.signatures
        ],
        checks=_checks(report.checks),
        notes=list(report.notes),
    )


_VERIFY_DESCRIPTION = """\
Give `{"type": "raw", ...}` or `{"type": "cms", ...}` for a data signature, or
`{"type": "pdf", "pdf": "<base64 PDF>"}` for a signed PDF: every signature field with a value
(approval, certification, document timestamp) is checked (CMS, chain, status, timestamp,
byte range) together with every revision appended after it, classified as DSS/timestamp
updates, form filling, annotations or other changes; changes a signature does not allow
(anything 'other', and form filling after a DocMDP P=1 certification) fail the document
(`DOCUMENT_MODIFIED`). A PDF without signatures is `failed` (`NOT_SIGNED`). A file that is
not a readable PDF is refused with problem+json: `pdf-unreadable` (not a PDF, broken
cross-reference table, hybrid-reference file), `pdf-encrypted`, `pdf-too-large`; a body over
the configured limit is `payload-too-large` (413).
"""


@router.post(
    "/verify",
    response_model=VerificationReportPublic | PdfVerificationReportPublic,
    summary="Verify a data signature (raw or CMS) or a signed PDF; the report says passed,"
    " failed or indeterminate",
    description=_VERIFY_DESCRIPTION,
)
def verify_signature(
    body: VerifyCreate, runtime: RuntimeDep, app: ApplicationDep
) -> VerificationReportPublic | PdfVerificationReportPublic:
    if isinstance(body, PdfVerifyCreate):
        pdf = _base64(body.pdf, "pdf")
        return pdf_report_public(PdfVerifier(runtime.verifier).verify(pdf))
    return report_public(runtime.verifier.verify(to_request(body)))


@router.post(
    "/verify:batch",
    response_model=VerificationBatchPublic,
    summary="Verify up to 100 data signatures; one report each, in order",
)
def verify_batch(
    body: VerifyBatchCreate, runtime: RuntimeDep, app: ApplicationDep
) -> VerificationBatchPublic:
    requests = []
    for index, item in enumerate(body.items):
        try:
            requests.append(to_request(item))
        except InputError as exc:
            raise InputError(
                f"items[{index}]: {exc}", public=f"items[{index}]: {exc.public_message()}"
            ) from exc
    return VerificationBatchPublic(
        reports=[report_public(r) for r in verify_many(runtime.verifier, requests)]
    )
