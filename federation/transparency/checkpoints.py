"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, signed with the hub key.

A checkpoint note (docs/transparency.md has a worked example)::

    <origin>\\n<tree size>\\n<base64 root hash>\\n
    concordat-signed-at <YYYY-MM-DDTHH:MM:SSZ>\\n
    \\n
    — <key name> <base64(4-byte key id || 64-byte Ed25519 signature)>\\n

The origin and the key name are both ``settings.HUB_ID``. The key id is the first four bytes of
SHA-256(key name || 0x0A || 0x01 || 32-byte public key), and the verifier key an auditor pins is
``<key name>+<8 hex digits of the key id>+<base64(0x01 || public key)>``.

The fourth line is a C2SP tlog-checkpoint *extension line*: the time the hub signed the
checkpoint, under the same signature. Verifiers that do not know it ignore it, as the spec
requires; ours reads it to tell a stale log (docs/transparency.md, "Staleness").
"""

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from federation.hubkey import hub_private_key, hub_public_key_bytes

ED25519_SIGNATURE_TYPE = b"\x01"
SIGNED_AT_PREFIX = "concordat-signed-at "
SIGNATURE_LINE_PREFIX = "\u2014 "  # em dash, space


def key_id(name: str, public_key: bytes) -> bytes:
    """The C2SP signed-note key id of an Ed25519 key (4 bytes, big-endian uint32)."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519_SIGNATURE_TYPE + public_key).digest()[:4]


def verifier_key(name: str, public_key: bytes) -> str:
    encoded = base64.b64encode(ED25519_SIGNATURE_TYPE + public_key).decode()
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


def check_key_name(name: str) -> str:
    if not name or "+" in name or any(character.isspace() for character in name):
        raise ValueError(f"{name!r} cannot name a signed-note key (empty, spaces or '+')")
    return name


def format_signed_at(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def checkpoint_body(
    *, origin: str, tree_size: int, root_hash: bytes, signed_at: datetime | None = None
) -> str:
    if "\n" in origin or not origin:
        raise ValueError("a checkpoint origin is one non-empty line")
    if len(root_hash) != 32:
        raise ValueError("a root hash is 32 bytes")
    body = f"{origin}\n{tree_size}\n{base64.b64encode(root_hash).decode()}\n"
    if signed_at is not None:
        body += f"{SIGNED_AT_PREFIX}{format_signed_at(signed_at)}\n"
    return body


class CheckpointError(ValueError):
    """A malformed checkpoint, log key or signed note, or a log signature that does not verify."""


@dataclass(frozen=True)
class LogKey:
    """Another log's signed-note verifier key (type 0x01), as a witness pins it."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey


def parse_log_key(vkey: str) -> LogKey:
    """``<name>+<8 hex digits of key id>+<base64(0x01 || public key)>``."""
    parts = vkey.strip().split("+", 2)  # base64 may itself hold a '+'
    if len(parts) != 3:
        raise CheckpointError("a verifier key is <name>+<key id hex>+<base64 key>")
    name, key_id_hex, encoded = parts
    try:
        check_key_name(name)
        claimed = bytes.fromhex(key_id_hex)
        raw = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise CheckpointError(f"malformed verifier key: {exc}") from exc
    if len(raw) != 33 or raw[:1] != ED25519_SIGNATURE_TYPE:
        raise CheckpointError("the verifier key is not an Ed25519 (type 0x01) key")
    if key_id(name, raw[1:]) != claimed:
        raise CheckpointError("the verifier key's id does not match its name and public key")
    return LogKey(name, claimed, Ed25519PublicKey.from_public_bytes(raw[1:]))


def verify_log_note(note: str, key: LogKey) -> str:
    """The text of a C2SP signed note once the signature by ``key`` verifies; other keys' lines
    are skipped (signed-note), a failing line of ``key``'s is an error."""
    if not note.endswith("\n") or any(ord(c) < 0x20 and c != "\n" for c in note):
        raise CheckpointError("a signed note ends in a newline and has no control characters")
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointError("the note has no signature block")
    text, block = note[: split + 1], note[split + 2 : -1]
    verified = False
    for line in block.split("\n"):
        if not line.startswith(SIGNATURE_LINE_PREFIX):
            raise CheckpointError("every signature line starts with an em dash")
        name, _, encoded = line[len(SIGNATURE_LINE_PREFIX) :].rpartition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise CheckpointError("a signature is not base64") from exc
        if name != key.name or blob[:4] != key.key_id:
            continue
        try:
            key.public_key.verify(blob[4:], text.encode())
        except InvalidSignature as exc:
            raise CheckpointError(f"the signature by {key.name} does not verify") from exc
        verified = True
    if not verified:
        raise CheckpointError(f"the note carries no signature by {key.name}")
    return text


def parse_checkpoint_body(text: str) -> tuple[str, int, bytes]:
    """The origin, tree size and root hash of checkpoint note text (the body before the blank
    line; extension lines after the third are allowed and ignored, as C2SP requires)."""
    lines = text.split("\n")
    if lines[-1] != "" or len(lines) < 4 or not all(lines[:-1]):
        raise CheckpointError("a checkpoint is at least three non-empty lines, each ended")
    origin, size_text, root_text = lines[:3]
    if not re.fullmatch(r"0|[1-9][0-9]{0,19}", size_text):
        raise CheckpointError(f"malformed tree size {size_text!r}")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise CheckpointError("the root hash is not base64") from exc
    if len(root) != 32:
        raise CheckpointError("the root hash is not 32 bytes")
    return origin, int(size_text), root


def sign_note(body: str, *, name: str, private_key: Ed25519PrivateKey) -> str:
    """A signed note: the body, a blank line, and one Ed25519 signature line."""
    if not body.endswith("\n") or "\n\n" in body:
        raise ValueError("a note body ends in a newline and has no blank line")
    public_key = private_key.public_key().public_bytes_raw()
    signature = private_key.sign(body.encode())
    encoded = base64.b64encode(key_id(name, public_key) + signature).decode()
    return f"{body}\n{SIGNATURE_LINE_PREFIX}{check_key_name(name)} {encoded}\n"


def hub_key_name() -> str:
    return check_key_name(settings.HUB_ID)


def hub_verifier_key() -> str:
    """What auditors pin: served at GET /api/v1/log/key and given to them out of band."""
    return verifier_key(hub_key_name(), hub_public_key_bytes())


def sign_checkpoint(*, tree_size: int, root_hash: bytes, signed_at: datetime) -> str:
    """The hub's signed checkpoint note for a tree, stamped with ``signed_at`` (whole seconds).
    Only the sequencer calls this, after checking that the tree is consistent with every
    checkpoint signed before."""
    body = checkpoint_body(
        origin=settings.HUB_ID, tree_size=tree_size, root_hash=root_hash, signed_at=signed_at
    )
    return sign_note(body, name=hub_key_name(), private_key=hub_private_key())
