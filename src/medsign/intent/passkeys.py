"""WebAuthn passkeys as an intention method.

A staff member registers passkeys (a phone's platform authenticator, a security key) from a
signed-in phone session; when signing, an assertion by one of them is the intention proof.

Binding. The WebAuthn challenge of an intention is not random: it is
``SHA-256(JCS([INTENT_LABEL, challenge id, binding digest]))`` (:func:`intent_challenge`).
The authenticator signs over it, so an assertion made for one intention challenge says
nothing about another one, nor about the same challenge bound to other digests. Freshness
comes from the intention challenge itself (random id, expiring, consumed once by the signing
step); the label keeps these values apart from every other SHA-256 over JCS in medsign.

Registration. The ceremony's random challenge lives on the staff session for five minutes and
is taken (cleared, by a guarded UPDATE) before the response is checked, so it serves exactly
one response, whether that response verifies or not. Attestation is not requested: medsign
trusts a passkey because a signed-in, enrolled staff member registered it, not because of its
maker.

Counters. Authenticators that count signatures must show a larger count every time; a count
that does not grow, when either the stored or the presented one is non-zero, means the key may
live on two authenticators, and the assertion is refused. Passkeys that always report 0
(synchronised passkeys do) rely on the single-use intention challenge alone.

Attempts. Every :meth:`PasskeyService.verify_assertion` leaves an ``intent_attempts`` row
(method ``passkey``, outcome ``confirmed`` or the refusing error's ``code``) and an
``intent:attempt`` event. A refusal is committed in its own transaction before the error is
raised, so a caller's rollback cannot erase it; a success is recorded in the transaction that
advances the counter.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import rfc8785
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    options_to_json_dict,
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    ClientDataType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from medsign.clock import Clock
from medsign.db import rowcount
from medsign.db.session import Database
from medsign.db.tables import IntentAttemptRow, PasskeyCredentialRow, StaffRow, StaffSessionRow
from medsign.errors import (
    ConfigurationError,
    InputError,
    MedsignError,
    NotFoundError,
    PasskeyAssertionError,
    PasskeyChallengeError,
    PasskeyClonedError,
    PasskeyDuplicateError,
    PasskeyNotRegisteredError,
    PasskeyOriginError,
    PasskeyRegistrationExpiredError,
    PasskeyRegistrationInvalidError,
    PasskeyRegistrationMissingError,
    PasskeyRevokedError,
    PasskeySignatureError,
    PasskeyUnknownError,
    PasskeyUserNotVerifiedError,
    StaffStateError,
    StateError,
)
from medsign.evidence.events import record_event
from medsign.ids import new_id
from medsign.intent.challenges import Challenge, IntentExpiredError

log = logging.getLogger(__name__)

METHOD = "passkey"
CONFIRMED = "confirmed"
INTENT_LABEL = "medsign/passkey-intent/v1"
USER_HANDLE_LABEL = "medsign/passkey-user/v1"
REGISTRATION_TTL = dt.timedelta(minutes=5)
# ES256 first: every platform authenticator has it; RS256 for Windows Hello's older keys.
ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
# Real responses are a few kilobytes; the cap keeps a hostile one from costing much to parse.
MAX_RESPONSE_CHARS = 64 * 1024
MAX_LABEL_CHARS = 128
# The column holds base64url text; WebAuthn allows ids up to 1023 bytes, real ones are short.
MAX_CREDENTIAL_ID_CHARS = 512

# What a hostile response can make the parsers (JSON, base64url, CBOR, COSE) and the
# signature check raise, besides the webauthn package's own exceptions.
_MALFORMED: tuple[type[BaseException], ...] = (
    WebAuthnException,
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    ArithmeticError,
    RecursionError,
    InvalidSignature,
    UnsupportedAlgorithm,
)


@dataclass(frozen=True)
class Passkey:
    id: str
    staff_id: str
    label: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: PasskeyCredentialRow) -> Passkey:
        return cls(
            row.id, row.staff_id, row.label, row.created_at, row.last_used_at, row.revoked_at
        )


@dataclass(frozen=True)
class _Stored:
    """The columns of one passkey an assertion is checked against."""

    id: str
    public_key: bytes
    sign_count: int


def intent_challenge(challenge: Challenge) -> bytes:
    """The WebAuthn challenge for an intention: SHA-256 over the canonical (RFC 8785) list
    ``[INTENT_LABEL, challenge.id, challenge.binding_digest]``.

    Everything an assertion confirms is inside this value: which challenge, and through its
    binding digest exactly which digests will be signed. A JSON list of strings has one
    encoding, so no other (id, binding) pair gives the same input."""
    framed = rfc8785.dumps([INTENT_LABEL, challenge.id, challenge.binding_digest])
    return hashlib.sha256(framed).digest()


def user_handle(staff_id: str) -> bytes:
    """The WebAuthn user id of a staff member: stable (the same person re-registering replaces
    a discoverable credential instead of adding one) and opaque (it is all an authenticator
    stores about the person, and it shows neither the employee number nor the internal id)."""
    return hashlib.sha256(rfc8785.dumps([USER_HANDLE_LABEL, staff_id])).digest()


def check_relying_party(rp_id: str, origins: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """Normalise the RP id and origins; ``ConfigurationError`` if a browser would refuse them.

    Browsers accept an RP id only if it is a domain (never an IP address) equal to, or a
    registrable suffix of, the page's host, on https (http only on localhost)."""
    rp = rp_id.strip().lower()
    if not rp or "/" in rp or ":" in rp:
        raise ConfigurationError(f"passkey RP id {rp_id!r} must be a bare domain name")
    try:
        ipaddress.ip_address(rp)
    except ValueError:
        pass
    else:
        raise ConfigurationError("a passkey RP id cannot be an IP address; use a domain name")
    if not origins:
        raise ConfigurationError("passkeys need at least one allowed origin")
    normalised = []
    for origin in origins:
        parts = urlsplit(origin.strip().rstrip("/").lower())
        host = parts.hostname or ""
        local = host == "localhost" or host.endswith(".localhost")
        if (
            parts.scheme not in ("https", "http")
            or (parts.scheme == "http" and not local)
            or parts.path
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise ConfigurationError(
                f"passkey origin {origin!r} must be https://host[:port] (http only on localhost)"
            )
        if host != rp and not host.endswith("." + rp):
            raise ConfigurationError(f"passkey origin {origin!r} is not within RP id {rp!r}")
        normalised.append(f"{parts.scheme}://{parts.netloc}")
    return rp, tuple(dict.fromkeys(normalised))


class PasskeyService:
    """Register, list and revoke passkeys; verify assertions as intention proofs.

    ``rp_id`` is the domain the passkeys are scoped to (the host of the signing pages, or a
    parent domain of it); ``origins`` are the exact page origins (``https://host[:port]``)
    allowed to use them."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        rp_id: str,
        rp_name: str,
        origins: Sequence[str],
    ) -> None:
        if not rp_name.strip():
            raise ConfigurationError("passkeys need a relying-party name")
        self._database = database
        self._clock = clock
        self.rp_id, self.origins = check_relying_party(rp_id, origins)
        self.rp_name = rp_name.strip()
        self._rp_id_hash = hashlib.sha256(self.rp_id.encode("utf-8")).digest()

    # -- registration ------------------------------------------------------------------------

    def registration_options(self, session_id: str, staff_id: str) -> dict[str, Any]:
        """Start registering a passkey on an open staff session; returns the JSON form of
        ``PublicKeyCredentialCreationOptions``::

            {"rp": {"name": str, "id": str},
             "user": {"id": b64url, "name": str, "displayName": str},
             "challenge": b64url,
             "pubKeyCredParams": [{"type": "public-key", "alg": -7},
                                  {"type": "public-key", "alg": -257}],
             "timeout": 300000,
             "excludeCredentials": [{"id": b64url, "type": "public-key",
                                     "transports": [str, ...]  # only when known
                                     }, ...],
             "authenticatorSelection": {"residentKey": "preferred",
                                        "requireResidentKey": false,
                                        "userVerification": "required"},
             "attestation": "none"}

        ``b64url`` is unpadded base64url: the page decodes ``challenge``, ``user.id`` and each
        ``excludeCredentials[].id`` to an ArrayBuffer before
        ``navigator.credentials.create({publicKey})``. A new call replaces the pending
        challenge of the session."""
        now = self._clock.now()
        challenge = secrets.token_bytes(32)
        with self._database.session() as session:
            row = self._staff_session(session, session_id, staff_id, now)
            staff = self._active_staff(session, staff_id)
            # The account chooser shows these; HIS always sends a name, the employee number
            # only stands in so that a record without one cannot break registration.
            shown = staff.name.strip() or staff.employee_no
            options = generate_registration_options(
                rp_id=self.rp_id,
                rp_name=self.rp_name,
                user_id=user_handle(staff_id),
                user_name=shown,
                user_display_name=shown,
                challenge=challenge,
                timeout=_milliseconds(REGISTRATION_TTL),
                attestation=AttestationConveyancePreference.NONE,
                authenticator_selection=AuthenticatorSelectionCriteria(
                    resident_key=ResidentKeyRequirement.PREFERRED,
                    user_verification=UserVerificationRequirement.REQUIRED,
                ),
                exclude_credentials=self._descriptors(session, staff_id),
                supported_pub_key_algs=ALGORITHMS,
            )
            row.webauthn_challenge = bytes_to_base64url(challenge)
            row.webauthn_challenge_expires_at = now + REGISTRATION_TTL
        return options_to_json_dict(options)

    def finish_registration(
        self, session_id: str, staff_id: str, credential: dict[str, Any] | str, *, label: str
    ) -> Passkey:
        """Verify the page's ``PublicKeyCredential`` (its JSON form: ``id``, ``rawId``,
        ``type``, ``response.clientDataJSON``, ``response.attestationObject`` and optionally
        ``response.transports``) against the session's pending challenge, and store the
        passkey. The challenge is used up by this call whatever its outcome."""
        label = _clean_label(label)
        now = self._clock.now()
        expected, deadline = self._take_challenge(session_id, staff_id, now)
        if deadline <= now:
            raise PasskeyRegistrationExpiredError(
                f"the passkey registration on session {session_id} expired"
            )
        try:
            parsed = parse_registration_credential_json(_json_object(credential))
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=expected,
                expected_rp_id=self.rp_id,
                expected_origin=list(self.origins),
                require_user_presence=True,
                require_user_verification=True,
                supported_pub_key_algs=ALGORITHMS,
            )
        except _MALFORMED as exc:
            raise PasskeyRegistrationInvalidError(
                "the passkey registration does not verify"
            ) from exc
        credential_id = bytes_to_base64url(verified.credential_id)
        if len(credential_id) > MAX_CREDENTIAL_ID_CHARS:
            raise PasskeyRegistrationInvalidError("the passkey's credential id is too long")
        transports = [t.value for t in _transports(parsed.response.transports or [])]
        with self._database.session() as session:
            self._active_staff(session, staff_id)
            taken = session.scalar(
                select(PasskeyCredentialRow.id).where(
                    PasskeyCredentialRow.credential_id == credential_id
                )
            )
            if taken is not None:
                raise PasskeyDuplicateError("this passkey is already registered")
            row = PasskeyCredentialRow(
                id=new_id("pk"),
                staff_id=staff_id,
                credential_id=credential_id,
                public_key=verified.credential_public_key,
                sign_count=verified.sign_count,
                label=label,
                transports=json.dumps(transports),
                created_at=now,
                last_used_at=None,
                revoked_at=None,
            )
            session.add(row)
            try:
                session.flush()
            except IntegrityError as exc:  # the same passkey registered at the same moment
                raise PasskeyDuplicateError("this passkey is already registered") from exc
            record_event(
                session,
                now,
                "passkey:register",
                staff_id=staff_id,
                passkey_id=row.id,
                session_id=session_id,
                credential_sha256=hashlib.sha256(verified.credential_id).hexdigest(),
            )
            return Passkey.from_row(row)

    def _take_challenge(
        self, session_id: str, staff_id: str, now: dt.datetime
    ) -> tuple[bytes, dt.datetime]:
        """Remove the pending registration challenge and return it with its deadline.

        Committed before the response is looked at, so the challenge serves one response
        only, whatever that response turns out to be."""
        with self._database.session() as session:
            row = self._staff_session(session, session_id, staff_id, now)
            self._active_staff(session, staff_id)
            pending, deadline = row.webauthn_challenge, row.webauthn_challenge_expires_at
            if pending is None or deadline is None:
                raise PasskeyRegistrationMissingError(
                    f"no passkey registration is pending on session {session_id}"
                )
            # Guarded on the value read: of two responses racing for one challenge, one wins.
            result = session.execute(
                update(StaffSessionRow)
                .where(
                    StaffSessionRow.id == session_id,
                    StaffSessionRow.webauthn_challenge == pending,
                )
                .values(webauthn_challenge=None, webauthn_challenge_expires_at=None)
                .execution_options(synchronize_session=False)
            )
            if rowcount(result) != 1:
                raise PasskeyRegistrationMissingError(
                    f"the passkey registration on session {session_id} was already answered"
                )
        return base64url_to_bytes(pending), deadline

    def list_passkeys(self, staff_id: str) -> list[Passkey]:
        """Every passkey of the staff member, revoked ones included, oldest first."""
        with self._database.session() as session:
            rows = session.scalars(
                select(PasskeyCredentialRow)
                .where(PasskeyCredentialRow.staff_id == staff_id)
                .order_by(PasskeyCredentialRow.created_at, PasskeyCredentialRow.id)
            ).all()
            return [Passkey.from_row(row) for row in rows]

    def revoke(self, staff_id: str, passkey_id: str, *, actor: str) -> Passkey:
        """Revoke a passkey for good: no assertion by it verifies from now on."""
        now = self._clock.now()
        with self._database.session() as session:
            row = session.get(PasskeyCredentialRow, passkey_id)
            if row is None or row.staff_id != staff_id:
                raise NotFoundError(f"no passkey {passkey_id}")
            # Guarded, so two revocations at once cannot both report success.
            result = session.execute(
                update(PasskeyCredentialRow)
                .where(
                    PasskeyCredentialRow.id == passkey_id,
                    PasskeyCredentialRow.revoked_at.is_(None),
                )
                .values(revoked_at=now)
                .execution_options(synchronize_session=False)
            )
            if rowcount(result) != 1:
                raise StateError(f"passkey {passkey_id} is already revoked")
            session.refresh(row)
            record_event(
                session, now, "passkey:revoke", staff_id=staff_id, passkey_id=row.id, actor=actor
            )
            return Passkey.from_row(row)

    # -- intention ---------------------------------------------------------------------------

    intent_challenge = staticmethod(intent_challenge)

    def authentication_options(self, challenge: Challenge) -> dict[str, Any]:
        """The JSON form of ``PublicKeyCredentialRequestOptions`` for an intention::

            {"challenge": b64url,          # intent_challenge(challenge)
             "timeout": int,               # ms left before the intention challenge expires
             "rpId": str,
             "allowCredentials": [{"id": b64url, "type": "public-key",
                                   "transports": [str, ...]  # only when known
                                   }, ...],
             "userVerification": "required"}

        The page decodes ``challenge`` and each ``allowCredentials[].id`` before
        ``navigator.credentials.get({publicKey})``."""
        now = self._clock.now()
        if challenge.expires_at <= now:
            raise IntentExpiredError(f"challenge {challenge.id} expired")
        with self._database.session() as session:
            self._active_staff(session, challenge.staff_id)
            allowed = self._descriptors(session, challenge.staff_id)
        if not allowed:
            raise PasskeyNotRegisteredError(
                f"staff member {challenge.staff_id} has no active passkey",
                public="no passkey is registered: register one first",
            )
        options = generate_authentication_options(
            rp_id=self.rp_id,
            challenge=intent_challenge(challenge),
            timeout=max(1, _milliseconds(challenge.expires_at - now)),
            allow_credentials=allowed,
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return options_to_json_dict(options)

    def verify_assertion(
        self, challenge: Challenge, assertion: dict[str, Any] | str, *, client: str
    ) -> None:
        """Return if ``assertion`` (the JSON form of the page's ``PublicKeyCredential``:
        ``id``, ``rawId``, ``type``, ``response.clientDataJSON``,
        ``response.authenticatorData``, ``response.signature``, ``response.userHandle``)
        is a user-verified assertion by an active passkey of ``challenge.staff_id`` over
        :func:`intent_challenge` for this relying party; raise otherwise.

        Every call is recorded (see the module documentation)."""
        now = self._clock.now()
        try:
            parsed = _parse_assertion(assertion)
            stored = self._find(challenge, parsed, now)
        except MedsignError as exc:
            self._record(challenge, exc.code, client, None)
            raise
        try:
            new_count = self._check(challenge, parsed, stored)
        except MedsignError as exc:
            self._record(challenge, exc.code, client, stored.id)
            raise
        self._advance(challenge, stored, new_count, now, client)

    # The two methods the signing workflow calls on an intention method.

    def begin(self, challenge: Challenge) -> None:
        """Nothing to send: the page asks for :meth:`authentication_options` itself."""

    def check(self, challenge: Challenge, secret: str, *, client: str) -> None:
        """``secret`` is the assertion's JSON text."""
        self.verify_assertion(challenge, secret, client=client)

    # -- internals ---------------------------------------------------------------------------

    def _staff_session(
        self, session: Session, session_id: str, staff_id: str, now: dt.datetime
    ) -> StaffSessionRow:
        row = session.get(StaffSessionRow, session_id)
        if (
            row is None
            or row.staff_id != staff_id
            or row.revoked_at is not None
            or row.expires_at <= now
        ):
            raise NotFoundError(f"no open session {session_id} of staff member {staff_id}")
        return row

    @staticmethod
    def _active_staff(session: Session, staff_id: str) -> StaffRow:
        staff = session.get(StaffRow, staff_id)
        if staff is None:
            raise NotFoundError(f"no staff member {staff_id}")
        if staff.state != "active":
            raise StaffStateError(f"staff member is {staff.state}")
        return staff

    @staticmethod
    def _descriptors(session: Session, staff_id: str) -> list[PublicKeyCredentialDescriptor]:
        rows = session.scalars(
            select(PasskeyCredentialRow)
            .where(
                PasskeyCredentialRow.staff_id == staff_id,
                PasskeyCredentialRow.revoked_at.is_(None),
            )
            .order_by(PasskeyCredentialRow.created_at, PasskeyCredentialRow.id)
        ).all()
        return [
            PublicKeyCredentialDescriptor(
                id=base64url_to_bytes(row.credential_id),
                transports=_transports(json.loads(row.transports)) or None,
            )
            for row in rows
        ]

    def _find(
        self, challenge: Challenge, credential: AuthenticationCredential, now: dt.datetime
    ) -> _Stored:
        if challenge.expires_at <= now:
            raise IntentExpiredError(f"challenge {challenge.id} expired")
        with self._database.session() as session:
            self._active_staff(session, challenge.staff_id)
            row = session.scalars(
                select(PasskeyCredentialRow).where(
                    PasskeyCredentialRow.credential_id == bytes_to_base64url(credential.raw_id)
                )
            ).one_or_none()
            # Someone else's passkey is reported as unknown: the refusal must not tell
            # the caller that the credential exists, or whose it is.
            if row is None or row.staff_id != challenge.staff_id:
                raise PasskeyUnknownError("the passkey is not registered to the signer")
            if row.revoked_at is not None:
                raise PasskeyRevokedError(f"passkey {row.id} was revoked")
            handle = credential.response.user_handle
            if handle is not None and handle != user_handle(challenge.staff_id):
                raise PasskeyAssertionError(f"passkey {row.id} answered for another user")
            return _Stored(row.id, row.public_key, row.sign_count)

    def _check(
        self, challenge: Challenge, credential: AuthenticationCredential, stored: _Stored
    ) -> int:
        """Verify the assertion; returns its signature count.

        The webauthn package raises one exception type whatever failed, so the checks whose
        cause matters (to the signer, and in the attempt record) are made here first on the
        parsed response; the package then repeats them and checks the signature."""
        expected = intent_challenge(challenge)
        response = credential.response
        try:
            client_data = parse_client_data_json(response.client_data_json)
            authenticator_data = parse_authenticator_data(response.authenticator_data)
        except _MALFORMED as exc:
            raise PasskeyAssertionError("the passkey assertion is malformed") from exc
        if client_data.type != ClientDataType.WEBAUTHN_GET:
            raise PasskeyAssertionError("the response is not an assertion (webauthn.get)")
        if client_data.challenge != expected:
            raise PasskeyChallengeError(f"the assertion was not made for challenge {challenge.id}")
        # crossOrigin: made inside a frame of another site, which may have shown anything.
        if client_data.origin not in self.origins or client_data.cross_origin:
            raise PasskeyOriginError("the assertion was made on another web origin")
        if authenticator_data.rp_id_hash != self._rp_id_hash:
            raise PasskeyOriginError("the assertion was made for another relying party")
        if not (authenticator_data.flags.up and authenticator_data.flags.uv):
            raise PasskeyUserNotVerifiedError("the authenticator did not verify the user")
        try:
            # The stored count is not handed over: the package would refuse a stale count
            # before checking the signature, and under the same exception as a forgery.
            # Compared below, after the signature, only a genuinely signed assertion can
            # be called a clone.
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=expected,
                expected_rp_id=self.rp_id,
                expected_origin=list(self.origins),
                credential_public_key=stored.public_key,
                credential_current_sign_count=0,
                require_user_verification=True,
            )
        except _MALFORMED as exc:
            raise PasskeySignatureError(f"the signature of passkey {stored.id} fails") from exc
        count = verified.new_sign_count
        if (count or stored.sign_count) and count <= stored.sign_count:
            log.warning(
                "passkey signature count did not increase",
                extra={"passkey_id": stored.id, "staff_id": challenge.staff_id},
            )
            raise PasskeyClonedError(
                f"passkey {stored.id} presented count {count} after {stored.sign_count}",
                public="the passkey may have been copied; use another method and tell the"
                " administrator",
            )
        return count

    def _advance(
        self, challenge: Challenge, stored: _Stored, count: int, now: dt.datetime, client: str
    ) -> None:
        with self._database.session() as session:
            # Guarded on the count that was checked and on the passkey still being active:
            # of two assertions presented at once only one advances the counter, and a
            # revocation that committed meanwhile wins.
            result = session.execute(
                update(PasskeyCredentialRow)
                .where(
                    PasskeyCredentialRow.id == stored.id,
                    PasskeyCredentialRow.revoked_at.is_(None),
                    PasskeyCredentialRow.sign_count == stored.sign_count,
                )
                .values(sign_count=count, last_used_at=now)
                .execution_options(synchronize_session=False)
            )
            if rowcount(result) == 1:
                self._record_in(session, challenge, CONFIRMED, client, stored.id)
                return
            revoked = session.scalar(
                select(PasskeyCredentialRow.revoked_at).where(PasskeyCredentialRow.id == stored.id)
            )
            error: MedsignError = (
                PasskeyRevokedError(f"passkey {stored.id} was revoked")
                if revoked is not None
                else PasskeyClonedError(f"passkey {stored.id} was used concurrently")
            )
            self._record_in(session, challenge, error.code, client, stored.id)
        raise error

    def _record(
        self, challenge: Challenge, outcome: str, client: str, passkey_id: str | None
    ) -> None:
        with self._database.session() as session:
            self._record_in(session, challenge, outcome, client, passkey_id)

    def _record_in(
        self,
        session: Session,
        challenge: Challenge,
        outcome: str,
        client: str,
        passkey_id: str | None,
    ) -> None:
        now = self._clock.now()
        session.add(
            IntentAttemptRow(
                challenge_id=challenge.id,
                staff_id=challenge.staff_id,
                method=METHOD,
                outcome=outcome,
                client=client[:200],
                at=now,
            )
        )
        record_event(
            session,
            now,
            "intent:attempt",
            staff_id=challenge.staff_id,
            method=METHOD,
            challenge_id=challenge.id,
            passkey_id=passkey_id,
            outcome=outcome,
        )


def _json_object(value: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or len(value) > MAX_RESPONSE_CHARS:
        raise ValueError("expected a JSON object of at most 64 KiB")
    loaded: Any = json.loads(value)
    if not isinstance(loaded, dict):
        raise ValueError("expected a JSON object")
    return loaded


def _parse_assertion(assertion: dict[str, Any] | str) -> AuthenticationCredential:
    try:
        return parse_authentication_credential_json(_json_object(assertion))
    except _MALFORMED as exc:
        raise PasskeyAssertionError("the passkey assertion is malformed") from exc


def _transports(values: Any) -> list[AuthenticatorTransport]:
    known = {t.value: t for t in AuthenticatorTransport}
    if not isinstance(values, list):
        return []
    return [known[v] for v in dict.fromkeys(values) if isinstance(v, str) and v in known]


def _clean_label(label: str) -> str:
    label = label.strip() if isinstance(label, str) else ""
    if not label or len(label) > MAX_LABEL_CHARS or not label.isprintable():
        raise InputError(f"a passkey label is 1 to {MAX_LABEL_CHARS} printable characters")
    return label


def _milliseconds(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() * 1000)
