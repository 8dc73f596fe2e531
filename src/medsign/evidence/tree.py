"""The evidence log's Merkle tree in the database: appending leaves and reading hashes.

Every evidence event is a leaf (its RFC 8785 record is the leaf data). Appending happens in
the caller's transaction, next to the business change the event describes, so an event and
its leaf commit or vanish together. The ``evidence_log_head`` row is updated first: its row
lock (PostgreSQL; SQLite has one writer anyway) serialises appenders until commit, which is
what makes leaf indexes dense and ordered by commit, with no gap left by a rollback.

The tree is stored as the hash of every perfect, aligned subtree (``merkle_nodes``): about
two rows per leaf, from which any root, inclusion or consistency proof is assembled with
O(log n) lookups (see ``merkle.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from sqlalchemy import TextClause, bindparam, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from medsign.db.base import Base
from medsign.db.tables import EvidenceLogHeadRow, MerkleNodeRow
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
    """Append leaf data in the caller's transaction; returns the first new leaf index."""
    if not leaves:
        return current_size(session)
    # Core statements on the session's connection: the ORM's bookkeeping costs more than
    # the statements themselves on this path, which every evidence event takes.
    conn = session.connection()
    size = conn.execute(_HEAD_BUMP, {"n": len(leaves)}).scalar_one_or_none()
    if size is None:
        raise EvidenceError("the evidence log has no head row; run the migrations")
    first = int(size) - len(leaves)
    frontier = Frontier.load(DatabaseHashes(conn), first)
    nodes = []
    for data in leaves:
        nodes.extend(frontier.append(leaf_hash(data)))
    conn.execute(
        _NODE_INSERT, [{"level": lv, "index": ix, "hash": digest} for lv, ix, digest in nodes]
    )
    return first


def current_size(db: Session | Connection) -> int:
    size = db.execute(
        select(EvidenceLogHeadRow.size).where(EvidenceLogHeadRow.id == 1)
    ).scalar_one_or_none()
    if size is None:
        raise EvidenceError("the evidence log has no head row; run the migrations")
    return int(size)
