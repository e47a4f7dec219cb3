"""C2SP tlog-cosignature (Ed25519, signature type 0x04): what a witness signs over another log's
checkpoint, and how its signature lines are made and checked (docs/transparency.md, "Witnesses").

A cosignature is a signed-note signature line ``— <witness name> base64(key id || timestamp ||
signature)``: the key id is the first four bytes of SHA-256(name || 0x0A || 0x04 || public key),
the timestamp is a big-endian u64 (POSIX seconds), and the Ed25519 signature covers::

    cosignature/v1\\n
    time <timestamp>\\n
    <the checkpoint's note text, every line including extension lines>

The ``cosignature/v1`` header separates a cosignature from any other use of the key; the type
byte 0x04 gives it another key id than a log key (0x01) even were the key material the same.
"""

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from federation.hubkey import witness_private_key, witness_public_key_bytes
from federation.transparency.checkpoints import SIGNATURE_LINE_PREFIX, check_key_name

COSIGNATURE_TYPE = b"\x04"
COSIGNATURE_HEADER = "cosignature/v1\n"
# A POSIX timestamp must fit in a signed 64-bit integer (the spec's bound).
MAX_TIMESTAMP = 2**63 - 1
# A witness answers a request whose old size is not its own with 409 and its size in this type.
SIZE_CONTENT_TYPE = "text/x.tlog.size"


class CosignatureError(ValueError):
    """A cosignature line or witness key that is malformed or does not verify."""


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + COSIGNATURE_TYPE + public_key).digest()[:4]


def cosigner_verifier_key(name: str, public_key: bytes) -> str:
    """The witness's vkey: ``<name>+<hex key id>+base64(0x04 || public key)``."""
    encoded = base64.b64encode(COSIGNATURE_TYPE + public_key).decode()
    return f"{check_key_name(name)}+{cosigner_key_id(name, public_key).hex()}+{encoded}"


def witness_verifier_key() -> str:
    """This hub's witness key, as the hubs it witnesses and their auditors pin it."""
    return cosigner_verifier_key(settings.WITNESS_NAME, witness_public_key_bytes())


def cosigned_message(note_text: str, timestamp: int) -> bytes:
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{note_text}".encode()


def cosign(note_text: str, *, timestamp: int, name: str, private_key: Ed25519PrivateKey) -> str:
    """The signature line (ending in a newline) of a cosignature over ``note_text``."""
    if not 0 < timestamp <= MAX_TIMESTAMP:
        raise CosignatureError("a cosignature's timestamp is a positive 63-bit integer")
    public_key = private_key.public_key().public_bytes_raw()
    signature = private_key.sign(cosigned_message(note_text, timestamp))
    blob = cosigner_key_id(name, public_key) + timestamp.to_bytes(8, "big") + signature
    return f"{SIGNATURE_LINE_PREFIX}{check_key_name(name)} {base64.b64encode(blob).decode()}\n"


def hub_cosign(note_text: str, *, timestamp: int) -> str:
    return cosign(
        note_text,
        timestamp=timestamp,
        name=settings.WITNESS_NAME,
        private_key=witness_private_key(),
    )


@dataclass(frozen=True)
class CosignerKey:
    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @property
    def raw(self) -> bytes:
        return self.public_key.public_bytes_raw()


def parse_cosigner_key(vkey: str) -> CosignerKey:
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise CosignatureError("a witness key is <name>+<key id hex>+<base64 key>")
    name, key_id_hex, encoded = parts
    try:
        key_id = bytes.fromhex(key_id_hex)
        raw = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise CosignatureError(f"malformed witness key: {exc}") from exc
    try:
        check_key_name(name)
    except ValueError as exc:
        raise CosignatureError(str(exc)) from exc
    if len(raw) != 33 or raw[:1] != COSIGNATURE_TYPE:
        raise CosignatureError("a witness key is a timestamped Ed25519 (type 0x04) key")
    if len(key_id) != 4 or cosigner_key_id(name, raw[1:]) != key_id:
        raise CosignatureError("the witness key's id does not match its name and public key")
    return CosignerKey(name, key_id, Ed25519PublicKey.from_public_bytes(raw[1:]))


@dataclass(frozen=True)
class Cosigned:
    line: str  # the signature line, with its final newline
    timestamp: int


def signature_lines(text: str) -> list[str]:
    """The signature lines of a response body or signature block (each with its newline)."""
    if not text.endswith("\n"):
        raise CosignatureError("signature lines end in a newline")
    lines = text[:-1].split("\n")
    if not all(line.startswith(SIGNATURE_LINE_PREFIX) for line in lines):
        raise CosignatureError("every line of a signature block starts with an em dash")
    return [line + "\n" for line in lines]


def find_cosignature(lines: list[str], note_text: str, key: CosignerKey) -> Cosigned | None:
    """The cosignature by ``key`` among ``lines`` over ``note_text``, verified; None when no line
    has its name and key id (lines of other keys are ignored, as signed-note requires). A line
    with its name and key id that fails to verify is an error."""
    for line in lines:
        name, _, encoded = line[len(SIGNATURE_LINE_PREFIX) : -1].rpartition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise CosignatureError("a signature is not base64") from exc
        if name != key.name or blob[:4] != key.key_id:
            continue
        if len(blob) != 4 + 8 + 64:
            raise CosignatureError(f"the cosignature by {key.name} is not 76 bytes")
        timestamp = int.from_bytes(blob[4:12], "big")
        if not 0 < timestamp <= MAX_TIMESTAMP:
            raise CosignatureError(f"the cosignature by {key.name} has no valid timestamp")
        try:
            key.public_key.verify(blob[12:], cosigned_message(note_text, timestamp))
        except InvalidSignature as exc:
            raise CosignatureError(f"the cosignature by {key.name} does not verify") from exc
        return Cosigned(line=line, timestamp=timestamp)
    return None
