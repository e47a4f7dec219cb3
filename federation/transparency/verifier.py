#!/usr/bin/env python3
"""Standalone verifier for a Concordat hub's transparency log. Needs only Python 3.11+ and the
``cryptography`` package; it shares no code with the hub (an independent implementation of the
verifying side of C2SP signed-note / tlog-checkpoint and RFC 6962 / RFC 9162).

    python verifier.py --hub https://hub.example --key "<verifier key>" \\
        [--token TOKEN] [--state verifier-state.json] [--spot-checks 8]

It verifies the latest checkpoint's signature with the pinned key; fetches every entry and checks
that each event document is what its leaf bytes say, that the leaf bytes hash to the leaf hashes
the log committed, and that those hashes give the signed root; proves (RFC 9162 consistency proof)
that the checkpoint saved in the state file by the previous run is a prefix of today's tree;
spot-checks inclusion proofs; and prints one OK/FAIL line per check. The new checkpoint is saved
only when everything passed. Exit status: 0 all checks passed, 1 a discrepancy, 2 could not run
(bad arguments, hub unreachable).

See docs/transparency.md.
"""

import argparse
import base64
import binascii
import hashlib
import json
import random
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EMPTY_ROOT = hashlib.sha256(b"").digest()
ENTRIES_PAGE = 1000
SIGNATURE_DASH = "\u2014 "
ED25519 = 0x01


class ProofError(Exception):
    """A Merkle proof or root does not verify."""


class NoteError(Exception):
    """A signed note or checkpoint is malformed or not signed by the pinned key."""


# --- RFC 6962 hashing -------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_leaf_hashes(hashes: list[bytes]) -> bytes:
    """MTH over the given leaf hashes (RFC 6962 §2.1), in one pass with a stack of complete
    subtrees: after leaf i, the stack holds the subtrees of the binary decomposition of i + 1."""
    if not hashes:
        return EMPTY_ROOT
    stack: list[bytes] = []
    for count, digest in enumerate(hashes, start=1):
        node = digest
        while count % 2 == 0:  # each trailing zero of the new size completes one more subtree
            node = node_hash(stack.pop(), node)
            count //= 2
        stack.append(node)
    root = stack.pop()
    while stack:
        root = node_hash(stack.pop(), root)
    return root


# --- RFC 9162 proof verification --------------------------------------------------------------


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf: bytes, path: list[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2. ``leaf`` is the leaf hash. Raises ProofError."""
    if not 0 <= leaf_index < tree_size:
        raise ProofError(f"leaf index {leaf_index} is not below tree size {tree_size}")
    fn, sn = leaf_index, tree_size - 1
    result = leaf
    for sibling in path:
        if sn == 0:
            raise ProofError("inclusion path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion path is shorter than the tree is deep")
    if result != root:
        raise ProofError("inclusion path does not lead to the root")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: list[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: the tree of ``first`` leaves is a prefix of the tree of ``second``.
    An empty tree is a prefix of every tree; equal sizes need equal roots and an empty path."""
    if not 0 <= first <= second:
        raise ProofError(f"cannot prove size {first} is a prefix of size {second}")
    if first == second:
        if path:
            raise ProofError("a proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError(f"two different roots for tree size {first}")
        return
    if first == 0:
        if path:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not path:
        raise ProofError("empty consistency path")
    if first & (first - 1) == 0:  # a power of two: the old root is itself a node of the new tree
        path = [first_root, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for node in path[1:]:
        if sn == 0:
            raise ProofError("consistency path is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(node, fr)
            sr = node_hash(node, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, node)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency path is too short")
    if fr != first_root:
        raise ProofError(f"consistency path does not lead to the root of size {first}")
    if sr != second_root:
        raise ProofError(f"consistency path does not lead to the root of size {second}")


# --- C2SP signed notes and checkpoints --------------------------------------------------------


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes
    public_key: Ed25519PublicKey


@dataclass(frozen=True)
class SignedCheckpoint:
    origin: str
    tree_size: int
    root_hash: bytes
    note: str


def parse_verifier_key(text: str) -> VerifierKey:
    """``<name>+<8 hex key id>+<base64(0x01 || 32-byte Ed25519 public key)>``."""
    parts = text.strip().split("+", 2)  # the base64 key may itself contain '+'
    if len(parts) != 3:
        raise NoteError("a verifier key is <name>+<key id hex>+<base64 key>")
    name, key_id_hex, encoded = parts
    try:
        key_id = bytes.fromhex(key_id_hex)
        raw = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise NoteError(f"malformed verifier key: {exc}") from exc
    if not name or any(c.isspace() for c in name) or len(key_id) != 4:
        raise NoteError("malformed verifier key name or key id")
    if len(raw) != 33 or raw[0] != ED25519:
        raise NoteError("the verifier key is not an Ed25519 (type 0x01) key")
    expected = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if expected != key_id:
        raise NoteError("the verifier key's id does not match its name and public key")
    return VerifierKey(name, key_id, Ed25519PublicKey.from_public_bytes(raw[1:]))


def verify_note(note: str, key: VerifierKey) -> str:
    """The note text, once a signature by ``key`` verifies (C2SP signed-note). Signatures by other
    keys are ignored; a failing signature by ``key`` rejects the note."""
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise NoteError("the note contains control characters")
    if not note.endswith("\n"):
        raise NoteError("the note does not end in a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("the note has no signature block")
    text, signature_block = note[: split + 1], note[split + 2 :]
    verified = False
    for line in signature_block[:-1].split("\n"):
        if not line.startswith(SIGNATURE_DASH):
            raise NoteError(f"malformed signature line: {line[:60]!r}")
        name, _, encoded = line[len(SIGNATURE_DASH) :].rpartition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise NoteError("a signature is not base64") from exc
        if len(blob) < 5:
            raise NoteError("a signature is too short")
        if name != key.name or blob[:4] != key.key_id:
            continue  # someone else's signature (a witness, a rotated key): not ours to judge
        try:
            key.public_key.verify(blob[4:], text.encode())
        except InvalidSignature as exc:
            raise NoteError(f"the signature by {key.name} does not verify") from exc
        verified = True
    if not verified:
        raise NoteError(f"the note carries no signature by {key.name} ({key.key_id.hex()})")
    return text


def parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    """C2SP tlog-checkpoint note text: origin, decimal tree size, base64 root (extension lines
    allowed and ignored)."""
    lines = text.split("\n")[:-1]
    if len(lines) < 3 or not all(lines):
        raise NoteError("a checkpoint has at least three non-empty lines")
    origin, size_text, root_text = lines[:3]
    if not re.fullmatch(r"0|[1-9][0-9]{0,19}", size_text):  # ASCII digits, as Go's parser
        raise NoteError(f"malformed tree size {size_text!r}")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise NoteError("the root hash is not base64") from exc
    if len(root) != 32:
        raise NoteError("the root hash is not 32 bytes")
    return origin, int(size_text), root


def verify_checkpoint(note: str, key: VerifierKey) -> SignedCheckpoint:
    origin, size, root = parse_checkpoint(verify_note(note, key))
    return SignedCheckpoint(origin=origin, tree_size=size, root_hash=root, note=note)


# --- talking to the hub -----------------------------------------------------------------------


class HubError(Exception):
    """The hub could not be reached or answered with an error."""


class HubClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 60) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise HubError("the hub URL must start with http:// or https://")
        self.base_url = base_url.rstrip("/") + "/api/v1/log"
        self.token = token
        self.timeout = timeout

    def get(self, path: str, **params: int) -> bytes:
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(url)  # noqa: S310 (scheme checked above)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.read()
        except urllib.error.HTTPError as error:
            body = error.read().decode("utf-8", "replace")
            try:
                message = json.loads(body)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = body[:200]
            raise HubError(f"GET {path} answered {error.code}: {message}") from error
        except (urllib.error.URLError, OSError) as error:
            raise HubError(f"GET {path} failed: {error}") from error

    def json(self, path: str, **params: int) -> Any:
        try:
            return json.loads(self.get(path, **params))
        except ValueError as exc:
            raise HubError(f"GET {path} did not answer JSON") from exc


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


# --- the audit run ----------------------------------------------------------------------------


class Report:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.failures = 0

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def ok(self, text: str) -> None:
        self.line(f"OK    {text}")

    def fail(self, text: str) -> None:
        self.failures += 1
        self.line(f"FAIL  {text}")


MAX_LISTED = 10


def check_entries(client: HubClient, checkpoint: SignedCheckpoint, report: Report) -> list[bytes]:
    """Fetch leaves [0, size) and check them against the signed root; returns the leaf hashes
    of the current leaf bytes."""
    size = checkpoint.tree_size
    byte_hashes: list[bytes] = []
    committed: list[bytes] = []
    changed: list[str] = []
    misdescribed: list[int] = []
    start = 0
    while start < size:
        page = client.json("/entries", start=start, end=min(start + ENTRIES_PAGE, size))
        entries = page.get("entries") or []
        if not entries:
            report.fail(f"the hub returned no entries from index {start} (tree size {size})")
            return byte_hashes
        for entry in entries:
            index = entry["leaf_index"]
            if index != start:
                report.fail(f"expected leaf {start}, the hub sent leaf {index}: a leaf is missing")
                return byte_hashes
            leaf = _b64(entry["leaf"])
            try:
                if json.loads(leaf) != entry["event"]:
                    misdescribed.append(index)
            except ValueError:
                misdescribed.append(index)
            digest = leaf_hash(leaf)
            committed_hash = _b64(entry["leaf_hash"])
            if digest != committed_hash:
                event = entry.get("event") or {}
                changed.append(
                    f"leaf {index} (event id {event.get('id')}, action {event.get('action')!r}): "
                    f"its bytes now hash to {digest.hex()[:16]}…, the log committed "
                    f"{committed_hash.hex()[:16]}…"
                )
            byte_hashes.append(digest)
            committed.append(committed_hash)
            start += 1
    report.ok(f"fetched {size} entries (leaves 0 to {size - 1})" if size else "the log is empty")
    if misdescribed:
        report.fail(
            f"{len(misdescribed)} entries show an event document that differs from their leaf "
            f"bytes: leaves {misdescribed[:MAX_LISTED]}"
        )
    elif size:
        report.ok("every event document is exactly what its leaf bytes encode")
    if root_from_leaf_hashes(committed) == checkpoint.root_hash:
        report.ok("the committed leaf hashes give the signed root")
    else:
        report.fail("the committed leaf hashes do NOT give the signed root")
    if changed:
        report.fail(
            f"{len(changed)} logged events no longer match the log (changed after logging):"
        )
        for text in changed[:MAX_LISTED]:
            report.line(f"        {text}")
        if len(changed) > MAX_LISTED:
            report.line(f"        … and {len(changed) - MAX_LISTED} more")
    if root_from_leaf_hashes(byte_hashes) == checkpoint.root_hash:
        report.ok(f"the root recomputed from all {size} leaves' bytes matches the signed root")
    else:
        report.fail("the root recomputed from the leaves' bytes does NOT match the signed root")
    return byte_hashes


def check_inclusion(
    client: HubClient,
    checkpoint: SignedCheckpoint,
    leaf_hashes: list[bytes],
    report: Report,
    count: int,
) -> None:
    size = checkpoint.tree_size
    if not size or count <= 0 or len(leaf_hashes) != size:
        return
    indexes = sorted({0, size - 1, *random.sample(range(size), min(count, size))})
    bad = []
    for index in indexes:
        proof = client.json("/proof/inclusion", index=index, tree_size=size)
        try:
            if proof.get("leaf_index") != index or proof.get("tree_size") != size:
                raise ProofError("the proof is for another leaf or tree size")
            path = [_b64(item) for item in proof["inclusion_path"]]
            verify_inclusion(index, size, leaf_hashes[index], path, checkpoint.root_hash)
        except ProofError as exc:
            bad.append(f"{index} ({exc})")
    if bad:
        report.fail(f"inclusion proofs failed for leaves: {', '.join(bad[:MAX_LISTED])}")
    else:
        report.ok(f"inclusion proofs verified for {len(indexes)} leaves: {indexes}")


def check_consistency(
    client: HubClient,
    previous: SignedCheckpoint | None,
    checkpoint: SignedCheckpoint,
    report: Report,
) -> None:
    if previous is None:
        report.line("NOTE  no previous checkpoint in the state file: first run, nothing to compare")
        return
    if previous.origin != checkpoint.origin:
        report.fail(f"the log's origin changed from {previous.origin!r} to {checkpoint.origin!r}")
        return
    if previous.tree_size > checkpoint.tree_size:
        report.fail(
            f"the log shrank: the previous checkpoint had {previous.tree_size} leaves, "
            f"this one has {checkpoint.tree_size}"
        )
        return
    path: list[bytes] = []
    if 0 < previous.tree_size < checkpoint.tree_size:
        proof = client.json(
            "/proof/consistency", first=previous.tree_size, second=checkpoint.tree_size
        )
        path = [_b64(item) for item in proof["consistency_path"]]
    try:
        verify_consistency(
            previous.tree_size,
            checkpoint.tree_size,
            previous.root_hash,
            checkpoint.root_hash,
            path,
        )
    except ProofError as exc:
        report.fail(
            f"the previous checkpoint (size {previous.tree_size}) is NOT a prefix of this one "
            f"(size {checkpoint.tree_size}): {exc}"
        )
        return
    report.ok(
        f"consistency: the previous checkpoint (size {previous.tree_size}) is a prefix of this "
        f"one (size {checkpoint.tree_size}; proof of {len(path)} hashes verified)"
    )


def load_state(path: Path | None, key: VerifierKey, report: Report) -> SignedCheckpoint | None:
    if path is None or not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        return verify_checkpoint(state["checkpoint"], key)
    except (ValueError, KeyError, TypeError, NoteError) as exc:
        report.fail(f"the state file {path} holds no checkpoint signed by the pinned key: {exc}")
        return None


def save_state(path: Path, hub: str, checkpoint: SignedCheckpoint) -> None:
    state = {
        "hub": hub,
        "origin": checkpoint.origin,
        "tree_size": checkpoint.tree_size,
        "root_hash": base64.b64encode(checkpoint.root_hash).decode(),
        "checkpoint": checkpoint.note,
    }
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(state, indent=2) + "\n")
    temporary.replace(path)


def run(
    *,
    hub: str,
    vkey: str,
    token: str | None,
    state_path: Path | None,
    spot_checks: int,
    out: TextIO,
) -> int:
    report = Report(out)
    report.line(f"Concordat transparency log verifier: {hub}")
    try:
        key = parse_verifier_key(vkey)
    except NoteError as exc:
        report.line(f"ERROR the --key argument: {exc}")
        return 2
    report.line(f"pinned key: {key.name} (key id {key.key_id.hex()})")
    try:
        client = HubClient(hub, token)
        note = client.get("/checkpoint").decode("utf-8")
    except (HubError, UnicodeDecodeError) as exc:
        report.line(f"ERROR could not fetch the checkpoint: {exc}")
        return 2
    try:
        checkpoint = verify_checkpoint(note, key)
    except NoteError as exc:
        report.fail(f"checkpoint rejected: {exc}")
        report.line("RESULT: FAIL, state file not updated")
        return 1
    report.ok(
        f"checkpoint signature verified: origin {checkpoint.origin}, tree size "
        f"{checkpoint.tree_size}, root {base64.b64encode(checkpoint.root_hash).decode()}"
    )
    if checkpoint.origin != key.name:
        report.fail(f"the checkpoint origin {checkpoint.origin!r} is not the key name")
    previous = load_state(state_path, key, report)
    try:
        leaf_hashes = check_entries(client, checkpoint, report)
        check_consistency(client, previous, checkpoint, report)
        check_inclusion(client, checkpoint, leaf_hashes, report, spot_checks)
    except (HubError, KeyError, TypeError, ValueError) as exc:
        report.fail(f"the hub's answer could not be checked: {exc}")
    if report.failures:
        report.line(f"RESULT: FAIL ({report.failures} problems); state file not updated")
        return 1
    if state_path is not None:
        save_state(state_path, hub, checkpoint)
        report.line(f"RESULT: OK; checkpoint of size {checkpoint.tree_size} saved to {state_path}")
    else:
        report.line("RESULT: OK")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hub", required=True, help="The hub's base URL, e.g. https://hub.example")
    parser.add_argument("--key", required=True, help="The hub's verifier key (pin it)")
    parser.add_argument("--token", default=None, help="An API token with the audit scope")
    parser.add_argument("--state", type=Path, default=None, help="State file (last checkpoint)")
    parser.add_argument("--spot-checks", type=int, default=8, help="Random inclusion proofs")
    args = parser.parse_args(argv)
    return run(
        hub=args.hub,
        vkey=args.key,
        token=args.token,
        state_path=args.state,
        spot_checks=args.spot_checks,
        out=sys.stdout,
    )


if __name__ == "__main__":
    sys.exit(main())
