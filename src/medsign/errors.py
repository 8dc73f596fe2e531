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


# --- staff, enrolment, PIN and SMS codes ------------------------------------------------------


class StaffStateError(StateError):
    """The staff member is frozen or deregistered, or lacks what the operation needs."""

    code = "staff-state"
    title = "Staff member not in a usable state"


class EnrolmentClosedError(StateError):
    """The enrolment link was already used to completion, failed or was superseded."""

    code = "enrolment-closed"
    title = "Enrolment link no longer usable"


class EnrolmentExpiredError(StateError):
    code = "enrolment-expired"
    title = "Enrolment link expired"
    status = 410


class TooManyRequestsError(MedsignError):
    code = "rate-limited"
    title = "Too many requests"
    status = 429


class SMSDeliveryError(MedsignError):
    code = "sms-failed"
    title = "The SMS could not be sent"
    status = 502


class IdentityCheckError(IntentError):
    """Real-name authentication refused the name and ID number (or the face)."""

    code = "identity-check-failed"
    title = "Identity not confirmed"


class DeviceKeyError(InputError):
    code = "device-key-invalid"
    title = "The phone's key or its proof of possession is not acceptable"


class PINNotSetError(IntentError):
    code = "pin-not-set"
    title = "No signing PIN set"


class PINWrongError(IntentError):
    code = "pin-wrong"
    title = "Wrong PIN"


class PINLockedError(IntentError):
    code = "pin-locked"
    title = "PIN locked after too many wrong tries"
    status = 423


class OTPWrongError(IntentError):
    code = "otp-wrong"
    title = "Wrong code"


class OTPExpiredError(IntentError):
    code = "otp-expired"
    title = "Code expired"


class OTPExhaustedError(IntentError):
    code = "otp-exhausted"
    title = "Too many wrong codes"


class OTPUsedError(IntentError):
    code = "otp-used"
    title = "Code already used"


# --- passkeys (WebAuthn) ----------------------------------------------------------------------


class PasskeyNotRegisteredError(IntentError):
    code = "passkey-not-set"
    title = "No passkey registered"


class PasskeyUnknownError(IntentError):
    """No passkey of the signer has this credential id (another person's counts as unknown,
    so a refusal does not tell whose it is)."""

    code = "passkey-unknown"
    title = "Unknown passkey"


class PasskeyRevokedError(IntentError):
    code = "passkey-revoked"
    title = "The passkey was revoked"


class PasskeyAssertionError(IntentError):
    """The assertion is malformed or does not verify; subclasses say which check failed."""

    code = "passkey-assertion-invalid"
    title = "The passkey assertion is not valid"


class PasskeyChallengeError(PasskeyAssertionError):
    """Signed over another challenge: another intention, other digests, or a replay."""

    code = "passkey-wrong-challenge"
    title = "The passkey assertion was made for something else"


class PasskeyOriginError(PasskeyAssertionError):
    """Made on another web origin or for another relying party (RP id)."""

    code = "passkey-wrong-origin"
    title = "The passkey assertion was made for another site"


class PasskeyUserNotVerifiedError(PasskeyAssertionError):
    """The authenticator did not verify the user (no UV flag, or no UP flag)."""

    code = "passkey-user-not-verified"
    title = "The passkey did not verify the user"


class PasskeySignatureError(PasskeyAssertionError):
    code = "passkey-signature-invalid"
    title = "The passkey signature does not verify"


class PasskeyClonedError(PasskeyAssertionError):
    """The signature counter did not increase: the key may exist on two authenticators."""

    code = "passkey-cloned"
    title = "The passkey may have been cloned"


class PasskeyRegistrationMissingError(StateError):
    code = "passkey-registration-missing"
    title = "No passkey registration is pending"


class PasskeyRegistrationExpiredError(StateError):
    code = "passkey-registration-expired"
    title = "The passkey registration expired"
    status = 410


class PasskeyRegistrationInvalidError(InputError):
    code = "passkey-registration-invalid"
    title = "The passkey registration does not verify"


class PasskeyDuplicateError(StateError):
    code = "passkey-duplicate"
    title = "This passkey is already registered"


# --- applications: request authentication and state ------------------------------------------


class AuthMissingError(AccessError):
    code = "auth-missing"
    title = "Request authentication missing"


class AuthMalformedError(AccessError):
    code = "auth-malformed"
    title = "Request authentication malformed"


class AuthUnknownApplicationError(AccessError):
    code = "auth-unknown-application"
    title = "Unknown application"


class AuthStaleTimestampError(AccessError):
    code = "auth-stale-timestamp"
    title = "Request timestamp outside the allowed window"


class AuthDigestMismatchError(AccessError):
    code = "auth-digest-mismatch"
    title = "Body digest does not match the body"


class AuthSignatureError(AccessError):
    code = "auth-signature"
    title = "Request signature does not verify"


class AuthReplayedNonceError(AccessError):
    code = "auth-replayed-nonce"
    title = "Nonce already used"


class ApplicationFrozenError(ForbiddenError):
    code = "application-frozen"
    title = "Application frozen"


class ApplicationDeregisteredError(ForbiddenError):
    code = "application-deregistered"
    title = "Application deregistered"


class PayloadTooLargeError(InputError):
    code = "payload-too-large"
    title = "Request body too large"
    status = 413


# --- timestamps -------------------------------------------------------------------------------


class TimestampUnavailableError(TimestampError):
    """The TSA cannot sign now: no valid TSA certificate, or its key is unusable."""

    code = "timestamp-unavailable"
    title = "Time-stamping unavailable"
    status = 503


class ClockUntrustedError(TimestampError):
    """The clock guard refuses to stamp: the clock is known to be off (or, in strict mode,
    cannot be checked)."""

    code = "timestamp-clock-untrusted"
    title = "Time source not trusted"
    status = 503


class TimestampMediaTypeError(InputError):
    code = "timestamp-media-type"
    title = "Expected application/timestamp-query"
    status = 400
