"""Registered applications: the hospital systems (HIS, EMR, LIS, PACS, ...) that call medsign.

An application has an id (``app_...``), a unique code, a signer scope (whom it may ask for
signatures), a rate limit, an optional webhook URL and an HMAC secret. The secret must be
recoverable to check request signatures, so it is sealed (AES-GCM under the data keyring),
never hashed, and shown to the operator exactly once. Rotation keeps the previous secret
valid for a grace period so the hospital can roll the new one out without downtime.

Every state change writes an evidence event (ids only) in the same transaction.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medsign.clock import Clock
from medsign.db.session import Database
from medsign.db.tables import ApplicationRow, OrganizationRow
from medsign.errors import (
    ApplicationDeregisteredError,
    ApplicationFrozenError,
    InputError,
    NotFoundError,
    StateError,
)
from medsign.evidence import record_event
from medsign.ids import new_id
from medsign.keys.sealing import DataSealer, sealing_context

SECRET_PREFIX: Final = "mss_"  # noqa: S105 (a public prefix, not a secret)
CODE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")
MAX_RATE_LIMIT = 100_000
DEFAULT_RATE_LIMIT = 600


class ApplicationState(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    DEREGISTERED = "deregistered"


@dataclass(frozen=True)
class SignerScope:
    """Whom an application may address: everyone, or listed departments and staff ids."""

    all: bool = True
    departments: tuple[str, ...] = ()
    staff_ids: tuple[str, ...] = ()

    @classmethod
    def everyone(cls) -> SignerScope:
        return cls(all=True)

    @classmethod
    def from_value(cls, value: Any) -> SignerScope:
        """From JSON: ``{"all": true}`` or ``{"departments": [...], "staff_ids": [...]}``."""
        if not isinstance(value, dict):
            raise InputError("signer scope must be a JSON object")
        unknown = set(value) - {"all", "departments", "staff_ids"}
        if unknown:
            raise InputError(f"signer scope has unknown fields: {sorted(unknown)}")
        everyone = value.get("all", False)
        if not isinstance(everyone, bool):
            raise InputError("signer scope `all` must be true or false")
        departments = _string_list(value.get("departments", []), "departments")
        staff_ids = _string_list(value.get("staff_ids", []), "staff_ids")
        if everyone and (departments or staff_ids):
            raise InputError("signer scope is either `all` or lists, not both")
        if not everyone and not (departments or staff_ids):
            raise InputError("signer scope must be `all` or name departments or staff ids")
        return cls(everyone, tuple(departments), tuple(staff_ids))

    @classmethod
    def from_json(cls, text: str) -> SignerScope:
        return cls.from_value(json.loads(text))

    def to_value(self) -> dict[str, Any]:
        if self.all:
            return {"all": True}
        return {"departments": list(self.departments), "staff_ids": list(self.staff_ids)}

    def to_json(self) -> str:
        return json.dumps(self.to_value(), ensure_ascii=False, sort_keys=True)

    def includes(self, staff_department: str | None, staff_id: str) -> bool:
        if self.all:
            return True
        if staff_id in self.staff_ids:
            return True
        return staff_department is not None and staff_department in self.departments


def _string_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputError(f"signer scope `{name}` must be a list of non-empty strings")
    if len(value) > 1000 or any(len(v) > 100 for v in value):
        raise InputError(f"signer scope `{name}` is too long")
    return sorted(set(value))


class HasSignerScope(Protocol):
    @property
    def signer_scope(self) -> SignerScope: ...


def may_address(app: HasSignerScope, staff_department: str | None, staff_id: str) -> bool:
    """Whether ``app`` may ask this staff member for a signature (its signer scope)."""
    return app.signer_scope.includes(staff_department, staff_id)


@dataclass(frozen=True)
class Application:
    id: str
    organization_id: str
    code: str
    name: str
    description: str
    state: ApplicationState
    signer_scope: SignerScope
    rate_limit_per_minute: int
    webhook_url: str | None
    seal_purposes: tuple[str, ...]
    secret_rotated_at: dt.datetime
    previous_secret_expires_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


def to_application(row: ApplicationRow) -> Application:
    return Application(
        id=row.id,
        organization_id=row.organization_id,
        code=row.code,
        name=row.name,
        description=row.description,
        state=ApplicationState(row.state),
        signer_scope=SignerScope.from_json(row.signer_scope),
        rate_limit_per_minute=row.rate_limit_per_minute,
        webhook_url=row.webhook_url,
        seal_purposes=tuple(json.loads(row.seal_purposes or "[]")),
        secret_rotated_at=row.secret_rotated_at,
        previous_secret_expires_at=row.previous_secret_expires_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


MAX_SEAL_PURPOSES = 20


def _validate_seal_purposes(purposes: Sequence[str]) -> list[str]:
    cleaned = sorted({p.strip() for p in purposes})
    if len(cleaned) > MAX_SEAL_PURPOSES:
        raise InputError(f"at most {MAX_SEAL_PURPOSES} seal purposes")
    for purpose in cleaned:
        if len(purpose) > 20 or (purpose and not purpose.isprintable()):
            raise InputError("a seal purpose is at most 20 printable characters")
    return cleaned


def ensure_usable(row: ApplicationRow) -> None:
    """Refuse a frozen or deregistered application (every call goes through this)."""
    if row.state == ApplicationState.FROZEN:
        raise ApplicationFrozenError(f"application {row.id} is frozen")
    if row.state == ApplicationState.DEREGISTERED:
        raise ApplicationDeregisteredError(f"application {row.id} is deregistered")


def new_secret() -> str:
    """256 random bits, base64url without padding, behind a recognisable prefix."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
    return SECRET_PREFIX + raw


def validate_webhook_url(url: str) -> str:
    """An absolute http(s) URL with a host, no credentials and no fragment."""
    url = url.strip()
    if len(url) > 500:
        raise InputError("webhook URL is longer than 500 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InputError("webhook URL is not a valid URL") from exc
    if parts.scheme not in ("http", "https"):
        raise InputError("webhook URL must use http or https")
    if not parts.hostname:
        raise InputError("webhook URL needs a host")
    if parts.username is not None or parts.password is not None:
        raise InputError("webhook URL must not carry credentials")
    if parts.fragment:
        raise InputError("webhook URL must not have a fragment")
    if port == 0 or any(ch.isspace() for ch in url):
        raise InputError("webhook URL is not a valid URL")
    return url


def _validate_code(code: str) -> str:
    if not CODE_PATTERN.match(code):
        raise InputError(
            "application code must be 2-64 characters: lower-case letters, digits, - and _"
        )
    return code


def _validate_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InputError("application name must be 1-200 characters")
    return name


def _validate_description(description: str) -> str:
    if len(description) > 2000:
        raise InputError("application description must be at most 2000 characters")
    return description


def _validate_rate_limit(value: int) -> int:
    if not 1 <= value <= MAX_RATE_LIMIT:
        raise InputError(f"rate limit must be between 1 and {MAX_RATE_LIMIT} per minute")
    return value


class _Unset:
    """Marks an omitted optional argument, so ``None`` can mean "clear it"."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


def secret_context(app_id: str, column: str = "secret_sealed") -> str:
    return sealing_context(ApplicationRow.__tablename__, column, app_id)


def open_secrets(sealer: DataSealer, row: ApplicationRow, at: dt.datetime) -> list[bytes]:
    """The current secret, then the previous one while its grace period lasts, as the UTF-8
    bytes used as HMAC key."""
    keys = [sealer.open(row.secret_sealed, context=secret_context(row.id))]
    expires = row.previous_secret_expires_at
    if row.previous_secret_sealed is not None and expires is not None and at < expires:
        keys.append(
            sealer.open(
                row.previous_secret_sealed,
                context=secret_context(row.id, "previous_secret_sealed"),
            )
        )
    return keys


class ApplicationRegistry:
    """Register, edit, freeze, unfreeze, deregister applications; rotate their secrets."""

    def __init__(
        self,
        database: Database,
        sealer: DataSealer,
        clock: Clock,
        *,
        secret_grace: dt.timedelta = dt.timedelta(hours=24),
    ) -> None:
        self._database = database
        self._sealer = sealer
        self._clock = clock
        self.secret_grace = secret_grace

    def __repr__(self) -> str:
        return "<ApplicationRegistry>"

    # -- reading -----------------------------------------------------------------------------

    def get(self, app_id: str) -> Application:
        with self._database.session() as session:
            return to_application(self._row(session, app_id))

    def find(self, id_or_code: str) -> Application:
        """By id (``app_...``) or by code: what operators type on the command line."""
        with self._database.session() as session:
            row = session.get(ApplicationRow, id_or_code)
            if row is None:
                row = session.scalar(
                    select(ApplicationRow).where(ApplicationRow.code == id_or_code)
                )
            if row is None:
                raise NotFoundError(f"no application {id_or_code}")
            return to_application(row)

    def list_applications(self, *, state: str | None = None, limit: int = 500) -> list[Application]:
        query = select(ApplicationRow)
        if state is not None:
            query = query.where(ApplicationRow.state == ApplicationState(state).value)
        query = query.order_by(ApplicationRow.created_at, ApplicationRow.id).limit(limit)
        with self._database.session() as session:
            return [to_application(r) for r in session.scalars(query)]

    def valid_secrets(self, row: ApplicationRow, at: dt.datetime) -> list[bytes]:
        return open_secrets(self._sealer, row, at)

    # -- changing ----------------------------------------------------------------------------

    def register(
        self,
        *,
        name: str,
        code: str,
        description: str = "",
        organization_id: str | None = None,
        signer_scope: SignerScope | None = None,
        rate_limit_per_minute: int = DEFAULT_RATE_LIMIT,
        webhook_url: str | None = None,
        actor: str = "system",
    ) -> tuple[Application, str]:
        """Create an application; returns it and its secret, which is never shown again."""
        name = _validate_name(name)
        code = _validate_code(code)
        description = _validate_description(description)
        rate_limit_per_minute = _validate_rate_limit(rate_limit_per_minute)
        url = validate_webhook_url(webhook_url) if webhook_url else None
        scope = signer_scope or SignerScope.everyone()
        now = self._clock.now()
        app_id = new_id("app")
        secret = new_secret()
        try:
            with self._database.session() as session:
                org_id = self._organization(session, organization_id)
                if session.scalar(select(ApplicationRow.id).where(ApplicationRow.code == code)):
                    raise StateError(f"an application with code {code!r} exists")
                row = ApplicationRow(
                    id=app_id,
                    organization_id=org_id,
                    code=code,
                    name=name,
                    description=description,
                    state=ApplicationState.ACTIVE.value,
                    secret_sealed=self._sealer.seal_text(secret, context=secret_context(app_id)),
                    previous_secret_sealed=None,
                    previous_secret_expires_at=None,
                    secret_rotated_at=now,
                    signer_scope=scope.to_json(),
                    rate_limit_per_minute=rate_limit_per_minute,
                    webhook_url=url,
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                record_event(
                    session,
                    now,
                    "app:register",
                    application_id=app_id,
                    organization_id=org_id,
                    actor=actor,
                )
                application = to_application(row)
        except IntegrityError as exc:
            # Two registrations racing for one code: the unique constraint decides.
            raise StateError(f"an application with code {code!r} exists") from exc
        return application, secret

    def edit(
        self,
        app_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        signer_scope: SignerScope | None = None,
        rate_limit_per_minute: int | None = None,
        webhook_url: str | _Unset | None = UNSET,
        seal_purposes: Sequence[str] | None = None,
        actor: str = "system",
    ) -> Application:
        """Change the given fields; ``webhook_url=None`` removes the webhook;
        ``seal_purposes`` are the organisation seals it may apply ("" the official one)."""
        with self._database.session() as session:
            row = self._row(session, app_id)
            self._refuse_deregistered(row)
            changed: list[str] = []
            if name is not None:
                row.name = _validate_name(name)
                changed.append("name")
            if description is not None:
                row.description = _validate_description(description)
                changed.append("description")
            if signer_scope is not None:
                row.signer_scope = signer_scope.to_json()
                changed.append("signer_scope")
            if rate_limit_per_minute is not None:
                row.rate_limit_per_minute = _validate_rate_limit(rate_limit_per_minute)
                changed.append("rate_limit")
            if not isinstance(webhook_url, _Unset):
                row.webhook_url = validate_webhook_url(webhook_url) if webhook_url else None
                changed.append("webhook_url")
            if seal_purposes is not None:
                row.seal_purposes = json.dumps(_validate_seal_purposes(seal_purposes))
                changed.append("seal_purposes")
            if changed:
                now = self._clock.now()
                row.updated_at = now
                record_event(
                    session, now, "app:edit", application_id=row.id, changed=changed, actor=actor
                )
            return to_application(row)

    def freeze(self, app_id: str, *, actor: str = "system") -> Application:
        return self._transition(
            app_id, ApplicationState.ACTIVE, ApplicationState.FROZEN, "app:freeze", actor
        )

    def unfreeze(self, app_id: str, *, actor: str = "system") -> Application:
        return self._transition(
            app_id, ApplicationState.FROZEN, ApplicationState.ACTIVE, "app:unfreeze", actor
        )

    def deregister(self, app_id: str, *, actor: str = "system") -> Application:
        """Final: the row stays (requests and evidence refer to it) but no call succeeds."""
        with self._database.session() as session:
            row = self._row(session, app_id)
            self._refuse_deregistered(row)
            now = self._clock.now()
            row.state = ApplicationState.DEREGISTERED.value
            # The previous secret is of no use any more; do not keep it around.
            row.previous_secret_sealed = None
            row.previous_secret_expires_at = None
            row.updated_at = now
            record_event(session, now, "app:deregister", application_id=row.id, actor=actor)
            return to_application(row)

    def rotate_secret(
        self, app_id: str, *, grace: dt.timedelta | None = None, actor: str = "system"
    ) -> tuple[Application, str]:
        """A new secret (returned once); the old one keeps working for ``grace``."""
        grace = self.secret_grace if grace is None else grace
        if grace < dt.timedelta(0):
            raise InputError("grace period must not be negative")
        secret = new_secret()
        with self._database.session() as session:
            row = self._row(session, app_id)
            self._refuse_deregistered(row)
            now = self._clock.now()
            current = self._sealer.open(row.secret_sealed, context=secret_context(row.id))
            if grace > dt.timedelta(0):
                row.previous_secret_sealed = self._sealer.seal(
                    current, context=secret_context(row.id, "previous_secret_sealed")
                )
                row.previous_secret_expires_at = now + grace
            else:
                row.previous_secret_sealed = None
                row.previous_secret_expires_at = None
            row.secret_sealed = self._sealer.seal_text(secret, context=secret_context(row.id))
            row.secret_rotated_at = now
            row.updated_at = now
            record_event(
                session,
                now,
                "app:rotate-secret",
                application_id=row.id,
                grace_seconds=int(grace.total_seconds()),
                actor=actor,
            )
            return to_application(row), secret

    # -- internals ---------------------------------------------------------------------------

    def _transition(
        self,
        app_id: str,
        source: ApplicationState,
        target: ApplicationState,
        event_type: str,
        actor: str,
    ) -> Application:
        with self._database.session() as session:
            row = self._row(session, app_id)
            self._refuse_deregistered(row)
            if row.state != source.value:
                raise StateError(f"application {row.id} is {row.state}, not {source.value}")
            now = self._clock.now()
            row.state = target.value
            row.updated_at = now
            record_event(session, now, event_type, application_id=row.id, actor=actor)
            return to_application(row)

    @staticmethod
    def _row(session: Session, app_id: str) -> ApplicationRow:
        row = session.get(ApplicationRow, app_id)
        if row is None:
            raise NotFoundError(f"no application {app_id}")
        return row

    @staticmethod
    def _refuse_deregistered(row: ApplicationRow) -> None:
        if row.state == ApplicationState.DEREGISTERED:
            raise StateError(f"application {row.id} is deregistered")

    @staticmethod
    def _organization(session: Session, organization_id: str | None) -> str:
        if organization_id is not None:
            if session.get(OrganizationRow, organization_id) is None:
                raise InputError(f"no organization {organization_id}")
            return organization_id
        rows: Sequence[OrganizationRow] = session.scalars(select(OrganizationRow)).all()
        chosen = _default_organization(rows)
        if chosen is None:
            raise InputError("several organizations exist; name the application's organization")
        return chosen


def _default_organization(rows: Iterable[OrganizationRow]) -> str | None:
    rows = list(rows)
    if len(rows) == 1:
        return rows[0].id
    demo = [r for r in rows if r.demo]
    return demo[0].id if len(demo) == 1 else None
