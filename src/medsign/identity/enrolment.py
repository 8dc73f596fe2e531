"""Real-name authentication and enrolment of a staff member, through a one-time URL.

An application opens an enrolment for one of its organization's staff; the person opens the
URL (or scans its QR code) on their phone and walks through:

    start ─send-code─▶ code-sent ─verify-code─▶ code-verified ─confirm-identity─▶
    identity-confirmed ─pin─▶ (issuing) ─▶ done

The SMS goes to the phone number HIS registered, never to one typed on the page; the ID
number typed must equal the stored one (compared by keyed digest). Setting the PIN makes the
signing key in the key store and issues a ``staff-signing`` certificate for it.

The URL's token is 256 bits derived from the enrolment id under the data keyring's lookup key
(so the QR code can be drawn again without storing the token); the database holds only its
SHA-256. A token works while the enrolment is pending and unexpired: once it succeeds, fails
or expires it is dead.

Key generation and issuance write in their own transactions (key store, CA), so they cannot
share ours: the enrolment is first claimed (step ``issuing``, so a second PIN submission
cannot issue twice), then the key and certificate are made, then one transaction records the
key, certificate, PIN and state on the staff and enrolment rows with their evidence and
webhook. If issuance fails nothing is marked enrolled and the step returns to
``identity-confirmed``; if the final transaction fails the fresh certificate is revoked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from medsign.apps.webhooks import enqueue_webhook
from medsign.ca.authority import GOOD, HOLD, CertificateAuthority
from medsign.clock import Clock, ensure_utc
from medsign.crypto import PublicKey, SignatureEncoding, SignatureScheme, verify
from medsign.crypto.types import KeyAlgorithm
from medsign.db import rowcount
from medsign.db.session import Database
from medsign.db.tables import EnrolmentRow, OneTimeCodeRow, OrganizationRow, StaffRow
from medsign.errors import (
    ConfigurationError,
    DeviceKeyError,
    EnrolmentClosedError,
    EnrolmentExpiredError,
    IdentityCheckError,
    InputError,
    MedsignError,
    NotFoundError,
    OTPExhaustedError,
    StaffStateError,
    StateError,
    TooManyRequestsError,
)
from medsign.evidence.events import record_event
from medsign.identity.devices import DeviceBinding, PhoneSessions
from medsign.identity.providers import IdentityCheckProvider
from medsign.identity.staff import ACTIVE, StaffDirectory, normalise_national_id
from medsign.ids import new_id
from medsign.intent.otp import OneTimeCodes
from medsign.intent.pin import SigningPINs
from medsign.keys.base import KeyStore
from medsign.keys.sealing import DataSealer

log = logging.getLogger(__name__)

PENDING = "pending"
AUTHENTICATED = "authenticated"
FAILED = "failed"
EXPIRED = "expired"

START = "start"
CODE_SENT = "code-sent"
CODE_VERIFIED = "code-verified"
IDENTITY_CONFIRMED = "identity-confirmed"
ISSUING = "issuing"
DONE = "done"

ALGORITHMS = (KeyAlgorithm.SM2, KeyAlgorithm.EC_P256, KeyAlgorithm.RSA_2048)
SERVER_KEY, DEVICE_KEY = "server", "device"
TOKEN_CONTEXT = "enrolment-token"  # noqa: S105 (a context label, not a secret)
_TOKEN = re.compile(r"[0-9a-f]{64}")
RESEND_INTERVAL = dt.timedelta(seconds=60)
MAX_CODES_PER_ENROLMENT = 5
# A claimed issuance is left alone this long past expiry before a sweep may expire it.
ISSUING_GRACE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Enrolment:
    id: str
    application_id: str
    staff_id: str
    employee_no: str
    state: str
    step: str
    key_algorithm: str
    failure_reason: str | None
    expires_at: dt.datetime
    created_at: dt.datetime
    completed_at: dt.datetime | None
    certificate_id: str | None
    key_location: str = SERVER_KEY


@dataclass(frozen=True)
class EnrolmentTicket:
    """What the application receives once: the enrolment and its one-time URL."""

    enrolment: Enrolment
    url: str


@dataclass(frozen=True)
class EnrolmentView:
    """What the phone page shows: who is asked, where the code goes, which step is next."""

    enrolment_id: str
    organization: str
    name: str
    department: str
    phone_masked: str | None
    state: str
    step: str
    key_algorithm: str
    expires_at: dt.datetime
    resend_at: dt.datetime | None
    key_location: str = SERVER_KEY


@dataclass(frozen=True)
class DeviceKeyProof:
    """A phone's own P-256 key (SubjectPublicKeyInfo) and its proof of possession: an
    ECDSA-SHA256 signature (r || s, as WebCrypto makes it) over ``pop_message``."""

    public_key_der: bytes
    signature: bytes


def pop_message(enrolment_id: str, public_key_der: bytes) -> bytes:
    """What the phone signs to prove it holds the key it asks medsign to certify: bound to
    this enrolment, so a proof cannot be replayed into another one."""
    return b"medsign device key v1\x00" + enrolment_id.encode("ascii") + b"\x00" + public_key_der


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _to_domain(row: EnrolmentRow, employee_no: str) -> Enrolment:
    return Enrolment(
        id=row.id,
        application_id=row.application_id,
        staff_id=row.staff_id,
        employee_no=employee_no,
        state=row.state,
        step=row.step,
        key_algorithm=row.key_algorithm,
        failure_reason=row.failure_reason,
        expires_at=row.expires_at,
        created_at=row.created_at,
        completed_at=row.completed_at,
        certificate_id=row.certificate_id,
        key_location=row.key_location,
    )


def verify_possession(enrolment_id: str, proof: DeviceKeyProof) -> None:
    """Raise unless ``proof`` is a P-256 key that signed this enrolment's PoP message."""
    try:
        public_key = PublicKey.from_der(proof.public_key_der)
    except MedsignError as exc:
        raise DeviceKeyError("the phone's public key cannot be read") from exc
    if public_key.algorithm is not KeyAlgorithm.EC_P256:
        raise DeviceKeyError("a key held on the phone must be ECDSA P-256")
    try:
        verify(
            public_key,
            SignatureScheme.ECDSA_SHA256,
            pop_message(enrolment_id, proof.public_key_der),
            proof.signature,
            encoding=SignatureEncoding.RAW,
        )
    except MedsignError as exc:
        raise DeviceKeyError("the phone did not prove it holds this key") from exc


class EnrolmentService:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        sealer: DataSealer,
        *,
        staff: StaffDirectory,
        codes: OneTimeCodes,
        pins: SigningPINs,
        keystore: KeyStore,
        authority: CertificateAuthority,
        public_base_url: str,
        lifetime: dt.timedelta = dt.timedelta(minutes=15),
        identity_check: IdentityCheckProvider | None = None,
        devices: PhoneSessions | None = None,
    ) -> None:
        self._devices = devices
        self._database = database
        self._clock = clock
        self._sealer = sealer
        self._staff = staff
        self._codes = codes
        self._pins = pins
        self._keystore = keystore
        self._authority = authority
        self._base_url = public_base_url.rstrip("/")
        self._lifetime = lifetime
        self._identity_check = identity_check

    # -- application side -------------------------------------------------------------------

    def _token(self, enrolment_id: str) -> str:
        return self._sealer.lookup_digest(enrolment_id, context=TOKEN_CONTEXT)

    def _url(self, token: str) -> str:
        return f"{self._base_url}/m/enrol/{token}"

    def create(
        self,
        application_id: str,
        organization_id: str,
        employee_no: str,
        *,
        key_algorithm: str = KeyAlgorithm.SM2.value,
        key_location: str = SERVER_KEY,
    ) -> EnrolmentTicket:
        """Open an enrolment; earlier pending ones for the same person are superseded.

        ``key_location="device"`` has the phone make the signing key (WebCrypto P-256,
        non-extractable): medsign certifies it and never holds it."""
        try:
            algorithm = KeyAlgorithm(key_algorithm)
        except ValueError as exc:
            raise InputError(f"key algorithm {key_algorithm!r} is not offered") from exc
        if algorithm not in ALGORITHMS:
            raise InputError(f"key algorithm {key_algorithm!r} is not offered for staff keys")
        if key_location not in (SERVER_KEY, DEVICE_KEY):
            raise InputError("key location must be server or device")
        if key_location == DEVICE_KEY and algorithm is not KeyAlgorithm.EC_P256:
            # Browsers make ECDSA P-256 keys; SM2 and RSA keys stay in the key store.
            raise InputError("a key held on the phone must be ec-p256")
        if key_location == SERVER_KEY and algorithm not in self._keystore.supported_algorithms():
            raise InputError(f"the key store cannot make {algorithm} keys")
        enrolment_id = new_id("enr")
        # Before any write: the first use of the lookup key may read it in another connection.
        token = self._token(enrolment_id)
        now = self._clock.now()
        with self._database.session() as session:
            staff = session.scalar(
                select(StaffRow).where(
                    StaffRow.organization_id == organization_id,
                    StaffRow.employee_no == employee_no,
                )
            )
            if staff is None:
                raise NotFoundError(f"no staff member {employee_no} in this organization")
            if staff.state != ACTIVE:
                raise StaffStateError(f"staff member is {staff.state}")
            if staff.national_id_sealed is None or staff.phone_sealed is None:
                raise StaffStateError(
                    "real-name authentication needs the national ID number and mobile number"
                    " from HIS first"
                )
            earlier = session.scalars(
                select(EnrolmentRow)
                .where(EnrolmentRow.staff_id == staff.id, EnrolmentRow.state == PENDING)
                .with_for_update()
            ).all()
            for old in earlier:
                if old.step == ISSUING:
                    raise StateError("an enrolment of this person is being completed right now")
                self._close(session, old, EXPIRED, "superseded", employee_no)
            row = EnrolmentRow(
                id=enrolment_id,
                application_id=application_id,
                staff_id=staff.id,
                token_digest=token_digest(token),
                state=PENDING,
                step=START,
                key_algorithm=algorithm.value,
                key_location=key_location,
                failure_reason=None,
                expires_at=now + self._lifetime,
                created_at=now,
                completed_at=None,
                certificate_id=None,
            )
            session.add(row)
            session.flush()
            record_event(
                session,
                now,
                "enrolment:create",
                enrolment_id=enrolment_id,
                staff_id=staff.id,
                application_id=application_id,
                key_algorithm=algorithm.value,
                key_location=key_location,
            )
            return EnrolmentTicket(_to_domain(row, employee_no), self._url(token))

    def get(self, application_id: str, enrolment_id: str) -> Enrolment:
        """The enrolment as its application sees it (others get ``NotFoundError``)."""
        self._expire_if_due(enrolment_id)
        with self._database.session() as session:
            row = session.get(EnrolmentRow, enrolment_id)
            if row is None or row.application_id != application_id:
                raise NotFoundError(f"no enrolment {enrolment_id}")
            return _to_domain(row, self._employee_no(session, row.staff_id))

    def url(self, application_id: str, enrolment_id: str) -> str:
        """The one-time URL again (for the QR code), while it can still be used."""
        enrolment = self.get(application_id, enrolment_id)
        if enrolment.state == EXPIRED:
            raise EnrolmentExpiredError("enrolment expired")
        if enrolment.state != PENDING:
            raise EnrolmentClosedError(f"enrolment is {enrolment.state}")
        return self._url(self._token(enrolment_id))

    def expire_due(self, *, limit: int = 500) -> int:
        """Mark overdue pending enrolments expired (and tell their applications)."""
        now = self._clock.now()
        with self._database.session() as session:
            ids = session.scalars(
                select(EnrolmentRow.id)
                .where(EnrolmentRow.state == PENDING, EnrolmentRow.expires_at <= now)
                .limit(limit)
            ).all()
        return sum(1 for enrolment_id in ids if self._expire_if_due(enrolment_id))

    # -- phone side ---------------------------------------------------------------------------

    def view(self, token: str) -> EnrolmentView:
        enrolment_id = self._resolve(token)
        with self._database.session() as session:
            row = self._pending(session, enrolment_id)
            staff = session.get(StaffRow, row.staff_id)
            assert staff is not None
            organization = session.get(OrganizationRow, staff.organization_id)
            return EnrolmentView(
                enrolment_id=row.id,
                organization=organization.name if organization else "",
                name=staff.name,
                department=staff.department,
                phone_masked=staff.phone_masked,
                state=row.state,
                step=row.step,
                key_algorithm=row.key_algorithm,
                expires_at=row.expires_at,
                resend_at=self._resend_at(session, row.id),
                key_location=row.key_location,
            )

    def send_code(self, token: str, *, client: str = "") -> EnrolmentView:
        """Text a code to the registered phone (at most once a minute, five times in all)."""
        enrolment_id = self._resolve(token)
        now = self._clock.now()
        with self._database.session() as session:
            row = self._pending(session, enrolment_id)
            self._require_step(row, START, CODE_SENT)
            self._require_active_staff(session, row.staff_id)
            sent = session.scalar(
                select(func.count())
                .select_from(OneTimeCodeRow)
                .where(OneTimeCodeRow.subject_id == row.id)
            )
            if int(sent or 0) >= MAX_CODES_PER_ENROLMENT:
                raise TooManyRequestsError("no more codes for this enrolment; ask for a new link")
            resend_at = self._resend_at(session, row.id)
            if resend_at is not None and resend_at > now:
                raise TooManyRequestsError(
                    "a code was sent less than a minute ago",
                    retry_after=int((resend_at - now).total_seconds()) + 1,
                )
            staff_id = row.staff_id
        self._codes.issue_code(staff_id, "enrolment", enrolment_id)
        self._advance(enrolment_id, START, CODE_SENT, now, "enrolment:send-code", staff_id=staff_id)
        return self.view(token)

    def verify_code(self, token: str, code: str, *, client: str = "") -> EnrolmentView:
        """Check the SMS code; the fifth wrong one fails the enrolment."""
        enrolment_id = self._resolve(token)
        with self._database.session() as session:
            row = self._pending(session, enrolment_id)
            self._require_step(row, CODE_SENT)
            staff_id = row.staff_id
        try:
            self._codes.verify_code(staff_id, "enrolment", enrolment_id, code, client=client)
        except OTPExhaustedError:
            self._fail(enrolment_id, "too-many-wrong-codes")
            raise
        self._advance(
            enrolment_id,
            CODE_SENT,
            CODE_VERIFIED,
            self._clock.now(),
            "enrolment:verify-code",
            staff_id=staff_id,
        )
        return self.view(token)

    def confirm_identity(self, token: str, national_id: str) -> EnrolmentView:
        """The person types their ID number; it must be the one HIS registered."""
        enrolment_id = self._resolve(token)
        candidate = normalise_national_id(national_id)
        with self._database.session() as session:
            row = self._pending(session, enrolment_id)
            self._require_step(row, CODE_VERIFIED)
            staff = self._require_active_staff(session, row.staff_id)
            staff_id, name = staff.id, staff.name
        if not self._staff.national_id_matches(staff_id, candidate):
            self._fail(enrolment_id, "national-id-mismatch")
            raise IdentityCheckError(
                "national ID number does not match",
                public="the ID number does not match the one registered by the hospital",
            )
        if self._identity_check is not None:
            try:
                self._identity_check.verify_identity(name, candidate)
            except IdentityCheckError:
                self._fail(enrolment_id, "identity-check-refused")
                raise
        self._advance(
            enrolment_id,
            CODE_VERIFIED,
            IDENTITY_CONFIRMED,
            self._clock.now(),
            "enrolment:confirm-identity",
            staff_id=staff_id,
            provider=self._identity_check.name if self._identity_check else None,
        )
        return self.view(token)

    def set_pin(self, token: str, pin: str) -> Enrolment:
        """Choose the signing PIN; makes the key and certificate and completes enrolment."""
        return self._finish(token, pin, bind_label=None, device_key=None)[0]

    def finish_on_phone(
        self, token: str, pin: str, *, label: str, device_key: DeviceKeyProof | None = None
    ) -> tuple[Enrolment, DeviceBinding]:
        """``set_pin``, and the phone that did it becomes the clinician's device (signed in),
        in the same transaction that completes the enrolment. For a ``device`` enrolment the
        phone's own key (with its proof of possession) is certified instead of making one."""
        enrolment, binding = self._finish(token, pin, bind_label=label, device_key=device_key)
        assert binding is not None
        return enrolment, binding

    def _finish(
        self,
        token: str,
        pin: str,
        *,
        bind_label: str | None,
        device_key: DeviceKeyProof | None,
    ) -> tuple[Enrolment, DeviceBinding | None]:
        enrolment_id = self._resolve(token)
        hashed = self._pins.hash_pin(pin)  # refuses trivial PINs before anything happens
        now = self._clock.now()
        with self._database.session() as session:
            row = self._pending(session, enrolment_id)
            self._require_step(row, IDENTITY_CONFIRMED)
            if row.key_location == DEVICE_KEY:
                if device_key is None or bind_label is None:
                    raise InputError("this enrolment needs the key made on the phone")
                verify_possession(enrolment_id, device_key)
            elif device_key is not None:
                raise InputError("this enrolment keeps the key in medsign's key store")
            staff = self._require_active_staff(session, row.staff_id)
            claimed = session.execute(
                update(EnrolmentRow)
                .where(
                    EnrolmentRow.id == enrolment_id,
                    EnrolmentRow.state == PENDING,
                    EnrolmentRow.step == IDENTITY_CONFIRMED,
                )
                .values(step=ISSUING)
                .execution_options(synchronize_session=False)
            )
            if rowcount(claimed) != 1:
                raise StateError("this enrolment is already being completed")
            organization = session.get(OrganizationRow, staff.organization_id)
            subject = {
                "CN": staff.name,
                "serialNumber": staff.employee_no,
                "O": organization.name if organization else "",
                "OU": staff.department,
                "title": staff.title,
                "C": "CN",
            }
            staff_id, employee_no = staff.id, staff.employee_no
            algorithm = KeyAlgorithm(row.key_algorithm)
            application_id = row.application_id
        actor = f"enrolment:{enrolment_id}"
        subject = {k: v for k, v in subject.items() if v}
        key_id: str | None = None
        try:
            if device_key is not None:
                certificate = self._authority.issue_for_public_key(
                    device_key.public_key_der, subject, "staff-signing", actor=actor
                )
            else:
                key = self._keystore.generate(algorithm, label=f"staff:{staff_id}")
                key_id = key.id
                certificate = self._authority.issue_for_key(
                    key.id, subject, "staff-signing", actor=actor
                )
        except Exception as exc:
            self._release_claim(enrolment_id, staff_id, exc)
            raise
        binding: DeviceBinding | None = None
        try:
            with self._database.session() as session:
                previous = self._complete(
                    session,
                    enrolment_id=enrolment_id,
                    staff_id=staff_id,
                    employee_no=employee_no,
                    application_id=application_id,
                    key_id=key_id,
                    certificate_id=certificate.id,
                    serial=certificate.serial_hex,
                    hashed_pin=hashed,
                    now=now,
                )
                if bind_label is not None:
                    if self._devices is None:
                        raise ConfigurationError("phone binding is not configured")
                    binding = self._devices.bind_in(
                        session,
                        now,
                        staff_id,
                        label=bind_label,
                        enrolment_id=enrolment_id,
                        key_mode=DEVICE_KEY if device_key else SERVER_KEY,
                        public_key_der=device_key.public_key_der if device_key else None,
                        certificate_id=certificate.id if device_key else None,
                    )
                    if device_key is not None:
                        session.execute(
                            update(StaffRow)
                            .where(StaffRow.id == staff_id)
                            .values(signing_device_id=binding.device_id)
                            .execution_options(synchronize_session=False)
                        )
        except Exception:
            log.exception("enrolment could not be recorded; revoking the fresh certificate")
            self._authority.revoke(certificate.serial_hex, "cessationOfOperation", actor=actor)
            self._release_claim(enrolment_id, staff_id, None)
            raise
        if previous is not None:
            self._supersede(previous, actor)
        with self._database.session() as session:
            done = session.get(EnrolmentRow, enrolment_id)
            assert done is not None
            return _to_domain(done, employee_no), binding

    def _complete(
        self,
        session: Session,
        *,
        enrolment_id: str,
        staff_id: str,
        employee_no: str,
        application_id: str,
        key_id: str | None,
        certificate_id: str,
        serial: str,
        hashed_pin: str,
        now: dt.datetime,
    ) -> str | None:
        row = session.scalar(
            select(EnrolmentRow).where(EnrolmentRow.id == enrolment_id).with_for_update()
        )
        if row is None or row.state != PENDING or row.step != ISSUING:
            raise StateError("enrolment was closed while the certificate was being issued")
        staff = session.scalar(select(StaffRow).where(StaffRow.id == staff_id).with_for_update())
        if staff is None or staff.state != ACTIVE:
            raise StaffStateError("staff member was frozen or deregistered during enrolment")
        previous = staff.certificate_id
        staff.key_id = key_id
        staff.certificate_id = certificate_id
        staff.signing_device_id = None  # set by the binding when the phone holds the key
        staff.enrolled_at = now
        self._pins.store_hash(session, staff_id, hashed_pin, actor=f"enrolment:{enrolment_id}")
        row.state = AUTHENTICATED
        row.step = DONE
        row.completed_at = now
        row.certificate_id = certificate_id
        record_event(
            session,
            now,
            "enrolment:complete",
            enrolment_id=enrolment_id,
            staff_id=staff_id,
            key_id=key_id,
            certificate_id=certificate_id,
            replaces_certificate_id=previous,
        )
        enqueue_webhook(
            session,
            now,
            application_id,
            "enrolment:completed",
            enrolment_id,
            {
                "enrolment_id": enrolment_id,
                "employee_no": employee_no,
                "staff_id": staff_id,
                "state": AUTHENTICATED,
                "certificate_id": certificate_id,
                "certificate_serial": serial.upper(),
                "key_algorithm": row.key_algorithm,
            },
        )
        return previous if previous != certificate_id else None

    def _supersede(self, certificate_id: str, actor: str) -> None:
        """Revoke the certificate an earlier enrolment produced (reason superseded)."""
        try:
            old = self._authority.get_by_id(certificate_id)
            if old.status in (GOOD, HOLD):
                self._authority.revoke(old.serial_hex, "superseded", actor=actor)
        except MedsignError:
            # The new enrolment stands; an operator can revoke by hand. Logged, not raised.
            log.exception("could not revoke the superseded certificate")

    def _release_claim(self, enrolment_id: str, staff_id: str, error: Exception | None) -> None:
        self._advance(
            enrolment_id,
            ISSUING,
            IDENTITY_CONFIRMED,
            self._clock.now(),
            "enrolment:issue-fail",
            staff_id=staff_id,
            error_code=error.code if isinstance(error, MedsignError) else "internal",
        )

    # -- helpers ------------------------------------------------------------------------------

    def _advance(
        self,
        enrolment_id: str,
        from_step: str,
        to_step: str,
        now: dt.datetime,
        event: str,
        **fields: str | None,
    ) -> None:
        """Move the enrolment one step (only from ``from_step``) and record the event."""
        with self._database.session() as session:
            session.execute(
                update(EnrolmentRow)
                .where(EnrolmentRow.id == enrolment_id, EnrolmentRow.step == from_step)
                .values(step=to_step)
                .execution_options(synchronize_session=False)
            )
            record_event(session, now, event, enrolment_id=enrolment_id, **fields)

    def _resolve(self, token: str) -> str:
        """The enrolment id a token opens; unknown tokens are simply not found."""
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise NotFoundError("no such enrolment link")
        with self._database.session() as session:
            enrolment_id = session.scalar(
                select(EnrolmentRow.id).where(EnrolmentRow.token_digest == token_digest(token))
            )
        if enrolment_id is None:
            raise NotFoundError("no such enrolment link")
        self._expire_if_due(enrolment_id)
        return enrolment_id

    def _pending(self, session: Session, enrolment_id: str) -> EnrolmentRow:
        row = session.get(EnrolmentRow, enrolment_id)
        if row is None:
            raise NotFoundError("no such enrolment link")
        if row.state == EXPIRED:
            raise EnrolmentExpiredError("enrolment link expired", reason=row.failure_reason or "")
        if row.state != PENDING:
            raise EnrolmentClosedError(f"enrolment is {row.state}", state=row.state)
        return row

    @staticmethod
    def _require_step(row: EnrolmentRow, *steps: str) -> None:
        if row.step not in steps:
            raise StateError(
                f"enrolment is at step {row.step}; this needs {' or '.join(steps)}",
                step=row.step,
            )

    @staticmethod
    def _require_active_staff(session: Session, staff_id: str) -> StaffRow:
        staff = session.get(StaffRow, staff_id)
        if staff is None or staff.state != ACTIVE:
            raise StaffStateError("staff member is frozen or deregistered")
        return staff

    @staticmethod
    def _resend_at(session: Session, enrolment_id: str) -> dt.datetime | None:
        last = session.scalar(
            select(func.max(OneTimeCodeRow.created_at)).where(
                OneTimeCodeRow.subject_id == enrolment_id
            )
        )
        if last is None:
            return None
        return ensure_utc(last) + RESEND_INTERVAL

    @staticmethod
    def _employee_no(session: Session, staff_id: str) -> str:
        return session.scalar(select(StaffRow.employee_no).where(StaffRow.id == staff_id)) or ""

    def _expire_if_due(self, enrolment_id: str) -> bool:
        now = self._clock.now()
        with self._database.session() as session:
            row = session.get(EnrolmentRow, enrolment_id)
            if row is None or row.state != PENDING or row.expires_at > now:
                return False
            if row.step == ISSUING and row.expires_at + ISSUING_GRACE > now:
                return False
            self._close(session, row, EXPIRED, "expired", self._employee_no(session, row.staff_id))
            return True

    def _fail(self, enrolment_id: str, reason: str) -> None:
        with self._database.session() as session:
            row = session.scalar(
                select(EnrolmentRow).where(EnrolmentRow.id == enrolment_id).with_for_update()
            )
            if row is None or row.state != PENDING:
                return
            self._close(session, row, FAILED, reason, self._employee_no(session, row.staff_id))

    def _close(
        self, session: Session, row: EnrolmentRow, state: str, reason: str, employee_no: str
    ) -> None:
        now = self._clock.now()
        row.state = state
        row.failure_reason = reason
        row.completed_at = now
        session.flush()
        record_event(
            session,
            now,
            "enrolment:fail" if state == FAILED else "enrolment:expire",
            enrolment_id=row.id,
            staff_id=row.staff_id,
            reason=reason,
        )
        payload: dict[str, Any] = {
            "enrolment_id": row.id,
            "employee_no": employee_no,
            "staff_id": row.staff_id,
            "state": state,
            "reason": reason,
        }
        enqueue_webhook(session, now, row.application_id, "enrolment:failed", row.id, payload)
