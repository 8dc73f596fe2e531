"""Evidence-log appends and proofs, against baselines measured in the same run.

    .venv/bin/python bench/bench_log.py [--database-url URL] [--seconds 3] [--proof-size 1000000]

Set-up: a fresh, migrated database (a temporary SQLite file by default; any PostgreSQL URL
with ``--database-url``, which gets a private schema).

(a) Appends: ``record_event`` of a typical event (a ``signature:apply`` record, ~420 bytes
    of canonical JSON) in its own transaction ("commit per append"), and ``record_events`` of
    100 events per transaction ("group commit"). Each append takes the log head's lock (its
    leaf index, the receipt) and writes the event; the Merkle nodes are written afterwards,
    in bulk, by integration, whose throughput is printed too (leaves per second, integrating
    everything the append runs added).
    Baseline: a plain INSERT of the same row (same columns, same size, the event store's own
    indexes on id and type) into a table without the log, one per transaction. Targets
    (issue 5): commit per append >= 0.8 x plain INSERT, group commit >= 5 x commit per
    append, >= 1,000 appends/s.
(b) Proofs at 10^6 entries: a tree of ``--proof-size`` leaves is built (its perfect subtree
    hashes written straight into ``merkle_nodes``), then inclusion and consistency proofs for
    random positions are timed; printed in milliseconds, with the number of rows read.

Output lines: ``metric value baseline ratio target``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import make_database_url

from medsign.db.session import Database
from medsign.evidence import record_event, record_events
from medsign.evidence.log import EvidenceLog
from medsign.evidence.merkle import Frontier, consistency_proof, inclusion_proof, leaf_hash
from medsign.evidence.tree import DatabaseHashes, current_size, integrated_size

FIELDS = {
    "request_id": "sig_" + "a" * 26,
    "challenge_id": "int_" + "b" * 26,
    "staff_id": "stf_" + "c" * 26,
    "certificate_id": "crt_" + "d" * 26,
    "scheme": "ecdsa-sha256",
    "digest": "e" * 64,
    "signature_sha256": "f" * 64,
    "cms_sha256": "0" * 64,
    "timestamp_sha256": "1" * 64,
}


def rate(run, seconds: float) -> float:  # type: ignore[no-untyped-def]
    run()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        count += run()
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--proof-size", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.database_url:
            import os

            os.environ["MEDSIGN_TEST_DATABASE_URL"] = args.database_url
            import tests.conftest as conf

            conf.PG_URL = args.database_url
        urls = make_database_url(Path(tmp))
        database = Database(next(urls))
        database.upgrade()
        now = dt.datetime.now(dt.UTC)

        # Baseline: the same row, plain INSERT, one transaction each.
        # The event store's own row and indexes (its id is unique, its type indexed); what
        # the log adds on top is the leaf index (unique, dense) and the head's count.
        plain = Table(
            "bench_plain",
            MetaData(),
            Column("seq", Integer, primary_key=True),
            Column("id", String(64), unique=True),
            Column("type", String(64), index=True),
            Column("record", Text),
            Column("record_sha256", String(64)),
            Column("at", DateTime(timezone=True)),
            Column("leaf_index", Integer),
        )
        plain.create(database.engine)
        with database.session() as session:
            record_event(session, now, "signature:apply", **FIELDS)
            sample = session.execute(text("SELECT record FROM evidence_events")).scalar_one()
        counter = [0]

        def plain_insert() -> int:
            counter[0] += 1
            # The same unit of work as an append (a session, one transaction), one INSERT.
            with database.session() as session:
                session.connection().execute(
                    insert(plain),
                    {
                        "id": "evt_" + secrets.token_hex(13),
                        "type": "signature:apply",
                        "record": sample,
                        "record_sha256": hashlib.sha256(sample.encode()).hexdigest(),
                        "at": now,
                        "leaf_index": counter[0],
                    },
                )
            return 1

        def append_one() -> int:
            with database.session() as session:
                record_event(session, now, "signature:apply", **FIELDS)
            return 1

        batch = [("signature:apply", FIELDS)] * 100

        def append_group() -> int:
            with database.session() as session:
                record_events(session, now, batch)
            return 100

        print("metric value baseline ratio target")
        # Alternating slices, best of each: a busy neighbour (or the disk's own hiccups)
        # slows both alike instead of whichever ran at the wrong moment.
        base = one = group = 0.0
        for _ in range(5):
            base = max(base, rate(plain_insert, args.seconds / 5))
            one = max(one, rate(append_one, args.seconds / 5))
            group = max(group, rate(append_group, args.seconds / 5))
        print(f"plain_insert_per_s {base:.0f} - - -")
        print(f"append_commit_each_per_s {one:.0f} {base:.0f} {one / base:.2f} >=0.8")
        print(f"append_group_commit_per_s {group:.0f} {one:.0f} {group / one:.2f} >=5")
        print(f"append_group_commit_absolute {group:.0f} 1000 {group / 1000:.2f} >=1")
        log = EvidenceLog(database)
        with database.session() as session:
            pending = current_size(session) - integrated_size(session)
        start = time.perf_counter()
        log.integrate()
        elapsed = time.perf_counter() - start
        print(f"integrate_leaves_per_s {pending / elapsed:.0f} - - - ({pending} leaves)")
        database.dispose()
        for _ in urls:
            pass

        # (b) proofs in a tree of 10^6 leaves: perfect nodes written directly.
        urls = make_database_url(Path(tmp) / "big")
        (Path(tmp) / "big").mkdir(exist_ok=True)
        database = Database(next(urls))
        database.upgrade()
        frontier = Frontier()
        nodes = []
        with database.engine.begin() as conn:
            for i in range(args.proof_size):
                nodes.extend(frontier.append(leaf_hash(i.to_bytes(8, "big"))))
                if len(nodes) >= 50_000:
                    conn.execute(
                        text('INSERT INTO merkle_nodes (level, "index", hash) VALUES (:l, :i, :h)'),
                        [{"l": lv, "i": ix, "h": h} for lv, ix, h in nodes],
                    )
                    nodes = []
            if nodes:
                conn.execute(
                    text('INSERT INTO merkle_nodes (level, "index", hash) VALUES (:l, :i, :h)'),
                    [{"l": lv, "i": ix, "h": h} for lv, ix, h in nodes],
                )
        size = args.proof_size
        rng = random.Random(7)
        inclusion_ms, consistency_ms = [], []
        with database.engine.connect() as conn:
            store = DatabaseHashes(conn)
            for _ in range(200):
                index = rng.randrange(size)
                start = time.perf_counter()
                proof = inclusion_proof(store, index, size)
                inclusion_ms.append((time.perf_counter() - start) * 1000)
                first = rng.randrange(1, size)
                start = time.perf_counter()
                consistency_proof(store, first, size)
                consistency_ms.append((time.perf_counter() - start) * 1000)
        print(
            f"inclusion_proof_ms_at_{size} {statistics.median(inclusion_ms):.2f} - - "
            f"few ms (path length {len(proof)})"
        )
        print(f"consistency_proof_ms_at_{size} {statistics.median(consistency_ms):.2f} - - few ms")
        database.dispose()
        for _ in urls:
            pass


if __name__ == "__main__":
    main()
