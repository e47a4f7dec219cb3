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

With ``--witness <vkey>`` (repeated) and ``--threshold K`` it also requires the hub's newest
cosigned checkpoint to carry valid C2SP tlog-cosignatures by K of those witnesses and to cover
every change in the log; ``--cosign-key`` makes the auditor a witness of its own. Foreign
members' signatures are proven from the log alone (``key.received``: the home hub's binding under
the key the log pinned for it, the member's signed registration). An incremental run also
re-checks ``--recheck N`` old leaves in rotation. The tools that read more than one hub or
auditor (``compare``, ``evidence``, ``reconcile-hubs``) are in ``crosscheck.py`` next to this file.

See docs/transparency.md.
"""

import argparse
import base64
import binascii
import hashlib
import json
import math
import os
import random
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EMPTY_ROOT = hashlib.sha256(b"").digest()
ENTRIES_PAGE = 1000
SIGNATURE_DASH = "\u2014 "
ED25519 = 0x01
COSIGNATURE = 0x04  # C2SP tlog-cosignature: timestamped Ed25519 cosignatures


class ProofError(Exception):
    """A Merkle proof or root does not verify."""


class NoteError(Exception):
    """A signed note or checkpoint is malformed or not signed by the pinned key."""


# --- RFC 6962 hashing -------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


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
    signed_at: datetime | None = None  # the hub's signed time (an extension line), if any


def parse_verifier_key(text: str, signature_type: int = ED25519) -> VerifierKey:
    """``<name>+<8 hex key id>+<base64(type || 32-byte Ed25519 public key)>``; the type is 0x01
    for a log's key, 0x04 (``COSIGNATURE``) for a witness's."""
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
    if len(raw) != 33 or raw[0] != signature_type:
        raise NoteError(f"the verifier key is not an Ed25519 (type 0x{signature_type:02x}) key")
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


SIGNED_AT_PREFIX = "concordat-signed-at "


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


def checkpoint_signed_at(text: str) -> datetime | None:
    """The time in the ``concordat-signed-at YYYY-MM-DDTHH:MM:SSZ`` extension line, if any."""
    found = [line for line in text.split("\n")[3:] if line.startswith(SIGNED_AT_PREFIX)]
    if not found:
        return None
    if len(found) > 1:
        raise NoteError("the checkpoint carries more than one signed time")
    value = found[0][len(SIGNED_AT_PREFIX) :]
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", value):
        raise NoteError(f"malformed signed time {value[:40]!r}")
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise NoteError(f"malformed signed time {value!r}") from exc


def verify_checkpoint(note: str, key: VerifierKey) -> SignedCheckpoint:
    text = verify_note(note, key)
    origin, size, root = parse_checkpoint(text)
    return SignedCheckpoint(
        origin=origin,
        tree_size=size,
        root_hash=root,
        note=note,
        signed_at=checkpoint_signed_at(text),
    )


# --- C2SP tlog-cosignature: witnesses ----------------------------------------------------------


def parse_witness_key(text: str) -> VerifierKey:
    return parse_verifier_key(text, COSIGNATURE)


def cosigned_message(note_text: str, timestamp: int) -> bytes:
    """What an Ed25519 cosignature signs: a header line, a time line, the checkpoint's text."""
    return f"cosignature/v1\ntime {timestamp}\n{note_text}".encode()


@dataclass(frozen=True)
class WitnessCheck:
    cosigned: dict[str, int]  # witness name -> the cosignature's timestamp
    problems: list[str]  # a trusted witness's line that does not verify, or dates the future
    ignored: int  # signature lines of keys not in the policy (nor the log's)


def check_cosignatures(
    note: str, log_key: VerifierKey, witnesses: list[VerifierKey], now: datetime
) -> WitnessCheck:
    """Which trusted witnesses cosigned the checkpoint ``note`` (already verified under
    ``log_key``). Lines of other keys are ignored, as signed-note requires; a line with a trusted
    witness's name and key id must verify."""
    split = note.rfind("\n\n")
    text, block = note[: split + 1], note[split + 2 :]
    trusted = {(key.name, key.key_id): key for key in witnesses}
    cosigned: dict[str, int] = {}
    problems: list[str] = []
    ignored = 0
    for line in block[:-1].split("\n"):
        name, _, encoded = line[len(SIGNATURE_DASH) :].rpartition(" ")
        blob = base64.b64decode(encoded, validate=True)
        key = trusted.get((name, blob[:4]))
        if key is None:
            if (name, blob[:4]) != (log_key.name, log_key.key_id):
                ignored += 1
            continue
        if len(blob) != 76:
            problems.append(f"the cosignature by {name} is not 4 + 8 + 64 bytes")
            continue
        timestamp = int.from_bytes(blob[4:12], "big")
        try:
            key.public_key.verify(blob[12:], cosigned_message(text, timestamp))
        except InvalidSignature:
            problems.append(f"the cosignature by {name} does not verify")
            continue
        if not 0 < timestamp < 2**63 or timestamp > now.timestamp() + FUTURE_SLACK_SECONDS:
            problems.append(f"the cosignature by {name} is dated {timestamp}, in the future")
            continue
        cosigned[name] = timestamp
    return WitnessCheck(cosigned=cosigned, problems=problems, ignored=ignored)


def cosign(note_text: str, private_key: Any, name: str, timestamp: int) -> str:
    """A tlog-cosignature line by ``private_key`` (an auditor acting as its own witness)."""
    raw = private_key.public_key().public_bytes_raw()
    key_id = hashlib.sha256(name.encode() + b"\n" + bytes([COSIGNATURE]) + raw).digest()[:4]
    signature = private_key.sign(cosigned_message(note_text, timestamp))
    blob = key_id + timestamp.to_bytes(8, "big") + signature
    return f"{SIGNATURE_DASH}{name} {base64.b64encode(blob).decode()}\n"


def witness_vkey(private_key: Any, name: str) -> str:
    raw = private_key.public_key().public_bytes_raw()
    key_id = hashlib.sha256(name.encode() + b"\n" + bytes([COSIGNATURE]) + raw).digest()[:4]
    return f"{name}+{key_id.hex()}+{base64.b64encode(bytes([COSIGNATURE]) + raw).decode()}"


# --- RFC 8785 (JCS), strictly -----------------------------------------------------------------


class CanonicalError(ValueError):
    """Bytes that are not I-JSON in RFC 8785 canonical form."""


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise CanonicalError(f"duplicate key {name[:40]!r}")
        result[name] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise CanonicalError(f"{name} is not JSON")


def _strict_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise CanonicalError(f"the number {text[:40]} does not fit an IEEE double")
    return value


def _strict_int(text: str) -> int | float:
    """An integer beyond 2^53 is, to I-JSON, the double nearest to it."""
    value = int(text)
    return value if abs(value) <= _MAX_SAFE_INTEGER else _strict_float(text)


def parse_strict(data: bytes) -> Any:
    """Parse I-JSON (RFC 7493): UTF-8, no duplicate keys, no NaN/Infinity, numbers that fit an
    IEEE double. Raises CanonicalError."""
    try:
        text = data.decode("utf-8")
        return json.loads(
            text,
            object_pairs_hook=_refuse_duplicates,
            parse_constant=_refuse_constant,
            parse_float=_strict_float,
            parse_int=_strict_int,
        )
    except CanonicalError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CanonicalError(f"not JSON: {exc}") from exc


_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_MAX_SAFE_INTEGER = 2**53 - 1


def _canonical_string(value: str) -> str:
    out = ['"']
    for character in value:
        code = ord(character)
        if character in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[character])
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            raise CanonicalError("a lone surrogate has no UTF-8 form")
        else:
            out.append(character)
    out.append('"')
    return "".join(out)


def _canonical_number(value: int | float) -> str:
    """ECMAScript Number::toString (RFC 8785 §3.2.2.3) of an IEEE double."""
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INTEGER:
            raise CanonicalError(f"the integer {value} is beyond I-JSON's exact range")
        return str(value)
    if not math.isfinite(value):
        raise CanonicalError("NaN and Infinity are not JSON")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr gives the shortest digits that round-trip, which is what ECMAScript requires.
    mantissa, _, exponent_text = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    all_digits = whole + fraction
    digits = all_digits.lstrip("0")
    # the value is 0.<digits> x 10^point
    point = int(exponent_text or 0) + len(whole) - (len(all_digits) - len(digits))
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= point <= 21:
        text = digits + "0" * (point - k)
    elif 0 < point <= 21:
        text = digits[:point] + "." + digits[point:]
    elif -6 < point <= 0:
        text = "0." + "0" * (-point) + digits
    else:
        e = point - 1
        text = digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if e >= 0 else "e-")
        text += str(abs(e))
    return sign + text


def _canonical(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_canonical_string(value))
    elif isinstance(value, int | float):
        out.append(_canonical_number(value))
    elif isinstance(value, list):
        out.append("[")
        for position, item in enumerate(value):
            if position:
                out.append(",")
            _canonical(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        # Keys sorted by their UTF-16 code units (RFC 8785 §3.2.3), not by code points.
        for position, name in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):
            if position:
                out.append(",")
            out.append(_canonical_string(name))
            out.append(":")
            _canonical(value[name], out)
        out.append("}")
    else:
        raise CanonicalError(f"{type(value).__name__} is not JSON")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of a JSON value."""
    out: list[str] = []
    _canonical(value, out)
    return "".join(out).encode("utf-8")


def parse_canonical(data: bytes) -> Any:
    """The value of bytes that are exactly RFC 8785 canonical I-JSON; raises CanonicalError."""
    value = parse_strict(data)
    if canonical_json(value) != data:
        raise CanonicalError("the bytes are not in RFC 8785 canonical form")
    return value


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

    def get(self, path: str, **params: Any) -> bytes:
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
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

    def json(self, path: str, **params: Any) -> Any:
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
        self.warnings = 0

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def ok(self, text: str) -> None:
        self.line(f"OK    {text}")

    def note(self, text: str) -> None:
        self.line(f"NOTE  {text}")

    def warn(self, text: str) -> None:
        self.warnings += 1
        self.line(f"WARN  {text}")

    def fail(self, text: str) -> None:
        self.failures += 1
        self.line(f"FAIL  {text}")

    def listing(self, items: list[str]) -> None:
        for text in items[:MAX_LISTED]:
            self.line(f"        {text}")
        if len(items) > MAX_LISTED:
            self.line(f"        … and {len(items) - MAX_LISTED} more")


MAX_LISTED = 10
EVENT_KIND = "concordat.audit-event"
ACCEPTED = "contribution.accepted"
KEY_REGISTERED = "key.registered"
# A foreign member's key, as its home hub bound it (the receiving side), and a binding this hub
# signed for its own member's key (the sending side); the peers' pinned keys that bindings need.
KEY_RECEIVED = "key.received"
KEY_BOUND = "key.bound"
PEER_REGISTERED = "peer.registered"
PEER_KEY_ROTATED = "peer.key_rotated"
REGISTRATION_KIND = "concordat.key"
BINDING_KIND = "concordat.key-binding"
# The hub's record of cosigning another log: it needs no witnessing of its own (see
# docs/transparency.md, "Witnesses"), everything else does.
COSIGNED = "checkpoint.cosigned"


class Frontier:
    """The compact range of a tree's leaf hashes: the roots of its complete subtrees, largest
    first (the binary decomposition of its size). Enough to extend the tree leaf by leaf and to
    compute its root, so an incremental run needs only the new leaves."""

    def __init__(self, size: int = 0, stack: list[bytes] | None = None) -> None:
        self.size = size
        self.stack = list(stack or [])
        if len(self.stack) != bin(size).count("1"):
            raise ValueError("a frontier holds one hash per 1 bit of its size")

    def copy(self) -> "Frontier":
        return Frontier(self.size, self.stack)

    def append(self, digest: bytes) -> None:
        self.size += 1
        count, node = self.size, digest
        while count % 2 == 0:  # each trailing zero of the new size completes one more subtree
            node = node_hash(self.stack.pop(), node)
            count //= 2
        self.stack.append(node)

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        root = self.stack[-1]
        for node in reversed(self.stack[:-1]):
            root = node_hash(node, root)
        return root


def root_from_leaf_hashes(hashes: list[bytes]) -> bytes:
    """MTH over the given leaf hashes (RFC 6962 §2.1)."""
    frontier = Frontier()
    for digest in hashes:
        frontier.append(digest)
    return frontier.root()


def empty_month() -> dict[str, dict[str, int]]:
    return {
        "events_by_action": {},
        "contributions_by_action": {"add": 0, "retract": 0},
        "contributions_by_organisation": {},
        "contributions_by_label": {},
        "contributions_by_signal_type": {},
    }


def _bump(counts: dict[str, int], name: str, by: int = 1) -> None:
    counts[name] = counts.get(name, 0) + by


def count_event(figures: dict[str, dict], document: dict) -> None:
    """Add one leaf to the running figures, bucketed by the UTC month of ``occurred_at``."""
    month = figures.setdefault(str(document["occurred_at"])[:7], empty_month())
    _bump(month["events_by_action"], document["action"])
    if document["action"] == ACCEPTED:
        data = document["data"]
        _bump(month["contributions_by_action"], str(data.get("action")))
        _bump(month["contributions_by_organisation"], document["organisation"])
        _bump(month["contributions_by_signal_type"], str(data.get("signal_type")))
        for label in data.get("labels") or []:
            _bump(month["contributions_by_label"], str(label))


def figures_for(figures: dict[str, dict], *, tree_size: int, month: str | None) -> dict:
    """The figures in the shape of the hub's GET /api/v1/log/figures."""
    total = empty_month()
    for name, counts in figures.items():
        if month is not None and name != month:
            continue
        for kind, values in counts.items():
            for key, value in values.items():
                _bump(total[kind], key, value)
    return {
        "tree_size": tree_size,
        "month": month,
        "events": sum(total["events_by_action"].values()),
        "events_by_action": dict(sorted(total["events_by_action"].items())),
        "contributions_accepted": sum(total["contributions_by_organisation"].values()),
        "contributions_by_action": dict(sorted(total["contributions_by_action"].items())),
        "contributions_by_organisation": dict(
            sorted(total["contributions_by_organisation"].items())
        ),
        "contributions_by_label": dict(sorted(total["contributions_by_label"].items())),
        "contributions_by_signal_type": dict(sorted(total["contributions_by_signal_type"].items())),
    }


@dataclass
class LogState:
    """What a run verified: the checkpoint, the frontier of its leaf hashes, the members' keys
    registered or received in it, the peer hubs' keys it pinned, and the running figures per
    month."""

    checkpoint: SignedCheckpoint | None = None
    frontier: Frontier = field(default_factory=Frontier)
    keys: dict[str, dict] = field(default_factory=dict)
    # hub id -> [[leaf index, key id], ...]: each key the log pinned for the peer, in log order
    peers: dict[str, list] = field(default_factory=dict)
    figures: dict[str, dict] = field(default_factory=dict)
    # One past the last leaf that is not bookkeeping (a checkpoint.cosigned record): a witness
    # policy needs the witnessed tree to reach at least this far.
    changes_through: int = 0
    # Where the next run's re-check of old leaves starts (a rotating full re-check, "recheck").
    recheck_next: int = 0


def check_leaf(leaf: bytes, event: Any) -> dict:
    """The event document of a leaf, once the leaf is exactly RFC 8785 canonical I-JSON of an
    audit event and the hub's ``event`` is that same document (compared as canonical bytes, so
    ``true`` is not ``1``). Raises CanonicalError naming what is wrong."""
    document = parse_canonical(leaf)
    if not isinstance(document, dict):
        raise CanonicalError("the leaf is not a JSON object")
    if document.get("kind") != EVENT_KIND or document.get("v") != 1 or document["v"] is True:
        raise CanonicalError(f"the leaf is not a {EVENT_KIND} v1 document")
    for name, kind in (("action", str), ("organisation", str), ("occurred_at", str)):
        if not isinstance(document.get(name), kind):
            raise CanonicalError(f"the leaf's {name!r} is not a string")
    if not isinstance(document.get("data"), dict):
        raise CanonicalError("the leaf's 'data' is not an object")
    try:
        shown = canonical_json(event)
    except CanonicalError as exc:
        raise CanonicalError(
            f"the event document is not JSON the leaf could encode: {exc}"
        ) from exc
    if shown != leaf:
        raise CanonicalError("the event document differs from the leaf bytes")
    return document


def register_key(keys: dict[str, dict], index: int, document: dict) -> str | None:
    """Remember a ``key.registered`` leaf's key; a problem text if it is malformed."""
    data = document["data"]
    try:
        raw = _b64(data["public_key"])
        key_id = data["key_id"]
    except (KeyError, TypeError, binascii.Error):
        return f"leaf {index}: a key.registered event without a base64 public_key and key_id"
    if len(raw) != 32 or key_id_of(raw) != key_id:
        return f"leaf {index}: key {key_id!r} is not the documented id of its public key"
    known = {"public_key": data["public_key"], "organisation": document["organisation"]}
    if isinstance(data.get("registration"), str):
        known["registration_sha256"] = hashlib.sha256(data["registration"].encode()).hexdigest()
    keys.setdefault(key_id, {**known, "leaf": index})
    return None


def key_id_of(raw: bytes) -> str:
    """The documented id of a raw Ed25519 public key (a member's or a hub's)."""
    return hashlib.sha256(raw).hexdigest()[:32]


def pin_peer(peers: dict[str, list], index: int, document: dict) -> str | None:
    """Remember the hub key a ``peer.registered`` or ``peer.key_rotated`` leaf pins."""
    data = document["data"]
    if document["action"] == PEER_REGISTERED:
        hub, key_id = data.get("hub_id"), data.get("key_id")
    else:
        hub, key_id = document.get("object", {}).get("id"), data.get("to")
    if not isinstance(hub, str) or not isinstance(key_id, str):
        return f"leaf {index}: a {document['action']} event without a hub id and a key id"
    peers.setdefault(hub, []).append([index, key_id])
    return None


def pinned_peer_key(peers: dict[str, list], hub: str, index: int) -> str | None:
    """The key id the log pinned for ``hub`` by the last peer leaf before leaf ``index``."""
    pinned = [key_id for leaf, key_id in peers.get(hub, []) if leaf < index]
    return pinned[-1] if pinned else None


def _signed_object(text: Any, kind: str) -> tuple[dict, bytes]:
    """A signed object logged as its RFC 8785 text: the document and its bytes."""
    if not isinstance(text, str):
        raise CanonicalError(f"the {kind} is not logged as text")
    raw = text.encode()
    document = parse_canonical(raw)
    if not isinstance(document, dict) or document.get("kind") != kind or document.get("v") != 1:
        raise CanonicalError(f"the logged text is not a {kind} v1 object")
    return document, raw


def _verifies(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def receive_key(
    keys: dict[str, dict], peers: dict[str, list], index: int, document: dict
) -> str | None:
    """Check a ``key.received`` leaf from the log alone and remember the foreign key it proves;
    a problem text if it proves nothing. The binding must verify under the home hub's key the
    log pinned before the leaf (``peer.registered``/``peer.key_rotated``), name the member's
    registration by its SHA-256, and the registration must be self-signed by the key."""
    data = document["data"]
    where = f"leaf {index} (key.received of key {data.get('key_id')!r})"
    if "registration" not in data or "hub_public_key" not in data:
        return (
            f"{where}: it does not carry the member's registration and the home hub's key "
            "(logged before hubs recorded them), so the log cannot prove the key"
        )
    try:
        hub, member, key_id = data["hub"], data["member"], data["key_id"]
        if not all(isinstance(name, str) for name in (hub, member, key_id)):
            raise TypeError("hub, member and key_id must be strings")
        public_raw, hub_raw = _b64(data["public_key"]), _b64(data["hub_public_key"])
        binding, binding_bytes = _signed_object(data["binding"], BINDING_KIND)
        registration, registration_bytes = _signed_object(data["registration"], REGISTRATION_KIND)
        binding_signature = _b64(data["binding_signature"])
        registration_signature = _b64(data["registration_signature"])
    except (KeyError, TypeError, binascii.Error, CanonicalError) as exc:
        return f"{where}: malformed ({exc})"
    pinned = pinned_peer_key(peers, hub, index)
    if pinned is None:
        return f"{where}: no peer.registered leaf before it pins a key of the home hub {hub!r}"
    if key_id_of(hub_raw) != pinned:
        return (
            f"{where}: the binding's key {key_id_of(hub_raw)} is not the key {pinned} pinned "
            f"for {hub!r}"
        )
    if not _verifies(hub_raw, binding_signature, binding_bytes):
        return f"{where}: the binding's signature does not verify under {hub!r}'s pinned key"
    named = (hub, member, key_id)
    if (binding.get("hub"), binding.get("member"), binding.get("key_id")) != named:
        return f"{where}: the binding names another hub, member or key than the event"
    if (registration.get("hub"), registration.get("member"), registration.get("key_id")) != named:
        return f"{where}: the registration names another hub, member or key than the binding"
    if binding.get("registration_sha256") != hashlib.sha256(registration_bytes).hexdigest():
        return f"{where}: the binding's registration_sha256 is not that of the logged registration"
    if registration.get("public_key") != data["public_key"] or len(public_raw) != 32:
        return f"{where}: the registration's public_key is not the event's"
    if key_id_of(public_raw) != key_id:
        return f"{where}: key {key_id!r} is not the documented id of its public key"
    if not _verifies(public_raw, registration_signature, registration_bytes):
        return f"{where}: the registration's self-signature does not verify"
    if document["organisation"] != member:
        return f"{where}: the event's organisation is not the bound member {member!r}"
    known = keys.get(key_id)
    if known is not None and (known["organisation"], known.get("hub")) != (member, hub):
        return f"{where}: key {key_id} is already in the log for {known['organisation']!r}"
    keys.setdefault(
        key_id,
        {"public_key": data["public_key"], "organisation": member, "hub": hub, "leaf": index},
    )
    return None


def check_bound_key(
    keys: dict[str, dict], index: int, document: dict, log_key: "VerifierKey | None"
) -> str | None:
    """Why a ``key.bound`` leaf (a binding this hub signed for its own member's key) is not a
    binding by the log's own key of a key registered earlier in the log, or None."""
    data = document["data"]
    where = f"leaf {index} (key.bound of key {data.get('key_id')!r})"
    try:
        binding, binding_bytes = _signed_object(data["binding"], BINDING_KIND)
        signature = _b64(data["binding_signature"])
    except (KeyError, TypeError, binascii.Error, CanonicalError) as exc:
        return f"{where}: malformed ({exc})"
    if log_key is not None:
        try:
            log_key.public_key.verify(signature, binding_bytes)
        except InvalidSignature:
            return f"{where}: the binding's signature does not verify under the hub's key"
    key_id = data.get("key_id")
    if (binding.get("member"), binding.get("key_id"), binding.get("hub")) != (
        document["organisation"],
        key_id,
        data.get("hub"),
    ):
        return f"{where}: the binding names another member, key or hub than the event"
    known = keys.get(str(key_id))
    if known is None or known["leaf"] >= index or known.get("hub") is not None:
        return f"{where}: no key.registered leaf before it registers key {key_id!r}"
    if known["organisation"] != document["organisation"]:
        return f"{where}: key {key_id} was registered by {known['organisation']!r}"
    expected = known.get("registration_sha256")
    if expected is not None and binding.get("registration_sha256") != expected:
        return f"{where}: the binding's registration_sha256 is not that of the key.registered leaf"
    return None


def check_contribution(index: int, document: dict, item: dict | None, keys: dict) -> str | None:
    """Why leaf ``index`` (a contribution.accepted event) is not a contribution its member
    signed, or None. ``item`` is the hub's /contributions answer for the leaf."""
    data = document["data"]
    where = f"leaf {index} (contribution {data.get('uuid')})"
    if item is None or item.get("canonical") is None or item.get("signature") is None:
        return f"{where}: the hub serves no signed bytes for it"
    try:
        canonical = _b64(item["canonical"])
        signature = _b64(item["signature"])
    except (binascii.Error, TypeError):
        return f"{where}: the signed bytes or signature are not base64"
    if hashlib.sha256(canonical).hexdigest() != data.get("content_hash"):
        return f"{where}: SHA-256 of the signed bytes is not the leaf's content_hash"
    if item.get("signature") != data.get("signature"):
        return f"{where}: the hub serves another signature than the leaf records"
    key = keys.get(str(data.get("key_id")))
    if key is None or key["leaf"] >= index:
        return (
            f"{where}: no key.registered or key.received leaf before it for key "
            f"{data.get('key_id')!r}"
        )
    if key["organisation"] != document["organisation"]:
        return f"{where}: key {data.get('key_id')} was registered by {key['organisation']!r}"
    try:
        public_key = Ed25519PublicKey.from_public_bytes(_b64(key["public_key"]))
        public_key.verify(signature, canonical)
    except (InvalidSignature, ValueError):
        return f"{where}: the member signature does not verify under key {data.get('key_id')}"
    try:
        signed = parse_canonical(canonical)
        signal = signed["signal"]
        value = signal["value"]
        pairs = {
            "uuid": (signed["uuid"], data.get("uuid")),
            "object id": (signed["uuid"], document["object"]["id"]),
            "member": (signed["member"], document["organisation"]),
            "key_id": (signed["key_id"], data.get("key_id")),
            "action": (signed["action"], data.get("action")),
            "signal_type": (signal["type"], data.get("signal_type")),
            "value": (value.lower() if isinstance(value, str) else value, data.get("value")),
            "labels": (signed["labels"], data.get("labels")),
        }
        if key.get("hub") is not None:  # a relayed contribution: its hub is the key's home
            pairs["hub"] = (signed["hub"], key["hub"])
    except (CanonicalError, KeyError, TypeError) as exc:
        return f"{where}: the signed bytes are not a contribution ({exc})"
    differing = [name for name, (inside, logged) in pairs.items() if inside != logged]
    if differing:
        return f"{where}: the leaf's {', '.join(differing)} differ from the signed contribution"
    return None


def check_entries(
    client: HubClient,
    checkpoint: SignedCheckpoint,
    state: LogState,
    report: Report,
    log_key: VerifierKey | None = None,
) -> LogState | None:
    """Fetch leaves [state size, checkpoint size) and check them: exact canonical bytes, the
    committed hashes, the signed root (from the saved frontier plus the new leaves), the key
    bindings, member signatures. Returns the new state, or None when the leaves do not give the
    signed root."""
    size = checkpoint.tree_size
    start = state.frontier.size
    committed = state.frontier.copy()
    from_bytes = state.frontier.copy()
    keys = {key: dict(value) for key, value in state.keys.items()}
    peers = {hub: [list(pin) for pin in pins] for hub, pins in state.peers.items()}
    unbound: list[str] = []
    checked_bindings = 0
    figures = json.loads(json.dumps(state.figures))
    changed: list[str] = []
    malformed: list[str] = []
    unsigned: list[str] = []
    checked_contributions = 0
    changes_through = state.changes_through
    index = start
    while index < size:
        page_end = min(index + ENTRIES_PAGE, size)
        page = client.json("/entries", start=index, end=page_end)
        entries = page.get("entries") or []
        if not entries:
            report.fail(f"the hub returned no entries from index {index} (tree size {size})")
            return None
        accepted: dict[int, dict] = {}
        for entry in entries:
            if entry["leaf_index"] != index:
                report.fail(
                    f"expected leaf {index}, the hub sent leaf {entry['leaf_index']}: "
                    "a leaf is missing"
                )
                return None
            leaf = _b64(entry["leaf"])
            digest = leaf_hash(leaf)
            committed_hash = _b64(entry["leaf_hash"])
            if digest != committed_hash:
                event = entry.get("event") or {}
                changed.append(
                    f"leaf {index} (event id {event.get('id')}, action {event.get('action')!r}): "
                    f"its bytes now hash to {digest.hex()[:16]}…, the log committed "
                    f"{committed_hash.hex()[:16]}…"
                )
            committed.append(committed_hash)
            from_bytes.append(digest)
            try:
                document = check_leaf(leaf, entry.get("event"))
            except CanonicalError as exc:
                malformed.append(f"leaf {index}: {exc}")
                index += 1
                continue
            count_event(figures, document)
            if document["action"] != COSIGNED:
                changes_through = index + 1
            if document["action"] == KEY_REGISTERED:
                problem = register_key(keys, index, document)
                if problem:
                    malformed.append(problem)
            elif document["action"] in (PEER_REGISTERED, PEER_KEY_ROTATED):
                problem = pin_peer(peers, index, document)
                if problem:
                    malformed.append(problem)
            elif document["action"] in (KEY_RECEIVED, KEY_BOUND):
                checked_bindings += 1
                if document["action"] == KEY_RECEIVED:
                    problem = receive_key(keys, peers, index, document)
                else:
                    problem = check_bound_key(keys, index, document, log_key)
                if problem:
                    unbound.append(problem)
            elif document["action"] == ACCEPTED:
                accepted[index] = document
            index += 1
        if accepted:
            answer = client.json("/contributions", start=min(accepted), end=max(accepted) + 1)
            served = {item.get("leaf_index"): item for item in answer.get("contributions") or []}
            for leaf_index, document in accepted.items():
                problem = check_contribution(leaf_index, document, served.get(leaf_index), keys)
                checked_contributions += 1
                if problem:
                    unsigned.append(problem)
    fetched = size - start
    if start and fetched:
        report.ok(f"fetched the {fetched} new entries (leaves {start} to {size - 1})")
    elif start:
        report.ok(f"no new entries since the last verified checkpoint (size {size})")
    else:
        report.ok(
            f"fetched {size} entries (leaves 0 to {size - 1})" if size else "the log is empty"
        )
    if malformed:
        report.fail(
            f"{len(malformed)} leaves are not exactly RFC 8785 canonical audit events, or their "
            "event document differs from their leaf bytes:"
        )
        report.listing(malformed)
    elif fetched:
        report.ok("every leaf is exactly the RFC 8785 canonical bytes of its event document")
    root_ok = committed.root() == checkpoint.root_hash
    if root_ok:
        report.ok("the committed leaf hashes give the signed root")
    else:
        report.fail("the committed leaf hashes do NOT give the signed root")
    if changed:
        report.fail(
            f"{len(changed)} logged events no longer match the log (changed after logging):"
        )
        report.listing(changed)
    if from_bytes.root() == checkpoint.root_hash:
        report.ok(f"the root recomputed from all {size} leaves' bytes matches the signed root")
    else:
        report.fail("the root recomputed from the leaves' bytes does NOT match the signed root")
    if unbound:
        report.fail(f"{len(unbound)} key bindings in the log do not prove their key:")
        report.listing(unbound)
    elif checked_bindings:
        report.ok(
            f"{checked_bindings} key bindings (key.received, key.bound): each verifies under its "
            "hub's key pinned in the log, for a registration the member signed"
        )
    if unsigned:
        report.fail(f"{len(unsigned)} accepted contributions are not what their member signed:")
        report.listing(unsigned)
    elif checked_contributions:
        report.ok(
            f"{checked_contributions} accepted contributions: signed bytes hash to the leaf's "
            "content_hash, the member signature verifies under the key of the key.registered "
            "or key.received leaf, and the leaf's fields are those signed"
        )
    if not root_ok:
        return None
    return LogState(
        checkpoint=checkpoint,
        frontier=committed,
        keys=keys,
        peers=peers,
        figures=figures,
        changes_through=changes_through,
        recheck_next=state.recheck_next,
    )


def aligned_blocks(start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) as the fewest complete, aligned subtrees of a Merkle tree: (first leaf, size
    a power of two with first leaf % size == 0). Each is a node of any tree that holds it."""
    blocks = []
    while start < end:
        size = 1
        while (start % (size * 2) == 0) and start + size * 2 <= end:
            size *= 2
        blocks.append((start, size))
        start += size
    return blocks


def prove_block(
    client: HubClient, checkpoint: SignedCheckpoint, start: int, hashes: list[bytes]
) -> None:
    """Prove that ``hashes`` (leaf hashes computed from bytes) are the leaves [start, start +
    len) of the signed tree: the inclusion proof of the block's first leaf must begin with the
    block's own subtree roots (computed here) and verify to the signed root. Raises ProofError."""
    size = len(hashes)
    levels = size.bit_length() - 1
    proof = client.json("/proof/inclusion", index=start, tree_size=checkpoint.tree_size)
    path = [_b64(item) for item in proof["inclusion_path"]]
    inside = [root_from_leaf_hashes(hashes[1 << j : 2 << j]) for j in range(levels)]
    if path[:levels] != inside:
        raise ProofError("the hub's proof does not hold the subtrees of these leaves' bytes")
    verify_inclusion(start, checkpoint.tree_size, hashes[0], path, checkpoint.root_hash)


def _reread_block(
    client: HubClient, first: int, size: int, problems: list[str]
) -> tuple[list[bytes], dict[int, dict]]:
    """Leaves [first, first + size) fetched afresh: their leaf hashes computed from the bytes and
    their contribution.accepted documents; what is wrong with them is added to ``problems``."""
    hashes: list[bytes] = []
    accepted: dict[int, dict] = {}
    index = first
    while index < first + size:
        page = client.json("/entries", start=index, end=min(index + ENTRIES_PAGE, first + size))
        entries = page.get("entries") or []
        if not entries:
            problems.append(f"leaf {index}: the hub returned no entry")
            return hashes, accepted
        for entry in entries:
            if entry["leaf_index"] != index:
                problems.append(f"leaf {index}: the hub sent leaf {entry['leaf_index']}")
                return hashes, accepted
            leaf = _b64(entry["leaf"])
            hashes.append(leaf_hash(leaf))
            if hashes[-1] != _b64(entry["leaf_hash"]):
                problems.append(
                    f"leaf {index}: its bytes no longer hash to the committed leaf hash "
                    "(changed after logging)"
                )
            try:
                document = check_leaf(leaf, entry.get("event"))
            except CanonicalError as exc:
                problems.append(f"leaf {index}: {exc}")
            else:
                if document["action"] == ACCEPTED:
                    accepted[index] = document
            index += 1
    return hashes, accepted


def recheck_old_leaves(
    client: HubClient,
    checkpoint: SignedCheckpoint,
    state: LogState,
    verified_before: int,
    budget: int,
    report: Report,
) -> None:
    """The rotating re-check of an incremental run: ``budget`` leaves that earlier runs verified
    (``[0, verified_before)``), from ``state.recheck_next`` on, wrapping to leaf 0, fetched
    afresh and checked as a full run checks them (exact bytes, the event document, member
    signatures), their bytes proven in the signed tree block by block. A pass over the leaves
    takes ceil(verified_before / budget) runs, so each is re-read within that many runs plus one.
    Moves ``state.recheck_next``."""
    if budget <= 0 or verified_before <= 0:
        return
    start = state.recheck_next if state.recheck_next < verified_before else 0
    end = min(start + budget, verified_before)
    problems: list[str] = []
    for first, size in aligned_blocks(start, end):
        hashes, accepted = _reread_block(client, first, size, problems)
        if len(hashes) == size:
            try:
                prove_block(client, checkpoint, first, hashes)
            except (ProofError, KeyError) as exc:
                problems.append(f"leaves {first} to {first + size - 1}: {exc}")
        if accepted:
            answer = client.json("/contributions", start=min(accepted), end=max(accepted) + 1)
            served = {item.get("leaf_index"): item for item in answer.get("contributions") or []}
            for leaf_index, document in accepted.items():
                problem = check_contribution(
                    leaf_index, document, served.get(leaf_index), state.keys
                )
                if problem:
                    problems.append(problem)
    runs = math.ceil(verified_before / budget)
    if problems:
        report.fail(f"re-checking old leaves {start} to {end - 1}: {len(problems)} problems:")
        report.listing(problems)
    else:
        report.ok(
            f"re-checked old leaves {start} to {end - 1} in full (a pass over all "
            f"{verified_before} earlier leaves takes {runs} run{'s' if runs > 1 else ''} of "
            f"--recheck {budget})"
        )
    state.recheck_next = end if end < verified_before else 0


def check_inclusion(
    client: HubClient, checkpoint: SignedCheckpoint, report: Report, count: int
) -> None:
    """Inclusion proofs for the first, the last and ``count`` random leaves of the whole tree,
    each fetched afresh: on an incremental run this also spot-checks old rows for changes."""
    size = checkpoint.tree_size
    if not size or count <= 0:
        return
    indexes = sorted({0, size - 1, *random.sample(range(size), min(count, size))})
    bad = []
    for index in indexes:
        entry = client.json("/entries", start=index, end=index + 1)["entries"][0]
        committed = _b64(entry["leaf_hash"])
        if entry["leaf_index"] != index:
            bad.append(f"{index} (the hub sent leaf {entry['leaf_index']})")
            continue
        if leaf_hash(_b64(entry["leaf"])) != committed:
            bad.append(f"{index} (its bytes no longer hash to the committed leaf hash)")
        proof = client.json("/proof/inclusion", index=index, tree_size=size)
        try:
            if proof.get("leaf_index") != index or proof.get("tree_size") != size:
                raise ProofError("the proof is for another leaf or tree size")
            path = [_b64(item) for item in proof["inclusion_path"]]
            verify_inclusion(index, size, committed, path, checkpoint.root_hash)
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
    evidence_dir: Path | None = None,
) -> bool:
    if previous is None:
        report.note("no previous checkpoint in the state: first run, nothing to compare")
        return True
    if previous.origin != checkpoint.origin:
        report.fail(f"the log's origin changed from {previous.origin!r} to {checkpoint.origin!r}")
        return False
    if previous.tree_size > checkpoint.tree_size:
        reason = (
            f"the log shrank: the previous checkpoint had {previous.tree_size} leaves, "
            f"this one has {checkpoint.tree_size}"
        )
        report.fail(reason)
        if evidence_dir is not None:
            save_evidence(evidence_dir, previous, checkpoint, reason, [], report)
        return False
    try:
        length = prove_consistency(client, previous, checkpoint)
    except ProofError as exc:
        reason = (
            f"the previous checkpoint (size {previous.tree_size}) is NOT a prefix of this one "
            f"(size {checkpoint.tree_size}): {exc}"
        )
        report.fail(reason)
        if evidence_dir is not None:
            proof = consistency_path(client, previous, checkpoint)
            save_evidence(evidence_dir, previous, checkpoint, reason, proof, report)
        return False
    report.ok(
        f"consistency: the previous checkpoint (size {previous.tree_size}) is a prefix of this "
        f"one (size {checkpoint.tree_size}; proof of {length} hashes verified)"
    )
    return True


def consistency_path(client: HubClient, old: SignedCheckpoint, new: SignedCheckpoint) -> list:
    """The hub's RFC 9162 consistency proof from ``old`` to ``new`` (empty when none is needed)."""
    if not 0 < old.tree_size < new.tree_size:
        return []
    proof = client.json("/proof/consistency", first=old.tree_size, second=new.tree_size)
    return [_b64(item) for item in proof["consistency_path"]]


def save_evidence(
    directory: Path,
    previous: SignedCheckpoint,
    checkpoint: SignedCheckpoint,
    reason: str,
    proof: list[bytes],
    report: Report,
) -> None:
    """An auditor acting as its own witness keeps both signed notes, in the witnesses'
    evidence format, in ``<state dir>/evidence.json`` (check it with ``crosscheck.py evidence
    --file``)."""
    path = directory / EVIDENCE_FILE
    document = json.loads(path.read_text()) if path.exists() else {"witness": None, "evidence": []}
    same = previous.tree_size == checkpoint.tree_size
    document["evidence"].append(
        {
            "id": len(document["evidence"]) + 1,
            "origin": checkpoint.origin,
            "kind": "same_size" if same else "inconsistent",
            "reason": reason,
            "detected_at": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
            "cosigned_note": previous.note,
            "shown_note": checkpoint.note,
            "old_size": previous.tree_size,
            "proof": [base64.b64encode(node).decode() for node in proof],
        }
    )
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, json.dumps(document, indent=1) + "\n")
    report.note(f"both signed checkpoints kept as evidence in {_shown(path)}")


def prove_consistency(client: HubClient, old: SignedCheckpoint, new: SignedCheckpoint) -> int:
    """Verify the hub's RFC 9162 proof that ``old`` is a prefix of ``new``; the proof's length."""
    path = consistency_path(client, old, new)
    verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, path)
    return len(path)


STATUS_UNKNOWN = {"unsequenced_events": None}
FUTURE_SLACK_SECONDS = 300


@dataclass(frozen=True)
class WitnessPolicy:
    """The witnesses an auditor trusts and how many of them must have cosigned."""

    witnesses: list[VerifierKey]
    threshold: int
    grace_seconds: float = 300  # how long a new change may wait for its cosignatures


def parse_policy(vkeys: list[str], threshold: int | None, grace: float | None) -> WitnessPolicy:
    keys = [parse_witness_key(vkey) for vkey in vkeys]
    if len({key.name for key in keys}) != len(keys):
        raise NoteError("two witness keys with one name")
    threshold = len(keys) if threshold is None else threshold
    if not 1 <= threshold <= len(keys):
        raise NoteError(f"the threshold must be between 1 and the {len(keys)} witnesses given")
    return WitnessPolicy(keys, threshold, 300 if grace is None else grace)


def check_witness_policy(
    client: HubClient,
    key: VerifierKey,
    checkpoint: SignedCheckpoint,
    state: LogState,
    policy: WitnessPolicy,
    report: Report,
    now: datetime,
) -> SignedCheckpoint | None:
    """The hub's newest checkpoint that ``threshold`` of the trusted witnesses cosigned (asked
    for by their names; a hub that does not know the question serves its newest cosigned one),
    signed by the hub, with valid cosignatures, consistent with the verified ``checkpoint``, and
    covering every leaf that is not a ``checkpoint.cosigned`` record, or else the oldest change
    outside it is younger than the grace. Returns it when the policy is met."""
    note = client.get(
        "/checkpoint/cosigned",
        witness=[witness.name for witness in policy.witnesses],
        threshold=policy.threshold,
    ).decode("utf-8")
    try:
        witnessed = verify_checkpoint(note, key)
        result = check_cosignatures(note, key, policy.witnesses, now)
    except (NoteError, binascii.Error, ValueError) as exc:
        report.fail(f"the cosigned checkpoint is not a note signed by the hub: {exc}")
        return None
    for problem in result.problems:
        report.fail(problem)
    for witness in policy.witnesses:
        if witness.name in result.cosigned:
            moment = datetime.fromtimestamp(result.cosigned[witness.name], UTC)
            report.ok(
                f"witness {witness.name} cosigned tree size {witnessed.tree_size} "
                f"at {moment:%Y-%m-%dT%H:%M:%SZ}"
            )
        else:
            report.note(f"witness {witness.name} has not cosigned tree size {witnessed.tree_size}")
    if result.ignored:
        report.note(f"ignored {result.ignored} cosignatures by keys not in the policy")
    met = len(result.cosigned) >= policy.threshold
    count = f"{len(result.cosigned)} of the {len(policy.witnesses)} trusted witnesses"
    if not met:
        report.fail(
            f"witness policy not met: {count} cosigned the checkpoint the hub serves as its "
            f"newest cosigned one (size {witnessed.tree_size}), {policy.threshold} required"
        )
        return None
    else:
        report.ok(f"witness policy met: {count} cosigned (at least {policy.threshold} required)")
    old, new = sorted((witnessed, checkpoint), key=lambda c: c.tree_size)
    try:
        prove_consistency(client, old, new)
    except ProofError as exc:
        report.fail(
            f"SPLIT VIEW: the witnessed checkpoint (size {witnessed.tree_size}) and the one "
            f"verified here (size {checkpoint.tree_size}) are not one history: {exc}"
        )
        return None
    if witnessed.tree_size < checkpoint.tree_size:
        report.ok(
            f"the witnessed checkpoint (size {witnessed.tree_size}) is a prefix of the verified "
            f"one (size {checkpoint.tree_size})"
        )
    if witnessed.tree_size >= state.changes_through:
        report.ok(
            f"every leaf but the hub's own cosigning records is inside the witnessed tree "
            f"(changes up to leaf {state.changes_through - 1}, witnessed size "
            f"{witnessed.tree_size})"
        )
    else:
        unwitnessed = (
            f"leaves up to {state.changes_through - 1} hold changes no witness cosigned (the "
            f"witnessed tree has {witnessed.tree_size} leaves)"
        )
        oldest = oldest_change(client, checkpoint, witnessed.tree_size)
        age = (now - oldest[1]).total_seconds() if oldest else None
        if age is not None and age <= policy.grace_seconds:
            report.warn(
                f"{unwitnessed}; the oldest of them (leaf {oldest[0]}) is {age:.0f} s old, "
                "within the grace"
            )
        else:
            if oldest is not None:
                unwitnessed += f"; the oldest of them (leaf {oldest[0]}) is {age:.0f} s old"
            report.fail(unwitnessed)
            return None
    return witnessed if met and not result.problems else None


def oldest_change(
    client: HubClient, checkpoint: SignedCheckpoint, start: int
) -> tuple[int, datetime] | None:
    """The first leaf from ``start`` on that is not a ``checkpoint.cosigned`` record, and the
    time it logged (``occurred_at``), proven in ``checkpoint`` by an inclusion proof; None if
    its time cannot be read or proven (the caller then grants no grace)."""
    index = start
    while index < checkpoint.tree_size:
        page = client.json(
            "/entries", start=index, end=min(index + ENTRIES_PAGE, checkpoint.tree_size)
        )
        entries = page.get("entries") or []
        if not entries:
            return None
        for entry in entries:
            leaf = _b64(entry["leaf"])
            try:
                document = parse_canonical(leaf)
            except CanonicalError:
                return None
            if not isinstance(document, dict) or document.get("action") == COSIGNED:
                index = entry["leaf_index"] + 1
                continue
            proof = client.json(
                "/proof/inclusion", index=entry["leaf_index"], tree_size=checkpoint.tree_size
            )
            try:
                path = [_b64(item) for item in proof["inclusion_path"]]
                verify_inclusion(
                    entry["leaf_index"],
                    checkpoint.tree_size,
                    leaf_hash(leaf),
                    path,
                    checkpoint.root_hash,
                )
                moment = datetime.fromisoformat(str(document["occurred_at"]))
            except (ProofError, KeyError, ValueError):
                return None
            if moment.tzinfo is None:
                return None
            return entry["leaf_index"], moment
    return None


def cosign_as_auditor(
    state_dir: Path, checkpoint: SignedCheckpoint, key_file: Path, name: str, now: datetime
) -> str:
    """Act as a witness of one's own: cosign the checkpoint this run verified (consistent with
    every earlier one, which the run checked) and keep it in ``<state dir>/cosigned.jsonl``."""
    from cryptography.hazmat.primitives import serialization

    private_key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    text = checkpoint.note[: checkpoint.note.rfind("\n\n") + 1]
    line = cosign(text, private_key, name, int(now.timestamp()))
    record = {
        "tree_size": checkpoint.tree_size,
        "root_hash": base64.b64encode(checkpoint.root_hash).decode(),
        "witness": witness_vkey(private_key, name),
        "note": checkpoint.note + line,
    }
    with (state_dir / "cosigned.jsonl").open("a") as cosigned:
        cosigned.write(json.dumps(record, sort_keys=True) + "\n")
    return line


def check_freshness(
    client: HubClient,
    checkpoint: SignedCheckpoint,
    previous: SignedCheckpoint | None,
    report: Report,
    max_age: float | None,
    now: datetime,
) -> None:
    """Warn when the log does not advance: the sequencer refuses, or the latest checkpoint is
    older than ``max_age`` seconds while events wait to be sequenced."""
    signed_at = checkpoint.signed_at
    if signed_at is None:
        report.note("the checkpoint carries no signed time (concordat-signed-at line)")
    else:
        age = (now - signed_at).total_seconds()
        report.ok(f"checkpoint signed at {signed_at:%Y-%m-%dT%H:%M:%SZ} ({age:.0f} s ago)")
        if age < -FUTURE_SLACK_SECONDS:
            report.warn("the checkpoint's signed time is in the future: check the hub's clock")
        if (
            previous is not None
            and previous.signed_at is not None
            and previous.tree_size < checkpoint.tree_size
            and signed_at < previous.signed_at
        ):
            report.warn(
                f"the checkpoint was signed before the previous one "
                f"({previous.signed_at:%Y-%m-%dT%H:%M:%SZ}), though it is larger: the hub's "
                "clock went back"
            )
    try:
        status = client.json("/status")
    except HubError as exc:
        report.note(f"the hub does not report the log's status ({exc})")
        status = STATUS_UNKNOWN
    pending = status.get("unsequenced_events")
    sequencer = status.get("sequencer") or {}
    if sequencer.get("state") not in (None, "ok"):
        report.warn(
            f"the hub's sequencer refuses since {sequencer.get('since')} "
            f"({sequencer.get('refusals')} runs): {sequencer.get('reason')}"
        )
    if pending is not None:
        oldest = status.get("oldest_unsequenced_age_seconds")
        waiting = f"{pending} events wait to be sequenced" + (
            f", the oldest for {oldest:.0f} s" if oldest is not None else ""
        )
        report.note(f"the hub says {waiting}")
    if max_age is None:
        return
    if signed_at is None:
        if pending:
            report.warn("cannot tell the checkpoint's age (no signed time) while events wait")
        return
    age = (now - signed_at).total_seconds()
    if age > max_age and (pending is None or pending > 0):
        report.warn(
            f"the latest checkpoint is {age:.0f} s old, beyond --max-age {max_age:.0f} s, while "
            + ("events wait to be sequenced" if pending else "the hub does not say what waits")
            + ": the log is not advancing"
        )
    elif age > max_age:
        report.ok(f"the checkpoint is {age:.0f} s old but nothing waits to be sequenced")
    else:
        report.ok(f"the checkpoint is within --max-age ({age:.0f} s <= {max_age:.0f} s)")


def reconcile(client: HubClient, state: LogState, report: Report, month: str | None) -> None:
    """Compare the hub's figures at the verified checkpoint with those counted from the leaves."""
    size = state.checkpoint.tree_size
    params: dict[str, Any] = {"size": size}
    if month:
        params["month"] = month
    hub_figures = client.json("/figures", **params)
    ours = figures_for(state.figures, tree_size=size, month=month)
    differing = []
    for name, value in ours.items():
        if hub_figures.get(name) != value:
            differing.append(
                f"{name}: the hub says {hub_figures.get(name)}, the leaves say {value}"
            )
    what = f"checkpoint {size}" + (f", month {month}" if month else "")
    if differing:
        report.fail(f"the hub's figures at {what} differ from those counted from the leaves:")
        report.listing(differing)
    else:
        report.ok(
            f"reconciled at {what}: the hub's figures match the leaves ({ours['events']} events, "
            f"{ours['contributions_accepted']} accepted contributions)"
        )
    report.line("FIGURES " + json.dumps(ours, sort_keys=True))


# --- state ------------------------------------------------------------------------------------


STATE_FILE = "state.json"
HISTORY_FILE = "checkpoints.jsonl"
EVIDENCE_FILE = "evidence.json"


def default_state_dir(origin: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", origin)
    return Path(os.path.expanduser("~")) / ".concordat-verifier" / safe


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def load_state_dir(directory: Path, key: VerifierKey, report: Report) -> LogState | None:
    """The state an earlier run saved, re-verified: its checkpoint signed by the pinned key and
    its frontier giving that checkpoint's root. None (a first run) when there is none."""
    path = directory / STATE_FILE
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
        checkpoint = verify_checkpoint(saved["checkpoint"], key)
        frontier = Frontier(saved["tree_size"], [_b64(item) for item in saved["frontier"]])
        if frontier.size != checkpoint.tree_size or frontier.root() != checkpoint.root_hash:
            raise ValueError("its frontier does not give the saved checkpoint's root")
        if "peers" not in saved:
            # Saved before peers' keys were kept: foreign keys cannot be checked from it.
            report.note("the state predates checking key bindings: fetching every entry again")
            return LogState(checkpoint=checkpoint, frontier=Frontier(), keys={}, figures={})
        return LogState(
            checkpoint=checkpoint,
            frontier=frontier,
            keys=saved["keys"],
            peers=saved["peers"],
            figures=saved["figures"],
            # A state saved before witness policies: assume every leaf needed witnessing.
            changes_through=int(saved.get("changes_through", frontier.size)),
            recheck_next=int(saved.get("recheck_next", 0)),
        )
    except (ValueError, KeyError, TypeError, NoteError, binascii.Error) as exc:
        report.fail(f"the state in {path} cannot be used ({exc}); move it away to start afresh")
        return None


def load_history(directory: Path) -> list[dict]:
    path = directory / HISTORY_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def save_state_dir(directory: Path, hub: str, state: LogState, now: datetime) -> None:
    checkpoint = state.checkpoint
    directory.mkdir(parents=True, exist_ok=True)
    saved = {
        "version": 1,
        "hub": hub,
        "origin": checkpoint.origin,
        "tree_size": checkpoint.tree_size,
        "root_hash": base64.b64encode(checkpoint.root_hash).decode(),
        "checkpoint": checkpoint.note,
        "frontier": [base64.b64encode(node).decode() for node in state.frontier.stack],
        "keys": state.keys,
        "peers": state.peers,
        "figures": state.figures,
        "changes_through": state.changes_through,
        "recheck_next": state.recheck_next,
    }
    _write_atomically(directory / STATE_FILE, json.dumps(saved, indent=1, sort_keys=True) + "\n")
    history = load_history(directory)
    if history and history[-1]["checkpoint"] == checkpoint.note:
        return
    record = {
        "tree_size": checkpoint.tree_size,
        "root_hash": base64.b64encode(checkpoint.root_hash).decode(),
        "signed_at": f"{checkpoint.signed_at:%Y-%m-%dT%H:%M:%SZ}" if checkpoint.signed_at else None,
        "verified_at": f"{now:%Y-%m-%dT%H:%M:%SZ}",
        "hub": hub,
        "checkpoint": checkpoint.note,
    }
    with (directory / HISTORY_FILE).open("a") as history_file:
        history_file.write(json.dumps(record, sort_keys=True) + "\n")


def load_state_file(path: Path, key: VerifierKey, report: Report) -> SignedCheckpoint | None:
    """The single checkpoint of a legacy --state file."""
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        return verify_checkpoint(state["checkpoint"], key)
    except (ValueError, KeyError, TypeError, NoteError) as exc:
        report.fail(f"the state file {path} holds no checkpoint signed by the pinned key: {exc}")
        return None


def save_state_file(path: Path, hub: str, checkpoint: SignedCheckpoint) -> None:
    state = {
        "hub": hub,
        "origin": checkpoint.origin,
        "tree_size": checkpoint.tree_size,
        "root_hash": base64.b64encode(checkpoint.root_hash).decode(),
        "checkpoint": checkpoint.note,
    }
    _write_atomically(path, json.dumps(state, indent=2) + "\n")


def _shown(path: Path) -> str:
    """A path as the auditor gave it, relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def run(
    *,
    hub: str,
    vkey: str,
    token: str | None,
    out: TextIO,
    state_path: Path | None = None,
    state_dir: Path | None = None,
    full: bool = False,
    spot_checks: int = 8,
    recheck: int = 2000,
    max_age: float | None = None,
    reconcile_figures: bool = False,
    month: str | None = None,
    now: datetime | None = None,
    client: HubClient | None = None,
    witnesses: list[str] | None = None,
    threshold: int | None = None,
    witness_grace: float | None = None,
    cosign_key: Path | None = None,
    cosigner_name: str | None = None,
) -> int:
    """One verification run. ``state_path`` is the legacy single-checkpoint file (every run
    fetches everything); otherwise the state directory ``state_dir`` (default
    ~/.concordat-verifier/<origin>/) keeps the history and what incremental runs need."""
    report = Report(out)
    report.line(f"Concordat transparency log verifier: {hub}")
    try:
        key = parse_verifier_key(vkey)
    except NoteError as exc:
        report.line(f"ERROR the --key argument: {exc}")
        return 2
    if month is not None and not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", month):
        report.line("ERROR --month is YYYY-MM")
        return 2
    report.line(f"pinned key: {key.name} (key id {key.key_id.hex()})")
    policy = None
    if witnesses:
        try:
            policy = parse_policy(witnesses, threshold, witness_grace)
        except NoteError as exc:
            report.line(f"ERROR the witness policy: {exc}")
            return 2
        report.line(
            f"witness policy: {policy.threshold} of {len(policy.witnesses)} "
            f"({', '.join(w.name for w in policy.witnesses)})"
        )
    if cosign_key is not None and (state_path is not None or not cosigner_name):
        report.line("ERROR --cosign-key needs --cosigner-name and a state directory")
        return 2
    try:
        client = client or HubClient(hub, token)
        note = client.get("/checkpoint").decode("utf-8")
    except (HubError, UnicodeDecodeError) as exc:
        report.line(f"ERROR could not fetch the checkpoint: {exc}")
        return 2
    try:
        checkpoint = verify_checkpoint(note, key)
    except NoteError as exc:
        report.fail(f"checkpoint rejected: {exc}")
        report.line("RESULT: FAIL, state not updated")
        return 1
    report.ok(
        f"checkpoint signature verified: origin {checkpoint.origin}, tree size "
        f"{checkpoint.tree_size}, root {base64.b64encode(checkpoint.root_hash).decode()}"
    )
    if checkpoint.origin != key.name:
        report.fail(f"the checkpoint origin {checkpoint.origin!r} is not the key name")
    now = now or datetime.now(UTC)
    if state_path is None:
        state_dir = state_dir or default_state_dir(key.name)
        saved = load_state_dir(state_dir, key, report)
        previous = saved.checkpoint if saved else None
        report.note(f"state directory {_shown(state_dir)}")
    else:
        saved = None
        previous = load_state_file(state_path, key, report)
    start = LogState()
    if saved is not None and not full:
        start = saved
    new_state = None
    try:
        consistent = check_consistency(
            client, previous, checkpoint, report, state_dir if state_path is None else None
        )
        if saved is not None and full:
            report.note("--full: fetching every entry again")
        if consistent and start.frontier.size <= checkpoint.tree_size:
            new_state = check_entries(client, checkpoint, start, report, key)
        if new_state is not None and start.frontier.size and start.checkpoint is not None:
            recheck_old_leaves(client, checkpoint, new_state, start.frontier.size, recheck, report)
        check_inclusion(client, checkpoint, report, spot_checks)
        check_freshness(client, checkpoint, previous, report, max_age, now)
        if reconcile_figures and new_state is not None:
            reconcile(client, new_state, report, month)
        if policy is not None and new_state is not None:
            check_witness_policy(client, key, checkpoint, new_state, policy, report, now)
    except (HubError, KeyError, TypeError, ValueError, IndexError) as exc:
        report.fail(f"the hub's answer could not be checked: {exc}")
    if report.failures or new_state is None:
        report.line(f"RESULT: FAIL ({max(report.failures, 1)} problems); state not updated")
        return 1
    if state_path is not None:
        save_state_file(state_path, hub, checkpoint)
        where = f"checkpoint of size {checkpoint.tree_size} saved to {_shown(state_path)}"
    else:
        save_state_dir(state_dir, hub, new_state, now)
        where = f"checkpoint of size {checkpoint.tree_size} saved to {_shown(state_dir)}"
        if cosign_key is not None:
            line = cosign_as_auditor(state_dir, checkpoint, cosign_key, cosigner_name, now)
            report.ok(f"cosigned as {cosigner_name}: {line.rstrip()}")
    if report.warnings:
        report.line(f"RESULT: OK with {report.warnings} warnings; {where}")
        return 3
    report.line(f"RESULT: OK; {where}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hub", required=True, help="The hub's base URL, e.g. https://hub.example")
    parser.add_argument("--key", required=True, help="The hub's verifier key (pin it)")
    parser.add_argument("--token", default=None, help="An API token with the audit scope")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="State directory (default ~/.concordat-verifier/<origin>/)",
    )
    parser.add_argument(
        "--state", type=Path, default=None, help="Legacy: one-checkpoint state file, full runs"
    )
    parser.add_argument("--full", action="store_true", help="Fetch and check every entry again")
    parser.add_argument("--spot-checks", type=int, default=8, help="Random inclusion proofs")
    parser.add_argument(
        "--recheck",
        type=int,
        default=2000,
        help="Old leaves re-checked in full per incremental run, in rotation (0: none)",
    )
    parser.add_argument(
        "--max-age",
        type=float,
        default=None,
        help="Warn if the checkpoint is older than this many seconds while events wait",
    )
    parser.add_argument(
        "--reconcile", action="store_true", help="Compare the hub's figures with the leaves'"
    )
    parser.add_argument("--month", default=None, help="With --reconcile: one month, YYYY-MM")
    parser.add_argument(
        "--witness",
        action="append",
        default=[],
        help="A trusted witness's key (type 0x04 vkey); repeat for each",
    )
    parser.add_argument(
        "--threshold", type=int, default=None, help="Witnesses that must cosign (default: all)"
    )
    parser.add_argument(
        "--witness-grace",
        type=float,
        default=None,
        help="Seconds a new change may wait for cosignatures before it fails (default 300)",
    )
    parser.add_argument(
        "--cosign-key", type=Path, default=None, help="Cosign what verified, with this PEM key"
    )
    parser.add_argument("--cosigner-name", default=None, help="The name of that key")
    args = parser.parse_args(argv)
    return run(
        hub=args.hub,
        vkey=args.key,
        token=args.token,
        out=sys.stdout,
        state_path=args.state,
        state_dir=args.state_dir,
        full=args.full,
        spot_checks=args.spot_checks,
        recheck=args.recheck,
        max_age=args.max_age,
        reconcile_figures=args.reconcile,
        month=args.month,
        witnesses=args.witness,
        threshold=args.threshold,
        witness_grace=args.witness_grace,
        cosign_key=args.cosign_key,
        cosigner_name=args.cosigner_name,
    )


if __name__ == "__main__":
    sys.exit(main())
