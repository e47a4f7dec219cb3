"""A C2SP tlog-cosignature check written from the spec text alone, to check the hub's against."""

import base64
import hashlib


def independent_cosignature_check(line: str, note_text: str, vkey: str) -> int:
    """tlog-cosignature, from the spec text alone: key id = SHA-256(name || 0x0A || 0x04 ||
    key)[:4]; the line's blob is key id || u64 big-endian timestamp || Ed25519 signature over
    "cosignature/v1\\ntime <t>\\n" || note text. Returns the timestamp."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    name, key_id_hex, key_b64 = vkey.split("+", 2)
    material = base64.b64decode(key_b64)
    assert material[0] == 0x04 and len(material) == 33
    assert hashlib.sha256(name.encode() + b"\n" + material).digest()[:4].hex() == key_id_hex
    assert line.startswith("\u2014 ") and line.endswith("\n")
    line_name, blob_b64 = line[2:-1].split(" ")
    assert line_name == name
    blob = base64.b64decode(blob_b64)
    assert len(blob) == 4 + 8 + 64 and blob[:4].hex() == key_id_hex
    timestamp = int.from_bytes(blob[4:12], "big")
    message = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + note_text.encode()
    Ed25519PublicKey.from_public_bytes(material[1:]).verify(blob[12:], message)
    return timestamp
