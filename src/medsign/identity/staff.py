"""Staff synchronised from HIS: validation, sealed personal data, states, bulk import.

National ID numbers and mobile numbers are sealed at rest (bound to their row and column) and
only their masked forms ever leave this module; the ID number also gets a keyed lookup digest
so real-name authentication can compare without decrypting. HIS synchronisation is an
idempotent upsert keyed by (organization, employee number): sending the same record twice
changes nothing and writes no evidence.
"""

from __future__ import annotations

import csv
import datetime as dt
import hmac
import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medsign.ca.authority import CertificateAuthority
from medsign.clock import Clock
from medsign.db.session import Database
from medsign.db.tables import OrganizationRow, StaffRow
from medsign.errors import InputError, NotFoundError, StaffStateError, StateError
from medsign.evidence.events import record_event
from medsign.ids import new_id
from medsign.intent.otp import invalidate_codes
from medsign.keys.sealing import DataSealer, sealing_context

log = logging.getLogger(__name__)

ACTIVE = "active"
FROZEN = "frozen"
DEREGISTERED = "deregistered"
STATES = (ACTIVE, FROZEN, DEREGISTERED)

NATIONAL_ID_CONTEXT = "national-id"

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_SHAPE = re.compile(r"[1-9]\d{16}[\dX]")
_PHONE_SHAPE = re.compile(r"1[3-9]\d{9}")
_PHONE_SEPARATORS = re.compile(r"[\s\-()]")
_EMPLOYEE_NO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")
# Shown on phones, in certificates and in consoles: no control characters or markup.
_TEXT = re.compile(r"[^\x00-\x1f\x7f<>\\\"]*")
MAX_IMPORT_ROWS = 10_000
_T = TypeVar("_T")


# -- validators ---------------------------------------------------------------------------------


def national_id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits (GB 11643)."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def normalise_national_id(value: str) -> str:
    """The canonical 18-character PRC resident ID number, or ``InputError``.

    Checks the shape, the date of birth and the check character; a lower-case ``x`` is
    accepted and upper-cased. The value is never put into the error message.
    """
    candidate = value.strip().upper()
    if not _ID_SHAPE.fullmatch(candidate):
        raise InputError("national ID number malformed", public="national ID number is malformed")
    try:
        born = dt.date(int(candidate[6:10]), int(candidate[10:12]), int(candidate[12:14]))
    except ValueError as exc:
        raise InputError("national ID number has an impossible date of birth") from exc
    if born.year < 1900:
        raise InputError("national ID number has an impossible date of birth")
    if national_id_check_char(candidate[:17]) != candidate[17]:
        raise InputError("national ID number check digit does not match")
    return candidate


def normalise_phone(value: str) -> str:
    """The 11-digit mainland mobile number (``+86``/``0086`` prefixes and separators removed)."""
    candidate = _PHONE_SEPARATORS.sub("", value.strip())
    for prefix in ("+86", "0086"):
        if candidate.startswith(prefix):
            candidate = candidate[len(prefix) :]
            break
    if len(candidate) == 13 and candidate.startswith("86"):
        candidate = candidate[2:]
    if not _PHONE_SHAPE.fullmatch(candidate):
        raise InputError("mobile number malformed", public="mobile number is not a mainland number")
    return candidate


def mask_national_id(value: str) -> str:
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_phone(value: str) -> str:
    return value[:3] + "****" + value[-4:]


def _text(value: Any, field_name: str, *, required: bool, max_length: int) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InputError(f"{field_name} must be text", field=field_name)
    text = value.strip()
    if required and not text:
        raise InputError(f"{field_name} is required", field=field_name)
    if len(text) > max_length or not _TEXT.fullmatch(text):
        raise InputError(
            f"{field_name} must be at most {max_length} characters without control characters",
            field=field_name,
        )
    return text


def normalise_employee_no(value: Any) -> str:
    if not isinstance(value, str) or not _EMPLOYEE_NO.fullmatch(value.strip()):
        raise InputError(
            "employee number must be 1-64 letters, digits, '.', '_' or '-'", field="employee_no"
        )
    return str(value).strip()


def _roles(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        # CSV cells carry roles as "a;b" or "a,b"; JSON bodies send a list.
        value = [part for part in re.split(r"[;,|]", value) if part.strip()]
    if not isinstance(value, list | tuple) or len(value) > 32:
        raise InputError("roles must be a list of at most 32 names", field="roles")
    seen: list[str] = []
    for item in value:
        role = _text(item, "roles", required=True, max_length=64)
        if role not in seen:
            seen.append(role)
    return tuple(seen)


# -- domain values -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaffInput:
    """One HIS record. ``None`` in an optional field keeps what is stored."""

    employee_no: str
    name: str
    national_id: str | None = None
    phone: str | None = None
    department: str | None = None
    title: str | None = None
    roles: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> StaffInput:
        """Validate and normalise a record (JSON object or CSV row); ``InputError`` names the
        field in ``extra['field']``."""
        unknown = set(data) - {
            "employee_no",
            "name",
            "national_id",
            "phone",
            "department",
            "title",
            "roles",
        }
        if unknown:
            raise InputError(f"unknown field {sorted(unknown)[0]}", field=sorted(unknown)[0])

        def optional(key: str) -> Any:
            value = data.get(key)
            return None if value is None or value == "" else value

        national_id = optional("national_id")
        phone = optional("phone")
        try:
            national_id = (
                normalise_national_id(str(national_id)) if national_id is not None else None
            )
        except InputError as exc:
            exc.extra["field"] = "national_id"
            raise
        try:
            phone = normalise_phone(str(phone)) if phone is not None else None
        except InputError as exc:
            exc.extra["field"] = "phone"
            raise
        department = optional("department")
        title = optional("title")
        roles = data.get("roles")
        return cls(
            employee_no=normalise_employee_no(data.get("employee_no")),
            name=_text(data.get("name"), "name", required=True, max_length=64),
            national_id=national_id,
            phone=phone,
            department=(
                _text(department, "department", required=False, max_length=64)
                if department is not None
                else None
            ),
            title=_text(title, "title", required=False, max_length=64)
            if title is not None
            else None,
            roles=_roles(roles) if roles is not None and roles != "" else None,
        )


@dataclass(frozen=True)
class Staff:
    id: str
    organization_id: str
    employee_no: str
    name: str
    national_id_masked: str | None
    phone_masked: str | None
    department: str
    title: str
    roles: tuple[str, ...]
    state: str
    key_id: str | None
    certificate_id: str | None
    enrolled_at: dt.datetime | None
    pin_set: bool


UpsertOutcome = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class UpsertResult:
    staff: Staff
    outcome: UpsertOutcome
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based data row (CSV: the header is row 0)
    field: str | None
    code: str
    message: str


@dataclass(frozen=True)
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: tuple[RowError, ...] = ()
    results: tuple[tuple[int, str, UpsertOutcome], ...] = field(default=())

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + len(self.errors)


def staff_from_row(row: StaffRow) -> Staff:
    return Staff(
        id=row.id,
        organization_id=row.organization_id,
        employee_no=row.employee_no,
        name=row.name,
        national_id_masked=row.national_id_masked,
        phone_masked=row.phone_masked,
        department=row.department,
        title=row.title,
        roles=tuple(json.loads(row.roles or "[]")),
        state=row.state,
        key_id=row.key_id,
        certificate_id=row.certificate_id,
        enrolled_at=row.enrolled_at,
        pin_set=row.pin_hash is not None,
    )


def national_id_context(staff_id: str) -> str:
    return sealing_context(StaffRow.__tablename__, "national_id_sealed", staff_id)


def phone_context(staff_id: str) -> str:
    return sealing_context(StaffRow.__tablename__, "phone_sealed", staff_id)


# -- CSV --------------------------------------------------------------------------------------


def parse_csv(data: bytes | str) -> list[dict[str, str]]:
    """Rows of a CSV export with a header row; UTF-8 with or without a byte-order mark.

    Column names are matched case-insensitively; empty cells mean "not provided".
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError("CSV must be UTF-8") from exc
    else:
        text = data.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration as exc:
        raise InputError("CSV has no header row") from exc
    except csv.Error as exc:
        raise InputError("CSV header is malformed") from exc
    columns = [name.strip().lower() for name in header]
    if "employee_no" not in columns:
        raise InputError("CSV header must name an employee_no column")
    rows: list[dict[str, str]] = []
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            row = {c: v for c, v in zip(columns, cells, strict=False) if c}
            if len(cells) > len(columns):
                row["__extra__"] = ",".join(cells[len(columns) :])
            rows.append(row)
            if len(rows) > MAX_IMPORT_ROWS:
                raise InputError(f"at most {MAX_IMPORT_ROWS} rows per import")
    except csv.Error as exc:
        raise InputError("CSV is malformed") from exc
    return rows


# -- the directory ----------------------------------------------------------------------------


class StaffDirectory:
    """Staff of every organization; application-facing calls are scoped to one organization."""

    def __init__(
        self,
        database: Database,
        sealer: DataSealer,
        clock: Clock,
        *,
        authority: CertificateAuthority | None = None,
    ) -> None:
        self._database = database
        self._sealer = sealer
        self._clock = clock
        # With an authority, deregistration also revokes the staff certificate.
        self._authority = authority

    # -- reads --------------------------------------------------------------------------------

    def get(self, organization_id: str, employee_no: str) -> Staff:
        with self._database.session() as session:
            return staff_from_row(self._row(session, organization_id, employee_no))

    def get_by_id(self, staff_id: str) -> Staff:
        with self._database.session() as session:
            row = session.get(StaffRow, staff_id)
            if row is None:
                raise NotFoundError(f"no staff member {staff_id}")
            return staff_from_row(row)

    def list(self, organization_id: str, *, limit: int = 100, offset: int = 0) -> list[Staff]:
        if not 1 <= limit <= 1000 or offset < 0:
            raise InputError("limit must be 1..1000 and offset non-negative")
        with self._database.session() as session:
            rows = session.scalars(
                select(StaffRow)
                .where(StaffRow.organization_id == organization_id)
                .order_by(StaffRow.employee_no)
                .limit(limit)
                .offset(offset)
            )
            return [staff_from_row(r) for r in rows]

    def organization_name(self, organization_id: str) -> str:
        with self._database.session() as session:
            row = session.get(OrganizationRow, organization_id)
            if row is None:
                raise NotFoundError(f"no organization {organization_id}")
            return row.name

    def phone_of(self, staff_id: str) -> str:
        """The clear mobile number, for sending an SMS only; never return or log it."""
        with self._database.session() as session:
            row = session.get(StaffRow, staff_id)
            if row is None or row.phone_sealed is None:
                raise StaffStateError(f"staff member {staff_id} has no mobile number")
            return self._sealer.open_text(row.phone_sealed, context=phone_context(staff_id))

    def national_id_matches(self, staff_id: str, national_id: str) -> bool:
        """Whether ``national_id`` (already normalised) is the stored one (keyed digests)."""
        with self._database.session() as session:
            row = session.get(StaffRow, staff_id)
            if row is None or row.national_id_digest is None:
                return False
            stored = row.national_id_digest
        candidate = self._sealer.lookup_digest(national_id, context=NATIONAL_ID_CONTEXT)
        return hmac.compare_digest(stored, candidate)

    def _row(
        self, session: Session, organization_id: str, employee_no: str, *, for_update: bool = False
    ) -> StaffRow:
        query = select(StaffRow).where(
            StaffRow.organization_id == organization_id, StaffRow.employee_no == employee_no
        )
        if for_update:
            query = query.with_for_update()
        row = session.scalar(query)
        if row is None:
            raise NotFoundError(f"no staff member {employee_no} in this organization")
        return row

    # -- upsert and import ----------------------------------------------------------------------

    def upsert(self, organization_id: str, record: StaffInput, *, actor: str) -> UpsertResult:
        """Create or update one staff member from an HIS record (idempotent)."""

        def attempt() -> UpsertResult:
            self._load_digest_key()
            with self._database.session() as session:
                return self._upsert(session, organization_id, record, actor=actor)

        return _retry_on_conflict(attempt)

    def _upsert(
        self, session: Session, organization_id: str, record: StaffInput, *, actor: str
    ) -> UpsertResult:
        now = self._clock.now()
        query = select(StaffRow).where(
            StaffRow.organization_id == organization_id,
            StaffRow.employee_no == record.employee_no,
        )
        row = session.scalar(query.with_for_update())
        if row is None:
            if session.get(OrganizationRow, organization_id) is None:
                raise NotFoundError(f"no organization {organization_id}")
            row = StaffRow(
                id=_new_staff_id(),
                organization_id=organization_id,
                employee_no=record.employee_no,
                name=record.name,
                department=record.department or "",
                title=record.title or "",
                roles=json.dumps(list(record.roles or ()), ensure_ascii=False),
                state=ACTIVE,
                pin_failures=0,
                pin_lock_level=0,
                created_at=now,
                updated_at=now,
            )
            if record.national_id is not None:
                self._set_national_id(row, record.national_id)
            if record.phone is not None:
                self._set_phone(row, record.phone)
            session.add(row)
            session.flush()
            record_event(session, now, "staff:create", staff_id=row.id, actor=actor)
            return UpsertResult(staff_from_row(row), "created")
        if row.state == DEREGISTERED:
            raise StaffStateError(
                f"staff member {row.id} is deregistered; deregistration is final",
                public="staff member is deregistered; deregistration is final",
            )
        changed: list[str] = []
        if row.name != record.name:
            row.name = record.name
            changed.append("name")
        for attribute in ("department", "title"):
            value = getattr(record, attribute)
            if value is not None and getattr(row, attribute) != value:
                setattr(row, attribute, value)
                changed.append(attribute)
        if record.roles is not None:
            roles = json.dumps(list(record.roles), ensure_ascii=False)
            if roles != row.roles:
                row.roles = roles
                changed.append("roles")
        if record.national_id is not None:
            digest = self._sealer.lookup_digest(record.national_id, context=NATIONAL_ID_CONTEXT)
            if row.national_id_digest is None or not hmac.compare_digest(
                row.national_id_digest, digest
            ):
                self._set_national_id(row, record.national_id)
                changed.append("national_id")
        if record.phone is not None and self._phone_differs(row, record.phone):
            self._set_phone(row, record.phone)
            invalidate_codes(session, row.id, now)
            changed.append("phone")
        if not changed:
            return UpsertResult(staff_from_row(row), "unchanged")
        row.updated_at = now
        session.flush()
        record_event(session, now, "staff:update", staff_id=row.id, actor=actor, fields=changed)
        return UpsertResult(staff_from_row(row), "updated", tuple(changed))

    def import_records(
        self, organization_id: str, records: Sequence[Mapping[str, Any]], *, actor: str
    ) -> ImportReport:
        """Validate every record, apply the valid ones, report the others by row.

        A refused row (bad field, deregistered employee) does not undo the others; the import
        is one transaction, retried once if a concurrent sync created the same employee.
        """
        return _retry_on_conflict(lambda: self._import(organization_id, records, actor=actor))

    def _import(
        self, organization_id: str, records: Sequence[Mapping[str, Any]], *, actor: str
    ) -> ImportReport:
        self._load_digest_key()
        if len(records) > MAX_IMPORT_ROWS:
            raise InputError(f"at most {MAX_IMPORT_ROWS} rows per import")
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        errors: list[RowError] = []
        results: list[tuple[int, str, UpsertOutcome]] = []
        seen: dict[str, int] = {}
        with self._database.session() as session:
            for number, data in enumerate(records, start=1):
                if not isinstance(data, Mapping):
                    errors.append(RowError(number, None, "invalid-input", "row must be an object"))
                    continue
                if "__extra__" in data:
                    errors.append(
                        RowError(number, None, "invalid-input", "row has more cells than header")
                    )
                    continue
                try:
                    record = StaffInput.parse(data)
                except InputError as exc:
                    field_name = exc.extra.get("field")
                    errors.append(
                        RowError(number, field_name, exc.code, exc.public_message()[:200])
                    )
                    continue
                if record.employee_no in seen:
                    errors.append(
                        RowError(
                            number,
                            "employee_no",
                            "duplicate-row",
                            f"same employee number as row {seen[record.employee_no]}",
                        )
                    )
                    continue
                seen[record.employee_no] = number
                try:
                    # ``_upsert`` refuses before it writes anything, so a refused row leaves
                    # no trace and needs no savepoint.
                    result = self._upsert(session, organization_id, record, actor=actor)
                except (StateError, InputError, NotFoundError) as exc:
                    errors.append(RowError(number, None, exc.code, exc.public_message()[:200]))
                    continue
                counts[result.outcome] += 1
                results.append((number, record.employee_no, result.outcome))
        log.info(
            "staff import",
            extra={"rows": len(records), "errors": len(errors), **counts},
        )
        return ImportReport(
            created=counts["created"],
            updated=counts["updated"],
            unchanged=counts["unchanged"],
            errors=tuple(errors),
            results=tuple(results),
        )

    def import_csv(self, organization_id: str, data: bytes | str, *, actor: str) -> ImportReport:
        return self.import_records(organization_id, parse_csv(data), actor=actor)

    # -- states and phone ------------------------------------------------------------------------

    def freeze(self, organization_id: str, employee_no: str, *, actor: str) -> Staff:
        return self._transition(organization_id, employee_no, (ACTIVE,), FROZEN, actor)

    def unfreeze(self, organization_id: str, employee_no: str, *, actor: str) -> Staff:
        return self._transition(organization_id, employee_no, (FROZEN,), ACTIVE, actor)

    def deregister(self, organization_id: str, employee_no: str, *, actor: str) -> Staff:
        """Final: the staff member can no longer sign or enrol; open SMS codes die with it,
        and the signing certificate is revoked (affiliationChanged)."""
        staff = self._transition(
            organization_id, employee_no, (ACTIVE, FROZEN), DEREGISTERED, actor
        )
        if self._authority is not None and staff.certificate_id is not None:
            certificate = self._authority.get_by_id(staff.certificate_id)
            if certificate.status != "revoked":
                self._authority.revoke(certificate.serial_hex, "affiliationChanged", actor=actor)
        return staff

    def _transition(
        self,
        organization_id: str,
        employee_no: str,
        allowed: Iterable[str],
        target: str,
        actor: str,
    ) -> Staff:
        now = self._clock.now()
        with self._database.session() as session:
            row = self._row(session, organization_id, employee_no, for_update=True)
            if row.state not in allowed:
                raise StaffStateError(
                    f"staff member is {row.state}; cannot become {target}",
                )
            row.state = target
            row.updated_at = now
            if target != ACTIVE:
                invalidate_codes(session, row.id, now)
            action = {FROZEN: "freeze", ACTIVE: "unfreeze", DEREGISTERED: "deregister"}[target]
            record_event(session, now, f"staff:{action}", staff_id=row.id, actor=actor)
            session.flush()
            return staff_from_row(row)

    def change_phone(
        self, organization_id: str, employee_no: str, phone: str, *, actor: str
    ) -> Staff:
        """Re-seal a new mobile number; SMS codes sent to the old one stop working."""
        normalised = normalise_phone(phone)
        now = self._clock.now()
        with self._database.session() as session:
            row = self._row(session, organization_id, employee_no, for_update=True)
            if row.state == DEREGISTERED:
                raise StaffStateError("staff member is deregistered")
            if not self._phone_differs(row, normalised):
                return staff_from_row(row)
            self._set_phone(row, normalised)
            row.updated_at = now
            invalidated = invalidate_codes(session, row.id, now)
            record_event(
                session,
                now,
                "staff:change-phone",
                staff_id=row.id,
                actor=actor,
                invalidated_otps=invalidated,
            )
            session.flush()
            return staff_from_row(row)

    # -- sealing helpers ----------------------------------------------------------------------

    def _load_digest_key(self) -> None:
        """Make sure the lookup-digest key is loaded before a write transaction starts: its
        first use reads (or creates) it through another connection, which on SQLite would
        wait for this transaction's write lock until the busy timeout."""
        self._sealer.lookup_digest("", context="warm-up")

    def _set_national_id(self, row: StaffRow, national_id: str) -> None:
        row.national_id_sealed = self._sealer.seal_text(
            national_id, context=national_id_context(row.id)
        )
        row.national_id_digest = self._sealer.lookup_digest(
            national_id, context=NATIONAL_ID_CONTEXT
        )
        row.national_id_masked = mask_national_id(national_id)

    def _set_phone(self, row: StaffRow, phone: str) -> None:
        row.phone_sealed = self._sealer.seal_text(phone, context=phone_context(row.id))
        row.phone_masked = mask_phone(phone)

    def _phone_differs(self, row: StaffRow, phone: str) -> bool:
        if row.phone_sealed is None:
            return True
        current = self._sealer.open_text(row.phone_sealed, context=phone_context(row.id))
        return not hmac.compare_digest(current.encode(), phone.encode())


def _new_staff_id() -> str:
    return new_id("stf")


def _retry_on_conflict(operation: Callable[[], _T]) -> _T:
    """Run once more when a concurrent transaction inserted the same employee first: the
    second run finds the row and updates it, which is what an idempotent upsert promises."""
    try:
        return operation()
    except IntegrityError:
        return operation()
