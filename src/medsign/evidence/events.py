"""Evidence events: one canonical JSON record (RFC 8785) per thing that happened.

Records hold ids, hashes, methods and outcomes: never names, ID numbers, phone numbers,
PINs, codes or clinical content. ``record_event`` writes into the caller's session, so an
event commits (or rolls back) together with the state change it describes: a crash can
never leave a signature without its evidence, nor evidence of a signature that was not made.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from medsign.db.base import Base
from medsign.db.session import Database
from medsign.db.tables import EvidenceEventRow
from medsign.errors import InputError
from medsign.evidence.tree import leaf_index_expression
from medsign.ids import new_id

EVENT_VERSION = 1
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9-]*:[a-z][a-z0-9-]*$")
# Field names that would suggest personal data or secrets: refused outright.
FORBIDDEN_FIELDS = re.compile(r"(name|phone|national|pin|code|secret|password|content)", re.I)
ALLOWED_FIELDS_WITH_CODE = {"error_code", "outcome_code"}

Scalar = str | int | bool | None


@dataclass(frozen=True)
class EvidenceEvent:
    seq: int
    id: str
    type: str
    record: dict[str, Any]
    record_sha256: str
    at: dt.datetime


def _check_fields(fields: Mapping[str, Any]) -> None:
    for key, value in fields.items():
        if key not in _KEYS_SEEN:
            if FORBIDDEN_FIELDS.search(key) and key not in ALLOWED_FIELDS_WITH_CODE:
                raise InputError(f"evidence field {key!r} may carry personal data or secrets")
            _KEYS_SEEN.add(key)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if not isinstance(item, str | int | bool) and item is not None:
                raise InputError(f"evidence field {key!r} must hold ids, hashes or numbers")


# Field names are few and fixed in code: each is checked against the pattern once.
_KEYS_SEEN: set[str] = set()


def record_event(
    session: Session, at: dt.datetime, event_type: str, **fields: Scalar | list[str]
) -> str:
    """Append one event in the caller's transaction; returns the event id."""
    return record_events(session, at, [(event_type, fields)])[0]


def record_events(
    session: Session,
    at: dt.datetime,
    events: Sequence[tuple[str, Mapping[str, Scalar | list[str]]]],
) -> list[str]:
    """Append several events (type, fields) in the caller's transaction, in order, with one
    statement, as leaves of the Merkle log (numbered by the database); returns their ids.

    Rows are inserted at once rather than left to the unit of work, so the store's order is
    the order of the calls, whatever else the transaction flushes later."""
    if at.tzinfo is None:
        raise InputError("evidence time must be UTC-aware")
    when = at.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    rows, ids = [], []
    for event_type, fields in events:
        if not EVENT_TYPE.match(event_type):
            raise InputError(f"evidence event type {event_type!r} is not subject:action")
        _check_fields(fields)
        event_id = new_id("evt")
        record: dict[str, Any] = {
            "v": EVENT_VERSION,
            "id": event_id,
            "type": event_type,
            "at": when,
            **{k: v for k, v in fields.items() if v is not None},
        }
        canonical = canonical_json(record)
        ids.append(event_id)
        rows.append(
            {
                "id": event_id,
                "type": event_type,
                "record": canonical.decode("utf-8"),
                "record_sha256": hashlib.sha256(canonical).hexdigest(),
                "at": at,
            }
        )
    if rows:
        # One statement per event row (executemany): the database numbers each in turn.
        session.connection().execute(_INSERT, rows)
    return ids


# Core, not the ORM: no unit-of-work bookkeeping for rows nobody reads back in this session.
_INSERT = insert(Base.metadata.tables[EvidenceEventRow.__tablename__]).values(
    leaf_index=leaf_index_expression()
)


def canonical_json(record: dict[str, Any]) -> bytes:
    """RFC 8785 bytes of an event record.

    Event records hold only ASCII keys, strings, safe integers, booleans and lists of
    strings; for those, sorted-key compact ``json.dumps`` produces exactly the JCS bytes
    (a property test checks it against the rfc8785 package) at a fraction of the cost.
    Anything else goes through rfc8785."""
    simple = all(
        k.isascii()
        and (
            isinstance(v, str | bool)
            or (isinstance(v, int) and abs(v) < 2**53)
            or (isinstance(v, list) and all(isinstance(i, str) for i in v))
        )
        for k, v in record.items()
    )
    if not simple:
        return rfc8785.dumps(record)
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def list_events(
    database: Database,
    *,
    subject: str | None = None,
    event_type: str | None = None,
    after_seq: int = 0,
    limit: int = 1000,
) -> list[EvidenceEvent]:
    """Events in order; ``subject`` keeps those whose record mentions that id."""
    query = select(EvidenceEventRow).where(EvidenceEventRow.seq > after_seq)
    if event_type is not None:
        query = query.where(EvidenceEventRow.type == event_type)
    if subject is not None:
        query = query.where(EvidenceEventRow.record.contains(f'"{subject}"'))
    query = query.order_by(EvidenceEventRow.seq).limit(limit)
    with database.session() as session:
        return [
            EvidenceEvent(r.seq, r.id, r.type, json.loads(r.record), r.record_sha256, r.at)
            for r in session.scalars(query)
        ]
