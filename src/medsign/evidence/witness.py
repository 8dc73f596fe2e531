"""medsign as a witness of other logs (C2SP tlog-witness ``add-checkpoint``).

The witness trusts a list of logs (origin and checkpoint key, configured by an operator),
remembers the newest checkpoint it cosigned for each, and cosigns a new one only if it is
signed by that log's key and a consistency proof shows it extends what the witness saw. A log
that rewrote its history cannot produce such a proof: the witness refuses (422), and the
refusal is kept as evidence of misbehaviour. The check of the old size and the update of the
stored state happen in one guarded statement, so two concurrent submissions can never roll
the witness's view backwards.

The witness key is Ed25519 in the key store (cosignature/v1, signed-note type 0x04).
"""

from __future__ import annotations

import base64
import binascii
import logging

from sqlalchemy import select, update

from medsign.clock import Clock
from medsign.crypto import KeyAlgorithm, PublicKey, SignatureScheme
from medsign.db import rowcount
from medsign.db.session import Database
from medsign.db.tables import SettingRow, WitnessedLogRow
from medsign.errors import InputError, MedsignError, NotFoundError, StateError
from medsign.evidence import record_event
from medsign.evidence.merkle import verify_consistency
from medsign.evidence.notes import (
    Checkpoint,
    NoteKeyType,
    NoteVerifier,
    cosign,
    open_note,
    parse_note,
)
from medsign.ids import KeyId
from medsign.keys.base import KeyStore

log = logging.getLogger(__name__)

KEY_SETTING = "witness-key-id"
ACTOR = "system:witness"
MAX_REQUEST = 64 * 1024


class WitnessUnknownLogError(NotFoundError):
    code = "witness-unknown-log"
    title = "This witness does not follow that log"


class WitnessSignatureError(MedsignError):
    code = "witness-bad-signature"
    title = "The checkpoint is not signed by the log's key"
    status = 403


class WitnessRequestError(InputError):
    code = "witness-bad-request"
    title = "Malformed add-checkpoint request"
    status = 400


class WitnessConflictError(StateError):
    """The old size is not the size this witness last cosigned (or same size, other root)."""

    code = "witness-conflict"
    title = "The witness holds another tree size"


class WitnessInconsistentError(InputError):
    code = "witness-inconsistent"
    title = "The checkpoint does not extend the tree the witness saw"
    status = 422


class WitnessService:
    def __init__(self, database: Database, clock: Clock, keystore: KeyStore, *, name: str) -> None:
        self._database = database
        self._clock = clock
        self._keystore = keystore
        self.name = name

    def key(self) -> tuple[KeyId, PublicKey]:
        """The witness's Ed25519 key; made on first use."""
        with self._database.session() as session:
            row = session.get(SettingRow, KEY_SETTING)
            if row is not None:
                ref = self._keystore.get(KeyId(row.value))
                return ref.id, PublicKey.from_der(ref.public_key_der)
        ref = self._keystore.generate(KeyAlgorithm.ED25519, label=f"witness:{self.name}"[:64])
        with self._database.session() as session:
            if session.get(SettingRow, KEY_SETTING) is None:
                session.add(SettingRow(name=KEY_SETTING, value=ref.id))
        return self.key()

    def vkey(self) -> str:
        _, public_key = self.key()
        return NoteVerifier.for_key(self.name, public_key, NoteKeyType.COSIGNATURE_V1).vkey()

    def follow(self, vkey: str, *, actor: str) -> str:
        """Trust a log: its checkpoint key as a vkey (its name is the log's origin)."""
        verifier = NoteVerifier.from_vkey(vkey)
        if verifier.key_type not in (NoteKeyType.ECDSA, NoteKeyType.ED25519):
            raise InputError("a log's checkpoint key is an ECDSA (0x02) or Ed25519 (0x01) vkey")
        now = self._clock.now()
        with self._database.session() as session:
            row = session.get(WitnessedLogRow, verifier.name)
            if row is None:
                session.add(
                    WitnessedLogRow(
                        origin=verifier.name,
                        key_name=vkey,
                        public_key_der=verifier.public_key.der,
                        size=0,
                        root_hash=b"",
                        updated_at=now,
                    )
                )
            else:
                row.key_name, row.public_key_der = vkey, verifier.public_key.der
            record_event(session, now, "witness:follow", origin=verifier.name, actor=actor)
        return verifier.name

    def add_checkpoint(self, body: bytes) -> str:
        """Answer an add-checkpoint request: the cosignature line(s), or a precise error."""
        old, proof, note = _parse_request(body)
        try:
            checkpoint = Checkpoint.parse(parse_note(note).text)
        except MedsignError as exc:
            raise WitnessRequestError(f"the checkpoint cannot be read: {exc}") from exc
        with self._database.session() as session:
            row = session.get(WitnessedLogRow, checkpoint.origin)
            if row is None:
                raise WitnessUnknownLogError(f"no log {checkpoint.origin!r} here")
            verifier = NoteVerifier.from_vkey(row.key_name)
            known_size, known_root = row.size, bytes(row.root_hash)
        try:
            open_note(note, [verifier])
        except MedsignError as exc:
            raise WitnessSignatureError(str(exc)) from exc
        if old > checkpoint.size:
            raise WitnessRequestError("old size is larger than the checkpoint's size")
        if old != known_size:
            raise WitnessConflictError(f"last cosigned size is {known_size}", size=known_size)
        if old == checkpoint.size:
            if proof or checkpoint.root_hash != known_root:
                raise WitnessConflictError("same size, other root", size=known_size)
        elif old == 0:
            if proof:
                raise WitnessRequestError("a proof from size 0 must be empty")
        else:
            try:
                verify_consistency(old, checkpoint.size, proof, known_root, checkpoint.root_hash)
            except MedsignError as exc:
                self._record_refusal(checkpoint, old)
                raise WitnessInconsistentError(
                    f"the checkpoint of size {checkpoint.size} does not extend size {old}"
                ) from exc
        now = self._clock.now()
        with self._database.session() as session:
            moved = session.execute(
                update(WitnessedLogRow)
                .where(WitnessedLogRow.origin == checkpoint.origin, WitnessedLogRow.size == old)
                .values(size=checkpoint.size, root_hash=checkpoint.root_hash, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if rowcount(moved) != 1:
                current = session.scalar(
                    select(WitnessedLogRow.size).where(WitnessedLogRow.origin == checkpoint.origin)
                )
                raise WitnessConflictError("another submission moved first", size=current or 0)
            record_event(
                session, now, "witness:cosign", origin=checkpoint.origin, size=checkpoint.size,
                root=checkpoint.root_hash.hex(),
            )  # fmt: skip
        key_id, public_key = self.key()
        return cosign(  # one signature line, newline included
            checkpoint.body(),
            self.name,
            public_key,
            int(now.timestamp()),
            lambda message: self._keystore.sign_message(
                key_id, SignatureScheme.ED25519, message, actor=ACTOR, purpose="cosignature"
            ),
        )

    def _record_refusal(self, checkpoint: Checkpoint, old: int) -> None:
        with self._database.session() as session:
            record_event(
                session, self._clock.now(), "witness:refuse", origin=checkpoint.origin,
                size=checkpoint.size, old_size=old, root=checkpoint.root_hash.hex(),
            )  # fmt: skip


def _parse_request(body: bytes) -> tuple[int, list[bytes], bytes]:
    if len(body) > MAX_REQUEST:
        raise WitnessRequestError("the request is too large")
    head, sep, note = body.partition(b"\n\n")
    if not sep:
        raise WitnessRequestError("no empty line between the proof and the checkpoint")
    lines = head.split(b"\n")
    first = lines[0].decode("ascii", "replace")
    if not first.startswith("old ") or not first[4:].isdigit():
        raise WitnessRequestError("the first line must be 'old <size>'")
    digits = first[4:]
    if (len(digits) > 1 and digits.startswith("0")) or len(digits) > 19:
        raise WitnessRequestError("the old size is not a canonical decimal")
    if len(lines) - 1 > 63:
        raise WitnessRequestError("at most 63 proof lines")
    proof = []
    for line in lines[1:]:
        try:
            digest = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise WitnessRequestError("a proof line is not base64") from exc
        if len(digest) != 32:
            raise WitnessRequestError("a proof line is not a SHA-256 hash")
        proof.append(digest)
    return int(digits), proof, note
