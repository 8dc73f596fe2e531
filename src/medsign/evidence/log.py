"""The evidence log as a service: entries, roots, inclusion and consistency proofs, and the
audit that recomputes everything from the stored records.

The audit trusts nothing but the records themselves: every leaf hash is recomputed from the
stored canonical record, every stored subtree hash from its two children, the leaf indexes
must run densely from 0 to the head's size, and every stored checkpoint's root must equal the
root recomputed at its size. It reads in chunks, so a log of millions of events is audited
in bounded memory; it names the first leaf index where the stored history stops adding up.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from medsign.db.session import Database
from medsign.db.tables import EvidenceEventRow, LogCheckpointRow, MerkleNodeRow
from medsign.errors import InputError, NotFoundError
from medsign.evidence.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
)
from medsign.evidence.tree import DatabaseHashes, LeafMissingError, integrate, sizes

CHUNK = 5000


class ProofRangeError(InputError):
    code = "proof-out-of-range"
    title = "The log has no such entry or size yet"


@dataclass(frozen=True)
class LogEntry:
    leaf_index: int
    event_id: str
    type: str
    record: dict[str, Any]
    record_text: str
    at: dt.datetime

    @property
    def leaf_hash(self) -> bytes:
        return leaf_hash(self.record_text.encode("utf-8"))


@dataclass(frozen=True)
class AuditFinding:
    leaf_index: int
    problem: str


@dataclass(frozen=True)
class AuditReport:
    size: int
    checkpoints: int
    findings: tuple[AuditFinding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first_bad_index(self) -> int | None:
        return min((f.leaf_index for f in self.findings), default=None)


class EvidenceLog:
    def __init__(
        self,
        database: Database,
        *,
        verify_checkpoint: Callable[[str], tuple[int, bytes]] | None = None,
    ) -> None:
        self._database = database
        # Checks a stored checkpoint's signature and returns (size, root); set by the
        # component that owns the log key (checkpoints), absent in a bare audit of hashes.
        self._verify_checkpoint = verify_checkpoint

    # -- reading -----------------------------------------------------------------------------

    def integrate(self) -> int:
        """Write the Merkle nodes of the events appended since the last run (in its own
        transaction); returns the size of the tree that can now be proven. Everything that
        reads the tree calls it first, so a receipt can be proven at once."""
        with self._database.session() as session:
            size, done = sizes(session)
        if done >= size:
            return done
        with self._database.session() as session:
            return integrate(session.connection())

    def size(self) -> int:
        return self.integrate()

    def root(self, size: int | None = None) -> tuple[int, bytes]:
        head = self.integrate()
        with self._database.session() as session:
            size = head if size is None else size
            self._check_size(size, head)
            return size, root(DatabaseHashes(session), size)

    def entry(self, key: str | int) -> LogEntry:
        """An entry by event id or by leaf index."""
        with self._database.session() as session:
            query = select(EvidenceEventRow)
            if isinstance(key, int):
                query = query.where(EvidenceEventRow.leaf_index == key)
            else:
                query = query.where(EvidenceEventRow.id == key)
            row = session.scalar(query)
            if row is None:
                raise NotFoundError(f"no evidence log entry {key}")
            return LogEntry(
                row.leaf_index, row.id, row.type, json.loads(row.record), row.record, row.at
            )

    def inclusion(self, leaf_index: int, size: int | None = None) -> tuple[int, list[bytes]]:
        """(tree size, audit path) proving leaf ``leaf_index`` is in the tree of ``size``."""
        head = self.integrate()
        with self._database.session() as session:
            size = head if size is None else size
            self._check_size(size, head)
            if not 0 <= leaf_index < size:
                raise ProofRangeError(f"leaf {leaf_index} is not in a tree of {size} entries")
            return size, inclusion_proof(DatabaseHashes(session), leaf_index, size)

    def consistency(self, size1: int, size2: int | None = None) -> tuple[int, list[bytes]]:
        head = self.integrate()
        with self._database.session() as session:
            size2 = head if size2 is None else size2
            self._check_size(size2, head)
            if not 0 < size1 <= size2:
                raise ProofRangeError(f"no consistency proof from {size1} to {size2}")
            return size2, consistency_proof(DatabaseHashes(session), size1, size2)

    @staticmethod
    def _check_size(size: int, head: int) -> None:
        if not 0 <= size <= head:
            raise ProofRangeError(f"the log has {head} entries, not {size}")

    # -- audit -------------------------------------------------------------------------------

    def audit(self) -> AuditReport:
        findings: list[AuditFinding] = []
        try:
            self.integrate()
        except LeafMissingError as exc:  # a deleted event stops integration: report it
            findings.append(AuditFinding(exc.leaf_index, f"integration failed: {exc}"))
        with self._database.engine.connect() as conn:
            head, integrated = sizes(conn)
            count = conn.execute(select(func.count()).select_from(EvidenceEventRow)).scalar_one()
            if count != head:
                findings.append(
                    AuditFinding(min(count, head), f"{count} events stored, log size {head}")
                )
            # A wrong node makes every ancestor wrong too; only the lowest one is reported.
            bad: set[tuple[int, int]] = set()
            findings.extend(self._audit_leaves(conn, head, integrated, bad))
            findings.extend(self._audit_nodes(conn, integrated, bad))
            checkpoints = 0
            for checkpoint in conn.execute(
                select(
                    LogCheckpointRow.size, LogCheckpointRow.root_hash, LogCheckpointRow.note
                ).order_by(LogCheckpointRow.id)
            ):
                checkpoints += 1
                findings.extend(self._audit_checkpoint(conn, integrated, *checkpoint))
        findings.sort(key=lambda f: f.leaf_index)
        return AuditReport(head, checkpoints, tuple(findings))

    def _audit_leaves(
        self, conn: Any, head: int, integrated: int, bad: set[tuple[int, int]]
    ) -> Iterator[AuditFinding]:
        expected = 0
        for chunk in _chunks(conn, select(
            EvidenceEventRow.leaf_index, EvidenceEventRow.record, EvidenceEventRow.record_sha256
        ).order_by(EvidenceEventRow.leaf_index), EvidenceEventRow.leaf_index):  # fmt: skip
            first, last = chunk[0][0], chunk[-1][0]
            stored = dict(
                conn.execute(
                    select(MerkleNodeRow.index, MerkleNodeRow.hash).where(
                        MerkleNodeRow.level == 0,
                        MerkleNodeRow.index >= first,
                        MerkleNodeRow.index <= last,
                    )
                ).all()
            )
            for index, record, record_sha256 in chunk:
                if index != expected:
                    # A gap is a deleted event; a repeat or jump backwards, an inserted one.
                    yield AuditFinding(
                        min(index, expected), f"leaf index {index}, expected {expected}"
                    )
                    expected = index
                data = record.encode("utf-8")
                if hashlib.sha256(data).hexdigest() != record_sha256:
                    yield AuditFinding(index, "record does not match its stored SHA-256")
                if index < integrated and stored.get(index) != leaf_hash(data):
                    bad.add((0, index))
                    yield AuditFinding(index, "record does not match its Merkle leaf")
                expected += 1
        if expected != head:
            yield AuditFinding(min(expected, head), f"events end at {expected}, log size {head}")

    def _audit_nodes(
        self, conn: Any, head: int, bad: set[tuple[int, int]]
    ) -> Iterator[AuditFinding]:
        level = 1
        while (1 << level) <= head:
            width = 1 << level
            for chunk in _chunks(conn, select(MerkleNodeRow.index, MerkleNodeRow.hash).where(
                MerkleNodeRow.level == level
            ).order_by(MerkleNodeRow.index), MerkleNodeRow.index):  # fmt: skip
                first, last = chunk[0][0], chunk[-1][0]
                children = dict(
                    conn.execute(
                        select(MerkleNodeRow.index, MerkleNodeRow.hash).where(
                            MerkleNodeRow.level == level - 1,
                            MerkleNodeRow.index >= 2 * first,
                            MerkleNodeRow.index <= 2 * last + 1,
                        )
                    ).all()
                )
                for index, digest in chunk:
                    if (level - 1, 2 * index) in bad or (level - 1, 2 * index + 1) in bad:
                        bad.add((level, index))
                        continue
                    left, right = children.get(2 * index), children.get(2 * index + 1)
                    if left is None or right is None or node_hash(left, right) != digest:
                        bad.add((level, index))
                        yield AuditFinding(index * width, f"Merkle node {level}/{index} is wrong")
            stored = conn.execute(
                select(func.count()).select_from(MerkleNodeRow).where(MerkleNodeRow.level == level)
            ).scalar_one()
            if stored != head // width:
                yield AuditFinding(
                    (min(stored, head // width)) * width,
                    f"{stored} Merkle nodes at level {level}, expected {head // width}",
                )
            level += 1

    def _audit_checkpoint(
        self, conn: Any, head: int, size: int, root_hash: bytes, note: str
    ) -> Iterator[AuditFinding]:
        if size > head:
            yield AuditFinding(head, f"a checkpoint of size {size} is beyond the log ({head})")
            return
        if self._verify_checkpoint is not None:
            try:
                signed_size, signed_root = self._verify_checkpoint(note)
            except Exception as exc:  # any refusal of the stored note is a finding
                yield AuditFinding(max(size - 1, 0), f"checkpoint {size} signature: {exc}")
                return
            if (signed_size, signed_root) != (size, bytes(root_hash)):
                yield AuditFinding(max(size - 1, 0), f"checkpoint {size} row differs from its note")
        try:
            recomputed = root(DatabaseHashes(conn), size)
        except Exception as exc:
            yield AuditFinding(max(size - 1, 0), f"checkpoint {size}: {exc}")
            return
        if recomputed != bytes(root_hash):
            yield AuditFinding(
                max(size - 1, 0), f"the tree of size {size} no longer has the checkpoint's root"
            )


def _chunks(conn: Any, query: Any, key: Any) -> Iterator[list[Any]]:
    """Rows in chunks by keyset (``key`` > the last one seen): no OFFSET rescans."""
    last = -1
    while True:
        rows = conn.execute(query.where(key > last).limit(CHUNK)).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]
