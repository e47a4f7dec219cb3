"""The field checks every federation wire object shares (``wire`` and ``attestation_roots``
parse with them): each raises ``MalformedWireObject`` naming the field at fault, dotted."""

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from federation.canonical import canonical_json_bytes, canonical_json_part
from federation.signing import (
    MalformedContribution,
    MalformedSignedObject,
    decode_signature,
    verify_signature,
)

WIRE_VERSION = 1
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]{0,199}")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")


class MalformedWireObject(MalformedSignedObject):
    """A federation object is not well-formed; ``field`` names the offending field (dotted)."""


@dataclass(frozen=True, slots=True)
class SignedObject:
    """A hub-signed object: the document, its RFC 8785 bytes and the decoded signature."""

    document: dict[str, Any]
    canonical: bytes
    signature: bytes

    @property
    def hub(self) -> str:
        return self.document["hub"] if "hub" in self.document else self.document["from"]

    def verify(self, public_key: Ed25519PublicKey) -> bool:
        return verify_signature(public_key, self.signature, self.canonical)

    def as_wire(self) -> tuple[dict[str, Any], str]:
        return self.document, base64.b64encode(self.signature).decode()


def exact_fields(
    document: object,
    field: str,
    *,
    required: frozenset[str],
    optional: frozenset[str] = frozenset(),
) -> None:
    if not isinstance(document, dict):
        raise MalformedWireObject(field, "must be an object")
    if document.keys() == required:  # the usual case: nothing missing, nothing unknown
        return
    missing = required - document.keys()
    if missing:
        raise MalformedWireObject(f"{field}.{sorted(missing)[0]}", "this field is required")
    unknown = document.keys() - required - optional
    if unknown:
        name = ascii(sorted(str(key) for key in unknown)[0][:64])
        raise MalformedWireObject(field, f"unknown field {name}")


def check_kind(document: dict[str, Any], field: str, kind: str) -> None:
    if document["kind"] != kind:
        raise MalformedWireObject(f"{field}.kind", f"must be {kind!r}")
    if type(document["v"]) is not int or document["v"] != WIRE_VERSION:
        raise MalformedWireObject(f"{field}.v", f"must be the integer {WIRE_VERSION}")


def hub_id_field(document: dict[str, Any], name: str, field: str) -> str:
    value = document[name]
    if not isinstance(value, str) or not HUB_ID.fullmatch(value):
        raise MalformedWireObject(field, "must be a hub id")
    return value


def timestamp_field(document: dict[str, Any], name: str, field: str) -> datetime:
    value = document[name]
    if not isinstance(value, str) or not TIMESTAMP.fullmatch(value):
        raise MalformedWireObject(field, "must be a UTC timestamp like 2026-01-31T12:00:00Z")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise MalformedWireObject(field, "is not a valid date and time") from None


def signature_field(pair: dict[str, Any], field: str) -> bytes:
    try:
        return decode_signature(pair["signature"])
    except MalformedContribution as exc:
        raise MalformedWireObject(f"{field}.signature", exc.message) from None


def canonical_field(document: dict[str, Any], field: str, part: bool = False) -> bytes:
    if part:
        return canonical_json_part(document)
    try:
        return canonical_json_bytes(document)
    except (UnicodeEncodeError, ValueError, TypeError) as exc:
        raise MalformedWireObject(field, "cannot be canonicalised (RFC 8785)") from exc
