"""Writes docs/private-lookup-vectors.json: Concordat's own vectors for the private lookup, on top
of RFC 9497's (a fixed key from DeriveKeyPair, fixed blinds and proof scalar), so that a client
in another language can check its input format, blinding, proof verification, unblinding and
tags. Run: python -m tests.support.lookup_vectors_gen (test_lookup_vectors.py checks the file)."""

import hashlib
import json
from pathlib import Path

from federation.lookup import voprf

ROOT = Path(__file__).resolve().parents[2]
PATH = ROOT / "docs" / "private-lookup-vectors.json"
SEED = bytes.fromhex("a3" * 32)
KEY_INFO = b"concordat private lookup vectors"
BLINDS = [
    "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706",
    "222a5e897cf59db8145db8d16e597e8facb80ae7d4e26d9881aa6f61d645fc0e",
    "419c4f4f5052c53c45f3da494d2b67b220d02118e0857cdbcf037f9ea84bbe0c",
]
PROOF_SCALAR = "0f" * 31 + "0a"
FILES = [b"", b"concordat", b"Christchurch Call"]


def _lookup_input(signal_type: str, value: str) -> bytes:
    return b"concordat-lookup-v1:" + f"{signal_type}:{value}".encode()


def vectors() -> dict:
    sk, pk = voprf.derive_key_pair(SEED, KEY_INFO)
    inputs = []
    for index, content in enumerate(FILES):
        kind = "md5" if index == 0 else "sha256"
        digest = (
            hashlib.md5(content, usedforsecurity=False)
            if kind == "md5"
            else hashlib.sha256(content)
        ).hexdigest()
        inputs.append((content, kind, digest))
    items = []
    blinded = []
    for (_content, kind, digest), blind_hex in zip(inputs, BLINDS, strict=True):
        _, element = voprf.blind(_lookup_input(kind, digest), blind_scalar=bytes.fromhex(blind_hex))
        blinded.append(element)
    evaluated, proof = voprf.blind_evaluate_batch(sk, pk, blinded, r=bytes.fromhex(PROOF_SCALAR))
    for (content, kind, digest), blind_hex, b, e in zip(
        inputs, BLINDS, blinded, evaluated, strict=True
    ):
        lookup_input = _lookup_input(kind, digest)
        output = voprf.evaluate(sk, lookup_input)
        items.append(
            {
                "file_content_utf8": content.decode(),
                "signal_type": kind,
                "hash": digest,
                "input": lookup_input.hex(),
                "blind": blind_hex,
                "blinded": b.hex(),
                "evaluated": e.hex(),
                "output": output.hex(),
                "tag": output[:8].hex(),
            }
        )
    return {
        "suite": voprf.SUITE,
        "mode": "VOPRF (0x01)",
        "context_string": voprf.CONTEXT.hex(),
        "seed": SEED.hex(),
        "key_info": KEY_INFO.hex(),
        "skS": sk.hex(),
        "pkS": pk.hex(),
        "key_id": hashlib.sha256(pk).hexdigest()[:32],
        "tag_bytes": 8,
        "proof_random_scalar": PROOF_SCALAR,
        "batch_proof": proof.hex(),
        "items": items,
    }


if __name__ == "__main__":
    PATH.write_text(json.dumps(vectors(), indent=2) + "\n")
    print(f"wrote {PATH}")
