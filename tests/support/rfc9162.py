"""RFC 9162's Merkle tree hash and inclusion path written out as the RFC states them (§2.1.1,
§2.1.3.1), apart from the product's code: what tests and test vectors check it against."""

import hashlib


def _split(size: int) -> int:
    k = 1
    while k * 2 < size:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) of a list of leaf byte strings (n >= 1)."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _split(len(leaves))
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the inclusion proof of leaf ``m``."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]
