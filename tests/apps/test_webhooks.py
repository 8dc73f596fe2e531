"""Webhooks against a real HTTP receiver on 127.0.0.1: signatures, failures (500, connection
refused), the back-off schedule on a FixedClock, giving up, redelivery, claims."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from medsign.apps.webhooks import DeliveryState, WebhookDispatcher, enqueue_webhook
from medsign.client import WebhookSignatureError, verify_webhook
from medsign.errors import InputError, NotFoundError, StateError
from medsign.evidence import list_events
from tests.apps.conftest import Apps


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append(Received(dict(self.headers.items()), body))
            status = state.statuses.pop(0) if state.statuses else 204
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/medsign-hook"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/nobody-listens"


def dispatcher(apps: Apps, **kwargs: object) -> WebhookDispatcher:
    options: dict[str, object] = {"rng": lambda: 0.0, "timeout": 5.0, **kwargs}
    return WebhookDispatcher(apps.database, apps.sealer, apps.clock, **options)  # type: ignore[arg-type]


def enqueue(apps: Apps, app_id: str, subject: str = "req_1", event: str = "request:signed") -> str:
    with apps.database.session() as session:
        delivery = enqueue_webhook(
            session, apps.clock.now(), app_id, event, subject, {"state": "signed", "n": 1}
        )
    assert delivery is not None
    return delivery


def test_enqueue_only_with_a_webhook_url_and_in_the_callers_transaction(apps: Apps) -> None:
    polling, _ = apps.registry.register(name="LIS", code="lis")
    with apps.database.session() as session:
        assert (
            enqueue_webhook(session, apps.clock.now(), polling.id, "request:signed", "r", {})
            is None
        )
    app, _ = apps.registry.register(name="EMR", code="emr", webhook_url="http://127.0.0.1:9/h")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), apps.database.session() as session:
        enqueue_webhook(session, apps.clock.now(), app.id, "request:signed", "req_1", {})
        raise Boom
    assert dispatcher(apps).list_deliveries(application_id=app.id) == []

    with apps.database.session() as session:
        with pytest.raises(InputError):
            enqueue_webhook(session, apps.clock.now(), app.id, "Signed!", "req_1", {})
        with pytest.raises(InputError):
            enqueue_webhook(session, apps.clock.now(), app.id, "request:signed", "r", {"x": {1, 2}})
        with pytest.raises(NotFoundError):
            enqueue_webhook(session, apps.clock.now(), "app_nope", "request:signed", "r", {})


def test_delivery_is_signed_and_recorded(apps: Apps, receiver: Receiver) -> None:
    app, secret = apps.registry.register(name="EMR", code="emr", webhook_url=receiver.url)
    delivery_id = enqueue(apps, app.id)
    assert dispatcher(apps).deliver_due() == 1

    [got] = receiver.received
    assert got.headers["X-Medsign-Delivery"] == delivery_id
    assert got.headers["X-Medsign-Event"] == "request:signed"
    assert got.headers["X-Medsign-App"] == app.id
    assert got.headers["Content-Type"] == "application/json"
    now = apps.clock.now().timestamp()
    verify_webhook(secret, got.headers, got.body, now=now)
    body = json.loads(got.body)
    assert body == {
        "id": delivery_id,
        "type": "request:signed",
        "application_id": app.id,
        "subject_id": "req_1",
        "created_at": "2026-11-23T08:00:00.000Z",
        "data": {"state": "signed", "n": 1},
    }
    with pytest.raises(WebhookSignatureError):
        verify_webhook(secret, got.headers, got.body + b" ", now=now)
    with pytest.raises(WebhookSignatureError):
        verify_webhook(secret, got.headers, got.body, now=now + 301)
    with pytest.raises(WebhookSignatureError):
        verify_webhook("mss_" + "C" * 43, got.headers, got.body, now=now)

    delivery = dispatcher(apps).get(delivery_id)
    assert delivery.state is DeliveryState.DELIVERED
    assert (delivery.attempts, delivery.last_status, delivery.last_error) == (1, 204, None)
    assert delivery.delivered_at == apps.clock.now()
    [event] = list_events(apps.database, event_type="webhook:deliver")
    assert event.record["delivery_id"] == delivery_id and event.record["subject_id"] == "req_1"
    # Nothing more is due: a delivered webhook is not sent again.
    assert dispatcher(apps).deliver_due() == 0 and len(receiver.received) == 1


def test_server_errors_are_retried_with_back_off(apps: Apps, receiver: Receiver) -> None:
    app, _ = apps.registry.register(name="EMR", code="emr", webhook_url=receiver.url)
    delivery_id = enqueue(apps, app.id)
    receiver.statuses = [500, 503]
    sender = dispatcher(apps)
    start = apps.clock.now()

    assert sender.deliver_due() == 1
    first = sender.get(delivery_id)
    assert (first.state, first.attempts, first.last_status) == (DeliveryState.PENDING, 1, 500)
    assert first.last_error == "HTTP 500"
    assert first.next_attempt_at == start + dt.timedelta(seconds=30)
    apps.clock.advance(dt.timedelta(seconds=29))
    assert sender.deliver_due() == 0
    apps.clock.advance(dt.timedelta(seconds=1))
    assert sender.deliver_due() == 1
    assert sender.get(delivery_id).next_attempt_at == apps.clock.now() + dt.timedelta(minutes=1)
    apps.clock.advance(dt.timedelta(minutes=1))
    assert sender.deliver_due() == 1
    done = sender.get(delivery_id)
    assert (done.state, done.attempts, done.last_status) == (DeliveryState.DELIVERED, 3, 204)
    # The same delivery id and the same body every time: receivers dedupe on the id.
    assert len({r.headers["X-Medsign-Delivery"] for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1


def test_connection_refused_follows_the_schedule_then_fails(apps: Apps) -> None:
    app, _ = apps.registry.register(name="EMR", code="emr", webhook_url=closed_port_url())
    delivery_id = enqueue(apps, app.id)
    sender = dispatcher(apps, max_attempts=5, max_delay=dt.timedelta(minutes=3))
    waits = []
    for _ in range(4):
        assert sender.deliver_due() == 1
        pending = sender.get(delivery_id)
        assert pending.state is DeliveryState.PENDING and pending.last_error == "ConnectError"
        assert pending.last_status is None
        waits.append(pending.next_attempt_at - apps.clock.now())
        apps.clock.advance(waits[-1])
    # 30 s x 2^(n-1), capped at 3 minutes.
    assert waits == [dt.timedelta(seconds=s) for s in (30, 60, 120, 180)]
    assert sender.deliver_due() == 1
    failed = sender.get(delivery_id)
    assert (failed.state, failed.attempts) == (DeliveryState.FAILED, 5)
    [event] = list_events(apps.database, event_type="webhook:fail")
    assert event.record["delivery_id"] == delivery_id and event.record["attempts"] == 5
    apps.clock.advance(dt.timedelta(days=1))
    assert sender.deliver_due() == 0
    assert [d.id for d in sender.list_deliveries(application_id=app.id, state="failed")] == [
        delivery_id
    ]


def test_jitter_stays_within_its_bound(apps: Apps) -> None:
    top = dispatcher(apps, rng=lambda: 0.999999)
    for n, base in ((1, 30), (2, 60), (5, 480)):
        delay = top.retry_delay(n).total_seconds()
        assert base <= delay < base * 1.25
    assert dispatcher(apps).retry_delay(40) == dt.timedelta(hours=6)


def test_redeliver_after_failure(apps: Apps, receiver: Receiver) -> None:
    app, _ = apps.registry.register(name="EMR", code="emr", webhook_url=receiver.url)
    delivery_id = enqueue(apps, app.id)
    receiver.statuses = [500]
    sender = dispatcher(apps, max_attempts=1)
    sender.deliver_due()
    assert sender.get(delivery_id).state is DeliveryState.FAILED
    again = sender.redeliver(delivery_id, actor="admin:adm_1")
    assert (again.state, again.attempts) == (DeliveryState.PENDING, 0)
    assert sender.deliver_due() == 1
    assert sender.get(delivery_id).state is DeliveryState.DELIVERED
    assert len(receiver.received) == 2
    [event] = list_events(apps.database, event_type="webhook:redeliver")
    assert event.record["actor"] == "admin:adm_1"
    with pytest.raises(NotFoundError):
        sender.redeliver("whd_nope")


def test_during_rotation_both_secrets_sign(apps: Apps, receiver: Receiver) -> None:
    app, old = apps.registry.register(name="EMR", code="emr", webhook_url=receiver.url)
    _, new = apps.registry.rotate_secret(app.id)
    enqueue(apps, app.id)
    dispatcher(apps).deliver_due()
    [got] = receiver.received
    assert got.headers["X-Medsign-Signature"].count("sha256=") == 2
    now = apps.clock.now().timestamp()
    verify_webhook(new, got.headers, got.body, now=now)
    verify_webhook(old, got.headers, got.body, now=now)


def test_deregistered_applications_get_nothing(apps: Apps, receiver: Receiver) -> None:
    app, _ = apps.registry.register(name="EMR", code="emr", webhook_url=receiver.url)
    delivery_id = enqueue(apps, app.id)
    apps.registry.deregister(app.id)
    sender = dispatcher(apps)
    assert sender.deliver_due() == 1
    assert sender.get(delivery_id).state is DeliveryState.FAILED
    assert receiver.received == []
    with pytest.raises(StateError):
        sender.redeliver(delivery_id)
    with apps.database.session() as session:
        assert enqueue_webhook(session, apps.clock.now(), app.id, "request:signed", "r", {}) is None


def test_a_delivery_is_claimed_by_one_dispatcher(apps: Apps, receiver: Receiver) -> None:
    app, _ = apps.registry.register(name="EMR", code="emr", webhook_url=receiver.url)
    delivery_id = enqueue(apps, app.id)
    one, two = dispatcher(apps), dispatcher(apps)
    now = apps.clock.now()
    assert one._claim(delivery_id, now)
    assert not two._claim(delivery_id, now)
    # The lease expires if the claiming node died mid-attempt.
    apps.clock.advance(one.lease)
    assert two.deliver_due() == 1
    assert len(receiver.received) == 1
