"""Certificate status at signing time: evidence sources and the rules applied to them.

Evidence comes from medsign's own status history (``certificate_events``) for certificates
this installation issued, or from CRLs carried in the signature. Either way it is reduced to
``StatusEvidence``: the intervals during which the certificate was on hold or revoked, and
the time up to which that list is known to be complete.

The rules (also in docs/integration/verification.md):

* revoked at or before the signing time → FAILED/REVOKED. A claimed signing time counts here:
  the signer's own statement places the signature after the revocation.
* on hold at the signing time → FAILED/CERTIFICATE_ON_HOLD, even if the hold was released
  later: a held certificate is not valid while held.
* revoked (or put on hold, still held) after the signing time → PASSED with a note only when a
  timestamp proves the signing time; with a merely claimed time INDETERMINATE/REVOKED_NO_POE
  (INDETERMINATE/TRY_LATER for a hold that may still be lifted), because whoever holds the key
  can write any signing-time attribute.
* a hold that was released after the signing time → PASSED with a note.
* no signing time at all → the status now decides: revoked → REVOKED_NO_POE, held → TRY_LATER.
* no evidence, or evidence issued before the signing time → INDETERMINATE/TRY_LATER.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from asn1crypto import crl as asn1_crl
from asn1crypto import x509
from sqlalchemy import select

from medsign.clock import Clock, ensure_utc
from medsign.db import Database
from medsign.db.tables import CertificateEventRow, CertificateRow
from medsign.errors import MedsignError
from medsign.verify.chain import verify_signed_by
from medsign.verify.report import SubIndication, TimeSource, failed, indeterminate

REVOKED = "revoked"
HOLD = "hold"


@dataclass(frozen=True)
class Suspension:
    kind: str  # REVOKED | HOLD
    start: dt.datetime
    end: dt.datetime | None = None  # when a hold was released; None while it lasts
    reason: str | None = None

    def covers(self, at: dt.datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


@dataclass(frozen=True)
class StatusEvidence:
    source: str
    complete_at: dt.datetime  # the suspensions listed are all there were up to this time
    suspensions: tuple[Suspension, ...] = ()


class StatusSource(Protocol):
    def evidence(
        self, certificate: x509.Certificate, issuer: x509.Certificate
    ) -> StatusEvidence | None:
        """What this source knows about ``certificate``, or None if it knows nothing."""
        ...


class NoStatusSource:
    """For offline checks without an installation: only embedded evidence counts."""

    def evidence(
        self, certificate: x509.Certificate, issuer: x509.Certificate
    ) -> StatusEvidence | None:
        return None


def _serial_hex(certificate: x509.Certificate) -> str:
    return format(certificate.serial_number, "x")


class DatabaseStatusSource:
    """medsign's status history for certificates this installation issued itself.

    Certificates imported in RA mode are left out: their issuer, not medsign, revokes them.
    """

    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    def evidence(
        self, certificate: x509.Certificate, issuer: x509.Certificate
    ) -> StatusEvidence | None:
        with self._database.session() as session:
            row = session.scalars(
                select(CertificateRow).where(
                    CertificateRow.serial_hex == _serial_hex(certificate),
                    CertificateRow.issuer_name_der == certificate.issuer.dump(),
                    CertificateRow.source == "internal",
                )
            ).first()
            if row is None or row.certificate_der != certificate.dump():
                return None
            complete_at = self._clock.now()
            events = session.scalars(
                select(CertificateEventRow)
                .where(CertificateEventRow.certificate_id == row.id)
                .order_by(CertificateEventRow.id)
            ).all()
            history = [(e.action, e.reason, ensure_utc(e.at)) for e in events]
        return StatusEvidence(
            "medsign status history", complete_at, tuple(suspensions_from_history(history))
        )


def suspensions_from_history(
    history: Sequence[tuple[str, str | None, dt.datetime]],
) -> list[Suspension]:
    """Hold/release/revoke events, oldest first, as intervals."""
    out: list[Suspension] = []
    hold_start: dt.datetime | None = None
    for action, reason, at in history:
        if action == "hold":
            hold_start = at
        elif action == "release" and hold_start is not None:
            out.append(Suspension(HOLD, hold_start, at, "certificateHold"))
            hold_start = None
        elif action == "revoke":
            if hold_start is not None:
                out.append(Suspension(HOLD, hold_start, at, "certificateHold"))
                hold_start = None
            out.append(Suspension(REVOKED, at, None, reason))
    if hold_start is not None:
        out.append(Suspension(HOLD, hold_start, None, "certificateHold"))
    return out


def crl_evidence(
    crls: Sequence[asn1_crl.CertificateList],
    certificate: x509.Certificate,
    issuer: x509.Certificate,
) -> StatusEvidence | None:
    """The newest CRL, among those given, that the certificate's issuer signed.

    Only a direct CRL of the issuer is accepted (no indirect CRLs, no delta CRLs); a CRL whose
    signature does not verify is ignored as if it were absent.
    """
    best: asn1_crl.CertificateList | None = None
    for candidate in crls:
        try:
            if candidate.issuer != certificate.issuer:
                continue
            verify_signed_by(
                issuer.public_key.dump(),
                candidate["signature_algorithm"],
                candidate["tbs_cert_list"].dump(),
                candidate["signature"].native,
            )
        except (MedsignError, ValueError, KeyError, TypeError):
            continue
        if best is None or _this_update(candidate) > _this_update(best):
            best = candidate
    if best is None:
        return None
    suspensions: list[Suspension] = []
    for entry in best["tbs_cert_list"]["revoked_certificates"]:
        if entry["user_certificate"].native != certificate.serial_number:
            continue
        reason = entry.crl_reason_value.native if entry.crl_reason_value is not None else None
        when = ensure_utc(entry["revocation_date"].native)
        kind = HOLD if reason == "certificate_hold" else REVOKED
        suspensions.append(Suspension(kind, when, None, reason))
    return StatusEvidence("CRL in the signature", _this_update(best), tuple(suspensions))


def _this_update(crl: asn1_crl.CertificateList) -> dt.datetime:
    return ensure_utc(crl["tbs_cert_list"]["this_update"].native)


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="seconds")


def assess_status(
    evidence: StatusEvidence | None,
    signing_time: dt.datetime | None,
    source: TimeSource,
    now: dt.datetime,
) -> tuple[str, tuple[str, ...]]:
    """Apply the rules above: returns the check message and notes, or raises ``CheckFailure``."""
    if evidence is None:
        raise indeterminate(
            SubIndication.TRY_LATER, "no revocation information for the signer's certificate"
        )
    known = source is not TimeSource.NONE and signing_time is not None
    at = signing_time if known and signing_time is not None else now
    basis = {
        TimeSource.TIMESTAMP: "the timestamped signing time",
        TimeSource.CLAIMED: "the claimed signing time",
        TimeSource.NONE: "the validation time",
    }[source if known else TimeSource.NONE]
    revoked = next((s for s in evidence.suspensions if s.kind == REVOKED), None)
    holds = [s for s in evidence.suspensions if s.kind == HOLD]
    notes: list[str] = []

    if revoked is not None and revoked.start <= at:
        message = f"revoked at {_stamp(revoked.start)} ({revoked.reason or 'no reason'})"
        if not known:
            raise indeterminate(
                SubIndication.REVOKED_NO_POE,
                f"{message}; nothing proves the signature was made before that",
            )
        raise failed(SubIndication.REVOKED, f"{message}, before {basis} {_stamp(at)}")
    for hold in holds:
        if hold.covers(at):
            period = f"on hold since {_stamp(hold.start)}"
            if hold.end is not None:
                period += f" until {_stamp(hold.end)}"
            if not known:
                raise indeterminate(
                    SubIndication.TRY_LATER, f"{period}; the signing time is unknown"
                )
            raise failed(SubIndication.CERTIFICATE_ON_HOLD, f"{period}, covering {basis}")
    if evidence.complete_at < at:
        raise indeterminate(
            SubIndication.TRY_LATER,
            f"the {evidence.source} was issued at {_stamp(evidence.complete_at)},"
            f" before {basis} {_stamp(at)}",
        )
    proven = source is TimeSource.TIMESTAMP and known
    if revoked is not None:
        text = f"revoked at {_stamp(revoked.start)} ({revoked.reason or 'no reason'})"
        if not proven:
            raise indeterminate(
                SubIndication.REVOKED_NO_POE,
                f"{text}; the signing time before it is claimed, not proven by a timestamp",
            )
        notes.append(f"the certificate was {text}, after the timestamped signing time")
    for hold in holds:
        if hold.start <= at:
            continue
        if hold.end is None:
            if not proven:
                raise indeterminate(
                    SubIndication.TRY_LATER,
                    f"on hold since {_stamp(hold.start)}; the signing time before it is"
                    " claimed, not proven by a timestamp",
                )
            notes.append(f"the certificate is on hold since {_stamp(hold.start)}, after signing")
        else:
            notes.append(
                f"the certificate was on hold from {_stamp(hold.start)} to {_stamp(hold.end)},"
                " after signing"
            )
    return f"not revoked or on hold at {basis} ({evidence.source})", tuple(notes)


__all__ = [
    "DatabaseStatusSource",
    "NoStatusSource",
    "StatusEvidence",
    "StatusSource",
    "Suspension",
    "assess_status",
    "crl_evidence",
    "suspensions_from_history",
]
