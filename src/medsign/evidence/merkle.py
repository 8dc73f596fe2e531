"""Merkle-tree mathematics of RFC 9162 (Certificate Transparency v2), §2.1, over SHA-256.

Pure functions and values only: no database. The evidence log stores the hash of every
*perfect, aligned* subtree and asks this module which of them a root or proof needs.

Terms used throughout:

- A leaf range ``[start, end)`` is the leaves ``start .. end - 1`` (0-based, as RFC 9162's
  ``leaf_index``); ``MTH(D[start:end])`` is its Merkle Tree Hash (§2.1.1).
- The perfect node ``(level, index)`` is the subtree over leaves
  ``[index * 2**level, (index + 1) * 2**level)``; level 0 holds leaf hashes. A store keeps one
  hash per perfect node, which is about two rows per leaf (``n`` leaves, ``n - popcount(n)``
  interior nodes).
- A range *starts aligned* when ``start`` is a multiple of the largest power of two not
  above ``end - start``. Such a range splits, left to right, into one perfect node per set
  bit of its length, largest first (its *aligned decomposition*, a compact range).

Why the aligned decomposition is exactly MTH (the fact every function here leans on):
let ``n = end - start`` have set bits ``2**a1 > 2**a2 > ... > 2**ar`` and let ``start`` be a
multiple of ``2**a1``.

1. Each piece is a perfect node: piece ``i`` starts at ``start + 2**a1 + ... + 2**a(i-1)``;
   ``start`` and each earlier term are multiples of ``2**ai``, so the piece is aligned to
   its own size ``2**ai``. The MTH of an aligned ``2**a`` leaves is, by §2.1.1 halving
   all the way down, the stored hash of that node.
2. By induction on ``r``: if ``r == 1`` the range is that one node. Otherwise ``n`` is not a
   power of two, so the largest power of two *smaller than* ``n`` (MTH's split point ``k``)
   is ``2**a1``, the first piece. MTH(D[start:end]) is therefore
   ``HASH(0x01 || node1 || MTH(D[start + 2**a1 : end]))``. The remainder has length
   ``n - 2**a1 < 2**a1`` and starts at a multiple of ``2**a1``, hence it starts aligned and
   its pieces are pieces 2..r. So the pieces combine *right to left*:
   ``node(p1, node(p2, ... node(p(r-1), pr)))``.

A range that does not start aligned is not built from stored nodes at all (its MTH splits
leaves that belong to different perfect nodes), so ``range_hash`` refuses it. No proof needs
one: in the recursions of §2.1.3.1 and §2.1.4.1 every subtree ``D[lo:hi]`` has ``lo`` a
multiple of the smallest power of two ``>= hi - lo`` (true at the root, ``lo = 0``; the left
child ``[lo, lo + k)`` has size ``k`` and ``lo`` is a multiple of ``2k >= k``; the right
child starts at ``lo + k``, a multiple of ``k``, and is at most ``k`` long). Every sibling
in a proof is such a subtree, so a proof of a tree of ``n`` leaves is O(log n) node lookups:
all but one sibling are perfect nodes, and the one that touches the right edge of the tree
splits into at most ``log2(n)`` pieces.

Batching: a store that can fetch many nodes at once (one ``IN`` query) implements
``perfect_many`` as well as ``perfect``. Computing a proof is done in three steps so that a
database answers it with one query: ``plan_inclusion`` / ``plan_consistency`` /
``plan_range`` say which leaf ranges the answer is made of and which ``(level, index)`` nodes
those need (``RangePlan.keys``); ``fetch_perfect`` gets them in one call; and
``RangePlan.assemble`` hashes them together. ``RangePlan.resolve(store)`` does all three.

Checks raise (house style): ``verify_inclusion`` and ``verify_consistency`` return ``None``
or raise a ``ProofError``; they never return a bool.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias, runtime_checkable

from medsign.errors import EvidenceError, InputError, VerificationError

HASH_SIZE = 32
"""SHA-256 output length: every leaf, node and root hash in the tree has exactly this size."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256() (RFC 9162 §2.1.1): the root of the tree with no leaves."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


# --- errors -----------------------------------------------------------------------------------


class ProofRequestError(InputError):
    """The arguments name no tree, range or proof: a negative number, an index at or past the
    end, ``size1`` of 0 or above ``size2``, a range that does not start aligned, or a hash of
    the wrong length handed to ``Frontier.append``."""

    code = "proof-request-invalid"
    title = "No such Merkle tree range or proof"


class ProofError(VerificationError):
    """A Merkle proof does not verify.

    A proof is a structure someone hands us to check, like a signature: when it fails, the
    input is wrong (422), not the server (which ``EvidenceError`` would say)."""

    code = "proof-invalid"
    title = "The Merkle proof does not verify"


class InclusionProofError(ProofError):
    code = "inclusion-proof-invalid"
    title = "The inclusion proof does not verify"


class ConsistencyProofError(ProofError):
    code = "consistency-proof-invalid"
    title = "The consistency proof does not verify"


class MerkleStoreError(EvidenceError):
    """The store did not return a requested node, or returned something that is not a
    SHA-256 hash: the evidence log itself is damaged or incomplete."""

    code = "merkle-store-inconsistent"
    title = "The evidence log's Merkle tree is incomplete"


# --- hashing (RFC 9162 §2.1.1) ----------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d) (RFC 9162 §2.1.1)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right) (RFC 9162 §2.1.1); the prefixes keep a leaf from ever
    being read as an interior node (second-preimage resistance, §2.1.1's note)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


# --- values -----------------------------------------------------------------------------------


NodeKey: TypeAlias = tuple[int, int]
"""``(level, index)`` of a perfect node: leaves ``[index * 2**level, (index + 1) * 2**level)``.

Plain tuples, not a dataclass: they are what a database hands back as dict keys."""

PerfectNode: TypeAlias = tuple[int, int, bytes]
"""``(level, index, hash)``: one row of an append-only node store."""


# --- storage ----------------------------------------------------------------------------------


class PerfectHashes(Protocol):
    """Where the hashes of perfect, aligned subtrees are kept (see the module docstring)."""

    def perfect(self, level: int, index: int) -> bytes:
        """The hash of node ``(level, index)``; level 0 is the leaf hash of leaf ``index``."""
        ...


@runtime_checkable
class BatchPerfectHashes(PerfectHashes, Protocol):
    """A store that can also fetch many nodes in one round trip; used when present."""

    def perfect_many(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The hashes of all ``keys`` (``(level, index)`` pairs), keyed by pair."""
        ...


def fetch_perfect(store: PerfectHashes, keys: Iterable[tuple[int, int]]) -> dict[NodeKey, bytes]:
    """The hashes of ``keys``, in one ``perfect_many`` call if the store has it.

    Every key must come back as a 32-byte hash; otherwise ``MerkleStoreError``."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    if isinstance(store, BatchPerfectHashes):
        answer: Mapping[tuple[int, int], bytes] = store.perfect_many(wanted)
    else:
        answer = {(level, index): store.perfect(level, index) for level, index in wanted}
    found: dict[NodeKey, bytes] = {}
    for key in wanted:
        found[key] = _stored(answer, key)
    return found


def _stored(hashes: Mapping[tuple[int, int], bytes], key: NodeKey) -> bytes:
    digest = hashes.get(key)
    if digest is None:
        raise MerkleStoreError(f"Merkle node {key} is missing from the store")
    if len(digest) != HASH_SIZE:
        raise MerkleStoreError(f"Merkle node {key} is {len(digest)} bytes, not 32")
    return bytes(digest)


# --- leaf ranges and plans --------------------------------------------------------------------


def _check_count(value: int, name: str) -> None:
    if not isinstance(value, int) or value < 0:
        raise ProofRequestError(f"{name} must be a non-negative integer, not {value!r}")


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2): MTH's ``k`` (§2.1.1)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_keys(start: int, end: int) -> list[NodeKey]:
    """The aligned decomposition of ``[start, end)``: its perfect nodes, left to right.

    Raises ``ProofRequestError`` unless ``0 <= start <= end`` and the range starts aligned
    (why that is needed, and why it is enough, is in the module docstring)."""
    _check_count(start, "start")
    _check_count(end, "end")
    if start > end:
        raise ProofRequestError(f"range [{start}, {end}) ends before it starts")
    length = end - start
    if length and start % (1 << (length.bit_length() - 1)):
        raise ProofRequestError(f"range [{start}, {end}) does not start aligned")
    keys: list[NodeKey] = []
    position = start
    for level in range(length.bit_length() - 1, -1, -1):
        if length >> level & 1:
            keys.append((level, position >> level))
            position += 1 << level
    return keys


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Combine an aligned decomposition right to left (MTH of the whole range)."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


@dataclass(frozen=True)
class RangePlan:
    """What a root or proof is made of, before any storage is read.

    ``ranges`` are the leaf ranges whose MTH form the answer, in answer order (one range for
    a root; a proof's nodes in RFC 9162 order). ``keys`` are the distinct perfect nodes
    those need: fetch them in one batch, then ``assemble``."""

    ranges: tuple[tuple[int, int], ...]
    keys: tuple[NodeKey, ...]

    def assemble(self, hashes: Mapping[tuple[int, int], bytes]) -> list[bytes]:
        """MTH of each range, from ``hashes`` (which must hold every key in ``keys``)."""
        return [
            _fold([_stored(hashes, key) for key in range_keys(start, end)])
            for start, end in self.ranges
        ]

    def resolve(self, store: PerfectHashes) -> list[bytes]:
        """Fetch ``keys`` from ``store`` (one batch if it can) and ``assemble``."""
        return self.assemble(fetch_perfect(store, self.keys))


def _plan(ranges: Sequence[tuple[int, int]]) -> RangePlan:
    keys = dict.fromkeys(key for start, end in ranges for key in range_keys(start, end))
    return RangePlan(tuple(ranges), tuple(keys))


def plan_range(start: int, end: int) -> RangePlan:
    """Plan for MTH(D[start:end]) of a range that starts aligned."""
    return _plan([(start, end)])


def plan_inclusion(index: int, size: int) -> RangePlan:
    """Plan for PATH(index, D[0:size]), the audit path of RFC 9162 §2.1.3.1.

    PATH(m, D_n) = PATH(m, D[0:k]) : MTH(D[k:n]) for m < k, and
    PATH(m - k, D[k:n]) : MTH(D[0:k]) for m >= k, with PATH(0, {d}) = {}. Walking down from
    the root collects the siblings top first; the path lists the deepest first."""
    _check_count(index, "index")
    _check_count(size, "size")
    if index >= size:
        raise ProofRequestError(f"leaf {index} is not in a tree of {size} leaves")
    siblings = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            siblings.append((lo + k, hi))
            hi = lo + k
        else:
            siblings.append((lo, lo + k))
            lo += k
    siblings.reverse()
    return _plan(siblings)


def plan_consistency(size1: int, size2: int) -> RangePlan:
    """Plan for PROOF(size1, D[0:size2]) = SUBPROOF(size1, D[0:size2], true), §2.1.4.1.

    SUBPROOF(m, D[m], true) = {} and SUBPROOF(m, D[m], false) = {MTH(D[m])}; for m < n,
    SUBPROOF(m, D[0:k], b) : MTH(D[k:n]) if m <= k, else
    SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]). As for PATH, the walk down collects the
    proof back to front. ``size1`` must be > 0 (the RFC defines proofs for 0 < m; the empty
    tree is a prefix of every tree, so there is nothing to prove); ``size1 == size2`` gives
    the empty proof, as SUBPROOF(m, D[m], true) does."""
    _check_count(size1, "size1")
    _check_count(size2, "size2")
    if size1 == 0:
        raise ProofRequestError("a consistency proof from the empty tree proves nothing")
    if size1 > size2:
        raise ProofRequestError(f"size1 {size1} is larger than size2 {size2}")
    parts = []
    lo, hi = 0, size2
    known = True  # b in SUBPROOF: is MTH(D[lo:size1]) the verifier's own first root?
    # The walk stops at the subtree D[lo:hi] with m = n, i.e. hi == size1 (m, n relative to lo).
    while hi != size1:
        k = _split(hi - lo)
        if size1 - lo <= k:
            parts.append((lo + k, hi))
            hi = lo + k
        else:
            parts.append((lo, lo + k))
            lo += k
            known = False
    if not known:
        parts.append((lo, hi))
    parts.reverse()
    return _plan(parts)


def range_hash(store: PerfectHashes, start: int, end: int) -> bytes:
    """MTH(D[start:end]) (RFC 9162 §2.1.1) from the fewest stored nodes; the range must start
    aligned. The empty range gives ``EMPTY_ROOT``."""
    return plan_range(start, end).resolve(store)[0]


def root(store: PerfectHashes, size: int) -> bytes:
    """The Merkle Tree Hash of the first ``size`` leaves (RFC 9162 §2.1.1)."""
    return range_hash(store, 0, size)


def inclusion_proof(store: PerfectHashes, index: int, size: int) -> list[bytes]:
    """The inclusion proof (audit path) of leaf ``index`` in the tree of ``size`` leaves
    (RFC 9162 §2.1.3.1), with O(log size) node lookups in one batch."""
    return plan_inclusion(index, size).resolve(store)


def consistency_proof(store: PerfectHashes, size1: int, size2: int) -> list[bytes]:
    """The consistency proof from the tree of ``size1`` leaves to that of ``size2``
    (RFC 9162 §2.1.4.1), with O(log size2) node lookups in one batch."""
    return plan_consistency(size1, size2).resolve(store)


# --- appending --------------------------------------------------------------------------------


class Frontier:
    """The right edge of the tree: one perfect node per set bit of the size, largest (leftmost)
    first. That is all an append needs (RFC 9162 §2.1.1's MTH of the whole tree is these
    nodes folded right to left, see the module docstring).

    ``append`` works like incrementing a binary counter: the new leaf is a level-0 node, and
    while the rightmost frontier node has the same level the two merge into their parent.
    Every node created is returned, so the store writes ``1 + trailing ones of the old size``
    rows per leaf: two on average."""

    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        self._nodes: list[PerfectNode] = []
        self._size = 0

    @classmethod
    def load(cls, store: PerfectHashes, size: int) -> Frontier:
        """The frontier of the tree of ``size`` leaves: popcount(size) nodes, one batch."""
        keys = range_keys(0, size)
        hashes = fetch_perfect(store, keys)
        frontier = cls()
        frontier._nodes = [(level, index, hashes[level, index]) for level, index in keys]
        frontier._size = size
        return frontier

    @property
    def size(self) -> int:
        return self._size

    @property
    def nodes(self) -> tuple[PerfectNode, ...]:
        """The frontier's nodes, leftmost (largest) first."""
        return tuple(self._nodes)

    def append(self, leaf_hash: bytes) -> list[PerfectNode]:
        """Add the leaf with this (already hashed, see ``leaf_hash``) value; return the new
        perfect nodes, the leaf itself (level 0) first, then each parent completed by it."""
        if len(leaf_hash) != HASH_SIZE:
            raise ProofRequestError(f"a leaf hash has 32 bytes, not {len(leaf_hash)}")
        level, index, digest = 0, self._size, bytes(leaf_hash)
        created = [(level, index, digest)]
        while self._nodes and self._nodes[-1][0] == level:
            _, _, left = self._nodes.pop()
            level, index, digest = level + 1, index >> 1, node_hash(left, digest)
            created.append((level, index, digest))
        self._nodes.append((level, index, digest))
        self._size += 1
        return created

    def root(self) -> bytes:
        """MTH of the whole tree (RFC 9162 §2.1.1); ``EMPTY_ROOT`` for no leaves."""
        return _fold([digest for _, _, digest in self._nodes])


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) --------------------------------------------


def _check_hash(value: bytes, what: str, error: type[ProofError]) -> None:
    # The RFC's algorithms hash whatever they are given; a value of another length cannot be
    # a SHA-256 node, and without this an empty leaf hash "proves" an empty root.
    if len(value) != HASH_SIZE:
        raise error(f"{what} has {len(value)} bytes, not {HASH_SIZE}")


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` (an inclusion path) leads to from ``leaf_hash`` at ``index`` in
    a tree of ``size`` leaves, by the algorithm of RFC 9162 §2.1.3.2 (steps 1 to 4 and the
    ``sn == 0`` check of step 5). Raises ``InclusionProofError`` if the proof cannot be for
    that index and size."""
    if not isinstance(index, int) or not isinstance(size, int) or index < 0 or size < 0:
        raise InclusionProofError("leaf index and tree size must be non-negative integers")
    # Step 1: an index at or past the end is in no tree of that size (also covers size 0).
    if index >= size:
        raise InclusionProofError(f"leaf index {index} is not below tree size {size}")
    _check_hash(leaf_hash, "the leaf hash", InclusionProofError)
    for position, element in enumerate(proof):
        _check_hash(element, f"proof element {position}", InclusionProofError)
    # Step 2.
    fn, sn = index, size - 1
    # Step 3.
    r = leaf_hash
    # Step 4.
    for element in proof:
        if sn == 0:
            raise InclusionProofError("the inclusion proof is longer than the path")
        if fn & 1 or fn == sn:
            r = node_hash(element, r)
            if not fn & 1:
                # fn == sn on an even position: the right neighbours are missing (right edge
                # of an unbalanced tree), so climb until this node is a right child again.
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, element)
        fn >>= 1
        sn >>= 1
    # Step 5 (first half): every level up to the root must have been used.
    if sn != 0:
        raise InclusionProofError("the inclusion proof is shorter than the path")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` (0-based) of the tree of ``size`` leaves with
    root hash ``root`` (RFC 9162 §2.1.3.2). Returns ``None`` or raises
    ``InclusionProofError``."""
    _check_hash(root, "the root hash", InclusionProofError)
    computed = root_from_inclusion(leaf_hash, index, size, proof)
    # Step 5 (second half). Roots are public, so a plain comparison is fine.
    if computed != root:
        raise InclusionProofError("the inclusion proof leads to another root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of ``size2`` leaves with root ``root2`` extends the tree of
    ``size1`` leaves with root ``root1`` (RFC 9162 §2.1.4.2). Returns ``None`` or raises
    ``ConsistencyProofError``.

    Edge cases around the RFC's ``0 < first < second``: ``size1 == 0`` is refused (the empty
    tree is a prefix of everything, so a "proof" from it checks nothing and is more likely a
    bug than a question); ``size1 > size2`` is refused; ``size1 == size2`` holds exactly when
    the proof is empty and the two roots are the same bytes (SUBPROOF(m, D[m], true) = {})."""
    for value, name in ((size1, "size1"), (size2, "size2")):
        if not isinstance(value, int) or value < 0:
            raise ConsistencyProofError(f"{name} must be a non-negative integer")
    if size1 == 0:
        raise ConsistencyProofError("a consistency proof from the empty tree proves nothing")
    if size1 > size2:
        raise ConsistencyProofError(f"size1 {size1} is larger than size2 {size2}")
    if size1 == size2:
        if proof:
            raise ConsistencyProofError("equal tree sizes take an empty consistency proof")
        if root1 != root2:
            raise ConsistencyProofError("equal tree sizes but different roots")
        return
    # Step 1.
    if not proof:
        raise ConsistencyProofError("the consistency proof is empty")
    _check_hash(root1, "the first root", ConsistencyProofError)
    _check_hash(root2, "the second root", ConsistencyProofError)
    for position, element in enumerate(proof):
        _check_hash(element, f"proof element {position}", ConsistencyProofError)
    # Step 2: when the old tree is a perfect subtree of the new one, its root is a node of
    # the new tree and the log leaves it out of the proof.
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    # Step 3.
    fn, sn = size1 - 1, size2 - 1
    # Step 4: skip the levels where the old tree's last node is a right child on both sides.
    if fn & 1:
        while fn & 1:
            fn >>= 1
            sn >>= 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for element in path[1:]:
        if sn == 0:
            raise ConsistencyProofError("the consistency proof is longer than the path")
        if fn & 1 or fn == sn:
            fr = node_hash(element, fr)
            sr = node_hash(element, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, element)
        fn >>= 1
        sn >>= 1
    # Step 7.
    if sn != 0:
        raise ConsistencyProofError("the consistency proof is shorter than the path")
    if fr != root1:
        raise ConsistencyProofError("the consistency proof does not lead to the first root")
    if sr != root2:
        raise ConsistencyProofError("the consistency proof does not lead to the second root")
