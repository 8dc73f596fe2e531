"""The evidence log's Merkle tree in the database: appending leaves and reading hashes.

Every evidence event is a leaf (its RFC 8785 record is the leaf data). Appending happens in
the caller's transaction, next to the business change the event describes, so an event and
its leaf commit or vanish together. The ``evidence_log_head`` row is updated first: its row
lock (PostgreSQL; SQLite has one writer anyway) serialises appenders until commit, which is
what makes leaf indexes dense and ordered by commit, with no gap left by a rollback. The
leaf index is the receipt.

An append writes nothing else: the tree's hashes are derived data. ``integrate`` writes the
hash of every perfect, aligned subtree of the leaves appended since it last ran
(``merkle_nodes``, about two rows per leaf, in bulk), and everything that reads the tree
integrates first; from those rows any root, inclusion or consistency proof is assembled
with O(log n) lookups (see ``merkle.py``). Splitting sequencing (dense indexes, in the
business transaction) from integration (the hashes, later, in bulk) is Trillian's design;
it keeps an append at one statement more than the event's own INSERT.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from sqlalchemy import TextClause, bindparam, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from medsign.db.base import Base
from medsign.db.tables import EvidenceEventRow, EvidenceLogHeadRow, MerkleNodeRow
from medsign.errors import EvidenceError
from medsign.evidence.merkle import Frontier, leaf_hash

_NODES = Base.metadata.tables[MerkleNodeRow.__tablename__]
_NODE_INSERT = insert(_NODES)
_HEAD = Base.metadata.tables[EvidenceLogHeadRow.__tablename__]
_HEAD_BUMP = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(size=_HEAD.c.size + bindparam("n"))
    .returning(_HEAD.c.size)
)
# A no-op update: it takes the head row's lock (and SQLite's write lock) for integration.
_HEAD_LOCK = (
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(integrated_size=_HEAD.c.integrated_size)
    .returning(_HEAD.c.size, _HEAD.c.integrated_size)
)
_HEAD_INTEGRATED = update(_HEAD).where(_HEAD.c.id == 1).values(integrated_size=bindparam("upto"))
_EVENTS = Base.metadata.tables[EvidenceEventRow.__tablename__]
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


def append_leaves(session: Session, leaves: Sequence[bytes]) -> int:
    """Reserve the next leaf indexes for ``leaves`` in the caller's transaction (which then
    inserts the events); returns the first. Their Merkle nodes come with ``integrate``."""
    if not leaves:
        return current_size(session)
    # Core statements on the session's connection: the ORM's bookkeeping costs more than
    # the statements themselves on this path, which every evidence event takes.
    size = session.connection().execute(_HEAD_BUMP, {"n": len(leaves)}).scalar_one_or_none()
    if size is None:
        raise EvidenceError("the evidence log has no head row; run the migrations")
    return int(size) - len(leaves)


def integrate(conn: Connection, *, chunk: int = 4096) -> int:
    """Write the Merkle nodes of every leaf appended since the last integration, in the
    caller's transaction; returns the integrated size.

    The head row's lock is taken first, so appenders wait and every leaf below the size read
    is committed and visible; two integrators cannot write the same nodes."""
    found = conn.execute(_HEAD_LOCK).one_or_none()
    if found is None:
        raise EvidenceError("the evidence log has no head row; run the migrations")
    size, done = int(found[0]), int(found[1])
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
        select(EvidenceLogHeadRow.size, EvidenceLogHeadRow.integrated_size).where(
            EvidenceLogHeadRow.id == 1
        )
    ).one_or_none()
    if found is None:
        raise EvidenceError("the evidence log has no head row; run the migrations")
    return int(found[0]), int(found[1])
