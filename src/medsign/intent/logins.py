"""QR-code login: a hospital application asks, a clinician approves on their enrolled phone.

    application ── start ──▶ pending ──approve (phone)──▶ approved  (+ signed assertion)
                                      ──decline (phone)──▶ declined
                                      ──time passes──────▶ expired

The application gets a one-time URL (and its QR code) to show at the workstation; the
clinician opens it on the phone where they are signed in, sees which application and which
workstation asks, and decides. The application polls (or receives a webhook) and, after an
approval, gets the staff id, the employee number and an assertion signed by medsign
(``medsign.intent.assertions``) it can verify offline.

A decision is one guarded UPDATE (``WHERE state = 'pending' AND expires_at > now``), so only
one decision ever wins, across threads and processes; its evidence event and webhook commit
in the same transaction. A login that names a staff member can be seen and decided by that
staff member only; to anyone else it does not exist, so login ids cannot be probed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from medsign.apps.registry import SignerScope, ensure_usable, may_address
from medsign.apps.webhooks import enqueue_webhook
from medsign.clock import Clock
from medsign.db import rowcount
from medsign.db.session import Database
from medsign.db.tables import ApplicationRow, LoginChallengeRow, StaffDeviceRow, StaffRow
from medsign.errors import (
    ForbiddenError,
    InputError,
    NotFoundError,
    StaffStateError,
    StateError,
)
from medsign.evidence.events import record_event
from medsign.ids import new_id
from medsign.intent.assertions import LoginAssertions, SignedAssertion

DEFAULT_LIFETIME: Final = dt.timedelta(seconds=120)
MIN_LIFETIME: Final = dt.timedelta(seconds=10)
MAX_WORKSTATION: Final = 128
MAX_EMPLOYEE_NO: Final = 64
_STAFF_ACTIVE: Final = "active"


class LoginState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    EXPIRED = "expired"


# -- errors (stable codes, docs/integration/qr-login.md) ----------------------------------------


class LoginExpiredError(StateError):
    code = "login-expired"
    title = "The login request has expired"
    status = 410


class LoginDecidedError(StateError):
    """The login was approved or declined already; ``state`` says which."""

    code = "login-decided"
    title = "The login request was already decided"


class LoginDeclinedError(LoginDecidedError):
    code = "login-declined"
    title = "The login request was declined"


class LoginNotAllowedError(ForbiddenError):
    """The application's signer scope does not include this staff member."""

    code = "login-not-allowed"
    title = "This application may not log this staff member in"


class LoginDeviceError(ForbiddenError):
    """The device is not an enrolled, unrevoked phone of the deciding staff member."""

    code = "login-device"
    title = "Not an enrolled device of this staff member"


# -- domain values ------------------------------------------------------------------------------


class LoginRequester(Protocol):
    """The application starting a login (``AuthenticatedApplication`` or ``Application``)."""

    @property
    def id(self) -> str: ...

    @property
    def organization_id(self) -> str: ...

    @property
    def signer_scope(self) -> SignerScope: ...


@dataclass(frozen=True)
class Login:
    """A login as its application sees it. ``staff_id``/``employee_no`` name whoever decided
    (set once approved or declined); ``requested_*`` the staff member the application named."""

    id: str
    application_id: str
    organization_id: str
    state: LoginState
    workstation: str
    requested_staff_id: str | None
    requested_employee_no: str | None
    staff_id: str | None
    employee_no: str | None
    device_id: str | None
    assertion: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    decided_at: dt.datetime | None


@dataclass(frozen=True)
class LoginTicket:
    """What the application receives once: the login and the URL for the phone."""

    login: Login
    url: str


@dataclass(frozen=True)
class LoginView:
    """What the phone page shows before the clinician decides."""

    login_id: str
    application_name: str
    workstation: str
    state: LoginState
    named: bool  # the application asked for this staff member by employee number
    created_at: dt.datetime
    expires_at: dt.datetime


def check_workstation(workstation: str) -> str:
    """0 to 128 printable characters (what the clinician is shown, so nothing hidden)."""
    if not isinstance(workstation, str) or len(workstation) > MAX_WORKSTATION:
        raise InputError(f"workstation must be at most {MAX_WORKSTATION} characters")
    if not workstation.isprintable():
        raise InputError("workstation must hold printable characters only")
    return workstation


def _state(row: LoginChallengeRow, now: dt.datetime) -> LoginState:
    if row.state == LoginState.PENDING and row.expires_at <= now:
        return LoginState.EXPIRED
    return LoginState(row.state)


class LoginService:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        assertions: LoginAssertions,
        public_base_url: str,
        lifetime: dt.timedelta = DEFAULT_LIFETIME,
    ) -> None:
        if lifetime < MIN_LIFETIME:
            raise InputError(f"a login lifetime must be at least {MIN_LIFETIME.seconds} s")
        self._database = database
        self._clock = clock
        self.assertions = assertions
        self._base_url = public_base_url.rstrip("/")
        self.lifetime = lifetime

    def __repr__(self) -> str:
        return f"<LoginService lifetime={self.lifetime}>"

    def _url(self, login_id: str) -> str:
        return f"{self._base_url}/m/login/{login_id}"

    # -- application side -------------------------------------------------------------------

    def start(
        self,
        application: LoginRequester,
        *,
        employee_no: str | None,
        workstation: str,
        ttl_seconds: int | None,
    ) -> LoginTicket:
        """Open a login; ``employee_no`` limits it to one staff member, ``ttl_seconds`` may
        shorten (never lengthen) the configured lifetime."""
        workstation = check_workstation(workstation)
        lifetime = self._lifetime(ttl_seconds)
        now = self._clock.now()
        login_id = new_id("lgn")
        with self._database.session() as session:
            staff = None
            if employee_no is not None:
                staff = self._addressable(session, application, employee_no)
            row = LoginChallengeRow(
                id=login_id,
                application_id=application.id,
                organization_id=application.organization_id,
                staff_id=staff.id if staff is not None else None,
                workstation=workstation,
                state=LoginState.PENDING.value,
                created_at=now,
                expires_at=now + lifetime,
                decided_at=None,
                decided_by_staff_id=None,
                device_id=None,
                assertion=None,
            )
            session.add(row)
            session.flush()
            record_event(
                session,
                now,
                "login:start",
                login_id=login_id,
                application_id=application.id,
                staff_id=row.staff_id,
                workstation_sha256=hashlib.sha256(workstation.encode("utf-8")).hexdigest(),
                ttl_seconds=int(lifetime.total_seconds()),
            )
            login = self._to_domain(session, row, now)
        return LoginTicket(login, self._url(login_id))

    def _lifetime(self, ttl_seconds: int | None) -> dt.timedelta:
        if ttl_seconds is None:
            return self.lifetime
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
            raise InputError("ttl must be a whole number of seconds")
        ttl = dt.timedelta(seconds=ttl_seconds)
        if not MIN_LIFETIME <= ttl <= self.lifetime:
            raise InputError(
                f"ttl must be {MIN_LIFETIME.seconds} to {int(self.lifetime.total_seconds())}"
                " seconds"
            )
        return ttl

    @staticmethod
    def _addressable(session: Session, application: LoginRequester, employee_no: str) -> StaffRow:
        if not isinstance(employee_no, str) or not 1 <= len(employee_no) <= MAX_EMPLOYEE_NO:
            raise InputError(f"employee number must be 1 to {MAX_EMPLOYEE_NO} characters")
        staff = session.scalar(
            select(StaffRow).where(
                StaffRow.organization_id == application.organization_id,
                StaffRow.employee_no == employee_no,
            )
        )
        if staff is None:
            raise NotFoundError(f"no staff member {employee_no} in this organization")
        if not may_address(application, staff.department, staff.id):
            raise LoginNotAllowedError(f"application {application.id} may not address {staff.id}")
        if staff.state != _STAFF_ACTIVE:
            raise StaffStateError(f"staff member is {staff.state}")
        return staff

    def get(self, application_id: str, login_id: str) -> Login:
        """The login as its application sees it (others get ``NotFoundError``); a pending
        login past its deadline is reported ``expired`` even before the sweep marks it."""
        now = self._clock.now()
        with self._database.session() as session:
            row = session.get(LoginChallengeRow, login_id)
            if row is None or row.application_id != application_id:
                raise NotFoundError(f"no login {login_id}")
            return self._to_domain(session, row, now)

    def url(self, application_id: str, login_id: str) -> str:
        """The one-time URL again (for the QR code), while the login can still be decided."""
        login = self.get(application_id, login_id)
        _require_pending(login.state)
        return self._url(login.id)

    def expire_due(self, *, limit: int = 500) -> int:
        """Mark overdue pending logins expired, with their evidence and webhooks."""
        now = self._clock.now()
        expired = 0
        with self._database.session() as session:
            due = session.execute(
                select(LoginChallengeRow.id, LoginChallengeRow.application_id)
                .where(
                    LoginChallengeRow.state == LoginState.PENDING.value,
                    LoginChallengeRow.expires_at <= now,
                )
                .limit(limit)
            ).all()
            for login_id, application_id in due:
                # Guarded again: a decision or another sweep may have got there first.
                result = session.execute(
                    update(LoginChallengeRow)
                    .where(
                        LoginChallengeRow.id == login_id,
                        LoginChallengeRow.state == LoginState.PENDING.value,
                        LoginChallengeRow.expires_at <= now,
                    )
                    .values(state=LoginState.EXPIRED.value)
                    .execution_options(synchronize_session=False)
                )
                if rowcount(result) != 1:
                    continue
                record_event(session, now, "login:expire", login_id=login_id)
                enqueue_webhook(
                    session,
                    now,
                    application_id,
                    "login:expired",
                    login_id,
                    {"login_id": login_id, "state": LoginState.EXPIRED.value},
                )
                expired += 1
        return expired

    # -- phone side ---------------------------------------------------------------------------

    def view(self, login_id: str, staff_id: str) -> LoginView:
        """What the signed-in staff member's phone shows for this login."""
        now = self._clock.now()
        with self._database.session() as session:
            row, _ = self._visible(session, login_id, staff_id)
            application = session.get(ApplicationRow, row.application_id)
            assert application is not None  # foreign key
            return LoginView(
                login_id=row.id,
                application_name=application.name,
                workstation=row.workstation,
                state=_state(row, now),
                named=row.staff_id is not None,
                created_at=row.created_at,
                expires_at=row.expires_at,
            )

    def approve(self, login_id: str, *, staff_id: str, device_id: str) -> Login:
        """The staff member approves on their phone: an assertion is signed for the
        application and the login becomes ``approved``."""
        now = self._clock.now()
        with self._database.session() as session:
            row, staff = self._decidable(session, login_id, staff_id, device_id, now)
            audience = row.application_id
            claims = {
                "employee_no": staff.employee_no,
                "login_id": login_id,
                "workstation": row.workstation,
            }
        # Signed outside any transaction: the key store records the key use in its own, and
        # an assertion that loses the race below is simply never handed out.
        signed = self.assertions.issue(
            audience=audience, subject=staff_id, issued_at=now, claims=claims
        )
        return self._decide(
            login_id,
            LoginState.APPROVED,
            staff_id=staff_id,
            device_id=device_id,
            now=now,
            signed=signed,
        )

    def decline(self, login_id: str, *, staff_id: str, device_id: str) -> Login:
        """The staff member declines on their phone; the application is told."""
        now = self._clock.now()
        with self._database.session() as session:
            self._decidable(session, login_id, staff_id, device_id, now)
        return self._decide(
            login_id, LoginState.DECLINED, staff_id=staff_id, device_id=device_id, now=now
        )

    def _decide(
        self,
        login_id: str,
        state: LoginState,
        *,
        staff_id: str,
        device_id: str,
        now: dt.datetime,
        signed: SignedAssertion | None = None,
    ) -> Login:
        with self._database.session() as session:
            result = session.execute(
                update(LoginChallengeRow)
                .where(
                    LoginChallengeRow.id == login_id,
                    LoginChallengeRow.state == LoginState.PENDING.value,
                    LoginChallengeRow.expires_at > now,
                )
                .values(
                    state=state.value,
                    decided_at=now,
                    decided_by_staff_id=staff_id,
                    device_id=device_id,
                    assertion=signed.token if signed is not None else None,
                )
                .execution_options(synchronize_session=False)
            )
            if rowcount(result) != 1:
                row = session.get(LoginChallengeRow, login_id)
                assert row is not None  # logins are never deleted
                _require_pending(_state(row, now))
                raise StateError("the login changed while it was being decided")
            # Read again in this transaction: a freeze committed while the assertion was being
            # signed still refuses the decision (and rolls the UPDATE back).
            staff = session.get(StaffRow, staff_id)
            if staff is None or staff.state != _STAFF_ACTIVE:
                raise StaffStateError("staff member is frozen or deregistered")
            row = session.get(LoginChallengeRow, login_id)
            assert row is not None
            fields: dict[str, Any] = {
                "login_id": login_id,
                "application_id": row.application_id,
                "staff_id": staff_id,
                "device_id": device_id,
            }
            payload: dict[str, Any] = {"login_id": login_id, "state": state.value}
            if signed is not None:
                fields.update(
                    certificate_id=signed.certificate_id,
                    jti=signed.jti,
                    assertion_sha256=hashlib.sha256(signed.token.encode("ascii")).hexdigest(),
                )
                payload.update(
                    staff_id=staff_id, employee_no=staff.employee_no, assertion=signed.token
                )
            event = "login:approve" if state is LoginState.APPROVED else "login:decline"
            record_event(session, now, event, **fields)
            enqueue_webhook(
                session, now, row.application_id, f"login:{state.value}", login_id, payload
            )
            return self._to_domain(session, row, now)

    # -- helpers ------------------------------------------------------------------------------

    def _visible(
        self, session: Session, login_id: str, staff_id: str
    ) -> tuple[LoginChallengeRow, StaffRow]:
        """The login and the staff member, if this staff member may see it at all."""
        row = session.get(LoginChallengeRow, login_id) if isinstance(login_id, str) else None
        staff = session.get(StaffRow, staff_id) if isinstance(staff_id, str) else None
        if (
            row is None
            or staff is None
            or staff.organization_id != row.organization_id
            or (row.staff_id is not None and row.staff_id != staff.id)
        ):
            # One answer for "no such login" and "not yours": ids cannot be probed.
            raise NotFoundError(f"no login {login_id} for this staff member")
        return row, staff

    def _decidable(
        self, session: Session, login_id: str, staff_id: str, device_id: str, now: dt.datetime
    ) -> tuple[LoginChallengeRow, StaffRow]:
        row, staff = self._visible(session, login_id, staff_id)
        device = session.get(StaffDeviceRow, device_id) if isinstance(device_id, str) else None
        if device is None or device.staff_id != staff.id or device.revoked_at is not None:
            raise LoginDeviceError(f"device {device_id} is not an enrolled phone of {staff.id}")
        if staff.state != _STAFF_ACTIVE:
            raise StaffStateError(f"staff member is {staff.state}")
        _require_pending(_state(row, now))
        application = session.get(ApplicationRow, row.application_id)
        assert application is not None  # foreign key
        ensure_usable(application)
        scope = SignerScope.from_json(application.signer_scope)
        if not scope.includes(staff.department, staff.id):
            raise LoginNotAllowedError(
                f"application {application.id} may not address {staff.id}",
                public="this application is not open to this staff member",
            )
        return row, staff

    @staticmethod
    def _to_domain(session: Session, row: LoginChallengeRow, now: dt.datetime) -> Login:
        wanted = {i for i in (row.staff_id, row.decided_by_staff_id) if i is not None}
        numbers = _employee_numbers(session, sorted(wanted))
        return Login(
            id=row.id,
            application_id=row.application_id,
            organization_id=row.organization_id,
            state=_state(row, now),
            workstation=row.workstation,
            requested_staff_id=row.staff_id,
            requested_employee_no=numbers.get(row.staff_id) if row.staff_id else None,
            staff_id=row.decided_by_staff_id,
            employee_no=numbers.get(row.decided_by_staff_id) if row.decided_by_staff_id else None,
            device_id=row.device_id,
            assertion=row.assertion,
            created_at=row.created_at,
            expires_at=row.expires_at,
            decided_at=row.decided_at,
        )


def _employee_numbers(session: Session, staff_ids: Sequence[str]) -> dict[str, str]:
    if not staff_ids:
        return {}
    rows = session.execute(
        select(StaffRow.id, StaffRow.employee_no).where(StaffRow.id.in_(staff_ids))
    ).all()
    return {staff_id: employee_no for staff_id, employee_no in rows}


def _require_pending(state: LoginState) -> None:
    if state is LoginState.EXPIRED:
        raise LoginExpiredError("login expired")
    if state is LoginState.DECLINED:
        raise LoginDeclinedError("login was declined", state=state.value)
    if state is LoginState.APPROVED:
        raise LoginDecidedError("login was already approved", state=state.value)
