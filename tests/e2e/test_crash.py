"""A server killed (SIGKILL) in the middle of a batch signature (issue 3, item 12): every
item is then either fully signed or still pending, never half, and signing again after a
retry with the same idempotency key signs each item exactly once."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from medsign.client import MedsignClient
from medsign.db.session import Database
from medsign.db.tables import EvidenceEventRow, KeyUseRow, SignRequestRow, StaffRow
from tests.conftest import make_database_url
from tests.identity.support import make_national_id
from tests.live import LiveServer, enrol_live, live_server

PIN = "271828"
ITEMS = 400


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    urls = make_database_url(tmp_path)
    with live_server(tmp_path / "data", next(urls)) as running:
        yield running
    for _ in urls:
        pass


def batch_body(key: str) -> dict[str, object]:
    return {
        "employee_no": "K0001",
        "idempotency_key": key,
        "items": [
            {
                "scene": "nursing-record",
                "summary": f"护理记录 {i}",
                "record_id": f"NR-{i}",
                "record": {"entry": i, "text": "生命体征平稳"},
            }
            for i in range(ITEMS)
        ],
    }


def apply_events(db: Database, ids: list[str]) -> int:
    with db.session() as s:
        records = s.scalars(
            select(EvidenceEventRow.record).where(EvidenceEventRow.type == "signature:apply")
        ).all()
    wanted = set(ids)
    return sum(1 for r in records for i in wanted if f'"{i}"' in r)


def test_kill_during_a_batch_signature(server: LiveServer) -> None:
    registered = server.admin.post(
        "/admin/v1/applications", json={"name": "Nursing", "code": "nursing-crash"}
    ).json()
    his = MedsignClient(server.base, registered["application"]["id"], registered["secret"])
    record = {
        "employee_no": "K0001",
        "name": "护士甲",
        "department": "ICU",
        "national_id": make_national_id("19920202", 1),
        "phone": "13912345678",
    }
    assert his.request("POST", "/api/v1/staff:import", json=[record]).status_code == 200
    enrol_live(server, his, record, "rsa-2048", PIN)
    db = Database(server.database_url)
    with db.session() as s:
        key_id = s.scalar(select(StaffRow.key_id).where(StaffRow.employee_no == "K0001"))

    def data_signatures() -> int:
        with db.session() as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(KeyUseRow)
                    .where(KeyUseRow.key_id == key_id, KeyUseRow.purpose == "data-signature")
                )
                or 0
            )

    opened = his.request("POST", "/api/v1/sign-batches", json=batch_body("crash-1"))
    assert opened.status_code == 201, opened.text
    ids = [r["id"] for r in opened.json()["requests"]]
    intent = his.request(
        "POST",
        "/api/v1/intents",
        json={"employee_no": "K0001", "batch_id": opened.json()["batch_id"], "method": "pin"},
    ).json()

    before = data_signatures()
    thread = threading.Thread(target=lambda: _swallow(his, intent["id"]), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while data_signatures() == before:  # the first signatures exist: the batch is underway
        assert time.monotonic() < deadline, "signing never started"
        time.sleep(0.002)
    server.kill()
    thread.join(timeout=30)

    # Restart: nothing is half-signed.
    server.start()
    with db.session() as s:
        rows = s.scalars(select(SignRequestRow).where(SignRequestRow.id.in_(ids))).all()
    assert len(rows) == ITEMS
    pending = [r for r in rows if r.state == "pending"]
    signed = [r for r in rows if r.state == "signed"]
    assert len(pending) + len(signed) == ITEMS
    for row in pending:
        assert row.signature is None and row.cms is None and row.timestamp_token is None
    for row in signed:
        assert row.signature and row.cms and row.timestamp_token and row.intent_id
    assert apply_events(db, ids) == len(signed)
    assert pending, "the kill landed after the batch committed; the crash was not exercised"

    # The application retries with the same idempotency key: the same requests come back.
    retried = his.request("POST", "/api/v1/sign-batches", json=batch_body("crash-1"))
    assert retried.status_code == 200
    assert [r["id"] for r in retried.json()["requests"]] == ids

    # The signer confirms again; every item ends signed exactly once.
    again = his.request(
        "POST",
        "/api/v1/intents",
        json={"employee_no": "K0001", "request_ids": [r.id for r in pending], "method": "pin"},
    ).json()
    done = his.request("POST", f"/api/v1/intents/{again['id']}/confirm", json={"pin": PIN})
    assert done.status_code == 200, done.text
    states = [
        r["state"] for r in his.get(f"/api/v1/sign-batches/{opened.json()['batch_id']}")["requests"]
    ]
    assert states == ["signed"] * ITEMS
    assert apply_events(db, ids) == ITEMS
    # The interrupted intention can never be used again.
    stale = his.request("POST", f"/api/v1/intents/{intent['id']}/confirm", json={"pin": PIN})
    assert stale.status_code in (403, 409)
    db.dispose()


def _swallow(his: MedsignClient, intent_id: str) -> None:
    # The server dies under this request; that is the point.
    with contextlib.suppress(Exception):
        his.request("POST", f"/api/v1/intents/{intent_id}/confirm", json={"pin": PIN})
