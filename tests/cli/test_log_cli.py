"""`medsign log audit` against rows changed behind the server's back with the database's own
client (sqlite3 or psql), after dropping the append-only triggers (issue 5, item 3)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from medsign.db.session import normalise_url
from tests.conftest import make_database_url
from tests.live import LiveServer, live_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    urls = make_database_url(tmp_path)
    with live_server(tmp_path / "data", next(urls)) as running:
        yield running
    for _ in urls:
        pass


def sql(server: LiveServer, statements: str) -> None:
    """Run SQL with the database's own command-line client, as an intruder would."""
    url = server.database_url
    if url.startswith("sqlite:///"):
        command = ["sqlite3", url.removeprefix("sqlite:///")]
    else:
        command = [
            "psql",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            normalise_url(url).replace("+psycopg", ""),
        ]
    done = subprocess.run(command, input=statements, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def triggers_off(server: LiveServer) -> str:
    if server.database_url.startswith("sqlite"):
        return "DROP TRIGGER evidence_events_no_update; DROP TRIGGER evidence_events_no_delete;\n"
    return "DROP TRIGGER evidence_events_append_only ON evidence_events;\n"


def test_audit_passes_then_names_the_edited_row(server: LiveServer) -> None:
    for n in range(6):  # a few real events: registering applications records them
        assert (
            server.admin.post(
                "/admin/v1/applications", json={"name": f"HIS {n}", "code": f"his-{n}"}
            ).status_code
            == 201
        )
    ok = server.cli("log", "audit")
    assert ok.stdout.startswith("ok: ")
    tree = json.loads(server.cli("log", "tree").stdout)
    assert tree["size"] >= 6
    proof = json.loads(server.cli("log", "prove", "3").stdout)
    assert proof["leaf_index"] == 3 and proof["tree_size"] == tree["size"]

    # With the triggers in place the database itself refuses.
    refused = subprocess.run(
        ["sqlite3", server.database_url.removeprefix("sqlite:///")]
        if server.database_url.startswith("sqlite")
        else [
            "psql",
            "-v",
            "ON_ERROR_STOP=1",
            normalise_url(server.database_url).replace("+psycopg", ""),
        ],
        input="DELETE FROM evidence_events WHERE leaf_index = 2;\n",
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "append-only" in refused.stderr

    sql(
        server,
        triggers_off(server)
        + "UPDATE evidence_events SET record = replace(record, '\"v\":1', '\"v\":2')"
        " WHERE leaf_index = 4;\n",
    )
    failed = server.cli("log", "audit", check=False)
    assert failed.returncode == 1
    assert "first bad index 4" in failed.stderr


def test_audit_names_a_deleted_row(server: LiveServer) -> None:
    for n in range(5):
        server.admin.post("/admin/v1/applications", json={"name": f"LIS {n}", "code": f"lis-{n}"})
    sql(server, triggers_off(server) + "DELETE FROM evidence_events WHERE leaf_index = 3;\n")
    failed = server.cli("log", "audit", check=False)
    assert failed.returncode == 1 and "first bad index 3" in failed.stderr
