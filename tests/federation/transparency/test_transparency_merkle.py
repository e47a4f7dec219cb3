"""Merkle math checked three ways: the hub's proof generation (merkle.py), RFC 9162 verification
by both the standalone verifier and the hub's own ``merkle.verify_consistency`` (the sequencer's
and the witness's check), and roots and inclusion paths from pymerkle (v7, whose default
mode hashes as RFC 6962: 0x00 leaf and 0x01 node prefixes, SHA-256)."""

import pytest
from concordat_client import verifier
from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree

from federation.transparency import merkle


def leaves(count: int) -> list[bytes]:
    return [f"event {i}".encode() for i in range(count)]


def stored_tree(data: list[bytes], batches: list[int] | None = None) -> dict:
    """The nodes the sequencer would store, appending ``data`` in the given batch sizes."""
    nodes: dict = {}
    size = 0
    for batch in batches or [len(data)]:
        hashes = [merkle.leaf_hash(item) for item in data[size : size + batch]]
        frontier = {key: nodes[key] for key in merkle.root_nodes(size)}
        nodes.update(merkle.new_nodes(old_size=size, leaf_hashes=hashes, frontier=frontier))
        size += batch
    return nodes


def hashes_of(ranges, nodes) -> list[bytes]:
    return [merkle.range_hash(start, end, nodes) for start, end in ranges]


def test_hashes_are_rfc_6962():
    assert merkle.leaf_hash(b"") == bytes.fromhex(
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert (
        bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        == merkle.EMPTY_ROOT
    )
    assert merkle.node_hash(b"a" * 32, b"b" * 32) == verifier.node_hash(b"a" * 32, b"b" * 32)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 31, 64, 100, 1000])
def test_stored_root_equals_pymerkle_root_and_verifier_root(size):
    data = leaves(size)
    nodes = stored_tree(data)
    expected = InmemoryTree.init_from_entries(data).get_root()
    assert merkle.range_hash(0, size, nodes) == expected
    assert verifier.root_from_leaf_hashes([merkle.leaf_hash(d) for d in data]) == expected


def test_every_proof_for_every_tree_up_to_100_leaves_verifies():
    data = leaves(100)
    nodes = stored_tree(data)
    hashes = [merkle.leaf_hash(item) for item in data]
    pymerkle_tree = InmemoryTree.init_from_entries(data)
    roots = [merkle.EMPTY_ROOT] + [pymerkle_tree.get_root(n) for n in range(1, 101)]
    for size in range(1, 101):
        assert merkle.range_hash(0, size, nodes) == roots[size]
        for index in range(size):
            path = hashes_of(merkle.inclusion_ranges(index, size), nodes)
            verifier.verify_inclusion(index, size, hashes[index], path, roots[size])
            # pymerkle's path starts with the leaf itself, then the RFC 9162 path.
            assert pymerkle_tree.prove_inclusion(index + 1, size).path[1:] == path
        for first in range(size + 1):
            path = hashes_of(merkle.consistency_ranges(first, size), nodes)
            verifier.verify_consistency(first, size, roots[first], roots[size], path)
            merkle.verify_consistency(
                first=first,
                second=size,
                first_root=roots[first],
                second_root=roots[size],
                proof=path,
            )


@st.composite
def appended_trees(draw):
    size = draw(st.integers(min_value=1, max_value=100))
    batches = []
    remaining = size
    while remaining:
        batch = draw(st.integers(min_value=1, max_value=remaining))
        batches.append(batch)
        remaining -= batch
    return size, batches


@settings(max_examples=60, deadline=None)
@given(appended_trees())
def test_trees_appended_in_any_batches_give_every_proof_valid(tree):
    size, batches = tree
    data = leaves(size)
    nodes = stored_tree(data, batches)
    assert nodes == stored_tree(data)  # batching never changes a node
    pymerkle_tree = InmemoryTree.init_from_entries(data)
    root = pymerkle_tree.get_root()
    for index in range(size):
        path = hashes_of(merkle.inclusion_ranges(index, size), nodes)
        verifier.verify_inclusion(index, size, merkle.leaf_hash(data[index]), path, root)
    for first in range(size + 1):
        old_root = pymerkle_tree.get_root(first) if first else merkle.EMPTY_ROOT
        path = hashes_of(merkle.consistency_ranges(first, size), nodes)
        verifier.verify_consistency(first, size, old_root, root, path)
        merkle.verify_consistency(
            first=first, second=size, first_root=old_root, second_root=root, proof=path
        )


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_any_altered_proof_is_rejected(data):
    size = data.draw(st.integers(min_value=2, max_value=100))
    tree = stored_tree(leaves(size))
    root = merkle.range_hash(0, size, tree)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    path = hashes_of(merkle.inclusion_ranges(index, size), tree)
    leaf = tree[(0, index)]
    position = data.draw(st.integers(min_value=0, max_value=len(path) - 1))
    flipped = [*path]
    flipped[position] = bytes([flipped[position][0] ^ 1]) + flipped[position][1:]
    for bad in (flipped, path[:-1], [*path, path[0]]):
        with pytest.raises(verifier.ProofError):
            verifier.verify_inclusion(index, size, leaf, bad, root)
    other = data.draw(st.integers(min_value=0, max_value=size - 1).filter(lambda i: i != index))
    with pytest.raises(verifier.ProofError):
        verifier.verify_inclusion(other, size, leaf, path, root)

    first = data.draw(st.integers(min_value=1, max_value=size - 1))
    old_root = merkle.range_hash(0, first, tree)
    proof = hashes_of(merkle.consistency_ranges(first, size), tree)
    position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    flipped = [*proof]
    flipped[position] = bytes([flipped[position][0] ^ 1]) + flipped[position][1:]
    for bad in (flipped, proof[:-1], [*proof, proof[0]]):
        with pytest.raises(verifier.ProofError):
            verifier.verify_consistency(first, size, old_root, root, bad)
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(
                first=first, second=size, first_root=old_root, second_root=root, proof=bad
            )
    forged = merkle.leaf_hash(b"forged")
    with pytest.raises(verifier.ProofError):
        verifier.verify_consistency(first, size, forged, root, proof)
    for first_root, second_root in ((forged, root), (old_root, forged)):
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(
                first=first,
                second=size,
                first_root=first_root,
                second_root=second_root,
                proof=proof,
            )
    with pytest.raises(merkle.ProofError):  # equal sizes need equal roots
        merkle.verify_consistency(
            first=size, second=size, first_root=forged, second_root=root, proof=[]
        )


def test_proofs_need_only_logarithmically_many_stored_nodes():
    size = 1_000_000
    for index in (0, 1, 524_287, 999_999):
        assert len(merkle.nodes_for_ranges(merkle.inclusion_ranges(index, size))) <= 2 * 20
    for first in (1, 3, 524_288, 999_999):
        assert len(merkle.nodes_for_ranges(merkle.consistency_ranges(first, size))) <= 2 * 40
