"""Signed checkpoints of the evidence log, their timestamps, and witness cosignatures.

A checkpoint (C2SP tlog-checkpoint) states the log's origin, size and root hash; medsign signs
it with the ``evidence-log`` key (ECDSA P-256, signed-note type 0x02; the key lives in the key
store and is certified by medsign's CA under the ``evidence-log`` profile), timestamps the
signed note with its own TSA (RFC 3161, imprint SHA-256 of the note), stores it append-only,
and asks every configured witness to cosign it (C2SP tlog-witness ``add-checkpoint``,
with a consistency proof from the size that witness last cosigned). A witness that refuses,
times out or answers garbage leaves the checkpoint without its cosignature, never broken;
a checkpoint counts as witnessed once ``quorum`` witnesses cosigned it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, insert, select

from medsign.ca.authority import GOOD, CertificateAuthority
from medsign.clock import Clock
from medsign.crypto import KeyAlgorithm, PublicKey, SignatureScheme
from medsign.db.base import Base
from medsign.db.session import Database
from medsign.db.tables import LogCheckpointRow, LogCosignatureRow, WitnessRow
from medsign.errors import InputError, MedsignError, NotFoundError
from medsign.evidence.log import EvidenceLog
from medsign.evidence.notes import (
    Checkpoint,
    NoteKeyType,
    NoteVerifier,
    open_note,
    parse_note,
    parse_signature_line,
    sign_checkpoint_ecdsa,
)
from medsign.ids import KeyId
from medsign.keys.base import KeyStore

log = logging.getLogger(__name__)

ACTOR = "system:evidence-log"
_COSIGNATURES = Base.metadata.tables[LogCosignatureRow.__tablename__]


@dataclass(frozen=True)
class StoredCheckpoint:
    id: int
    checkpoint: Checkpoint
    note: str
    timestamp_token: bytes | None
    created_at: dt.datetime
    cosignatures: tuple[str, ...]  # signature lines (newline included), one per witness

    def with_cosignatures(self) -> str:
        """The signed note with the witnesses' cosignature lines appended."""
        return self.note + "".join(self.cosignatures)


@dataclass(frozen=True)
class WitnessOutcome:
    witness: str
    ok: bool
    detail: str


class CheckpointService:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        keystore: KeyStore,
        authority: CertificateAuthority,
        log_: EvidenceLog,
        *,
        origin: str,
        stamp: Callable[[bytes], bytes] | None,
        quorum: int = 0,
        http: Callable[[], httpx.Client] | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        self._keystore = keystore
        self._authority = authority
        self._log = log_
        self.origin = origin
        self._stamp = stamp  # SHA-256 imprint -> RFC 3161 token
        self.quorum = quorum
        self._http = http or (lambda: httpx.Client(timeout=10))

    # -- the log key ---------------------------------------------------------------------------

    def key(self) -> tuple[KeyId, PublicKey]:
        """The evidence-log key; made and certified on first use."""
        for record in self._authority.list(profile="evidence-log", status=GOOD, limit=20):
            if record.key_id is not None and record.not_after > self._clock.now():
                ref = self._keystore.get(record.key_id)
                return ref.id, PublicKey.from_der(ref.public_key_der)
        ref = self._keystore.generate(KeyAlgorithm.EC_P256, label="evidence-log")
        name = self.origin[:64]
        self._authority.issue_for_key(ref.id, {"CN": name, "O": name}, "evidence-log", actor=ACTOR)
        return ref.id, PublicKey.from_der(ref.public_key_der)

    def verifier(self) -> NoteVerifier:
        _, public_key = self.key()
        return NoteVerifier.for_key(self.origin, public_key, NoteKeyType.ECDSA)

    def vkey(self) -> str:
        return self.verifier().vkey()

    def verify_note(self, note: str) -> tuple[int, bytes]:
        """(size, root) of a checkpoint note signed by this log's key; raises otherwise."""
        text, _ = open_note(note.encode("utf-8"), [self.verifier()])
        checkpoint = Checkpoint.parse(text)
        if checkpoint.origin != self.origin:
            raise InputError(f"checkpoint of another log ({checkpoint.origin})")
        return checkpoint.size, checkpoint.root_hash

    # -- making checkpoints --------------------------------------------------------------------

    def make(self, *, force: bool = False) -> StoredCheckpoint:
        """Sign, timestamp and store a checkpoint of the log as it is now (unless nothing was
        appended since the last one), then ask the witnesses to cosign it."""
        size, root = self._log.root()
        latest = self._latest_row()
        if latest is not None and latest.size == size and not force:
            return self._stored(latest)
        key_id, public_key = self.key()
        checkpoint = Checkpoint(self.origin, size, root)

        def sign_digest(digest: bytes) -> bytes:
            return self._keystore.sign_digest(
                key_id, SignatureScheme.ECDSA_SHA256, digest, actor=ACTOR, purpose="checkpoint"
            )

        note = sign_checkpoint_ecdsa(checkpoint, public_key, sign_digest).decode("utf-8")
        token = None
        if self._stamp is not None:
            token = self._stamp(hashlib.sha256(note.encode("utf-8")).digest())
        now = self._clock.now()
        with self._database.session() as session:
            row = LogCheckpointRow(
                size=size, root_hash=root, note=note, timestamp_token=token, created_at=now
            )
            session.add(row)
            session.flush()
            stored = self._stored(row, session=session)
        self.collect_cosignatures(stored)
        return self.get(stored.id)

    def get(self, checkpoint_id: int) -> StoredCheckpoint:
        with self._database.session() as session:
            row = session.get(LogCheckpointRow, checkpoint_id)
            if row is None:
                raise NotFoundError(f"no checkpoint {checkpoint_id}")
            return self._stored(row, session=session)

    def latest(self, *, witnessed: bool = False) -> StoredCheckpoint:
        """The newest checkpoint (with ``witnessed``: the newest with a quorum of
        cosignatures)."""
        with self._database.session() as session:
            query = select(LogCheckpointRow).order_by(LogCheckpointRow.id.desc())
            if witnessed and self.quorum > 0:
                counted = (
                    select(_COSIGNATURES.c.checkpoint_id)
                    .group_by(_COSIGNATURES.c.checkpoint_id)
                    .having(func.count() >= self.quorum)
                )
                query = query.where(LogCheckpointRow.id.in_(counted))
            row = session.scalars(query.limit(1)).first()
            if row is None:
                raise NotFoundError("no checkpoint yet")
            return self._stored(row, session=session)

    # -- witnesses -----------------------------------------------------------------------------

    def add_witness(self, name: str, url: str, vkey: str) -> None:
        verifier = NoteVerifier.from_vkey(vkey)
        if verifier.key_type is not NoteKeyType.COSIGNATURE_V1 or verifier.name != name:
            raise InputError("a witness key is a cosignature/v1 (type 0x04) vkey of that name")
        if not url.startswith(("http://", "https://")):
            raise InputError("a witness URL is http(s)")
        with self._database.session() as session:
            row = session.get(WitnessRow, name)
            if row is None:
                session.add(
                    WitnessRow(
                        name=name,
                        url=url.rstrip("/"),
                        public_key=verifier.public_key.ed25519_raw,
                        state="active",
                        created_at=self._clock.now(),
                    )
                )
            else:
                row.url, row.public_key, row.state = (
                    url.rstrip("/"),
                    verifier.public_key.ed25519_raw,
                    "active",
                )

    def witnesses(self) -> list[tuple[str, str, NoteVerifier]]:
        with self._database.session() as session:
            rows = session.scalars(select(WitnessRow).where(WitnessRow.state == "active"))
            return [
                (
                    r.name,
                    r.url,
                    NoteVerifier.for_key(
                        r.name, PublicKey.from_ed25519_raw(r.public_key), NoteKeyType.COSIGNATURE_V1
                    ),
                )
                for r in rows
            ]

    def collect_cosignatures(self, stored: StoredCheckpoint) -> list[WitnessOutcome]:
        outcomes = []
        for name, url, verifier in self.witnesses():
            try:
                line = self._ask(name, url, verifier, stored)
            except Exception as exc:  # a witness's failure must never break the log
                log.warning("witness %s did not cosign: %s", name, exc)
                outcomes.append(WitnessOutcome(name, False, str(exc)[:300]))
                continue
            with self._database.session() as session:
                session.execute(
                    insert(_COSIGNATURES).values(
                        checkpoint_id=stored.id,
                        witness_name=name,
                        signature_line=line,
                        created_at=self._clock.now(),
                    )
                )
            outcomes.append(WitnessOutcome(name, True, "cosigned"))
        return outcomes

    def _ask(self, name: str, url: str, verifier: NoteVerifier, stored: StoredCheckpoint) -> str:
        old = self._last_cosigned_size(name)
        with self._http() as client:
            for _ in range(2):  # a 409 tells the size the witness holds: one retry from there
                if old > stored.checkpoint.size:
                    raise WitnessRefusedError(f"witness {name} holds a larger tree ({old})")
                proof = self._log.consistency(old, stored.checkpoint.size)[1] if old else []
                body = f"old {old}\n" + "".join(
                    base64.b64encode(h).decode("ascii") + "\n" for h in proof
                )
                response = client.post(
                    f"{url}/add-checkpoint",
                    content=(body + "\n" + stored.note).encode("utf-8"),
                    headers={"Content-Type": "text/plain; charset=utf-8"},
                )
                if response.status_code == 409 and response.headers.get(
                    "content-type", ""
                ).startswith("text/x.tlog.size"):
                    old = _parse_size(response.text)
                    continue
                if response.status_code != 200:
                    raise WitnessRefusedError(
                        f"witness {name} answered {response.status_code}: {response.text[:200]}"
                    )
                return _pick_cosignature(response.text, stored, verifier)
        raise WitnessRefusedError(f"witness {name} keeps disagreeing about the old size")

    def _last_cosigned_size(self, witness: str) -> int:
        with self._database.session() as session:
            size = session.scalar(
                select(func.max(LogCheckpointRow.size))
                .join(_COSIGNATURES, _COSIGNATURES.c.checkpoint_id == LogCheckpointRow.id)
                .where(_COSIGNATURES.c.witness_name == witness)
            )
            return int(size or 0)

    # -- internals -----------------------------------------------------------------------------

    def _latest_row(self) -> LogCheckpointRow | None:
        with self._database.session() as session:
            return session.scalars(
                select(LogCheckpointRow).order_by(LogCheckpointRow.id.desc()).limit(1)
            ).first()

    def _stored(self, row: LogCheckpointRow, *, session: Any = None) -> StoredCheckpoint:
        lines: Sequence[str] = ()
        if session is not None:
            lines = tuple(
                session.scalars(
                    select(_COSIGNATURES.c.signature_line)
                    .where(_COSIGNATURES.c.checkpoint_id == row.id)
                    .order_by(_COSIGNATURES.c.witness_name)
                )
            )
        return StoredCheckpoint(
            row.id,
            Checkpoint.parse(parse_note(row.note.encode("utf-8")).text),
            row.note,
            row.timestamp_token,
            row.created_at,
            tuple(lines),
        )


class WitnessRefusedError(MedsignError):
    code = "witness-refused"
    title = "The witness did not cosign"
    status = 502


def _parse_size(text: str) -> int:
    value = text.strip()
    if not value.isdigit() or len(value) > 19:
        raise WitnessRefusedError("the witness's size answer is not a number")
    return int(value)


def _pick_cosignature(text: str, stored: StoredCheckpoint, verifier: NoteVerifier) -> str:
    """The witness's cosignature line from its answer, verified over this checkpoint."""
    if len(text) > 16_384:
        raise WitnessRefusedError("the witness's answer is too large")
    for raw in text.splitlines():
        try:
            signature = parse_signature_line(raw)
        except MedsignError:
            raise WitnessRefusedError(
                "the witness answered something that is not a note signature"
            ) from None
        if signature.name == verifier.name and signature.key_id == verifier.key_id:
            verifier.verify(stored.checkpoint.body().decode("utf-8"), signature)
            return signature.line()
    raise WitnessRefusedError("the witness's answer holds no cosignature by its key")
