"""Errors of the intake stage; each has a stable code (see docs/integration/signing.md)."""

from __future__ import annotations

from medsign.errors import ForbiddenError, InputError, StateError


class IdempotencyConflictError(StateError):
    code = "idempotency-conflict"
    title = "Idempotency key reused with a different request"


class RequestNotPendingError(StateError):
    code = "request-not-pending"
    title = "The request is no longer pending"


class RequestExpiredError(StateError):
    code = "request-expired"
    title = "The request has expired"


class SignerNotEnrolledError(StateError):
    code = "signer-not-enrolled"
    title = "The signer has no signing certificate yet"


class SignerFrozenError(StateError):
    code = "signer-frozen"
    title = "The signer is frozen"


class SignerDeregisteredError(StateError):
    code = "signer-deregistered"
    title = "The signer is deregistered"


class SignerCertificateRevokedError(StateError):
    code = "signer-certificate-revoked"
    title = "The signer's certificate is revoked"


class SignerCertificateHeldError(StateError):
    code = "signer-certificate-held"
    title = "The signer's certificate is on hold"


class SignerNotAllowedError(ForbiddenError):
    code = "signer-not-allowed"
    title = "This application may not address this signer"


class DigestLengthError(InputError):
    code = "digest-length"
    title = "The digest has the wrong length"


class DigestAlgorithmError(InputError):
    code = "digest-algorithm-mismatch"
    title = "The digest algorithm does not fit the signer's algorithm"


class RecordTooLargeError(InputError):
    code = "record-too-large"
    title = "The record is too large"
    status = 413


class BatchTooLargeError(InputError):
    code = "batch-too-large"
    title = "Too many items in one batch"
    status = 413
