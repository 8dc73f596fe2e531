"""The one error hierarchy.

Every failure medsign reports derives from :class:`MedsignError`. Each category carries a
stable machine-readable ``code`` and an HTTP status used by the single problem+json table in
``medsign.api.problems``. ``public_message()`` is what may be shown to a caller: it never
contains patient data, secrets or key material, so detail that helps operators goes to
``__str__`` (logged) while callers get only the public text.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MedsignError(Exception):
    """Root of every error medsign raises on purpose."""

    code: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, public: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self._public = public
        self.extra: dict[str, Any] = extra

    def public_message(self) -> str:
        """Text safe to return to a caller: by default the message itself.

        Raise sites that put sensitive values into ``message`` must pass ``public=``.
        """
        return self._public if self._public is not None else str(self)


class InputError(MedsignError):
    code = "invalid-input"
    title = "Invalid input"
    status = 422


class NotFoundError(MedsignError):
    code = "not-found"
    title = "Not found"
    status = 404


class StateError(MedsignError):
    """The operation does not fit the current state (e.g. revoking twice)."""

    code = "invalid-state"
    title = "Operation not allowed in the current state"
    status = 409


class AccessError(MedsignError):
    code = "access-denied"
    title = "Access denied"
    status = 401


class ForbiddenError(AccessError):
    code = "forbidden"
    title = "Forbidden"
    status = 403


class IntentError(MedsignError):
    code = "intent-failed"
    title = "Intention not confirmed"
    status = 403


class KeyUseError(MedsignError):
    code = "key-use-failed"
    title = "The key could not be used"
    status = 503


class KeyStoreUnavailableError(KeyUseError):
    code = "key-store-unavailable"
    title = "Key store unavailable"
    status = 503


class CertificateError(MedsignError):
    code = "certificate-error"
    title = "Certificate problem"
    status = 422


class TimestampError(MedsignError):
    code = "timestamp-error"
    title = "Timestamp problem"
    status = 502


class EvidenceError(MedsignError):
    code = "evidence-error"
    title = "Evidence problem"
    status = 500


class VerificationError(MedsignError):
    """A signature, certificate or structure did not verify."""

    code = "verification-failed"
    title = "Verification failed"
    status = 422


class ConfigurationError(MedsignError):
    code = "configuration-error"
    title = "Configuration error"
    status = 500
