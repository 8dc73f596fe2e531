"""Webhooks out: an outbox written with the result, delivered by a dispatcher with retries.

``enqueue_webhook`` writes into the caller's transaction, so a result and its notification
commit together (or not at all). ``WebhookDispatcher.deliver_due`` POSTs what is due, signs
each body with the application secret (docs/integration/webhooks.md), and on failure retries
with exponential back-off and jitter until ``max_attempts``; then the delivery is marked
failed. Delivery is at least once: receivers dedupe on ``X-Medsign-Delivery``. Whatever
happens here, results stay retrievable by polling.

Several processes may run dispatchers on one database: a delivery is claimed with a
conditional UPDATE that pushes its due time forward (a lease), so only one sends it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

import medsign
from medsign.apps.registry import ApplicationState, open_secrets
from medsign.clock import Clock
from medsign.crypto.mac import hmac_digest
from medsign.db import rowcount
from medsign.db.session import Database
from medsign.db.tables import ApplicationRow, WebhookDeliveryRow
from medsign.errors import InputError, NotFoundError, StateError
from medsign.evidence import record_event
from medsign.ids import new_id
from medsign.keys.sealing import DataSealer

log = logging.getLogger(__name__)

EVENT_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9-]*:[a-z][a-z0-9-]*$")
HEADER_DELIVERY = "X-Medsign-Delivery"
HEADER_EVENT = "X-Medsign-Event"
HEADER_SIGNATURE = "X-Medsign-Signature"
HEADER_TIMESTAMP = "X-Medsign-Timestamp"
HEADER_APP = "X-Medsign-App"


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class WebhookDelivery:
    id: str
    application_id: str
    event_type: str
    subject_id: str
    state: DeliveryState
    attempts: int
    next_attempt_at: dt.datetime
    last_status: int | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None


def _to_delivery(row: WebhookDeliveryRow) -> WebhookDelivery:
    return WebhookDelivery(
        id=row.id,
        application_id=row.application_id,
        event_type=row.event_type,
        subject_id=row.subject_id,
        state=DeliveryState(row.state),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def enqueue_webhook(
    session: Session,
    at: dt.datetime,
    application_id: str,
    event_type: str,
    subject_id: str,
    payload: dict[str, Any],
) -> str | None:
    """Queue a notification in the caller's transaction; ``None`` when the application has
    no webhook URL (it polls) or is deregistered. Returns the delivery id."""
    if not EVENT_TYPE_PATTERN.match(event_type) or len(event_type) > 64:
        raise InputError(f"webhook event type {event_type!r} is not subject:action")
    if not subject_id or len(subject_id) > 64:
        raise InputError("webhook subject id must be 1-64 characters")
    # No autoflush: callers queue many notifications in one unit of work, and flushing
    # their pending rows on every lookup would cost one round trip per notification.
    with session.no_autoflush:
        app = session.get(ApplicationRow, application_id)
    if app is None:
        raise NotFoundError(f"no application {application_id}")
    if not app.webhook_url or app.state == ApplicationState.DEREGISTERED:
        return None
    delivery_id = new_id("whd")
    envelope = {
        "id": delivery_id,
        "type": event_type,
        "application_id": application_id,
        "subject_id": subject_id,
        "created_at": _iso(at),
        "data": payload,
    }
    try:
        # Stored as the exact bytes to send, so every retry carries an identical body.
        body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InputError("webhook payload must be JSON-serialisable") from exc
    session.add(
        WebhookDeliveryRow(
            id=delivery_id,
            application_id=application_id,
            event_type=event_type,
            subject_id=subject_id,
            payload=body,
            state=DeliveryState.PENDING.value,
            attempts=0,
            next_attempt_at=at,
            created_at=at,
        )
    )
    return delivery_id


def enqueue_webhooks(
    session: Session,
    at: dt.datetime,
    application_id: str,
    notifications: Sequence[tuple[str, str, dict[str, Any]]],
) -> list[str]:
    """``enqueue_webhook`` for many (event type, subject id, payload) of one application:
    the application is looked up once (a batch of 500 results is 500 notifications)."""
    if not notifications:
        return []
    with session.no_autoflush:
        app = session.get(ApplicationRow, application_id)
    if app is None:
        raise NotFoundError(f"no application {application_id}")
    if not app.webhook_url or app.state == ApplicationState.DEREGISTERED:
        return []
    return [
        enqueue_webhook(session, at, application_id, event_type, subject_id, payload) or ""
        for event_type, subject_id, payload in notifications
    ]


def signature_header(keys: list[bytes], timestamp: str, body: bytes) -> str:
    """``sha256=<base64>`` per valid secret (two during a rotation's grace period)."""
    message = timestamp.encode("ascii") + b"." + body
    return ", ".join(
        "sha256=" + base64.b64encode(hmac_digest("sha256", key, message)).decode("ascii")
        for key in keys
    )


@dataclass(frozen=True)
class _Outgoing:
    id: str
    application_id: str
    event_type: str
    url: str
    body: bytes
    keys: list[bytes]


class WebhookDispatcher:
    def __init__(
        self,
        database: Database,
        sealer: DataSealer,
        clock: Clock,
        *,
        http: httpx.Client | None = None,
        max_attempts: int = 10,
        base_delay: dt.timedelta = dt.timedelta(seconds=30),
        max_delay: dt.timedelta = dt.timedelta(hours=6),
        jitter: float = 0.25,
        timeout: float = 10.0,
        lease: dt.timedelta = dt.timedelta(minutes=2),
        rng: Callable[[], float] = random.random,
    ) -> None:
        if max_attempts < 1:
            raise InputError("max_attempts must be at least 1")
        self._database = database
        self._sealer = sealer
        self._clock = clock
        self._http = http
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.jitter = jitter
        self.timeout = timeout
        self.lease = lease
        self._rng = rng

    def __repr__(self) -> str:
        return "<WebhookDispatcher>"

    def retry_delay(self, failed_attempts: int) -> dt.timedelta:
        """Wait after the n-th failed attempt: base x 2^(n-1), capped, plus up to
        ``jitter`` of itself so receivers coming back up are not hit all at once."""
        exponent = min(max(failed_attempts - 1, 0), 30)
        delay: dt.timedelta = min(self.base_delay * (2**exponent), self.max_delay)
        return delay * (1.0 + self.jitter * self._rng())

    # -- reading -----------------------------------------------------------------------------

    def get(self, delivery_id: str) -> WebhookDelivery:
        with self._database.session() as session:
            row = session.get(WebhookDeliveryRow, delivery_id)
            if row is None:
                raise NotFoundError(f"no webhook delivery {delivery_id}")
            return _to_delivery(row)

    def payload(self, delivery_id: str) -> str:
        with self._database.session() as session:
            row = session.get(WebhookDeliveryRow, delivery_id)
            if row is None:
                raise NotFoundError(f"no webhook delivery {delivery_id}")
            return row.payload

    def list_deliveries(
        self,
        *,
        application_id: str | None = None,
        state: str | None = None,
        limit: int = 100,
    ) -> list[WebhookDelivery]:
        query = select(WebhookDeliveryRow)
        if application_id is not None:
            query = query.where(WebhookDeliveryRow.application_id == application_id)
        if state is not None:
            query = query.where(WebhookDeliveryRow.state == DeliveryState(state).value)
        query = query.order_by(WebhookDeliveryRow.created_at.desc(), WebhookDeliveryRow.id)
        with self._database.session() as session:
            return [_to_delivery(r) for r in session.scalars(query.limit(limit))]

    # -- changing ----------------------------------------------------------------------------

    def redeliver(self, delivery_id: str, *, actor: str = "system") -> WebhookDelivery:
        """Queue a delivery again, due now, with a fresh attempt budget."""
        with self._database.session() as session:
            row = session.get(WebhookDeliveryRow, delivery_id)
            if row is None:
                raise NotFoundError(f"no webhook delivery {delivery_id}")
            app = session.get(ApplicationRow, row.application_id)
            if app is None or app.state == ApplicationState.DEREGISTERED or not app.webhook_url:
                raise StateError("the application has no webhook URL to deliver to")
            now = self._clock.now()
            row.state = DeliveryState.PENDING.value
            row.attempts = 0
            row.next_attempt_at = now
            record_event(
                session,
                now,
                "webhook:redeliver",
                delivery_id=row.id,
                application_id=row.application_id,
                actor=actor,
            )
            return _to_delivery(row)

    def deliver_due(self, limit: int = 50) -> int:
        """Attempt up to ``limit`` due deliveries; returns how many were attempted."""
        now = self._clock.now()
        with self._database.session() as session:
            due = list(
                session.scalars(
                    select(WebhookDeliveryRow.id)
                    .where(
                        WebhookDeliveryRow.state == DeliveryState.PENDING.value,
                        WebhookDeliveryRow.next_attempt_at <= now,
                    )
                    .order_by(WebhookDeliveryRow.next_attempt_at, WebhookDeliveryRow.id)
                    .limit(limit)
                )
            )
        if not due:
            return 0
        attempted = 0
        http = self._http or httpx.Client(timeout=self.timeout, follow_redirects=False)
        try:
            for delivery_id in due:
                if self._claim(delivery_id, now):
                    self._attempt(http, delivery_id)
                    attempted += 1
        finally:
            if self._http is None:
                http.close()
        return attempted

    def _claim(self, delivery_id: str, now: dt.datetime) -> bool:
        with self._database.session() as session:
            result = session.execute(
                update(WebhookDeliveryRow)
                .where(
                    WebhookDeliveryRow.id == delivery_id,
                    WebhookDeliveryRow.state == DeliveryState.PENDING.value,
                    WebhookDeliveryRow.next_attempt_at <= now,
                )
                .values(next_attempt_at=now + self.lease)
            )
            return rowcount(result) == 1

    def _prepare(self, delivery_id: str) -> _Outgoing | None:
        with self._database.session() as session:
            row = session.get(WebhookDeliveryRow, delivery_id)
            if row is None:
                return None
            app = session.get(ApplicationRow, row.application_id)
            if app is None or app.state == ApplicationState.DEREGISTERED or not app.webhook_url:
                row.state = DeliveryState.FAILED.value
                row.last_error = "application deregistered or without webhook URL"
                return None
            return _Outgoing(
                id=row.id,
                application_id=row.application_id,
                event_type=row.event_type,
                url=app.webhook_url,
                body=row.payload.encode("utf-8"),
                keys=open_secrets(self._sealer, app, self._clock.now()),
            )

    def _attempt(self, http: httpx.Client, delivery_id: str) -> None:
        outgoing = self._prepare(delivery_id)
        if outgoing is None:
            return
        timestamp = str(int(self._clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"medsign-webhooks/{medsign.__version__}",
            HEADER_DELIVERY: outgoing.id,
            HEADER_EVENT: outgoing.event_type,
            HEADER_APP: outgoing.application_id,
            HEADER_TIMESTAMP: timestamp,
            HEADER_SIGNATURE: signature_header(outgoing.keys, timestamp, outgoing.body),
        }
        status: int | None = None
        error: str | None = None
        try:
            # Streamed so a receiver's (possibly huge) response body is never read.
            with http.stream(
                "POST", outgoing.url, content=outgoing.body, headers=headers, timeout=self.timeout
            ) as response:
                status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            # Only the exception class: its text may repeat the URL (and any token in it).
            error = type(exc).__name__
        self._record_outcome(outgoing, status, error)

    def _record_outcome(self, outgoing: _Outgoing, status: int | None, error: str | None) -> None:
        now = self._clock.now()
        with self._database.session() as session:
            row = session.get(WebhookDeliveryRow, outgoing.id)
            if row is None:
                return
            row.attempts += 1
            row.last_status = status
            row.last_error = error
            if error is None:
                row.state = DeliveryState.DELIVERED.value
                row.delivered_at = now
                record_event(
                    session,
                    now,
                    "webhook:deliver",
                    delivery_id=row.id,
                    application_id=row.application_id,
                    subject_id=row.subject_id,
                    attempts=row.attempts,
                )
            elif row.attempts >= self.max_attempts:
                row.state = DeliveryState.FAILED.value
                record_event(
                    session,
                    now,
                    "webhook:fail",
                    delivery_id=row.id,
                    application_id=row.application_id,
                    subject_id=row.subject_id,
                    attempts=row.attempts,
                )
                log.warning(
                    "webhook delivery failed for good",
                    extra={"delivery": row.id, "app": row.application_id, "error": error},
                )
            else:
                row.next_attempt_at = now + self.retry_delay(row.attempts)
