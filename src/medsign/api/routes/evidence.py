"""The evidence log over HTTP: checkpoints and proofs are public (hashes only, no patient
data, no identifiers); entries, which name requests and staff by id, need the admin token."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from medsign.api.deps import AdminDep, RuntimeDep
from medsign.api.problems import PROBLEM_RESPONSES
from medsign.evidence.witness import WitnessConflictError

router = APIRouter(prefix="/evidence/v1", tags=["evidence"], responses=PROBLEM_RESPONSES)

_SIZE = Annotated[int | None, Query(ge=0, le=2**62, description="Tree size (default: now)")]


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


class TreeHeadPublic(BaseModel):
    size: int
    root_hash: str = Field(description="RFC 9162 root hash, base64")


class InclusionProofPublic(BaseModel):
    leaf_index: int
    tree_size: int
    root_hash: str
    proof: list[str] = Field(description="RFC 9162 §2.1.3 audit path, base64 hashes")


class ConsistencyProofPublic(BaseModel):
    first: int
    second: int
    first_root_hash: str
    second_root_hash: str
    proof: list[str] = Field(description="RFC 9162 §2.1.4 consistency proof, base64 hashes")


class LogEntryPublic(BaseModel):
    leaf_index: int
    event_id: str
    type: str
    record: dict[str, Any] = Field(description="The canonical (RFC 8785) event record")
    leaf_hash: str


@router.get("/tree", response_model=TreeHeadPublic, summary="Size and root of the log")
def tree(runtime: RuntimeDep, size: _SIZE = None) -> TreeHeadPublic:
    found_size, root = runtime.evidence_log.root(size)
    return TreeHeadPublic(size=found_size, root_hash=_b64(root))


@router.get(
    "/proofs/inclusion",
    response_model=InclusionProofPublic,
    summary="Prove that leaf `leaf_index` is in the tree of `size` entries",
)
def inclusion(
    runtime: RuntimeDep,
    leaf_index: Annotated[int, Query(ge=0, le=2**62)],
    size: _SIZE = None,
) -> InclusionProofPublic:
    tree_size, proof = runtime.evidence_log.inclusion(leaf_index, size)
    _, root = runtime.evidence_log.root(tree_size)
    return InclusionProofPublic(
        leaf_index=leaf_index,
        tree_size=tree_size,
        root_hash=_b64(root),
        proof=[_b64(p) for p in proof],
    )


@router.get(
    "/proofs/consistency",
    response_model=ConsistencyProofPublic,
    summary="Prove that the tree of `first` entries is a prefix of the tree of `second`",
)
def consistency(
    runtime: RuntimeDep,
    first: Annotated[int, Query(ge=1, le=2**62)],
    second: _SIZE = None,
) -> ConsistencyProofPublic:
    second_size, proof = runtime.evidence_log.consistency(first, second)
    return ConsistencyProofPublic(
        first=first,
        second=second_size,
        first_root_hash=_b64(runtime.evidence_log.root(first)[1]),
        second_root_hash=_b64(runtime.evidence_log.root(second_size)[1]),
        proof=[_b64(p) for p in proof],
    )


@router.get(
    "/entries/{key}",
    response_model=LogEntryPublic,
    summary="One entry, by event id or leaf index (admin)",
)
def entry(
    key: Annotated[str, Field(min_length=1, max_length=64)], runtime: RuntimeDep, _: AdminDep
) -> LogEntryPublic:
    found = runtime.evidence_log.entry(int(key) if key.isdigit() else key)
    return LogEntryPublic(
        leaf_index=found.leaf_index,
        event_id=found.event_id,
        type=found.type,
        record=found.record,
        leaf_hash=_b64(found.leaf_hash),
    )


# -- checkpoints -------------------------------------------------------------------------------

_NOTE: dict[str, Any] = {"content": {"text/plain": {}}}


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    responses={200: _NOTE},
    summary="The newest signed checkpoint (C2SP signed note), with witness cosignatures",
    description="With `witnessed=true`: the newest one cosigned by at least"
    " `log_witness_quorum` witnesses. Verify with the log's key from `/evidence/v1/log-key`.",
)
def checkpoint(runtime: RuntimeDep, witnessed: bool = False) -> PlainTextResponse:
    stored = runtime.checkpoints.latest(witnessed=witnessed)
    return PlainTextResponse(stored.with_cosignatures(), headers={"Cache-Control": "no-cache"})


@router.get(
    "/log-key",
    response_class=PlainTextResponse,
    responses={200: _NOTE},
    summary="The log's checkpoint key as a signed-note verifier key (vkey, ECDSA type 0x02)",
)
def log_key(runtime: RuntimeDep) -> PlainTextResponse:
    return PlainTextResponse(runtime.checkpoints.vkey() + "\n")


class CheckpointPublic(BaseModel):
    id: int
    size: int
    root_hash: str
    note: str = Field(description="The signed note, with cosignature lines")
    timestamp_token: str | None = Field(description="RFC 3161 token over SHA-256(note), base64")
    cosignatures: int


@router.post(
    "/checkpoints",
    response_model=CheckpointPublic,
    summary="Sign a checkpoint now and ask the witnesses to cosign it (admin)",
)
def make_checkpoint(runtime: RuntimeDep, _: AdminDep) -> CheckpointPublic:
    stored = runtime.checkpoints.make()
    return CheckpointPublic(
        id=stored.id,
        size=stored.checkpoint.size,
        root_hash=_b64(stored.checkpoint.root_hash),
        note=stored.with_cosignatures(),
        timestamp_token=_b64(stored.timestamp_token) if stored.timestamp_token else None,
        cosignatures=len(stored.cosignatures),
    )


class WitnessCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    url: str = Field(min_length=8, max_length=500, description="The witness's submission prefix")
    vkey: str = Field(min_length=1, max_length=400, description="Its cosignature/v1 vkey")


@router.post(
    "/witnesses",
    status_code=204,
    summary="Ask this witness to cosign every checkpoint from now on (admin)",
)
def add_witness(body: WitnessCreate, runtime: RuntimeDep, _: AdminDep) -> Response:
    runtime.checkpoints.add_witness(body.name, body.url, body.vkey)
    return Response(status_code=204)


# -- this installation as a witness (C2SP tlog-witness) ------------------------------------------

witness_router = APIRouter(prefix="/witness/v1", tags=["witness"], responses=PROBLEM_RESPONSES)


@witness_router.post(
    "/add-checkpoint",
    response_class=PlainTextResponse,
    responses={200: _NOTE, 409: {"content": {"text/x.tlog.size": {}}}},
    summary="Cosign a checkpoint of a followed log (C2SP tlog-witness add-checkpoint)",
)
async def add_checkpoint(request: Request, runtime: RuntimeDep) -> Response:
    body = await request.body()
    try:
        lines = await run_in_threadpool(runtime.witness.add_checkpoint, body)
    except WitnessConflictError as conflict:
        # The protocol's own answer: the size this witness last cosigned.
        return Response(
            f"{conflict.extra.get('size', 0)}\n", status_code=409, media_type="text/x.tlog.size"
        )
    return PlainTextResponse(lines)


@witness_router.get(
    "/key",
    response_class=PlainTextResponse,
    responses={200: _NOTE},
    summary="This witness's cosigning key (vkey, cosignature/v1 type 0x04)",
)
def witness_key(runtime: RuntimeDep) -> PlainTextResponse:
    return PlainTextResponse(runtime.witness.vkey() + "\n")


class FollowCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vkey: str = Field(min_length=1, max_length=400, description="The log's checkpoint vkey")


@witness_router.post("/logs", status_code=204, summary="Follow (witness) a log (admin)")
def follow_log(body: FollowCreate, runtime: RuntimeDep, actor: AdminDep) -> Response:
    runtime.witness.follow(body.vkey, actor=actor)
    return Response(status_code=204)
