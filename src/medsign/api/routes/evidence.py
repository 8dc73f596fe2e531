"""The evidence log over HTTP: checkpoints and proofs are public (hashes only, no patient
data, no identifiers); entries, which name requests and staff by id, need the admin token."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from medsign.api.deps import AdminDep, RuntimeDep
from medsign.api.problems import PROBLEM_RESPONSES

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
