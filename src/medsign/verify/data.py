"""Data signatures: raw signatures and CMS SignedData, checked into one ``Report``.

The verifier never raises for a bad signature: every outcome is a report. It raises
``InputError`` only for requests it cannot even start on (a digest of the wrong length, a
scheme that does not fit the certificate's key, no data and no digest for a raw signature).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from asn1crypto import x509

from medsign.ca.names import render_name
from medsign.ca.profiles import DEFAULT_PROFILES
from medsign.clock import Clock, ensure_utc
from medsign.crypto.public import PublicKey, verify, verify_digest
from medsign.crypto.types import DEFAULT_SM2_ID, SignatureEncoding, SignatureScheme
from medsign.errors import InputError, MedsignError
from medsign.verify.chain import (
    CertificationPath,
    TrustStore,
    first_invalid,
    parse_certificate,
    validity,
    verify_path,
)
from medsign.verify.report import (
    Check,
    CheckFailure,
    CheckName,
    Report,
    SignerIdentity,
    SubIndication,
    TimeSource,
    TimestampInfo,
    failed,
    indeterminate,
    overall,
)
from medsign.verify.signed_data import (
    SUPPORTED_DIGESTS,
    SignedDataView,
    digest,
    find_certificate,
    has_signed_attributes,
    parse_signed_data,
    signed_attribute,
    signer_scheme,
    unsigned_attributes,
    verify_message_digest,
    verify_signer_signature,
    verify_signing_certificate_reference,
)
from medsign.verify.status import StatusEvidence, StatusSource, assess_status, crl_evidence
from medsign.verify.timestamp import VerifiedTimestamp, verify_timestamp_token

DIGEST_SIZES = {"sha256": 32, "sm3": 32}


@dataclass(frozen=True)
class SignedContent:
    """What was signed: the data itself, or its digest.

    For a raw signature the digest is the one the key signed (``crypto.message_digest``:
    SHA-256 of the data, or SM3(Z_A || data) for SM2); for CMS it is the digest of the content
    (the message-digest attribute).
    """

    data: bytes | None = None
    digest: bytes | None = None
    digest_algorithm: str | None = None

    def __post_init__(self) -> None:
        if (self.data is None) == (self.digest is None):
            raise InputError("give either the data or its digest")
        if self.digest is not None:
            if self.digest_algorithm not in SUPPORTED_DIGESTS:
                raise InputError("digest algorithm must be sha256 or sm3")
            if len(self.digest) != DIGEST_SIZES[self.digest_algorithm]:
                raise InputError(
                    f"a {self.digest_algorithm} digest is {DIGEST_SIZES[self.digest_algorithm]}"
                    f" bytes, not {len(self.digest)}"
                )


@dataclass(frozen=True)
class RawSignature:
    signature: bytes
    scheme: SignatureScheme
    certificate: bytes  # the signer's certificate, DER
    content: SignedContent
    encoding: SignatureEncoding = SignatureEncoding.DER
    intermediates: tuple[bytes, ...] = ()
    claimed_signing_time: dt.datetime | None = None
    # An RFC 3161 token whose imprint is the hash of ``signature`` exactly as given.
    timestamp_token: bytes | None = None

    def __post_init__(self) -> None:
        if not self.signature:
            raise InputError("the signature is empty")
        if self.claimed_signing_time is not None and self.claimed_signing_time.tzinfo is None:
            raise InputError("the claimed signing time needs a time zone")


@dataclass(frozen=True)
class CMSSignature:
    cms: bytes  # ContentInfo(SignedData), DER
    content: SignedContent | None = None  # None: the content is attached
    intermediates: tuple[bytes, ...] = ()  # extra certificates (signer, intermediates)


@dataclass
class _Run:
    """What one verification has found so far."""

    kind: str
    now: dt.datetime
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scheme: SignatureScheme | None = None
    signer: SignerIdentity | None = None
    claimed: dt.datetime | None = None
    timestamp: VerifiedTimestamp | None = None
    chain: tuple[str, ...] = ()

    def run(self, name: CheckName, step: Callable[[], str]) -> bool:
        try:
            self.checks.append(Check.passed(name, step()))
            return True
        except CheckFailure as exc:
            self.checks.append(Check.from_failure(name, exc))
            return False
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # asn1crypto parses lazily: a malformed field deep inside a structure surfaces
            # only when a check reads it. That is a property of the input, not a crash.
            failure = indeterminate(
                SubIndication.FORMAT_FAILURE, f"malformed structure ({type(exc).__name__})"
            )
            self.checks.append(Check.from_failure(name, failure))
            return False

    @property
    def signing_time(self) -> tuple[dt.datetime | None, TimeSource]:
        if self.timestamp is not None:
            return self.timestamp.time, TimeSource.TIMESTAMP
        if self.claimed is not None:
            return self.claimed, TimeSource.CLAIMED
        return None, TimeSource.NONE

    def report(self) -> Report:
        checks = tuple(self.checks)
        indication, sub = overall(checks)
        time, source = self.signing_time
        info = None
        if self.timestamp is not None:
            info = TimestampInfo(
                time=self.timestamp.time,
                tsa=render_name(self.timestamp.tsa_certificate.subject),
                serial_number=format(self.timestamp.serial_number, "X"),
                policy=self.timestamp.policy,
                hash_algorithm=self.timestamp.hash_algorithm,
            )
        return Report(
            kind=self.kind,
            indication=indication,
            sub_indication=sub,
            checks=checks,
            validation_time=self.now,
            signing_time=time,
            signing_time_source=source,
            claimed_signing_time=self.claimed,
            scheme=str(self.scheme) if self.scheme is not None else None,
            signer=self.signer,
            timestamp=info,
            chain=self.chain,
            notes=tuple(self.notes),
        )


_POLICY_PROFILES = {
    policy: profile.name
    for profile in DEFAULT_PROFILES.profiles.values()
    for policy in profile.policies
}


def signer_identity(cert: x509.Certificate) -> SignerIdentity:
    subject = cert.subject.native
    policies_value = cert.certificate_policies_value
    policies = tuple(str(p["policy_identifier"].dotted) for p in (policies_value or []))
    profile = next((_POLICY_PROFILES[p] for p in policies if p in _POLICY_PROFILES), None)
    try:
        algorithm: str | None = str(PublicKey.from_der(cert.public_key.dump()).algorithm)
    except InputError:
        algorithm = str(cert.public_key.algorithm)
    not_before, not_after = validity(cert)

    def text(key: str) -> str | None:
        value = subject.get(key)
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        return str(value) if value is not None else None

    serial = format(cert.serial_number, "X")
    return SignerIdentity(
        subject=render_name(cert.subject),
        common_name=text("common_name"),
        employee_number=text("serial_number"),
        organization=text("organization_name"),
        organizational_unit=text("organizational_unit_name"),
        certificate_serial=serial if len(serial) % 2 == 0 else "0" + serial,
        issuer=render_name(cert.issuer),
        not_before=not_before,
        not_after=not_after,
        policies=policies,
        profile=profile,
        key_algorithm=algorithm,
    )


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="seconds")


class Verifier:
    """Checks data signatures against trust anchors and certificate status sources."""

    def __init__(self, trust: TrustStore, status: StatusSource, clock: Clock) -> None:
        self.trust = trust
        self.status = status
        self.clock = clock

    def with_trust(self, trust: TrustStore) -> Verifier:
        return Verifier(trust, self.status, self.clock)

    def verify(self, request: RawSignature | CMSSignature) -> Report:
        if isinstance(request, RawSignature):
            return self.verify_raw(request)
        return self.verify_cms(request)

    # -- raw signatures -------------------------------------------------------------------

    def verify_raw(self, request: RawSignature) -> Report:
        certificate = parse_certificate(request.certificate)
        intermediates = [parse_certificate(der) for der in request.intermediates]
        try:
            key = PublicKey.from_der(certificate.public_key.dump())
        except InputError as exc:
            raise InputError(f"the signer's certificate has an unsupported key: {exc}") from exc
        if not key.supports(request.scheme):
            raise InputError(f"scheme {request.scheme} does not fit a {key.algorithm} key")
        content = request.content
        if content.digest is not None and not request.scheme.signs_digest:
            raise InputError(f"a {request.scheme} signature is checked on the data, not a digest")
        if content.digest is not None and content.digest_algorithm != request.scheme.hash_name:
            raise InputError(f"scheme {request.scheme} signs a {request.scheme.hash_name} digest")
        run = _Run("raw", self.clock.now(), scheme=request.scheme)
        run.signer = signer_identity(certificate)
        if request.claimed_signing_time is not None:
            run.claimed = ensure_utc(request.claimed_signing_time)

        def signature() -> str:
            try:
                if content.data is not None:
                    verify(
                        key,
                        request.scheme,
                        content.data,
                        request.signature,
                        encoding=request.encoding,
                        user_id=DEFAULT_SM2_ID,
                    )
                else:
                    assert content.digest is not None
                    verify_digest(
                        key,
                        request.scheme,
                        content.digest,
                        request.signature,
                        encoding=request.encoding,
                    )
            except MedsignError as exc:
                # Without signed attributes a changed document and a wrong signature look
                # the same: the signature does not fit this data.
                raise failed(
                    SubIndication.SIG_CRYPTO_FAILURE,
                    "the signature does not verify for this data and certificate",
                ) from exc
            return f"{request.scheme} signature verifies under the certificate's key"

        run.run(CheckName.SIGNATURE, signature)
        self._finish(
            run,
            certificate,
            intermediates,
            request.signature,
            request.timestamp_token,
            extra_certificates=intermediates,
        )
        return run.report()

    # -- CMS ------------------------------------------------------------------------------

    def verify_cms(self, request: CMSSignature) -> Report:
        extra = [parse_certificate(der) for der in request.intermediates]
        run = _Run("cms", self.clock.now())
        try:
            self._verify_cms(request, extra, run)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # Outside the individual checks (finding and naming the signer) a lazily parsed
            # field can still turn out malformed; the answer is still a report.
            failure = indeterminate(
                SubIndication.FORMAT_FAILURE, f"malformed SignedData ({type(exc).__name__})"
            )
            run.checks.append(Check.from_failure(CheckName.FORMAT, failure))
        return run.report()

    def _verify_cms(
        self, request: CMSSignature, extra: Sequence[x509.Certificate], run: _Run
    ) -> None:
        view: SignedDataView | None = None

        def parse() -> str:
            nonlocal view
            view = parse_signed_data(request.cms)
            if view.signer_count > 1:
                run.notes.append(
                    f"the SignedData has {view.signer_count} signers; only the first is checked"
                )
            attached = "attached" if view.content is not None else "detached"
            return f"CMS SignedData, {attached} content"

        if not run.run(CheckName.FORMAT, parse) or view is None:
            return
        signer = view.signer
        candidates = (*view.certificates, *extra)
        certificate = find_certificate(signer, candidates)
        if certificate is None:
            run.checks.append(
                Check.from_failure(
                    CheckName.SIGNING_CERTIFICATE,
                    indeterminate(
                        SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
                        "the signer's certificate is neither in the SignedData nor supplied",
                    ),
                )
            )
            return
        run.signer = signer_identity(certificate)
        try:
            scheme = signer_scheme(signer)
        except CheckFailure as exc:
            run.checks.append(Check.from_failure(CheckName.SIGNATURE, exc))
            return
        run.scheme = scheme

        content = request.content.data if request.content is not None else view.content
        content_digest: bytes | None = None
        if content is not None:
            content_digest = digest(scheme.hash_name, content)
        elif request.content is not None and request.content.digest is not None:
            content_digest = request.content.digest
            if request.content.digest_algorithm != scheme.hash_name:
                raise InputError(
                    f"this signature uses {scheme.hash_name}; a"
                    f" {request.content.digest_algorithm} digest cannot be checked against it"
                )
        claimed = signed_attribute(signer, "signing_time")
        if claimed is not None:
            run.claimed = ensure_utc(claimed.native)

        def signed_data() -> str:
            if not has_signed_attributes(signer):
                return "no signed attributes: the signature covers the content directly"
            if content_digest is None:
                raise indeterminate(
                    SubIndication.SIGNED_DATA_NOT_FOUND,
                    "detached signature: the data or its digest is needed",
                )
            verify_message_digest(signer, view.content_type, content_digest)
            return f"the data's {scheme.hash_name} digest matches the message-digest attribute"

        run.run(CheckName.SIGNED_DATA, signed_data)

        def signature() -> str:
            verify_signer_signature(
                signer, certificate, scheme, content=content, content_digest=content_digest
            )
            covered = "signed attributes" if has_signed_attributes(signer) else "content"
            return f"{scheme} signature over the {covered} verifies"

        run.run(CheckName.SIGNATURE, signature)
        run.run(
            CheckName.SIGNING_CERTIFICATE,
            lambda: verify_signing_certificate_reference(signer, certificate),
        )
        tokens = unsigned_attributes(signer, "signature_time_stamp_token")
        if len(tokens) > 1:
            run.notes.append(f"{len(tokens)} signature timestamps; the first is checked")
        token = tokens[0].dump() if tokens else None
        self._finish(
            run,
            certificate,
            candidates,
            signer["signature"].native,
            token,
            extra_certificates=candidates,
            crl_view=view,
        )

    # -- shared: timestamp, chain, validity, status -------------------------------------

    def _finish(
        self,
        run: _Run,
        certificate: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        signature_value: bytes,
        token: bytes | None,
        *,
        extra_certificates: Sequence[x509.Certificate],
        crl_view: SignedDataView | None = None,
    ) -> None:
        if token is not None:

            def timestamp() -> str:
                run.timestamp = verify_timestamp_token(
                    token, signature_value, self.trust, extra_certificates
                )
                return (
                    f"timestamp of {_stamp(run.timestamp.time)} by"
                    f" {render_name(run.timestamp.tsa_certificate.subject)} covers the"
                    " signature value"
                )

            run.run(CheckName.TIMESTAMP, timestamp)
        run.run(CheckName.SIGNING_TIME, lambda: self._signing_time_message(run))

        path: CertificationPath | None = None

        def chain() -> str:
            nonlocal path
            path = verify_path(certificate, intermediates, self.trust)
            run.chain = path.subjects()
            return f"chains to the trust anchor {render_name(path.anchor.certificate.subject)}"

        if not run.run(CheckName.CHAIN, chain) or path is None:
            return
        trusted_path = path
        run.run(CheckName.VALIDITY, lambda: self._validity(run, trusted_path))

        def status() -> str:
            evidence: StatusEvidence | None = self.status.evidence(
                trusted_path.leaf, trusted_path.issuer
            )
            if evidence is None and crl_view is not None:
                evidence = crl_evidence(crl_view.crls, trusted_path.leaf, trusted_path.issuer)
            time, source = run.signing_time
            message, notes = assess_status(evidence, time, source, run.now)
            run.notes.extend(notes)
            return message

        run.run(CheckName.STATUS, status)

    @staticmethod
    def _signing_time_message(run: _Run) -> str:
        time, source = run.signing_time
        if source is TimeSource.TIMESTAMP and time is not None:
            if run.claimed is not None and run.claimed > time + dt.timedelta(minutes=5):
                run.notes.append(
                    f"the claimed signing time {_stamp(run.claimed)} is after the timestamp"
                )
            return f"signing time {_stamp(time)} is proven by the timestamp"
        if source is TimeSource.CLAIMED and time is not None:
            return f"claimed signing time {_stamp(time)} is unproven: no valid timestamp"
        return "no signing time: certificates are checked at the validation time"

    @staticmethod
    def _validity(run: _Run, path: CertificationPath) -> str:
        time, source = run.signing_time
        certificates = path.certificates
        if time is None:
            invalid = first_invalid(certificates, run.now)
            if invalid is None:
                return f"all certificates valid at the validation time {_stamp(run.now)}"
            cert, why = invalid
            if why == "expired":
                raise indeterminate(
                    SubIndication.OUT_OF_BOUNDS_NO_POE,
                    f"{render_name(cert.subject)} has expired and the signing time is unknown",
                )
            raise failed(
                SubIndication.NOT_YET_VALID, f"{render_name(cert.subject)} is not yet valid"
            )
        invalid = first_invalid(certificates, time)
        if invalid is not None:
            cert, why = invalid
            label = "timestamped" if source is TimeSource.TIMESTAMP else "claimed"
            sub = SubIndication.EXPIRED if why == "expired" else SubIndication.NOT_YET_VALID
            raise failed(sub, f"{render_name(cert.subject)} was {why} at the {label} signing time")
        if source is TimeSource.CLAIMED and first_invalid(certificates, run.now) is not None:
            raise indeterminate(
                SubIndication.OUT_OF_BOUNDS_NO_POE,
                "a certificate has expired since the claimed signing time, which no timestamp"
                " proves",
            )
        return f"all certificates valid at the signing time {_stamp(time)}"


def verify_many(
    verifier: Verifier, requests: Sequence[RawSignature | CMSSignature]
) -> list[Report]:
    return [verifier.verify(request) for request in requests]


__all__ = [
    "CMSSignature",
    "RawSignature",
    "SignedContent",
    "Verifier",
    "signer_identity",
    "verify_many",
]
