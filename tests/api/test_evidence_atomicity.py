"""No signature without its evidence (issue 5, item 8): when appending the evidence of a
batch fails, the whole confirmation rolls back: every item stays pending, no leaf is added,
the intention is not consumed, and a new confirmation later signs each item once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from medsign.api.app import create_app
from tests.api.signing_support import PIN, enrol
from tests.identity.support import register_application, signed_client


@pytest.fixture(scope="module")
def his(runtime: Any, client: TestClient, admin_headers: dict[str, str]) -> Iterator[Any]:
    app_id, secret = register_application(client, admin_headers)
    # A server error must come back as a 500 problem here, not be re-raised into the test.
    quiet = TestClient(create_app(runtime, schedule=False), raise_server_exceptions=False)
    with quiet, signed_client(quiet, app_id, secret) as medsign:
        yield medsign


def failing_appends(runtime: Any, on: bool) -> None:
    """Make the database refuse the evidence of applied signatures (a full disk, say)."""
    with runtime.database.engine.begin() as conn:
        if runtime.database.dialect == "postgresql":
            if on:
                conn.execute(
                    text(
                        "CREATE FUNCTION test_refuse_signature_events() RETURNS trigger"
                        " LANGUAGE plpgsql AS $$ BEGIN IF NEW.type = 'signature:apply' THEN"
                        " RAISE EXCEPTION 'simulated: no space left'; END IF; RETURN NEW; END $$"
                    )
                )
                conn.execute(
                    text(
                        "CREATE TRIGGER test_refuse BEFORE INSERT ON evidence_events"
                        " FOR EACH ROW EXECUTE FUNCTION test_refuse_signature_events()"
                    )
                )
            else:
                conn.execute(text("DROP TRIGGER test_refuse ON evidence_events"))
                conn.execute(text("DROP FUNCTION test_refuse_signature_events()"))
        elif on:
            conn.execute(
                text(
                    "CREATE TRIGGER test_refuse BEFORE INSERT ON evidence_events"
                    " WHEN NEW.type = 'signature:apply'"
                    " BEGIN SELECT RAISE(ABORT, 'simulated: no space left'); END"
                )
            )
        else:
            conn.execute(text("DROP TRIGGER test_refuse"))


def test_a_failed_append_rolls_back_the_whole_confirmation(
    runtime: Any, client: TestClient, admin_headers: dict[str, str], his: Any
) -> None:
    employee_no = enrol(client, admin_headers, his, "ec-p256")
    opened = his.request(
        "POST",
        "/api/v1/sign-batches",
        json={
            "employee_no": employee_no,
            "idempotency_key": "atomic-1",
            "items": [
                {"scene": "medical-order", "summary": f"医嘱 {i}", "record_id": f"A-{i}",
                 "record": {"i": i}}
                for i in range(5)
            ],
        },
    )  # fmt: skip
    assert opened.status_code == 201, opened.text
    ids = [r["id"] for r in opened.json()["requests"]]
    intent = his.request(
        "POST", "/api/v1/intents", json={"employee_no": employee_no, "request_ids": ids}
    ).json()
    size_before = runtime.evidence_log.size()
    failing_appends(runtime, True)
    try:
        failed = his.request("POST", f"/api/v1/intents/{intent['id']}/confirm", json={"pin": PIN})
    finally:
        failing_appends(runtime, False)
    assert failed.status_code == 500
    assert failed.headers["content-type"].startswith("application/problem+json")
    for request_id in ids:
        polled = his.request("GET", f"/api/v1/sign-requests/{request_id}").json()
        assert polled["state"] == "pending" and polled["signature"] is None
    # The PIN attempt and the confirmation were recorded (their own transactions); nothing of
    # the signing transaction was.
    types = [
        runtime.evidence_log.entry(i).type for i in range(size_before, runtime.evidence_log.size())
    ]
    assert "signature:apply" not in types and "intent:confirm" in types
    assert runtime.evidence_log.audit().ok

    again = his.request(
        "POST", "/api/v1/intents", json={"employee_no": employee_no, "request_ids": ids}
    ).json()
    done = his.request("POST", f"/api/v1/intents/{again['id']}/confirm", json={"pin": PIN})
    assert done.status_code == 200, done.text
    assert [r["state"] for r in done.json()["signed"]] == ["signed"] * 5
    applied = [
        runtime.evidence_log.entry(i).record
        for i in range(size_before, runtime.evidence_log.size())
        if runtime.evidence_log.entry(i).type == "signature:apply"
    ]
    assert sorted(e["request_id"] for e in applied) == sorted(ids)  # each signed once
