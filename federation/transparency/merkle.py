"""RFC 6962 / RFC 9162 Merkle tree arithmetic, with no database: hashing, which stored subtrees a
proof is made of, and the nodes a batch of new leaves completes.

The hub stores the hash of every *complete, aligned* subtree (``MerkleNode``: level ``l``, index
``i`` covers leaves ``[i * 2**l, (i + 1) * 2**l)``). Every hash a proof needs is the hash of a leaf
range ``[start, end)`` that the RFC's recursive split produces; such a range is either a complete
aligned subtree (read directly) or the right edge of a tree whose size is not a power of two, whose
hash is folded from the O(log n) complete subtrees it decomposes into. ``Range`` values below are
those ``(start, end)`` pairs; ``NodeKey`` values are ``(level, index)`` of stored nodes.
"""

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

Range = tuple[int, int]
NodeKey = tuple[int, int]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(size: int) -> int:
    """RFC 9162 §2.1.1: the largest power of two smaller than ``size`` (``size`` >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def complete_subtrees(start: int, end: int) -> list[NodeKey]:
    """The complete aligned subtrees that ``[start, end)`` is made of, left to right (largest
    first). Every range the RFC algorithms produce has ``start`` aligned to a power of two at least
    as large as the range, so this is the binary decomposition of its size."""
    keys: list[NodeKey] = []
    size = end - start
    while size:
        level = size.bit_length() - 1
        keys.append((level, start >> level))
        start += 1 << level
        size -= 1 << level
    return keys


def inclusion_ranges(index: int, tree_size: int) -> list[Range]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:tree_size]) as leaf ranges, from the leaf upwards."""
    if not 0 <= index < tree_size:
        raise ValueError("leaf index must be below the tree size")
    ranges: list[Range] = []
    low, high = 0, tree_size
    while high - low > 1:
        middle = low + split_point(high - low)
        if index < middle:
            ranges.append((middle, high))
            high = middle
        else:
            ranges.append((low, middle))
            low = middle
    ranges.reverse()
    return ranges


def consistency_ranges(first: int, second: int) -> list[Range]:
    """RFC 9162 §2.1.4.1 PROOF(first, D[0:second]) = SUBPROOF(first, D[0:second], true) as leaf
    ranges, in the RFC's order. Empty when there is nothing to prove (``first`` is 0 or equals
    ``second``)."""
    if not 0 <= first <= second:
        raise ValueError("need 0 <= first <= second")
    if first in (0, second):
        return []
    ranges: list[Range] = []
    low, high = 0, second
    whole_old_tree = True  # the RFC's ``b``: we are still on the old tree's own root path
    while first != high:
        middle = low + split_point(high - low)
        if first <= middle:
            ranges.append((middle, high))
            high = middle
        else:
            ranges.append((low, middle))
            low = middle
            whole_old_tree = False
    if not whole_old_tree:
        ranges.append((low, high))
    ranges.reverse()
    return ranges


def nodes_for_ranges(ranges: Iterable[Range]) -> set[NodeKey]:
    return {key for start, end in ranges for key in complete_subtrees(start, end)}


def range_hash(start: int, end: int, nodes: Mapping[NodeKey, bytes]) -> bytes:
    """MTH(D[start:end]) folded from stored complete subtrees (right to left, as in RFC 9162)."""
    if start == end:
        return EMPTY_ROOT
    keys = complete_subtrees(start, end)
    result = nodes[keys[-1]]
    for key in reversed(keys[:-1]):
        result = node_hash(nodes[key], result)
    return result


def root_nodes(tree_size: int) -> list[NodeKey]:
    """The stored nodes the root of a tree of ``tree_size`` leaves is folded from."""
    return complete_subtrees(0, tree_size)


def new_nodes(
    *, old_size: int, leaf_hashes: Sequence[bytes], frontier: Mapping[NodeKey, bytes]
) -> dict[NodeKey, bytes]:
    """Every node completed by appending ``leaf_hashes`` to a tree of ``old_size`` leaves: the new
    level-0 nodes and each higher node whose last leaf is new. ``frontier`` holds the old tree's
    ``root_nodes(old_size)``, the only old nodes a new node can have as a (left) child."""
    created: dict[NodeKey, bytes] = {
        (0, old_size + offset): digest for offset, digest in enumerate(leaf_hashes)
    }
    new_size = old_size + len(leaf_hashes)
    level = 1
    while (new_size >> level) > 0:
        for index in range(old_size >> level, new_size >> level):
            left_key, right_key = (level - 1, 2 * index), (level - 1, 2 * index + 1)
            left = created.get(left_key) or frontier[left_key]
            created[(level, index)] = node_hash(left, created[right_key])
        level += 1
    return created


NodeReader = Callable[[set[NodeKey]], Mapping[NodeKey, bytes]]


def proof_hashes(ranges: Sequence[Range], read_nodes: NodeReader) -> list[bytes]:
    """The hashes of ``ranges``, reading all the stored nodes they need with one call."""
    nodes = read_nodes(nodes_for_ranges(ranges))
    return [range_hash(start, end, nodes) for start, end in ranges]


class ProofError(ValueError):
    """A consistency proof does not show that one tree is a prefix of the other."""


def _prefix_decomposition(size: int) -> list[Range]:
    return [(index << level, (index + 1) << level) for level, index in complete_subtrees(0, size)]


def verify_consistency(
    *, first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check an RFC 9162 §2.1.4 consistency proof with this module's own range arithmetic (the
    hub's code, independent of the auditors' verifier): the proof holds the hashes of
    ``consistency_ranges(first, second)`` in order, plus the old root when the old tree is a
    whole subtree of the new one. From those, the old root is folded over the old tree's binary
    decomposition and the new root is rebuilt along the RFC's split of the new tree; both must
    equal the roots given. Raises ProofError."""
    if not 0 <= first <= second:
        raise ProofError(f"cannot prove size {first} is a prefix of size {second}")
    ranges = consistency_ranges(first, second)
    if len(proof) != len(ranges):
        raise ProofError(f"the proof has {len(proof)} hashes, RFC 9162 needs {len(ranges)}")
    if first in (0, second):
        if first == second and first_root != second_root:
            raise ProofError(f"two different roots for tree size {first}")
        return
    known: dict[Range, bytes] = dict(zip(ranges, proof, strict=True))
    known.setdefault((0, first), first_root)  # the old tree is itself a node of the new one

    old_blocks = _prefix_decomposition(first)
    if any(block not in known for block in old_blocks):
        raise ProofError("the proof does not cover the old tree")
    old_root = known[old_blocks[-1]]
    for block in reversed(old_blocks[:-1]):
        old_root = node_hash(known[block], old_root)
    if old_root != first_root:
        raise ProofError(f"the proof does not lead to the root of size {first}")

    def subtree(low: int, high: int) -> bytes:
        if (low, high) in known:
            return known[(low, high)]
        if high - low < 2:
            raise ProofError("the proof leaves a leaf of the new tree unknown")
        middle = low + split_point(high - low)
        return node_hash(subtree(low, middle), subtree(middle, high))

    if subtree(0, second) != second_root:
        raise ProofError(f"the proof does not lead to the root of size {second}")
