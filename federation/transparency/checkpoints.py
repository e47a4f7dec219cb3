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
import hashlib
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
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
