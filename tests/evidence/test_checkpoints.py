"""Checkpoints and the witness protocol against bad input: forged signatures, proofs for
another tree, stale sizes, malformed requests, and witnesses that answer garbage (issue 5,
items 2, 4 and 8)."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import httpx
import pytest

from medsign.crypto import KeyAlgorithm, PublicKey, SignatureScheme
from medsign.errors import MedsignError
from medsign.evidence import record_event
from medsign.evidence.checkpoints import CheckpointService
from medsign.evidence.notes import Checkpoint, NoteVerifier, open_note, sign_checkpoint_ecdsa
from medsign.evidence.witness import (
    WitnessConflictError,
    WitnessInconsistentError,
    WitnessRequestError,
    WitnessSignatureError,
    WitnessUnknownLogError,
)


@pytest.fixture(scope="module")
def runtime(installation: tuple[Any, str]) -> Any:
    return installation[0]


def grow(runtime: Any, n: int) -> None:
    with runtime.database.session() as session:
        for i in range(n):
            record_event(session, runtime.clock.now(), "test:grow", n=i)


def request(old: int, proof: list[bytes], note: str) -> bytes:
    lines = "".join(base64.b64encode(p).decode() + "\n" for p in proof)
    return f"old {old}\n{lines}\n{note}".encode()


def test_a_checkpoint_is_signed_timestamped_and_verifiable(runtime: Any) -> None:
    grow(runtime, 3)
    stored = runtime.checkpoints.make()
    size, root = runtime.evidence_log.root(stored.checkpoint.size)
    assert (stored.checkpoint.size, stored.checkpoint.root_hash) == (size, root)
    assert runtime.checkpoints.verify_note(stored.note) == (size, root)
    assert stored.timestamp_token  # RFC 3161 over SHA-256(note)
    assert runtime.checkpoints.make().id == stored.id  # nothing appended: no new checkpoint
    assert runtime.checkpoints.latest().id == stored.id
    # The key is certified by medsign's CA under the evidence-log profile.
    certified = runtime.authority.list(profile="evidence-log", status="good")
    assert certified and certified[0].key_id == runtime.checkpoints.key()[0]


def test_the_witness_refuses_what_it_cannot_vouch_for(runtime: Any) -> None:
    witness, checkpoints = runtime.witness, runtime.checkpoints
    grow(runtime, 2)
    first = checkpoints.make()
    note = first.note
    with pytest.raises(WitnessUnknownLogError):
        witness.add_checkpoint(request(0, [], note))
    witness.follow(checkpoints.vkey(), actor="test")
    line = witness.add_checkpoint(request(0, [], note))
    _, signatures = open_note(
        (note + line).encode(),
        [checkpoints.verifier(), NoteVerifier.from_vkey(witness.vkey())],
    )
    assert len(signatures) == 2

    grow(runtime, 3)
    second = checkpoints.make()
    size1, size2 = first.checkpoint.size, second.checkpoint.size
    _, proof = runtime.evidence_log.consistency(size1, size2)
    # Stale old size: 409 with the size the witness holds.
    with pytest.raises(WitnessConflictError) as conflict:
        witness.add_checkpoint(request(size1 - 1, proof, second.note))
    assert conflict.value.extra["size"] == size1
    # A proof for another tree (another pair of sizes) does not link the two checkpoints.
    _, other = runtime.evidence_log.consistency(1, size2)
    with pytest.raises(WitnessInconsistentError):
        witness.add_checkpoint(request(size1, other, second.note))
    # A checkpoint signed by a key the witness does not trust.
    forger = runtime.keystore.generate(KeyAlgorithm.EC_P256, label="forger")
    forged = sign_checkpoint_ecdsa(
        Checkpoint(checkpoints.origin, size2, b"\x00" * 32),
        PublicKey.from_der(forger.public_key_der),
        lambda d: runtime.keystore.sign_digest(
            forger.id, SignatureScheme.ECDSA_SHA256, d, actor="test", purpose="forgery"
        ),
    ).decode()
    with pytest.raises(WitnessSignatureError):
        witness.add_checkpoint(request(size1, proof, forged))
    # Old larger than the checkpoint; garbage bodies.
    with pytest.raises(WitnessRequestError):
        witness.add_checkpoint(request(size2 + 1, [], second.note))
    for garbage in (
        b"",
        b"old x\n\n",
        b"old 01\n\n" + note.encode(),
        b"old 1\n!!!\n\n" + note.encode(),
        b"\xff" * 70_000,
    ):
        with pytest.raises(MedsignError):
            witness.add_checkpoint(garbage)
    # The honest extension is cosigned.
    assert witness.add_checkpoint(request(size1, proof, second.note)).startswith("— ")


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="hello"),
        httpx.Response(200, text="— somebody AAAA\n"),
        httpx.Response(500, text="boom"),
        httpx.Response(409, text="not a number", headers={"content-type": "text/x.tlog.size"}),
        httpx.Response(422, json={"title": "no"}),
    ],
)
def test_a_witness_answering_garbage_leaves_the_checkpoint_unwitnessed(
    runtime: Any, answer: httpx.Response
) -> None:
    witness_key = runtime.keystore.generate(KeyAlgorithm.ED25519, label="far witness")
    vkey = NoteVerifier.for_key(
        "far.example/witness",
        PublicKey.from_der(witness_key.public_key_der),
        NoteVerifier.from_vkey(runtime.witness.vkey()).key_type,
    ).vkey()
    service = CheckpointService(
        runtime.database,
        runtime.clock,
        runtime.keystore,
        runtime.authority,
        runtime.evidence_log,
        origin=runtime.checkpoints.origin,
        stamp=None,
        http=lambda: httpx.Client(transport=httpx.MockTransport(lambda _: answer)),
    )
    service.add_witness("far.example/witness", "http://far.example/witness", vkey)
    grow(runtime, 1)
    stored = service.make()
    assert stored.cosignatures == ()
    outcome = service.collect_cosignatures(stored)
    assert [o.ok for o in outcome if o.witness == "far.example/witness"] == [False]
    with runtime.database.session() as session:  # leave the shared installation as found
        from medsign.db.tables import WitnessRow

        session.get(WitnessRow, "far.example/witness").state = "retired"


def test_checkpoint_timestamps_are_made_at_signing(runtime: Any) -> None:
    grow(runtime, 1)
    stored = runtime.checkpoints.make()
    assert stored.created_at <= runtime.clock.now() + dt.timedelta(seconds=1)
    from medsign.tsa.token import parse_token

    assert parse_token(stored.timestamp_token).gen_time <= stored.created_at + dt.timedelta(
        seconds=2
    )
