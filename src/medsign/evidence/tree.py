"""The evidence log's Merkle tree in the database: appending leaves and reading hashes.

Every evidence event is a leaf (its RFC 8785 record is the leaf data). Appending happens in
the caller's transaction, next to the business change the event describes, so an event and
its leaf commit or vanish together. The database numbers the leaves in the event's own
INSERT: on PostgreSQL a trigger takes the next value of the ``evidence_log_head`` counter,
whose row lock serialises appenders until commit; SQLite has one writer at a time, so
``MAX(leaf_index) + 1`` read in the INSERT is the next index. Either way leaf indexes are
dense and ordered by commit, with no gap left by a rollback; the leaf index is the receipt.

An append writes nothing else: the tree's hashes are derived data. ``integrate`` writes the
hash of every perfect, aligned subtree of the leaves appended since it last ran
(``merkle_nodes``, about two rows per leaf, in bulk), and everything that reads the tree
integrates first; from those rows any root, inclusion or consistency proof is assembled
with O(log n) lookups (see ``merkle.py``). Splitting sequencing (dense indexes, in the
business transaction) from integration (the hashes, later, in bulk) is Trillian's design;
it keeps an append at the event's own INSERT.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ScalarSelect, TextClause, bindparam, func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from medsign.db.base import Base
from medsign.db.tables import EvidenceEventRow, EvidenceLogHeadRow, MerkleNodeRow
from medsign.errors import EvidenceError
from medsign.evidence.merkle import Frontier, leaf_hash

_NODES = Base.metadata.tables[MerkleNodeRow.__tablename__]
_NODE_INSERT = insert(_NODES)
_HEAD = Base.metadata.tables[EvidenceLogHeadRow.__tablename__]
_EVENTS = Base.metadata.tables[EvidenceEventRow.__tablename__]
# The log's size: one more than the highest committed leaf index (an index-only lookup).
_SIZE = select(func.coalesce(func.max(_EVENTS.c.leaf_index) + 1, 0)).scalar_subquery()
# A no-op update: it takes the head row's lock (and SQLite's write lock) for integration,
# so appenders in flight have committed before the size is read.
_HEAD_LOCK = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(integrated_size=_HEAD.c.integrated_size)
    .returning(_HEAD.c.integrated_size)
)
_HEAD_INTEGRATED = update(_HEAD).where(_HEAD.c.id == 1).values(integrated_size=bindparam("upto"))
_RECORDS = (
    select(_EVENTS.c.leaf_index, _EVENTS.c.record)
    .where(_EVENTS.c.leaf_index >= bindparam("first"), _EVENTS.c.leaf_index < bindparam("end"))
    .order_by(_EVENTS.c.leaf_index)
)


class LeafMissingError(EvidenceError):
    """An event below the log's size is not stored: the tree cannot be integrated past it."""

    def __init__(self, leaf_index: int) -> None:
        super().__init__(f"evidence log leaf {leaf_index} is missing")
        self.leaf_index = leaf_index


class DatabaseHashes:
    """``PerfectHashes`` read from ``merkle_nodes`` through one connection or session."""

    def __init__(self, db: Session | Connection) -> None:
        self._db = db

    def perfect(self, level: int, index: int) -> bytes:
        found = self.perfect_many([(level, index)])
        return found[(level, index)]

    def perfect_many(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        wanted = list(dict.fromkeys(keys))
        found: dict[tuple[int, int], bytes] = {}
        # Chunks keep the statement within every database's parameter limit.
        # "(level = ? AND index = ?) OR ...": both databases answer each pair from the
        # primary key (a row-value IN list is not always indexed on SQLite), and the
        # statement text is cached per count, since building SQL expressions per append
        # costs more than running them.
        for start in range(0, len(wanted), 64):
            chunk = wanted[start : start + 64]
            params: dict[str, int] = {}
            for n, (level, index) in enumerate(chunk):
                params[f"l{n}"] = level
                params[f"i{n}"] = index
            for level, index, digest in self._db.execute(_lookup(len(chunk)), params):
                found[(int(level), int(index))] = bytes(digest)
        missing = [k for k in wanted if k not in found]
        if missing:
            raise EvidenceError(f"the evidence log lacks Merkle nodes {missing[:3]}")
        return found


@functools.lru_cache(maxsize=64)
def _lookup(count: int) -> TextClause:
    pairs = " OR ".join(f'(level = :l{n} AND "index" = :i{n})' for n in range(count))
    return text(f'SELECT level, "index", hash FROM merkle_nodes WHERE {pairs}')  # noqa: S608


def leaf_index_expression() -> ScalarSelect[Any]:
    """The value an event INSERT gives ``leaf_index``: the log's size, read in the statement
    itself. On SQLite (one writer) that is the next index; on PostgreSQL a trigger
    (migration 0007) replaces it with the next number of the head row's counter, under its
    lock. Either way an append costs no statement of its own."""
    return _SIZE


def integrate(conn: Connection, *, chunk: int = 4096) -> int:
    """Write the Merkle nodes of every leaf appended since the last integration, in the
    caller's transaction; returns the integrated size.

    The head row's lock is taken first, so appenders wait and every leaf below the size read
    is committed and visible; two integrators cannot write the same nodes."""
    locked = conn.execute(_HEAD_LOCK).scalar_one_or_none()
    if locked is None:
        raise EvidenceError("the evidence log has no head row; run the migrations")
    size, done = int(conn.execute(select(_SIZE)).scalar_one()), int(locked)
    if done >= size:
        return done
    frontier = Frontier.load(DatabaseHashes(conn), done)
    position = done
    while position < size:
        end = min(size, position + chunk)
        nodes: list[tuple[int, int, bytes]] = []
        for index, record in conn.execute(_RECORDS, {"first": position, "end": end}):
            if int(index) != position:
                raise LeafMissingError(position)
            nodes.extend(frontier.append(leaf_hash(record.encode("utf-8"))))
            position += 1
        if position != end:
            raise LeafMissingError(position)
        conn.execute(
            _NODE_INSERT, [{"level": lv, "index": ix, "hash": digest} for lv, ix, digest in nodes]
        )
    conn.execute(_HEAD_INTEGRATED, {"upto": size})
    return size


def current_size(db: Session | Connection) -> int:
    """Leaves appended (committed), integrated or not."""
    return sizes(db)[0]


def integrated_size(db: Session | Connection) -> int:
    """Leaves whose Merkle nodes are written: the largest tree that can be proven now."""
    return sizes(db)[1]


def sizes(db: Session | Connection) -> tuple[int, int]:
    """(appended, integrated) leaves."""
    found = db.execute(
        select(_SIZE, EvidenceLogHeadRow.integrated_size).where(EvidenceLogHeadRow.id == 1)
    ).one_or_none()
    if found is None:
        raise EvidenceError("the evidence log has no head row; run the migrations")
    return int(found[0]), int(found[1])
