"""Phones bound to staff members, and the sessions a clinician opens on them.

A phone becomes a *device* when it completes enrolment: it receives a long-lived device
token (an HttpOnly cookie). A *session* is opened on a device either at the end of enrolment
or by unlocking the device with the signing PIN (or a passkey); it lasts at most a shift and
dies earlier when unused. A session token alone is useless on another phone: every request
must carry the device token it was opened on, so a copied session cookie does not travel.

Only SHA-256 digests of both tokens are stored. Revoking a device ends its sessions; a
revoked or deregistered staff member's sessions stop working at once, because every
authentication reads the staff row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from medsign.ca.authority import CertificateAuthority
from medsign.clock import Clock
from medsign.db.session import Database
from medsign.db.tables import StaffDeviceRow, StaffRow, StaffSessionRow
from medsign.errors import AccessError, InputError, NotFoundError
from medsign.evidence import record_event
from medsign.identity.staff import ACTIVE
from medsign.ids import new_id

SERVER, DEVICE = "server", "device"


class PhoneSessionError(AccessError):
    code = "phone-session-invalid"
    title = "Sign in on this phone again"


class DeviceUnknownError(AccessError):
    code = "phone-device-unknown"
    title = "This phone is not enrolled"


@dataclass(frozen=True)
class Device:
    id: str
    staff_id: str
    label: str
    key_mode: str
    created_at: dt.datetime
    last_seen_at: dt.datetime
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class PhoneSession:
    id: str
    staff_id: str
    device_id: str
    method: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class OpenedSession:
    token: str
    session: PhoneSession


@dataclass(frozen=True)
class DeviceBinding:
    """A freshly bound phone: its id, its token (shown once, for the cookie), its session."""

    device_id: str
    device_token: str
    session: OpenedSession


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _device(row: StaffDeviceRow) -> Device:
    return Device(
        row.id,
        row.staff_id,
        row.label,
        row.key_mode,
        row.created_at,
        row.last_seen_at,
        row.revoked_at,
    )


def clean_label(user_agent: str) -> str:
    """A short, printable description of the phone (from its User-Agent)."""
    printable = "".join(c for c in user_agent if c.isprintable())
    return (printable.strip() or "phone")[:128]


class PhoneSessions:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        lifetime: dt.timedelta = dt.timedelta(hours=8),
        idle: dt.timedelta = dt.timedelta(minutes=60),
        authority: CertificateAuthority | None = None,
    ) -> None:
        self._authority = authority
        if idle > lifetime:
            raise InputError("a phone session's idle timeout cannot exceed its lifetime")
        self._database = database
        self._clock = clock
        self.lifetime = lifetime
        self.idle = idle

    # -- devices -----------------------------------------------------------------------------

    def bind_device(
        self,
        staff_id: str,
        *,
        label: str,
        enrolment_id: str | None,
    ) -> DeviceBinding:
        """Register a phone (with a server-held key) and open its first session."""
        with self._database.session() as session:
            return self.bind_in(
                session, self._clock.now(), staff_id, label=label, enrolment_id=enrolment_id
            )

    def bind_in(
        self,
        session: Session,
        now: dt.datetime,
        staff_id: str,
        *,
        label: str,
        enrolment_id: str | None,
        key_mode: str = SERVER,
        public_key_der: bytes | None = None,
        certificate_id: str | None = None,
    ) -> DeviceBinding:
        """``bind_device`` in the caller's transaction (enrolment completes in the same one)."""
        if key_mode not in (SERVER, DEVICE) or (key_mode == DEVICE) != (public_key_der is not None):
            raise InputError("a device-held key needs its public key, a server-held one none")
        staff = session.get(StaffRow, staff_id)
        if staff is None or staff.state != ACTIVE:
            raise NotFoundError(f"no active staff member {staff_id}")
        device_token = secrets.token_urlsafe(32)
        device = StaffDeviceRow(
            id=new_id("dev"),
            staff_id=staff_id,
            label=clean_label(label),
            token_sha256=_digest(device_token),
            key_mode=key_mode,
            public_key_der=public_key_der,
            certificate_id=certificate_id,
            enrolment_id=enrolment_id,
            created_at=now,
            last_seen_at=now,
        )
        session.add(device)
        session.flush()
        record_event(
            session,
            now,
            "device:bind",
            staff_id=staff_id,
            device_id=device.id,
            enrolment_id=enrolment_id,
            key_mode=key_mode,
            certificate_id=certificate_id,
        )
        opened = self._open(session, now, staff_id, device.id, "enrolment")
        return DeviceBinding(device.id, device_token, opened)

    def device_for(self, device_token: str | None) -> Device:
        """The enrolled, unrevoked device holding this token (for the unlock page)."""
        with self._database.session() as session:
            return _device(self._device_row(session, device_token))

    def list_devices(self, staff_id: str) -> list[Device]:
        with self._database.session() as session:
            rows = session.scalars(
                select(StaffDeviceRow)
                .where(StaffDeviceRow.staff_id == staff_id)
                .order_by(StaffDeviceRow.created_at.desc())
            )
            return [_device(r) for r in rows]

    def revoke_device(self, staff_id: str, device_id: str, *, actor: str) -> Device:
        """Unbind a phone (lost, replaced): its sessions end at once, and a signing key it
        held is treated as compromised (its certificate is revoked; the clinician
        re-enrols)."""
        now = self._clock.now()
        certificate_id = None
        with self._database.session() as session:
            row = session.get(StaffDeviceRow, device_id)
            if row is None or row.staff_id != staff_id:
                raise NotFoundError(f"no device {device_id}")
            if row.revoked_at is None:
                row.revoked_at = now
                session.execute(
                    update(StaffSessionRow)
                    .where(
                        StaffSessionRow.device_id == device_id,
                        StaffSessionRow.revoked_at.is_(None),
                    )
                    .values(revoked_at=now)
                )
                record_event(
                    session,
                    now,
                    "device:revoke",
                    staff_id=staff_id,
                    device_id=device_id,
                    actor=actor,
                )
                if row.key_mode == DEVICE:
                    certificate_id = row.certificate_id
            device = _device(row)
        if certificate_id is not None and self._authority is not None:
            serial = self._authority.get_by_id(certificate_id).serial_hex
            self._authority.revoke(serial, "keyCompromise", actor=actor)
        return device

    # -- sessions ----------------------------------------------------------------------------

    def open_session(self, device_token: str | None, *, method: str) -> OpenedSession:
        """A new session on an enrolled device, once its owner proved who they are (the
        caller checks the PIN or passkey first)."""
        now = self._clock.now()
        with self._database.session() as session:
            device = self._device_row(session, device_token)
            self._require_active_staff(session, device.staff_id)
            device.last_seen_at = now
            return self._open(session, now, device.staff_id, device.id, method)

    def authenticate(self, session_token: str | None, device_token: str | None) -> PhoneSession:
        """The live session for these two cookies; raises ``PhoneSessionError``."""
        if not session_token or not device_token:
            raise PhoneSessionError("no phone session")
        now = self._clock.now()
        with self._database.session() as session:
            row = session.scalar(
                select(StaffSessionRow).where(
                    StaffSessionRow.token_sha256 == _digest(session_token)
                )
            )
            if row is None or row.revoked_at is not None or row.expires_at <= now:
                raise PhoneSessionError("the phone session is unknown or has ended")
            if row.last_seen_at + self.idle <= now:
                row.revoked_at = now
                raise_after = PhoneSessionError("the phone session ended after inactivity")
            else:
                raise_after = None
                device = session.get(StaffDeviceRow, row.device_id)
                if (
                    device is None
                    or device.revoked_at is not None
                    or device.token_sha256 != _digest(device_token)
                ):
                    raise PhoneSessionError("the session belongs to another phone")
                staff = session.get(StaffRow, row.staff_id)
                if staff is None or staff.state != ACTIVE:
                    raise PhoneSessionError("the staff member cannot sign in")
                # Touch at most once a minute: every page poll would otherwise write.
                if now - row.last_seen_at > dt.timedelta(minutes=1):
                    row.last_seen_at = now
                    device.last_seen_at = now
                result = PhoneSession(
                    row.id, row.staff_id, row.device_id, row.method, row.expires_at
                )
        if raise_after is not None:
            raise raise_after
        return result

    def end_session(self, session_token: str | None) -> None:
        if not session_token:
            return
        now = self._clock.now()
        with self._database.session() as session:
            session.execute(
                update(StaffSessionRow)
                .where(
                    StaffSessionRow.token_sha256 == _digest(session_token),
                    StaffSessionRow.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )

    # -- internals ---------------------------------------------------------------------------

    def _open(
        self, session: Session, now: dt.datetime, staff_id: str, device_id: str, method: str
    ) -> OpenedSession:
        token = secrets.token_urlsafe(32)
        row = StaffSessionRow(
            id=new_id("pss"),
            staff_id=staff_id,
            device_id=device_id,
            token_sha256=_digest(token),
            method=method,
            created_at=now,
            expires_at=now + self.lifetime,
            last_seen_at=now,
        )
        session.add(row)
        record_event(
            session,
            now,
            "session:open",
            staff_id=staff_id,
            device_id=device_id,
            session_id=row.id,
            method=method,
        )
        return OpenedSession(
            token, PhoneSession(row.id, staff_id, device_id, method, row.expires_at)
        )

    @staticmethod
    def _device_row(session: Session, device_token: str | None) -> StaffDeviceRow:
        if not device_token:
            raise DeviceUnknownError("this phone holds no device token")
        row = session.scalar(
            select(StaffDeviceRow).where(StaffDeviceRow.token_sha256 == _digest(device_token))
        )
        if row is None or row.revoked_at is not None:
            raise DeviceUnknownError("this phone is not (or no longer) enrolled")
        return row

    @staticmethod
    def _require_active_staff(session: Session, staff_id: str) -> StaffRow:
        staff = session.get(StaffRow, staff_id)
        if staff is None or staff.state != ACTIVE:
            raise PhoneSessionError("the staff member cannot sign in")
        return staff
