"""RFC 9162 §2.1 Merkle mathematics: external vectors, a naive reference, properties, scale.

External vectors: ``corpora/merkle-proofs/testdata`` (transparency-dev/merkle @ 417fb0c3,
Apache-2.0; see ``corpora/README.md`` and that folder's ``ORIGIN.md``), read in place. Their
``leafIdx`` is 0-based, like RFC 9162's ``leaf_index``: ``inclusion/0/happy-path.json`` proves
``leafIdx`` 0 in a tree of ``treeSize`` 1, every happy path has ``leafIdx < treeSize``, and
``test_corpus_leaf_index_is_zero_based`` checks that shifting to 1-based breaks them.

The trees behind the corpus's happy paths are built from the eight leaves of the RFC 6962
reference test data (``RFC6962_LEAVES``); ``test_corpus_happy_paths_are_our_proofs`` checks
that we generate exactly the corpus's proofs from them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from medsign.errors import EvidenceError, InputError, MedsignError, VerificationError
from medsign.evidence.merkle import (
    EMPTY_ROOT,
    ConsistencyProofError,
    Frontier,
    InclusionProofError,
    MerkleStoreError,
    ProofError,
    ProofRequestError,
    consistency_proof,
    fetch_perfect,
    inclusion_proof,
    leaf_hash,
    node_hash,
    plan_consistency,
    plan_inclusion,
    plan_range,
    range_hash,
    range_keys,
    root,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)
from tests.conftest import CORPORA

CORPUS = CORPORA / "merkle-proofs" / "testdata"
CORPUS_COUNTS = {"inclusion": 98, "consistency": 98}  # 196 files in all

RFC6962_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- the naive reference: RFC 9162 §2.1 read literally, with its own hashing -----------------


def ref_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def ref_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def largest_power_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(hashes: Sequence[bytes]) -> bytes:
    """MTH over leaf *hashes* (so leaves can be given already hashed), §2.1.1."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = largest_power_below(len(hashes))
    return ref_node(ref_mth(hashes[:k]), ref_mth(hashes[k:]))


def ref_path(m: int, hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D_n), §2.1.3.1."""
    n = len(hashes)
    if n == 1:
        return []
    k = largest_power_below(n)
    if m < k:
        return [*ref_path(m, hashes[:k]), ref_mth(hashes[k:])]
    return [*ref_path(m - k, hashes[k:]), ref_mth(hashes[:k])]


def ref_subproof(m: int, hashes: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D_n, b), §2.1.4.1."""
    n = len(hashes)
    if m == n:
        return [] if b else [ref_mth(hashes)]
    k = largest_power_below(n)
    if m <= k:
        return [*ref_subproof(m, hashes[:k], b), ref_mth(hashes[k:])]
    return [*ref_subproof(m - k, hashes[k:], False), ref_mth(hashes[:k])]


def path_shape(m: int, n: int) -> tuple[str, ...]:
    """On which side each PATH element is hashed in: it is all the verifier knows of (m, n)."""
    if n == 1:
        return ()
    k = largest_power_below(n)
    if m < k:
        return (*path_shape(m, k), "right")
    return (*path_shape(m - k, n - k), "left")


def subproof_shape(m: int, n: int, b: bool) -> tuple[str, ...]:
    """Like ``path_shape`` for SUBPROOF: "seed" is the old subtree itself."""
    if m == n:
        return () if b else ("seed",)
    k = largest_power_below(n)
    if m <= k:
        return (*subproof_shape(m, k, b), "right")
    return (*subproof_shape(m - k, n - k, False), "left")


# --- stores -----------------------------------------------------------------------------------


class DictStore:
    """A ``PerfectHashes`` over a dict; counts lookups."""

    def __init__(self, nodes: Mapping[tuple[int, int], bytes]) -> None:
        self.nodes = nodes
        self.lookups: list[tuple[int, int]] = []

    def perfect(self, level: int, index: int) -> bytes:
        self.lookups.append((level, index))
        return self.nodes[(level, index)]


class BatchDictStore(DictStore):
    """Also answers ``perfect_many``, as a database store does with one query."""

    def __init__(self, nodes: Mapping[tuple[int, int], bytes]) -> None:
        super().__init__(nodes)
        self.batches: list[list[tuple[int, int]]] = []

    def perfect_many(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        self.batches.append(list(keys))
        return {key: self.nodes[key] for key in keys if key in self.nodes}


@dataclass(frozen=True)
class Tree:
    hashes: tuple[bytes, ...]
    nodes: Mapping[tuple[int, int], bytes]

    @property
    def size(self) -> int:
        return len(self.hashes)


@functools.lru_cache(maxsize=64)
def make_tree(size: int, salt: bytes = b"") -> Tree:
    """Distinct leaves and every perfect node, computed by the naive MTH."""
    hashes = tuple(ref_leaf(salt + i.to_bytes(8, "big")) for i in range(size))
    nodes = {
        (level, index): ref_mth(hashes[index << level : (index + 1) << level])
        for level in range(size.bit_length())
        for index in range(size >> level)
    }
    return Tree(hashes, nodes)


@st.composite
def trees(draw: st.DrawFn, min_size: int = 1, max_size: int = 300) -> Tree:
    return make_tree(draw(st.integers(min_size, max_size)), draw(st.binary(max_size=2)))


# --- external vectors -------------------------------------------------------------------------


def corpus_files(kind: str) -> list[str]:
    folder = CORPUS / kind
    if not folder.is_dir():
        return []  # test_corpus_is_complete fails loudly in that case
    return sorted(p.relative_to(CORPUS).as_posix() for p in folder.rglob("*.json"))


def load_vector(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / name).read_text())
    return data


def b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def b64_list(values: list[str] | None) -> list[bytes]:
    return [b64(v) for v in values or []]


def test_corpus_is_complete(corpora: Path) -> None:
    assert CORPUS.is_dir(), f"Merkle proof vectors not found at {CORPUS}"
    everything = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    assert all(p.suffix == ".json" for p in everything)
    for kind, count in CORPUS_COUNTS.items():
        assert len(corpus_files(kind)) == count, kind
    assert len(everything) == sum(CORPUS_COUNTS.values()) == 196


def check_inclusion_vector(vector: dict[str, Any]) -> None:
    verify_inclusion(
        b64(vector["leafHash"]),
        vector["leafIdx"],
        vector["treeSize"],
        b64_list(vector["proof"]),
        b64(vector["root"]),
    )


def check_consistency_vector(vector: dict[str, Any]) -> None:
    verify_consistency(
        vector["size1"],
        vector["size2"],
        b64_list(vector["proof"]),
        b64(vector["root1"]),
        b64(vector["root2"]),
    )


@pytest.mark.parametrize("name", corpus_files("inclusion"))
def test_inclusion_vector(name: str) -> None:
    vector = load_vector(name)
    if vector["wantErr"]:
        # pytest.raises lets any other exception through: only a ProofError passes.
        with pytest.raises(InclusionProofError):
            check_inclusion_vector(vector)
    else:
        check_inclusion_vector(vector)


@pytest.mark.parametrize("name", corpus_files("consistency"))
def test_consistency_vector(name: str) -> None:
    vector = load_vector(name)
    if vector["wantErr"]:
        with pytest.raises(ConsistencyProofError):
            check_consistency_vector(vector)
    else:
        check_consistency_vector(vector)


def test_corpus_leaf_index_is_zero_based(corpora: Path) -> None:
    happy = [load_vector(n) for n in corpus_files("inclusion") if n.endswith("/happy-path.json")]
    assert len(happy) == 5
    for vector in happy:
        assert 0 <= vector["leafIdx"] < vector["treeSize"]
        check_inclusion_vector(vector)
        # Read as 1-based, the same proofs would be for leafIdx - 1: that must not verify.
        if vector["leafIdx"] > 0:
            with pytest.raises(InclusionProofError):
                check_inclusion_vector({**vector, "leafIdx": vector["leafIdx"] - 1})
    assert any(v["leafIdx"] == 0 and v["treeSize"] == 1 for v in happy)


def test_corpus_happy_paths_are_our_proofs(corpora: Path) -> None:
    frontier = Frontier()
    nodes: dict[tuple[int, int], bytes] = {}
    for data in RFC6962_LEAVES:
        nodes.update({(lv, ix): h for lv, ix, h in frontier.append(leaf_hash(data))})
    store = DictStore(nodes)
    for name in corpus_files("inclusion"):
        vector = load_vector(name)
        if name.endswith("/happy-path.json"):
            index, size = vector["leafIdx"], vector["treeSize"]
            assert b64(vector["leafHash"]) == leaf_hash(RFC6962_LEAVES[index])
            assert inclusion_proof(store, index, size) == b64_list(vector["proof"])
            assert root(store, size) == b64(vector["root"])
    for name in corpus_files("consistency"):
        vector = load_vector(name)
        if name.endswith("/happy-path.json"):
            size1, size2 = vector["size1"], vector["size2"]
            assert consistency_proof(store, size1, size2) == b64_list(vector["proof"])
            assert root(store, size1) == b64(vector["root1"])
            assert root(store, size2) == b64(vector["root2"])


# --- known answers and basics -----------------------------------------------------------------


def test_hash_constants() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert root(DictStore({}), 0) == EMPTY_ROOT
    assert Frontier().root() == EMPTY_ROOT
    assert Frontier().size == 0


def test_rfc6962_consistency_examples() -> None:
    """The three consistency proofs drawn in RFC 6962 §2.1.3 / RFC 9162 §2.1.5 (7 leaves)."""
    assert plan_consistency(3, 7).ranges == ((2, 3), (3, 4), (0, 2), (4, 7))
    assert plan_consistency(4, 7).ranges == ((4, 7),)
    assert plan_consistency(6, 7).ranges == ((4, 6), (6, 7), (0, 4))
    assert plan_inclusion(0, 7).ranges == ((1, 2), (2, 4), (4, 7))
    assert plan_inclusion(3, 7).ranges == ((2, 3), (0, 2), (4, 7))
    assert plan_inclusion(6, 7).ranges == ((4, 6), (0, 4))
    assert plan_consistency(5, 5).ranges == ()


def test_range_keys_are_the_aligned_decomposition() -> None:
    assert range_keys(0, 0) == []
    assert range_keys(0, 13) == [(3, 0), (2, 2), (0, 12)]
    assert range_keys(16, 22) == [(2, 4), (1, 10)]
    assert range_keys(7, 7) == []


def test_error_hierarchy_and_codes() -> None:
    assert issubclass(ProofRequestError, InputError)
    assert issubclass(ProofError, VerificationError)
    assert issubclass(ProofError, MedsignError)
    assert issubclass(InclusionProofError, ProofError)
    assert issubclass(ConsistencyProofError, ProofError)
    assert issubclass(MerkleStoreError, EvidenceError)
    assert ProofRequestError.code == "proof-request-invalid"
    assert ProofError.code == "proof-invalid"
    assert InclusionProofError.code == "inclusion-proof-invalid"
    assert ConsistencyProofError.code == "consistency-proof-invalid"
    assert MerkleStoreError.code == "merkle-store-inconsistent"


@pytest.mark.parametrize(
    ("index", "size"), [(0, 0), (3, 3), (4, 3), (-1, 3), (0, -1), (2**64 - 1, 1)]
)
def test_inclusion_request_refused(index: int, size: int) -> None:
    with pytest.raises(ProofRequestError):
        inclusion_proof(DictStore(make_tree(3).nodes), index, size)


@pytest.mark.parametrize(("size1", "size2"), [(0, 0), (0, 3), (4, 3), (-1, 3), (1, -1)])
def test_consistency_request_refused(size1: int, size2: int) -> None:
    with pytest.raises(ProofRequestError):
        consistency_proof(DictStore(make_tree(3).nodes), size1, size2)


@pytest.mark.parametrize(("start", "end"), [(1, 3), (2, 6), (4, 12), (3, 2), (-1, 1), (0, -1)])
def test_unaligned_or_backward_range_refused(start: int, end: int) -> None:
    with pytest.raises(ProofRequestError):
        range_hash(DictStore(make_tree(16).nodes), start, end)


def test_root_of_negative_size_refused() -> None:
    with pytest.raises(ProofRequestError):
        root(DictStore({}), -1)
    with pytest.raises(ProofRequestError):
        Frontier.load(DictStore({}), -1)


def test_frontier_refuses_a_leaf_hash_of_the_wrong_size() -> None:
    with pytest.raises(ProofRequestError):
        Frontier().append(b"not a hash")


def test_consistency_of_equal_sizes_is_the_empty_proof() -> None:
    tree = make_tree(5)
    assert consistency_proof(DictStore(tree.nodes), 5, 5) == []
    verify_consistency(5, 5, [], ref_mth(tree.hashes), ref_mth(tree.hashes))
    with pytest.raises(ConsistencyProofError):
        verify_consistency(5, 5, [], ref_mth(tree.hashes), ref_mth(tree.hashes[:4]))


def test_plain_store_is_asked_once_per_node() -> None:
    store = DictStore(make_tree(300).nodes)
    plan = plan_inclusion(123, 300)
    inclusion_proof(store, 123, 300)
    assert sorted(store.lookups) == sorted(plan.keys)


def test_batch_store_is_asked_once() -> None:
    tree = make_tree(300)
    store = BatchDictStore(tree.nodes)
    proof = consistency_proof(store, 123, 300)
    assert store.lookups == []
    assert store.batches == [list(plan_consistency(123, 300).keys)]
    assert proof == ref_subproof(123, tree.hashes, True)

    store = BatchDictStore(tree.nodes)
    frontier = Frontier.load(store, 299)
    assert len(store.batches) == 1
    assert frontier.root() == ref_mth(tree.hashes[:299])


def test_plan_can_be_assembled_by_the_caller() -> None:
    """What a database layer does: plan, fetch the keys its own way, assemble."""
    tree = make_tree(77)
    plan = plan_inclusion(40, 77)
    fetched = {key: tree.nodes[key] for key in plan.keys}
    assert plan.assemble(fetched) == ref_path(40, tree.hashes)
    assert plan_range(64, 77).assemble(tree.nodes) == [ref_mth(tree.hashes[64:77])]


def test_missing_or_malformed_node_is_a_store_error() -> None:
    tree = make_tree(10)
    partial = dict(tree.nodes)
    del partial[(3, 0)]
    with pytest.raises(MerkleStoreError):
        root(BatchDictStore(partial), 10)
    bad = {**tree.nodes, (3, 0): b"short"}
    with pytest.raises(MerkleStoreError):
        root(DictStore(bad), 10)
    with pytest.raises(MerkleStoreError):
        plan_range(0, 10).assemble({})
    assert fetch_perfect(DictStore({}), []) == {}


def test_append_returns_rows_for_the_store() -> None:
    frontier = Frontier()
    assert frontier.append(leaf_hash(b"a")) == [(0, 0, leaf_hash(b"a"))]
    created = frontier.append(leaf_hash(b"b"))
    ab = node_hash(leaf_hash(b"a"), leaf_hash(b"b"))
    assert created == [(0, 1, leaf_hash(b"b")), (1, 0, ab)]
    assert frontier.root() == ab
    assert frontier.nodes == ((1, 0, ab),)


# --- properties against the naive reference ---------------------------------------------------


@PROPERTY
@given(tree=trees(), data=st.data())
def test_inclusion_proofs_equal_naive_and_verify(tree: Tree, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, tree.size - 1))
    store = DictStore(tree.nodes)
    proof = inclusion_proof(store, index, tree.size)
    assert proof == ref_path(index, tree.hashes)
    tree_root = ref_mth(tree.hashes)
    assert root(store, tree.size) == tree_root
    verify_inclusion(tree.hashes[index], index, tree.size, proof, tree_root)
    assert root_from_inclusion(tree.hashes[index], index, tree.size, proof) == tree_root


@PROPERTY
@given(tree=trees(), data=st.data())
def test_consistency_proofs_equal_naive_and_verify(tree: Tree, data: st.DataObject) -> None:
    size1 = data.draw(st.integers(1, tree.size))
    store = DictStore(tree.nodes)
    proof = consistency_proof(store, size1, tree.size)
    assert proof == ref_subproof(size1, tree.hashes, True)
    verify_consistency(size1, tree.size, proof, ref_mth(tree.hashes[:size1]), ref_mth(tree.hashes))


@PROPERTY
@given(tree=trees(min_size=0, max_size=260), data=st.data())
def test_frontier_roots_and_rows_equal_naive(tree: Tree, data: st.DataObject) -> None:
    frontier = Frontier()
    rows: dict[tuple[int, int], bytes] = {}
    for size, hashed in enumerate(tree.hashes, start=1):
        created = frontier.append(hashed)
        # One row for the leaf plus one per parent it completes: 1 + trailing ones of size-1.
        trailing_ones = ((size - 1) ^ size).bit_length() - 1
        assert len(created) == 1 + trailing_ones
        for level, index, digest in created:
            assert (level, index) not in rows
            rows[(level, index)] = digest
        assert frontier.size == size
        assert frontier.root() == ref_mth(tree.hashes[:size])
    assert frontier.root() == ref_mth(tree.hashes)
    assert rows == tree.nodes  # exactly every perfect node, each once
    assert len(rows) <= 2 * tree.size

    size = data.draw(st.integers(0, tree.size))
    loaded = Frontier.load(DictStore(tree.nodes), size)
    assert loaded.size == size
    assert loaded.root() == ref_mth(tree.hashes[:size])
    assert [(level, index) for level, index, _ in loaded.nodes] == range_keys(0, size)
    # A loaded frontier carries on exactly like one that saw every append.
    for hashed in tree.hashes[size:]:
        loaded.append(hashed)
    assert loaded.nodes == frontier.nodes


@st.composite
def aligned_ranges(draw: st.DrawFn) -> tuple[int, int]:
    length = draw(st.integers(0, 300))
    unit = 1 << (length.bit_length() - 1) if length else 1
    start = unit * draw(st.integers(0, 600 // unit))
    return start, start + length


@PROPERTY
@given(span=aligned_ranges())
def test_range_hash_equals_naive_mth(span: tuple[int, int]) -> None:
    start, end = span
    tree = make_tree(end)
    store = DictStore(tree.nodes)
    assert range_hash(store, start, end) == ref_mth(tree.hashes[start:end])
    # The fewest perfect subtrees: one per set bit of the length.
    assert len(store.lookups) == bin(end - start).count("1")


@PROPERTY
@given(start=st.integers(0, 300), length=st.integers(1, 300))
def test_range_hash_refuses_unaligned_start(start: int, length: int) -> None:
    assume(start % (1 << (length.bit_length() - 1)))
    with pytest.raises(ProofRequestError):
        range_hash(DictStore(make_tree(start + length).nodes), start, start + length)


def flip(proof: list[bytes], element: int, position: int, mask: int) -> list[bytes]:
    changed = bytearray(proof[element])
    changed[position] ^= mask
    return [*proof[:element], bytes(changed), *proof[element + 1 :]]


@PROPERTY
@given(tree=trees(min_size=2), data=st.data())
def test_tampered_inclusion_fails(tree: Tree, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, tree.size - 1))
    proof = ref_path(index, tree.hashes)
    tree_root = ref_mth(tree.hashes)
    leaf = tree.hashes[index]

    element = data.draw(st.integers(0, len(proof) - 1))
    position = data.draw(st.integers(0, 31))
    mask = data.draw(st.integers(1, 255))
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf, index, tree.size, flip(proof, element, position, mask), tree_root)
    with pytest.raises(InclusionProofError):
        verify_inclusion(flip([leaf], 0, position, mask)[0], index, tree.size, proof, tree_root)
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf, index, tree.size, proof, flip([tree_root], 0, position, mask)[0])
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf, index, tree.size, proof[:-1], tree_root)
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf, index, tree.size, [*proof, tree_root], tree_root)

    other_index = data.draw(st.integers(-1, 2 * tree.size).filter(lambda i: i != index))
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf, other_index, tree.size, proof, tree_root)

    # The verifier sees (index, size) only through the shape of the path, and some other
    # sizes give the same shape (leaf 0 of 3 or of 4 leaves: two right siblings). Those are
    # not a weakness: the signed tree head binds the size to the root. Every other size fails.
    other_size = data.draw(st.integers(-1, 2 * tree.size).filter(lambda s: s != tree.size))
    same_shape = index < other_size and path_shape(index, other_size) == path_shape(
        index, tree.size
    )
    if same_shape:
        verify_inclusion(leaf, index, other_size, proof, tree_root)
    else:
        with pytest.raises(InclusionProofError):
            verify_inclusion(leaf, index, other_size, proof, tree_root)


@PROPERTY
@given(tree=trees(min_size=2), data=st.data())
def test_tampered_consistency_fails(tree: Tree, data: st.DataObject) -> None:
    size1 = data.draw(st.integers(1, tree.size - 1))
    size2 = tree.size
    proof = ref_subproof(size1, tree.hashes, True)
    root1, root2 = ref_mth(tree.hashes[:size1]), ref_mth(tree.hashes)

    element = data.draw(st.integers(0, len(proof) - 1))
    position = data.draw(st.integers(0, 31))
    mask = data.draw(st.integers(1, 255))
    with pytest.raises(ConsistencyProofError):
        verify_consistency(size1, size2, flip(proof, element, position, mask), root1, root2)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(size1, size2, proof, flip([root1], 0, position, mask)[0], root2)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(size1, size2, proof, root1, flip([root2], 0, position, mask)[0])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(size1, size2, proof[:-1], root1, root2)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(size1, size2, [*proof, root2], root1, root2)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(size1, size2, proof, root2, root1)

    # As for inclusion, sizes reach the verifier only as the shape of the proof.
    other1 = data.draw(st.integers(-1, 2 * size2))
    other2 = data.draw(st.integers(-1, 2 * size2))
    assume((other1, other2) != (size1, size2))
    same_shape = 0 < other1 < other2 and subproof_shape(other1, other2, True) == subproof_shape(
        size1, size2, True
    )
    if same_shape:
        verify_consistency(other1, other2, proof, root1, root2)
    else:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(other1, other2, proof, root1, root2)


def test_some_other_sizes_share_a_proof_shape() -> None:
    """Documents the fact the two tests above account for, with the smallest example."""
    tree = make_tree(3)
    proof = ref_path(0, tree.hashes)
    verify_inclusion(tree.hashes[0], 0, 4, proof, ref_mth(tree.hashes))


# --- scale ------------------------------------------------------------------------------------


class SyntheticStore:
    """2**20 leaves, leaf i = leaf_hash(i as 8 bytes); nodes computed on demand.

    Nodes of level >= 10 are memoised, so each hash is computed once however the tests ask;
    only calls from the code under test are counted."""

    LEAVES = 1 << 20
    MEMO_LEVEL = 10

    def __init__(self) -> None:
        self._memo: dict[tuple[int, int], bytes] = {}
        self.lookups = 0

    @staticmethod
    def leaf(index: int) -> bytes:
        return ref_leaf(index.to_bytes(8, "big"))

    def perfect(self, level: int, index: int) -> bytes:
        self.lookups += 1
        return self.node(level, index)

    def node(self, level: int, index: int) -> bytes:
        assert level >= 0 and index >= 0 and (index + 1) << level <= self.LEAVES
        if level <= self.MEMO_LEVEL:
            layer = [self.leaf(i) for i in range(index << level, (index + 1) << level)]
            while len(layer) > 1:
                layer = [ref_node(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
            return layer[0]
        key = (level, index)
        if key not in self._memo:
            self._memo[key] = ref_node(
                self.node(level - 1, 2 * index), self.node(level - 1, 2 * index + 1)
            )
        return self._memo[key]


@pytest.fixture(scope="module")
def synthetic() -> SyntheticStore:
    return SyntheticStore()


SCALE = 10**6
BOUND = 4 * math.log2(SCALE)  # about 80; the real count is about 2 log2(n)


@pytest.mark.parametrize("index", [0, 1, 524_287, 524_288, 777_777, SCALE - 1])
def test_inclusion_at_a_million_leaves(synthetic: SyntheticStore, index: int) -> None:
    synthetic.lookups = 0
    tree_root = root(synthetic, SCALE)
    assert synthetic.lookups == bin(SCALE).count("1")
    synthetic.lookups = 0
    proof = inclusion_proof(synthetic, index, SCALE)
    assert synthetic.lookups <= BOUND
    assert synthetic.lookups == len(plan_inclusion(index, SCALE).keys)
    verify_inclusion(synthetic.leaf(index), index, SCALE, proof, tree_root)


@pytest.mark.parametrize("size1", [1, 2, 3, 524_288, 654_321, 999_999])
def test_consistency_at_a_million_leaves(synthetic: SyntheticStore, size1: int) -> None:
    root1, root2 = root(synthetic, size1), root(synthetic, SCALE)
    synthetic.lookups = 0
    proof = consistency_proof(synthetic, size1, SCALE)
    assert synthetic.lookups <= BOUND
    verify_consistency(size1, SCALE, proof, root1, root2)


def test_frontier_load_at_a_million_leaves(synthetic: SyntheticStore) -> None:
    synthetic.lookups = 0
    frontier = Frontier.load(synthetic, SCALE)
    assert synthetic.lookups == bin(SCALE).count("1")
    assert frontier.root() == root(synthetic, SCALE)
    created = frontier.append(synthetic.leaf(SCALE))
    assert [(level, index) for level, index, _ in created] == [(0, SCALE)]
    assert frontier.root() == root(synthetic, SCALE + 1)
