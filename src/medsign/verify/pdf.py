"""PDF signatures: every signature of a document checked into one ``PdfReport``.

``documents.inspection`` reads the PDF (pyHanko, strict) and states the facts: each
signature's CMS, byte range, the revision it covers and every later change classified. This
module judges them:

* the CMS of an approval or certification signature goes through the same ``Verifier`` as
  any data signature, with the byte range's digest as its detached content; certificates and
  CRLs of the document security store (DSS) are offered to path building and status checks;
* a document timestamp (/SubFilter ETSI.RFC3161) is an RFC 3161 token whose imprint must be
  the digest of its byte range, from a trusted time-stamping unit not revoked at its time;
* ``byte-range``: the signed bytes start at 0, skip only the signature's own /Contents and
  end at the end of the signature's revision;
* ``modifications``: every revision after the signature must be explained as an allowed
  change: DSS updates and document timestamps always; form filling and further signatures
  unless a certification signature's DocMDP permission (P=1) forbids them; annotations only
  up to P=3. The default difference policy rejects other annotations, so they fail here too.

A signature passes only if all its checks pass; the document passes only if it has at least
one signature, every signature passes and nothing but end-of-line whitespace follows the
last %%EOF. A PDF without any signature is FAILED/NOT_SIGNED: a document presented as signed
that carries no signature must never be taken for one, and stripping every signature from a
signed document is an attack like the others.

``PdfVerifier.verify`` raises the ``medsign.documents.errors`` input errors (not a PDF,
encrypted, too large, unreadable) instead of reporting: those files cannot be checked at all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import tsp, x509

from medsign.ca.names import render_name
from medsign.documents.inspection import (
    DEFAULT_MAX_PDF_BYTES,
    ChangeLevel,
    Coverage,
    DSSContent,
    PdfInspection,
    PdfSignature,
    SignatureKind,
    inspect_pdf,
)
from medsign.errors import MedsignError
from medsign.verify.chain import parse_certificate
from medsign.verify.data import CMSSignature, SignedContent, Verifier, signer_identity
from medsign.verify.report import (
    Check,
    CheckFailure,
    CheckName,
    Indication,
    Report,
    SubIndication,
    TimeSource,
    TimestampInfo,
    _plain,
    failed,
    indeterminate,
    overall,
)
from medsign.verify.signed_data import SUPPORTED_DIGESTS, parse_signed_data
from medsign.verify.status import StatusEvidence, StatusSource, assess_status, crl_evidence
from medsign.verify.timestamp import verify_timestamp_token

# The most permissive change class each DocMDP permission allows (ISO 32000-2 §12.8.2.2;
# DSS and document timestamps are allowed at every level, ETSI EN 319 142-1 §5.4).
_ALLOWED_BY_DOCMDP = {
    1: ChangeLevel.LTA_UPDATES,
    2: ChangeLevel.FORM_FILLING,
    3: ChangeLevel.ANNOTATIONS,
}
# Without DocMDP: form filling, annotations, further signatures and timestamps.
_ALLOWED_DEFAULT = ChangeLevel.ANNOTATIONS

_KIND_LABEL = {
    SignatureKind.APPROVAL: "approval signature",
    SignatureKind.CERTIFICATION: "certification signature",
    SignatureKind.DOCUMENT_TIMESTAMP: "document timestamp",
}


@dataclass(frozen=True)
class PdfChange:
    """One revision after a signature, and whether that signature allows it."""

    revision: int
    level: str  # none | lta-updates | form-filling | annotations | other
    allowed: bool
    reason: str | None
    objects: int
    fields: tuple[str, ...]
    signatures: tuple[str, ...]
    dss: bool


@dataclass(frozen=True)
class PdfSignatureReport:
    field_name: str
    type: str  # approval | certification | document-timestamp
    docmdp: int | None
    sub_filter: str | None
    revision: int | None  # the revision the signature covers (0 is the original document)
    byte_range: tuple[int, ...] | None
    coverage: str  # entire-file | entire-revision | invalid
    digest_algorithm: str
    digest: str | None  # hex, over the byte range
    indication: Indication
    sub_indication: SubIndication | None
    checks: tuple[Check, ...]  # the PDF checks: format, byte-range, modifications
    signature: Report | None  # the CMS (or timestamp token) report
    changes: tuple[PdfChange, ...]
    claimed_time: dt.datetime | None = None  # /M in the signature dictionary (unproven)

    @property
    def passed(self) -> bool:
        return self.indication is Indication.PASSED


@dataclass(frozen=True)
class PdfReport:
    indication: Indication
    sub_indication: SubIndication | None
    validation_time: dt.datetime
    size: int
    revisions: int
    signatures: tuple[PdfSignatureReport, ...]
    checks: tuple[Check, ...]  # the document's own: signatures, file-end
    notes: tuple[str, ...] = field(default=())
    kind: str = "pdf"

    @property
    def passed(self) -> bool:
        return self.indication is Indication.PASSED

    def check(self, name: CheckName) -> Check | None:
        return next((c for c in self.checks if c.name is name), None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: enums as their values, times in ISO 8601, tuples as lists."""
        return _plain(dataclasses.asdict(self))  # type: ignore[no-any-return]


class _DSSStatus:
    """The verifier's own status source first, then CRLs from the document security store."""

    def __init__(self, base: StatusSource, crls: Sequence[asn1_crl.CertificateList]) -> None:
        self._base = base
        self._crls = crls

    def evidence(
        self, certificate: x509.Certificate, issuer: x509.Certificate
    ) -> StatusEvidence | None:
        found = self._base.evidence(certificate, issuer)
        if found is not None or not self._crls:
            return found
        from_dss = crl_evidence(self._crls, certificate, issuer)
        if from_dss is None:
            return None
        return StatusEvidence(
            "CRL in the document security store", from_dss.complete_at, from_dss.suspensions
        )


@dataclass(frozen=True)
class _Material:
    """What the DSS offers: certificates for paths, CRLs for status."""

    certificates: tuple[bytes, ...]
    crls: tuple[asn1_crl.CertificateList, ...]
    notes: tuple[str, ...]


def _material(dss: DSSContent) -> _Material:
    notes = list(dss.problems)
    certificates = []
    for der in dss.certificates:
        try:
            certificates.append(parse_certificate(der).dump())
        except MedsignError:
            notes.append("a certificate in the document security store is malformed; ignored")
    crls = []
    for der in dss.crls:
        try:
            parsed = asn1_crl.CertificateList.load(der, strict=True)
            _ = parsed["tbs_cert_list"]["issuer"].dump(), parsed["signature"].native
            crls.append(parsed)
        except (ValueError, TypeError, KeyError):
            notes.append("a CRL in the document security store is malformed; ignored")
    if dss.ocsp_responses:
        notes.append(
            f"{len(dss.ocsp_responses)} OCSP response(s) in the document security store are"
            " not used: status comes from medsign's history or CRLs"
        )
    return _Material(tuple(certificates), tuple(crls), tuple(notes))


class PdfVerifier:
    """Checks every signature of a PDF with a ``Verifier``'s trust, status and clock."""

    def __init__(self, verifier: Verifier, *, max_bytes: int = DEFAULT_MAX_PDF_BYTES) -> None:
        self.verifier = verifier
        self.max_bytes = max_bytes

    def verify(self, pdf: bytes, *, analyse_changes: bool = True) -> PdfReport:
        """The report; raises ``PdfUnreadableError``, ``PdfEncryptedError`` or
        ``PdfTooLargeError`` (all ``InputError``) for a file that cannot be checked.
        ``analyse_changes=False``: see ``inspect_pdf`` (later revisions then fail)."""
        facts = inspect_pdf(pdf, max_bytes=self.max_bytes, analyse_changes=analyse_changes)
        material = _material(facts.dss)
        base = self.verifier
        verifier = Verifier(base.trust, _DSSStatus(base.status, material.crls), base.clock)
        now = base.clock.now()
        first_revision = min(
            (s.revision for s in facts.signatures if s.revision is not None), default=None
        )
        signatures = tuple(
            _SignatureCheck(verifier, pdf, facts, signature, material, first_revision).run()
            for signature in facts.signatures
        )
        checks = (_signatures_check(signatures), _file_end_check(facts))
        notes = list(material.notes)
        if facts.trailing_bytes and facts.trailing_whitespace_only:
            notes.append(f"{facts.trailing_bytes} whitespace byte(s) follow the last %%EOF")
        indication, sub = _overall(checks, signatures)
        return PdfReport(
            indication=indication,
            sub_indication=sub,
            validation_time=now,
            size=facts.size,
            revisions=len(facts.revisions),
            signatures=signatures,
            checks=checks,
            notes=tuple(notes),
        )


def verify_pdf(
    verifier: Verifier, pdf: bytes, *, max_bytes: int = DEFAULT_MAX_PDF_BYTES
) -> PdfReport:
    return PdfVerifier(verifier, max_bytes=max_bytes).verify(pdf)


def _signatures_check(signatures: tuple[PdfSignatureReport, ...]) -> Check:
    if not signatures:
        return Check.from_failure(
            CheckName.SIGNATURES,
            failed(SubIndication.NOT_SIGNED, "the PDF has no signature (no signed field)"),
        )
    kinds = [s.type for s in signatures]
    counted = ", ".join(f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds))
    return Check.passed(CheckName.SIGNATURES, f"{len(signatures)} signature(s): {counted}")


def _file_end_check(facts: PdfInspection) -> Check:
    if facts.trailing_bytes and not facts.trailing_whitespace_only:
        return Check.from_failure(
            CheckName.FILE_END,
            failed(
                SubIndication.FORMAT_FAILURE,
                f"{facts.trailing_bytes} byte(s) after the last %%EOF belong to no revision"
                " and no signature covers them",
            ),
        )
    return Check.passed(CheckName.FILE_END, "the file ends with the last revision's %%EOF")


def _overall(
    checks: tuple[Check, ...], signatures: tuple[PdfSignatureReport, ...]
) -> tuple[Indication, SubIndication | None]:
    outcomes = [(c.indication, c.sub_indication) for c in checks]
    outcomes += [(s.indication, s.sub_indication) for s in signatures]
    for level in (Indication.FAILED, Indication.INDETERMINATE):
        for indication, sub in outcomes:
            if indication is level:
                return level, sub
    return Indication.PASSED, None


class _SignatureCheck:
    def __init__(
        self,
        verifier: Verifier,
        pdf: bytes,
        facts: PdfInspection,
        signature: PdfSignature,
        material: _Material,
        first_revision: int | None,
    ) -> None:
        self.verifier = verifier
        self.pdf = pdf
        self.facts = facts
        self.sig = signature
        self.material = material
        self.first_revision = first_revision
        self.checks: list[Check] = []

    def _run(self, name: CheckName, step: Any) -> bool:
        try:
            self.checks.append(Check.passed(name, step()))
            return True
        except CheckFailure as exc:
            self.checks.append(Check.from_failure(name, exc))
            return False

    def run(self) -> PdfSignatureReport:
        sig = self.sig
        self._run(CheckName.FORMAT, self._format)
        self._run(CheckName.BYTE_RANGE, self._byte_range)
        changes = self._changes()
        self._run(CheckName.MODIFICATIONS, lambda: self._modifications(changes))
        report = self._signature_report()
        checks = tuple(self.checks)
        indication, sub = overall(checks + (report.checks if report is not None else ()))
        return PdfSignatureReport(
            field_name=sig.field_name,
            type=sig.kind.value,
            docmdp=sig.docmdp,
            sub_filter=sig.sub_filter,
            revision=sig.revision,
            byte_range=sig.byte_range,
            coverage=sig.coverage.value,
            digest_algorithm=sig.digest_algorithm,
            digest=sig.digest.hex() if sig.digest is not None else None,
            indication=indication,
            sub_indication=sub,
            checks=checks,
            signature=report,
            changes=changes,
            claimed_time=sig.claimed_time,
        )

    # -- PDF checks --------------------------------------------------------------------------

    def _format(self) -> str:
        sig = self.sig
        problems = list(sig.problems)
        if not sig.contents and not any("Contents" in p for p in problems):
            problems.append("/Contents holds no CMS")
        if (
            sig.kind is SignatureKind.CERTIFICATION
            and self.first_revision is not None
            and sig.revision != self.first_revision
        ):
            problems.append("a certification signature must be the document's first signature")
        if sig.contents and sig.kind is not SignatureKind.DOCUMENT_TIMESTAMP:
            try:
                if parse_signed_data(sig.contents).content is not None:
                    problems.append(
                        "the CMS carries content of its own; a PDF signature is detached"
                    )
            except CheckFailure:
                pass  # reported by the signature's own format check
        if problems:
            raise failed(SubIndication.FORMAT_FAILURE, "; ".join(problems))
        label = _KIND_LABEL[sig.kind]
        if sig.docmdp is not None:
            label += f" (DocMDP P={sig.docmdp})"
        return f"{label}, /SubFilter {sig.sub_filter}, {len(sig.contents)}-byte CMS"

    def _byte_range(self) -> str:
        sig = self.sig
        if sig.coverage is Coverage.INVALID:
            raise failed(SubIndication.FORMAT_FAILURE, sig.coverage_problem or "invalid")
        whole = "the whole file" if sig.coverage is Coverage.ENTIRE_FILE else "its revision"
        return (
            f"covers revision {sig.revision} entirely ({whole}) except the signature's"
            f" /Contents; {sig.digest_algorithm} digest computed"
        )

    def _allowed(self) -> ChangeLevel:
        if self.sig.docmdp is not None:
            return _ALLOWED_BY_DOCMDP[self.sig.docmdp]
        return _ALLOWED_DEFAULT

    def _changes(self) -> tuple[PdfChange, ...]:
        allowed = self._allowed()
        return tuple(
            PdfChange(
                revision=c.revision,
                level=c.level.value,
                allowed=c.level is not ChangeLevel.OTHER and c.level.rank <= allowed.rank,
                reason=c.reason,
                objects=c.objects,
                fields=c.fields,
                signatures=c.signatures,
                dss=c.dss,
            )
            for c in self.sig.changes
        )

    def _modifications(self, changes: tuple[PdfChange, ...]) -> str:
        sig = self.sig
        if sig.revision is None:
            raise failed(
                SubIndication.FORMAT_FAILURE, "the revision the signature covers is unknown"
            )
        if not changes:
            return "no revision after the signed one: the document is unchanged"
        bad = [c for c in changes if not c.allowed]
        if bad:
            first = bad[0]
            why = first.reason or f"{first.level} changes"
            rule = (
                f"DocMDP P={sig.docmdp} allows only {self._allowed().value} changes"
                if sig.docmdp is not None
                else "only form filling, annotations, signatures and timestamps are allowed"
            )
            raise failed(
                SubIndication.DOCUMENT_MODIFIED,
                f"revision {first.revision} changed the document after this"
                f" {_KIND_LABEL[sig.kind]}: {why} ({rule})",
            )
        levels = ", ".join(dict.fromkeys(c.level for c in changes))
        return f"{len(changes)} later revision(s), all allowed: {levels}"

    # -- the signature itself ---------------------------------------------------------------

    def _signature_report(self) -> Report | None:
        sig = self.sig
        if not sig.contents:
            return None
        if sig.kind is SignatureKind.DOCUMENT_TIMESTAMP:
            return self._timestamp_report()
        content = self._content()
        request = CMSSignature(sig.contents, content, self.material.certificates)
        try:
            return self.verifier.verify_cms(request)
        except MedsignError as exc:
            now = self.verifier.clock.now()
            failure = indeterminate(
                SubIndication.FORMAT_FAILURE, f"the CMS cannot be checked: {exc.public_message()}"
            )
            return _single_check_report("cms", CheckName.FORMAT, failure, now)

    def _content(self) -> SignedContent | None:
        sig = self.sig
        if sig.digest is None:
            return None
        if sig.digest_algorithm in SUPPORTED_DIGESTS:
            return SignedContent(digest=sig.digest, digest_algorithm=sig.digest_algorithm)
        return SignedContent(data=self.facts.signed_bytes(self.pdf, sig))

    def _timestamp_report(self) -> Report:
        sig = self.sig
        verifier = self.verifier
        now = verifier.clock.now()
        checks: list[Check] = []
        found: dict[str, Any] = {}

        def run(name: CheckName, step: Any) -> bool:
            try:
                checks.append(Check.passed(name, step()))
                return True
            except CheckFailure as exc:
                checks.append(Check.from_failure(name, exc))
                return False
            except MedsignError as exc:  # e.g. a key the crypto layer does not support
                failure = indeterminate(SubIndication.FORMAT_FAILURE, exc.public_message())
                checks.append(Check.from_failure(name, failure))
                return False
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                failure = indeterminate(
                    SubIndication.FORMAT_FAILURE, f"malformed token ({type(exc).__name__})"
                )
                checks.append(Check.from_failure(name, failure))
                return False

        def imprint() -> str:
            view = parse_signed_data(sig.contents)
            if view.content_type != "tst_info" or view.content is None:
                raise indeterminate(SubIndication.FORMAT_FAILURE, "the token carries no TSTInfo")
            info = tsp.TSTInfo.load(view.content, strict=True)
            hashed = info["message_imprint"]["hashed_message"].native
            if sig.digest is None or hashed != sig.digest:
                raise failed(
                    SubIndication.HASH_FAILURE,
                    "the token's imprint is not the digest of the byte range: the signed"
                    " revision was changed",
                )
            return f"the token's {sig.digest_algorithm} imprint is the byte range's digest"

        if run(CheckName.SIGNED_DATA, imprint):

            def token() -> str:
                extra = [parse_certificate(der) for der in self.material.certificates]
                stamp = verify_timestamp_token(
                    sig.contents, self.facts.signed_bytes(self.pdf, sig), verifier.trust, extra
                )
                found["stamp"] = stamp
                return (
                    f"document timestamp of {_stamp(stamp.time)} by"
                    f" {render_name(stamp.tsa_certificate.subject)}, chain to"
                    f" {render_name(stamp.path.anchor.certificate.subject)}"
                )

            if run(CheckName.TIMESTAMP, token):
                stamp = found["stamp"]

                def status() -> str:
                    evidence = verifier.status.evidence(stamp.path.leaf, stamp.path.issuer)
                    # The token's time is the TSA's own statement: revocation after it
                    # leaves the timestamp unproven rather than good.
                    message, notes = assess_status(evidence, stamp.time, TimeSource.CLAIMED, now)
                    found["notes"] = notes
                    return f"time-stamping certificate {message}"

                run(CheckName.STATUS, status)
        indication, sub = overall(tuple(checks))
        stamp = found.get("stamp")
        info = None
        if stamp is not None:
            info = TimestampInfo(
                time=stamp.time,
                tsa=render_name(stamp.tsa_certificate.subject),
                serial_number=format(stamp.serial_number, "X"),
                policy=stamp.policy,
                hash_algorithm=stamp.hash_algorithm,
            )
        return Report(
            kind="document-timestamp",
            indication=indication,
            sub_indication=sub,
            checks=tuple(checks),
            validation_time=now,
            signing_time=stamp.time if stamp is not None else None,
            signing_time_source=TimeSource.TIMESTAMP if stamp is not None else TimeSource.NONE,
            signer=signer_identity(stamp.tsa_certificate) if stamp is not None else None,
            timestamp=info,
            chain=stamp.path.subjects() if stamp is not None else (),
            notes=tuple(found.get("notes", ())),
        )


def _single_check_report(
    kind: str, name: CheckName, failure: CheckFailure, now: dt.datetime
) -> Report:
    check = Check.from_failure(name, failure)
    return Report(
        kind=kind,
        indication=check.indication,
        sub_indication=check.sub_indication,
        checks=(check,),
        validation_time=now,
        signing_time=None,
        signing_time_source=TimeSource.NONE,
    )


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="seconds")


__all__ = [
    "PdfChange",
    "PdfReport",
    "PdfSignatureReport",
    "PdfVerifier",
    "verify_pdf",
]
