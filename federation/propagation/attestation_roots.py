"""Attestations signed a few dozen at a time, under a ``concordat.attestation-root``
(docs/federation.md, "Attestations under one root").

A sender that attests many entries at once signs one root instead of one attestation each: the
root names the RFC 9162 Merkle tree hash of the attestations' RFC 8785 bytes (in the order the
sender chose), and each attestation travels with its leaf index, the tree's size, its inclusion
proof and the root's signature. The root itself does not travel: every member of it follows
from the attestation and its proof (the hub and ``attested_at`` are the attestation's, the hash
is where the proof leads), so a receiver rebuilds it and verifies its signature, once per
distinct root. An attestation so carried is as much the hub's word as one signed alone, and it
stays verifiable on its own when relayed (the pair travels verbatim).

The tree is RFC 9162 §2.1.1's (leaf hash SHA-256(0x00 || bytes), node hash SHA-256(0x01 || left
|| right), the split at the largest power of two below the size); the proof is §2.1.3.1's PATH,
followed by §2.1.3.2's algorithm, written here apart from the builder.
"""

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from federation.propagation.wire_fields import MalformedWireObject, canonical_field
from federation.signing import MalformedContribution, decode_signature
from federation.transparency.merkle import inclusion_ranges, leaf_hash, node_hash, split_point

ROOT_KIND = "concordat.attestation-root"
MAX_ROOT_SIZE = 1 << 16  # leaves under one root: a proof has at most 16 hashes
MAX_PROOF = 16
ROOTED_FIELDS = frozenset({"attestation", "index", "proof", "root_signature", "size"})
# What a sender puts under one root: a proof of six hashes, eight roots for a batch of 500.
LEAVES_PER_ROOT = 64


@dataclass(frozen=True, slots=True)
class RootedAttestation:
    """An attestation carried under a signed root: the document and its RFC 8785 bytes (as a
    ``SignedObject``'s), its leaf's index, the tree's size, the proof's hashes and the root's
    decoded signature."""

    document: dict[str, Any]
    canonical: bytes
    index: int
    size: int
    proof: tuple[bytes, ...]
    root_signature: bytes

    def root(self) -> bytes | None:
        """The RFC 8785 bytes of the root this attestation's proof leads to, or None if the
        proof is not one for its index in a tree of its size."""
        digest = root_from_proof(
            leaf_hash(self.canonical), index=self.index, size=self.size, proof=self.proof
        )
        if digest is None:
            return None
        return root_canonical(
            hub=self.document["hub"],
            size=self.size,
            root=digest,
            attested_at=self.document["attested_at"],
        )


def root_canonical(*, hub: str, size: int, root: bytes, attested_at: str) -> bytes:
    """The RFC 8785 bytes of the root ``{kind, v, hub, size, root, attested_at}``: its members
    in name order, none of them text JCS escapes (a hub id and a timestamp are checked ASCII without quotes or backslashes, the
    hash is hex), the size an integer."""
    return (
        f'{{"attested_at":"{attested_at}","hub":"{hub}","kind":"{ROOT_KIND}",'
        f'"root":"{root.hex()}","size":{size},"v":1}}'
    ).encode()


class Tree:
    """The RFC 9162 tree of ``leaves`` (RFC 8785 bytes, in order): its root and each leaf's
    inclusion proof. Every range the RFC's recursive split makes is hashed once."""

    def __init__(self, leaves: list[bytes]) -> None:
        if not 1 <= len(leaves) <= MAX_ROOT_SIZE:
            raise ValueError(f"a root covers 1 to {MAX_ROOT_SIZE} attestations")
        self.size = len(leaves)
        self._hashes: dict[tuple[int, int], bytes] = {}
        self.root = self._hash(0, self.size, [leaf_hash(leaf) for leaf in leaves])

    def _hash(self, low: int, high: int, leaves: list[bytes]) -> bytes:
        if high - low == 1:
            digest = leaves[low]
        else:
            middle = low + split_point(high - low)
            digest = node_hash(self._hash(low, middle, leaves), self._hash(middle, high, leaves))
        self._hashes[(low, high)] = digest
        return digest

    def proof(self, index: int) -> list[bytes]:
        return [self._hashes[r] for r in inclusion_ranges(index, self.size)]


def root_from_proof(
    leaf: bytes, *, index: int, size: int, proof: tuple[bytes, ...]
) -> bytes | None:
    """RFC 9162 §2.1.3.2 run to its end: the tree hash that ``proof`` leads to from the leaf
    hash ``leaf`` at ``index`` of a tree of ``size`` leaves, or None when the proof cannot be
    one for that place (too short, too long, or the index not below the size)."""
    if not 0 <= index < size:
        return None
    fn, sn, digest = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            digest = node_hash(sibling, digest)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            digest = node_hash(digest, sibling)
        fn >>= 1
        sn >>= 1
    return digest if sn == 0 else None


def rooted_pair_canonical(
    attestation: bytes, *, index: int, size: int, proof: list[bytes], signature: bytes
) -> bytes:
    """The RFC 8785 bytes of a rooted pair from its parts (``attestation``: the document's
    RFC 8785 bytes; ``signature``: the root's padded base64): members in name order, the index
    and size integers, the proof's hashes joined in padded base64."""
    return b"".join(
        (
            b'{"attestation":', attestation,
            b',"index":', str(index).encode(),
            b',"proof":"', binascii.b2a_base64(b"".join(proof), newline=False),
            b'","root_signature":"', signature,
            b'","size":', str(size).encode(), b"}",
        )
    )  # fmt: skip


def rooted_pair(
    attestation: dict[str, Any], *, index: int, size: int, proof: list[bytes], signature: bytes
) -> dict[str, Any]:
    """The same pair as a JSON value (``signature``: the root's 64 bytes)."""
    return {
        "attestation": attestation,
        "index": index,
        "proof": base64.b64encode(b"".join(proof)).decode(),
        "root_signature": base64.b64encode(signature).decode(),
        "size": size,
    }


def parse_rooted(
    pair: dict[str, Any], document: dict[str, Any], field: str, *, part: bool
) -> RootedAttestation:
    """A rooted pair whose ``attestation`` (``document``) the caller checked."""
    size = pair["size"]
    if type(size) is not int or not 1 <= size <= MAX_ROOT_SIZE:
        raise MalformedWireObject(f"{field}.size", f"must be an integer from 1 to {MAX_ROOT_SIZE}")
    index = pair["index"]
    if type(index) is not int or not 0 <= index < size:
        raise MalformedWireObject(f"{field}.index", "must be an integer below size")
    proof = parse_proof(pair["proof"])
    if proof is None:
        raise MalformedWireObject(
            f"{field}.proof", f"must be padded base64 of at most {MAX_PROOF} 32-byte hashes"
        )
    try:
        signature = decode_signature(pair["root_signature"])
    except MalformedContribution as exc:
        raise MalformedWireObject(f"{field}.root_signature", exc.message) from None
    canonical = canonical_field(document, field, part)
    return RootedAttestation(document, canonical, index, size, proof, signature)


def parse_proof(value: object) -> tuple[bytes, ...] | None:
    """The proof's hashes, or None if it is not the padded standard base64 (decoded strictly:
    re-encoded, it must be the same text) of at most ``MAX_PROOF`` 32-byte hashes."""
    if type(value) is not str or len(value) > 4 * ((32 * MAX_PROOF + 2) // 3):
        return None
    try:
        raw = binascii.a2b_base64(value, strict_mode=True)
    except binascii.Error:
        return None
    if len(raw) % 32 or binascii.b2a_base64(raw, newline=False).decode() != value:
        return None
    return tuple(raw[i : i + 32] for i in range(0, len(raw), 32))
