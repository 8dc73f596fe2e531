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
    CMSSignature,
    RawSignature,
    Report,
    SignedContent,
    load_certificates,
    verify_many,
)

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
        checks=[
            CheckPublic(
                name=c.name.value,
                indication=c.indication.value,
                sub_indication=c.sub_indication.value if c.sub_indication else None,
                message=c.message,
            )
            for c in report.checks
        ],
        notes=list(report.notes),
    )


@router.post(
    "/verify",
    response_model=VerificationReportPublic,
    summary="Verify a data signature (raw or CMS); the report says passed, failed or indeterminate",
)
def verify_signature(
    body: VerifyCreate, runtime: RuntimeDep, app: ApplicationDep
) -> VerificationReportPublic:
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
