"""Two medsign instances on loopback, each witnessing the other's evidence log (issue 5,
item 4): checkpoints get cosigned while the logs only grow, and a rewritten history is
refused by the witness."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from medsign.db.session import Database
from medsign.evidence.merkle import Frontier, leaf_hash
from medsign.evidence.notes import NoteVerifier, open_note
from tests.conftest import make_database_url
from tests.live import LiveServer, live_server


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    env = {"MEDSIGN_LOG_CHECKPOINT_SECONDS": "3600", "MEDSIGN_LOG_WITNESS_QUORUM": "1"}
    root_a, root_b = tmp_path_factory.mktemp("log-a"), tmp_path_factory.mktemp("log-b")
    urls_a, urls_b = make_database_url(root_a), make_database_url(root_b)
    with (
        live_server(root_a / "data", next(urls_a), extra_env=env) as a,
        live_server(root_b / "data", next(urls_b), extra_env=env) as b,
    ):
        yield a, b
    for urls in (urls_a, urls_b):
        for _ in urls:
            pass


def grow(server: LiveServer, prefix: str, n: int) -> None:
    for i in range(n):
        created = server.admin.post(
            "/admin/v1/applications", json={"name": f"{prefix} {i}", "code": f"{prefix}-{i}"}
        )
        assert created.status_code == 201, created.text


def vkey(server: LiveServer, path: str) -> str:
    return httpx.get(server.base + path).text.strip()


def checkpoint(server: LiveServer) -> dict[str, object]:
    made = server.admin.post("/evidence/v1/checkpoints")
    assert made.status_code == 200, made.text
    body: dict[str, object] = made.json()
    return body


def test_each_witnesses_the_other_and_a_rewritten_history_is_refused(
    pair: tuple[LiveServer, LiveServer], tmp_path: Path
) -> None:
    a, b = pair
    for log, witness in ((a, b), (b, a)):
        witness_vkey = vkey(witness, "/witness/v1/key")
        assert (
            witness.admin.post(
                "/witness/v1/logs", json={"vkey": vkey(log, "/evidence/v1/log-key")}
            ).status_code
            == 204
        )
        assert (
            log.admin.post(
                "/evidence/v1/witnesses",
                json={
                    "name": witness_vkey.split("+")[0],
                    "url": witness.base + "/witness/v1",
                    "vkey": witness_vkey,
                },
            ).status_code
            == 204
        )

    grow(a, "a", 3)
    grow(b, "b", 2)
    first = checkpoint(a)
    assert first["cosignatures"] == 1
    assert checkpoint(b)["cosignatures"] == 1
    grow(a, "a2", 4)
    second = checkpoint(a)  # a real consistency proof from the first size this time
    assert second["cosignatures"] == 1 and second["size"] > first["size"]

    # The published note verifies with the log's key and the witness's key.
    published = httpx.get(a.base + "/evidence/v1/checkpoint?witnessed=true").text
    assert "\n\n— " in published, published
    verifiers = [
        NoteVerifier.from_vkey(vkey(a, "/evidence/v1/log-key")),
        NoteVerifier.from_vkey(vkey(b, "/witness/v1/key")),
    ]
    _, signatures = open_note(published.encode(), verifiers)
    assert len(signatures) == 2
    # Its timestamp: RFC 3161 over SHA-256(note), checked by openssl.
    cas = httpx.get(a.base + "/pki/cas").json()
    (tmp_path / "roots.pem").write_text(
        "".join(c["certificate_pem"] for c in cas if c["level"] == "root")
    )
    (tmp_path / "inter.pem").write_text(
        "".join(c["certificate_pem"] for c in cas if c["level"] != "root")
    )
    (tmp_path / "token.der").write_bytes(base64.b64decode(str(second["timestamp_token"])))
    log_note = "".join(  # the note as the log signed it, without the cosignature lines
        line
        for line in str(second["note"]).splitlines(keepends=True)
        if not line.startswith("— ") or line.startswith(f"— {verifiers[0].name} ")
    )
    verified = subprocess.run(
        ["openssl", "ts", "-verify", "-digest", hashlib.sha256(log_note.encode()).hexdigest(),
         "-token_in", "-in", str(tmp_path / "token.der"), "-CAfile", str(tmp_path / "roots.pem"),
         "-untrusted", str(tmp_path / "inter.pem")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert "Verification: OK" in verified.stdout, verified.stdout + verified.stderr

    # Rewrite a's history behind its back, self-consistently: an old event changed, every
    # Merkle node recomputed. a can still sign checkpoints of the new tree...
    database = Database(a.database_url)
    with database.engine.begin() as conn:
        if database.dialect == "postgresql":
            for table in ("evidence_events", "merkle_nodes"):
                conn.execute(text(f"DROP TRIGGER {table}_append_only ON {table}"))
        else:
            for table in ("evidence_events", "merkle_nodes"):
                conn.execute(text(f"DROP TRIGGER {table}_no_update"))
                conn.execute(text(f"DROP TRIGGER {table}_no_delete"))
        conn.execute(
            text(
                "UPDATE evidence_events SET record = replace(record, :a, :b) WHERE leaf_index = 1"
            ),
            {"a": '"v":1', "b": '"v":1 '},
        )
        records = conn.execute(
            text("SELECT record FROM evidence_events ORDER BY leaf_index")
        ).scalars()
        frontier, nodes = Frontier(), []
        for record in records:
            nodes.extend(frontier.append(leaf_hash(record.encode())))
        conn.execute(text("DELETE FROM merkle_nodes"))
        conn.execute(
            text('INSERT INTO merkle_nodes (level, "index", hash) VALUES (:l, :i, :h)'),
            [{"l": lv, "i": ix, "h": h} for lv, ix, h in nodes],
        )
        conn.execute(
            text(
                "UPDATE evidence_log_head SET integrated_size ="
                " (SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM evidence_events)"
            )
        )
    database.dispose()
    grow(a, "a3", 2)
    rewritten = checkpoint(a)
    # ... but the witness refuses: no consistency proof links it to what it cosigned.
    assert rewritten["cosignatures"] == 0
    still = httpx.get(a.base + "/evidence/v1/checkpoint?witnessed=true").text
    assert still == published  # the last witnessed checkpoint stays the honest one
    # b's own log keeps the refusal as evidence of a's misbehaviour.
    size = httpx.get(b.base + "/evidence/v1/tree").json()["size"]
    recent = [b.admin.get(f"/evidence/v1/entries/{i}").json() for i in range(size - 5, size)]
    refusal = next(e for e in recent if e["type"] == "witness:refuse")
    assert refusal["record"]["size"] == rewritten["size"]
    audit = a.cli("log", "audit", check=False)
    assert audit.returncode == 1 and "checkpoint" in audit.stderr
