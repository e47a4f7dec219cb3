"""Member keys and signed objects (docs/signing.md): Ed25519 over RFC 8785 canonical bytes."""

import base64
import hashlib
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

CONTRIBUTION_KIND = "concordat.contribution"
KEY_REGISTRATION_KIND = "concordat.key"


def key_id(public_key: bytes) -> str:
    """Lowercase hex of the first 16 bytes of SHA-256 over the raw 32-byte public key."""
    return hashlib.sha256(public_key).hexdigest()[:32]


def public_bytes(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes_raw()


def timestamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign(private_key: Ed25519PrivateKey, document: dict[str, Any]) -> str:
    """Base64 of the Ed25519 signature over the document's RFC 8785 bytes."""
    return base64.b64encode(private_key.sign(rfc8785.dumps(document))).decode()


def write_new_key(path: Path) -> Ed25519PrivateKey:
    """A new Ed25519 key in an unencrypted PKCS#8 PEM file created with mode 0600 (refuses to
    overwrite an existing file)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return key


def load_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def key_registration(
    private_key: Ed25519PrivateKey, *, hub: str, member: str, label: str | None = None
) -> dict[str, Any]:
    """The proof-of-possession body for ``POST /api/v1/keys/`` (docs/signing.md §8)."""
    raw = public_bytes(private_key)
    document = {
        "kind": KEY_REGISTRATION_KIND,
        "v": 1,
        "hub": hub,
        "member": member,
        "key_id": key_id(raw),
        "public_key": base64.b64encode(raw).decode(),
        "created_at": timestamp(),
    }
    body: dict[str, Any] = {"registration": document, "signature": sign(private_key, document)}
    if label:
        body["label"] = label
    return body


def contribution(
    private_key: Ed25519PrivateKey,
    *,
    hub: str,
    member: str,
    action: str,
    signal: dict[str, Any],
    labels: list[str],
    scope: str = "federation",
    incident: str | None = None,
    item_uuid: str | None = None,
    created_at: str | None = None,
) -> dict[str, Any]:
    """A signed contribution ``{"contribution": ..., "signature": ...}`` (docs/signing.md).
    Passing the same ``item_uuid`` and ``created_at`` again gives the same bytes, which the hub
    answers as a duplicate: that is what makes a resent submission harmless."""
    document: dict[str, Any] = {
        "kind": CONTRIBUTION_KIND,
        "v": 1,
        "hub": hub,
        "member": member,
        "key_id": key_id(public_bytes(private_key)),
        "uuid": item_uuid or str(uuid.uuid4()),
        "created_at": created_at or timestamp(),
        "action": action,
        "signal": signal,
        "labels": labels,
        "scope": scope,
    }
    if incident is not None:
        document["incident"] = incident
    return {"contribution": document, "signature": sign(private_key, document)}
