"""The evidence log in the database: dense leaves in commit order, proofs that verify,
append-only tables, and an audit that finds what was changed behind medsign's back."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from medsign.clock import FixedClock
from medsign.db.session import Database
from medsign.evidence import record_event, record_events
from medsign.evidence.log import EvidenceLog, ProofRangeError
from medsign.evidence.merkle import leaf_hash, node_hash, verify_consistency, verify_inclusion


def naive_root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(naive_root(leaves[:k]), naive_root(leaves[k:]))


def fill(database: Database, clock: FixedClock, n: int) -> list[str]:
    ids: list[str] = []
    for i in range(n):
        with database.session() as session:
            if i % 3 == 0:  # mix single appends and batches
                ids += record_events(
                    session, clock.now(), [("test:batch", {"n": i, "k": k}) for k in range(2)]
                )
            else:
                ids.append(record_event(session, clock.now(), "test:one", n=i))
        clock.advance(dt.timedelta(seconds=1))
    return ids


def test_leaves_are_dense_and_every_proof_verifies(database: Database, clock: FixedClock) -> None:
    log = EvidenceLog(database)
    ids = fill(database, clock, 14)
    size = log.size()
    assert size == len(ids) == 19
    leaves = [log.entry(i).leaf_hash for i in range(size)]
    assert [log.entry(event_id).leaf_index for event_id in ids] == list(range(size))
    for tree_size in (1, 2, 7, 8, 13, size):
        _, root = log.root(tree_size)
        assert root == naive_root(leaves[:tree_size])
        for index in range(tree_size):
            _, proof = log.inclusion(index, tree_size)
            verify_inclusion(leaves[index], index, tree_size, proof, root)
        for first in range(1, tree_size + 1):
            _, proof = log.consistency(first, tree_size)
            verify_consistency(first, tree_size, proof, log.root(first)[1], root)
    entry = log.entry(ids[0])
    assert entry.leaf_hash == leaf_hash(entry.record_text.encode())


def test_a_rolled_back_append_leaves_no_gap(database: Database, clock: FixedClock) -> None:
    log = EvidenceLog(database)
    fill(database, clock, 2)
    before = log.size()
    with pytest.raises(RuntimeError), database.session() as session:
        record_event(session, clock.now(), "test:doomed", n=1)
        raise RuntimeError("the business operation failed")
    assert log.size() == before
    with database.session() as session:
        event_id = record_event(session, clock.now(), "test:after", n=2)
    assert log.entry(event_id).leaf_index == before


def test_requests_outside_the_tree_are_refused(database: Database, clock: FixedClock) -> None:
    log = EvidenceLog(database)
    fill(database, clock, 2)
    size = log.size()
    for call in (
        lambda: log.inclusion(size, size),
        lambda: log.inclusion(0, size + 1),  # a future tree
        lambda: log.consistency(0, size),
        lambda: log.consistency(size, size + 5),
        lambda: log.root(size + 1),
    ):
        with pytest.raises(ProofRangeError):
            call()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE evidence_events SET record = '{}' WHERE leaf_index = 0",
        "DELETE FROM evidence_events WHERE leaf_index = 0",
        "UPDATE merkle_nodes SET hash = hash WHERE level = 0",
        "DELETE FROM merkle_nodes",
    ],
)
def test_the_database_refuses_to_change_evidence(
    database: Database, clock: FixedClock, statement: str
) -> None:
    fill(database, clock, 2)
    EvidenceLog(database).integrate()  # the Merkle nodes exist once integrated
    with pytest.raises(DBAPIError, match="append-only"), database.engine.begin() as conn:
        conn.execute(text(statement))


def drop_triggers(database: Database) -> None:
    with database.engine.begin() as conn:
        for table in ("evidence_events", "merkle_nodes"):
            if database.dialect == "postgresql":
                conn.execute(text(f"DROP TRIGGER {table}_append_only ON {table}"))
            else:
                conn.execute(text(f"DROP TRIGGER {table}_no_update"))
                conn.execute(text(f"DROP TRIGGER {table}_no_delete"))


@pytest.mark.parametrize(
    ("tamper", "first_bad"),
    [
        ("UPDATE evidence_events SET record = replace(record, 'test', 'tost')"
         " WHERE leaf_index = 5", 5),
        ("DELETE FROM evidence_events WHERE leaf_index = 7", 7),
        ("UPDATE merkle_nodes SET hash = (SELECT hash FROM merkle_nodes WHERE level = 0 AND"
         " \"index\" = 0) WHERE level = 1 AND \"index\" = 3", 6),
    ],
)  # fmt: skip
def test_audit_names_the_first_changed_index(
    database: Database, clock: FixedClock, tamper: str, first_bad: int
) -> None:
    log = EvidenceLog(database)
    fill(database, clock, 10)
    report = log.audit()
    assert report.ok and report.size == log.size()
    drop_triggers(database)
    with database.engine.begin() as conn:
        conn.execute(text(tamper))
    report = log.audit()
    assert not report.ok
    assert report.first_bad_index == first_bad, report.findings


def test_audit_finds_an_event_inserted_behind_the_log(
    database: Database, clock: FixedClock
) -> None:
    log = EvidenceLog(database)
    fill(database, clock, 4)
    size = log.size()
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO evidence_events (id, type, record, record_sha256, at, leaf_index)"
                " VALUES ('evt_forged', 'test:forged', '{}', 'x', :at, :i)"
            ),
            {"at": clock.now(), "i": size},
        )
    report = log.audit()
    assert report.first_bad_index == size
