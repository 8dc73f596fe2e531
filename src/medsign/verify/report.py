"""The validation report: plain frozen dataclasses, converted to API schemas by the adapters.

Indications and sub-indications follow ETSI EN 319 102-1 (§5.1.3) so a report can be compared
with one from another validator. ``CERTIFICATE_ON_HOLD``, ``TIMESTAMP_FAILURE``,
``DOCUMENT_MODIFIED`` and ``NOT_SIGNED`` are medsign's own names for outcomes ETSI folds into
other codes or leaves out; they are listed here, in the integration guide and nowhere else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from medsign.errors import VerificationError


class Indication(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    INDETERMINATE = "indeterminate"


class SubIndication(StrEnum):
    # FAILED
    HASH_FAILURE = "HASH_FAILURE"
    SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    CERTIFICATE_ON_HOLD = "CERTIFICATE_ON_HOLD"
    TIMESTAMP_FAILURE = "TIMESTAMP_FAILURE"
    DOCUMENT_MODIFIED = "DOCUMENT_MODIFIED"  # PDF: changed after signing beyond what is allowed
    NOT_SIGNED = "NOT_SIGNED"  # PDF: no signature at all
    # INDETERMINATE
    FORMAT_FAILURE = "FORMAT_FAILURE"
    SIGNED_DATA_NOT_FOUND = "SIGNED_DATA_NOT_FOUND"
    NO_SIGNING_CERTIFICATE_FOUND = "NO_SIGNING_CERTIFICATE_FOUND"
    NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
    CHAIN_CONSTRAINTS_FAILURE = "CHAIN_CONSTRAINTS_FAILURE"
    CRYPTO_CONSTRAINTS_FAILURE = "CRYPTO_CONSTRAINTS_FAILURE"
    REVOKED_NO_POE = "REVOKED_NO_POE"
    OUT_OF_BOUNDS_NO_POE = "OUT_OF_BOUNDS_NO_POE"
    TRY_LATER = "TRY_LATER"


class CheckName(StrEnum):
    """One entry per property checked, in the order they are evaluated."""

    FORMAT = "format"
    SIGNED_DATA = "signed-data"
    SIGNATURE = "signature"
    SIGNING_CERTIFICATE = "signing-certificate"
    TIMESTAMP = "timestamp"
    CHAIN = "chain"
    VALIDITY = "validity"
    STATUS = "status"
    SIGNING_TIME = "signing-time"
    # PDF signatures and documents
    BYTE_RANGE = "byte-range"
    MODIFICATIONS = "modifications"
    SIGNATURES = "signatures"
    FILE_END = "file-end"


class TimeSource(StrEnum):
    """Where the signing time the checks used came from."""

    TIMESTAMP = "timestamp"  # proven: a verified RFC 3161 token over the signature value
    CLAIMED = "claimed"  # the signer's own signing-time attribute (or the caller's claim)
    NONE = "none"  # unknown: certificate checks use the validation time


class CheckFailure(VerificationError):
    """Raised by the ``verify_*`` helpers of this package; the verifier turns it into a check."""

    def __init__(self, indication: Indication, sub_indication: SubIndication, message: str) -> None:
        super().__init__(message)
        self.indication = indication
        self.sub_indication = sub_indication


def failed(sub_indication: SubIndication, message: str) -> CheckFailure:
    return CheckFailure(Indication.FAILED, sub_indication, message)


def indeterminate(sub_indication: SubIndication, message: str) -> CheckFailure:
    return CheckFailure(Indication.INDETERMINATE, sub_indication, message)


@dataclass(frozen=True)
class Check:
    name: CheckName
    indication: Indication
    message: str
    sub_indication: SubIndication | None = None

    @classmethod
    def passed(cls, name: CheckName, message: str) -> Check:
        return cls(name, Indication.PASSED, message)

    @classmethod
    def from_failure(cls, name: CheckName, failure: CheckFailure) -> Check:
        return cls(name, failure.indication, str(failure), failure.sub_indication)


@dataclass(frozen=True)
class SignerIdentity:
    """Who the signing certificate names; ``employee_number`` is the subject serialNumber."""

    subject: str
    common_name: str | None
    employee_number: str | None
    organization: str | None
    organizational_unit: str | None
    certificate_serial: str  # upper-case hex, as `openssl x509 -serial` prints it
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    policies: tuple[str, ...]
    profile: str | None  # the medsign profile a policy OID names, if any
    key_algorithm: str | None


@dataclass(frozen=True)
class TimestampInfo:
    time: dt.datetime
    tsa: str
    serial_number: str
    policy: str
    hash_algorithm: str


@dataclass(frozen=True)
class Report:
    kind: str  # "raw" | "cms"
    indication: Indication
    sub_indication: SubIndication | None
    checks: tuple[Check, ...]
    validation_time: dt.datetime
    signing_time: dt.datetime | None
    signing_time_source: TimeSource
    claimed_signing_time: dt.datetime | None = None
    scheme: str | None = None
    signer: SignerIdentity | None = None
    timestamp: TimestampInfo | None = None
    chain: tuple[str, ...] = ()  # subjects from the signer's certificate up to the anchor
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return self.indication is Indication.PASSED

    def check(self, name: CheckName) -> Check | None:
        return next((c for c in self.checks if c.name is name), None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: enums as their values, times in ISO 8601, tuples as lists."""
        return _plain(dataclasses.asdict(self))  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def overall(checks: tuple[Check, ...]) -> tuple[Indication, SubIndication | None]:
    """FAILED beats INDETERMINATE beats PASSED; within one level the earliest check wins, since
    checks run from the most fundamental (format, hash, signature) to the most contextual."""
    for level in (Indication.FAILED, Indication.INDETERMINATE):
        for entry in checks:
            if entry.indication is level:
                return level, entry.sub_indication
    return Indication.PASSED, None


__all__ = [
    "Check",
    "CheckFailure",
    "CheckName",
    "Indication",
    "Report",
    "SignerIdentity",
    "SubIndication",
    "TimeSource",
    "TimestampInfo",
    "failed",
    "indeterminate",
    "overall",
]
