"""The federation wire format: the hub-signed objects that travel between hubs, and their checks.

docs/federation.md ("Wire format") is the specification; this module is its reference. Every
hub-signed object is a JSON object whose ``kind`` and ``v`` fields separate it from every other
kind of object Concordat signs; its signature is Ed25519, by the naming hub's key, over the
object's RFC 8785 bytes, in padded standard base64.

- ``concordat.key-binding``: a member's home hub vouches that ``key_id`` (registered with the
  member's own proof of possession, whose SHA-256 it names) belongs to the member, from
  ``not_before``, until ``revoked_at`` if set. A revocation is a newer binding with ``revoked_at``.
- ``concordat.attestation``: a hub's decision about an entry (its state, when and by which policy).
- an **item** (unsigned by itself; it travels inside a batch): a contribution with the member's
  signature, the key section (registration + binding), the attestations gathered on its way, the
  hop path and ``sent_to`` (the other hubs it was sent to, which the receiver does not push it
  to); or an entry's new state alone (``entry``); or a key binding alone (``key``).
- ``concordat.batch``: a sending hub's signed envelope of items for one receiving hub.

The parsers here check structure and bounds only, and raise ``MalformedWireObject`` naming the
field at fault. Whose key must have signed what, and everything that needs the database, is the
receiving service's (``federation.receiving.receive``).
"""

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.canonical import canonical_json_bytes, canonical_json_decoded, canonical_json_part
from federation.propagation import attestation_roots as roots
from federation.propagation.attestation_roots import RootedAttestation
from federation.propagation.wire_fields import (
    HUB_ID,
    WIRE_VERSION,
    MalformedWireObject,
    SignedObject,
    canonical_field,
    check_kind,
    exact_fields,
    hub_id_field,
    signature_field,
    timestamp_field,
)
from federation.signing import format_timestamp, sign_bytes

KEY_BINDING_KIND = "concordat.key-binding"
ATTESTATION_KIND = "concordat.attestation"
BATCH_KIND = "concordat.batch"

ITEM_CONTRIBUTION = "contribution"
ITEM_ENTRY = "entry"
ITEM_KEY = "key"
ITEM_TYPES = frozenset({ITEM_CONTRIBUTION, ITEM_ENTRY, ITEM_KEY})

# States an attestation may name: the shared set's (vetted, disputed) and the ways out of it.
ATTESTED_STATES = frozenset({"vetted", "disputed", "rejected", "retracted"})

MAX_BATCH_ITEMS = 500
MAX_PATH = 16  # a structural bound; the hop limit (settings.FEDERATION_HOP_LIMIT) is lower
MAX_ATTESTATIONS = MAX_PATH
MAX_SENT_TO = 64
MAX_POLICY_LENGTH = 200

_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{32}")
_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,64}")

# The fields of each object, built once: the parsers run per item of every batch received.
_NONE: frozenset[str] = frozenset()
_BATCH_FIELDS = frozenset({"kind", "v", "from", "to", "id", "sent_at", "items"})
_BATCH_OPTIONAL = frozenset({"feed"})
_ITEM_FIELDS = {
    ITEM_CONTRIBUTION: frozenset({"type", "contribution", "signature", "key", "attestations", "path"}),
    ITEM_ENTRY: frozenset({"type", "attestations", "path"}),
    ITEM_KEY: frozenset({"type", "key", "path"}),
}  # fmt: skip
_ITEM_OPTIONAL = {ITEM_CONTRIBUTION: frozenset({"sent_to"}), ITEM_ENTRY: _NONE, ITEM_KEY: _NONE}
_ATTESTATION_FIELDS = frozenset(
    {"kind", "v", "hub", "signal", "state", "decided_at", "policy", "attested_at"}
)
_BINDING_FIELDS = frozenset(
    {"kind", "v", "hub", "member", "key_id", "registration_sha256", "not_before", "revoked_at",
     "issued_at"}
)  # fmt: skip
_SIGNAL_FIELDS = frozenset({"type", "value"})
_SIGNED_PAIRS = {
    name: frozenset({name, "signature"}) for name in ("batch", "attestation", "binding")
}


@dataclass(frozen=True, slots=True)
class ParsedItem:
    """One item of a batch, well-formed; what its objects say is not yet checked."""

    index: int
    type: str
    raw: dict[str, Any]
    digest: str  # SHA-256 hex of the item's RFC 8785 bytes: its identity in audit events
    path: tuple[str, ...]
    contribution: dict[str, Any] | None  # {"contribution": {...}, "signature": "..."} as sent
    registration: dict[str, Any] | None  # {"registration": {...}, "signature": "..."} as sent
    binding: SignedObject | None
    attestations: tuple[SignedObject | RootedAttestation, ...]
    # Hubs off the path that a hub on it also sent the item to (contribution items; empty if
    # absent): the receiver does not push it on to them.
    sent_to: tuple[str, ...] = ()
    # SHA-256 hex of the key section's RFC 8785 bytes (items with one): the receiver checks
    # each distinct section once per batch.
    key_digest: str | None = None


@dataclass(frozen=True, slots=True)
class ItemProblem:
    """An item that is not well-formed, reported alone (the rest of the batch goes on)."""

    index: int
    digest: str | None
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    envelope: SignedObject
    sender: str
    receiver: str
    batch_id: uuid.UUID
    sent_at: datetime
    items: tuple[ParsedItem, ...]
    problems: tuple[ItemProblem, ...]
    feed: dict[str, Any] | None


# --- Signing ------------------------------------------------------------------------------------


def sign_document(private_key: Ed25519PrivateKey, document: dict[str, Any]) -> SignedObject:
    return sign_canonical(private_key, document, canonical_json_bytes(document))


def sign_canonical(
    private_key: Ed25519PrivateKey, document: dict[str, Any], canonical: bytes
) -> SignedObject:
    """``document`` signed over ``canonical``, its RFC 8785 bytes (already known)."""
    return SignedObject(document, canonical, sign_bytes(private_key, canonical))


_EMPTY_ITEMS = b'"items":[]'


def batch_canonical(document: dict[str, Any], items: list[bytes]) -> bytes:
    """The RFC 8785 bytes of a batch document whose items' own RFC 8785 bytes are ``items``
    (in order; the document's own ``items`` are not read): the envelope's bytes with the items'
    spliced in, so that a sender that already wrote each item (for its digest) does not walk and
    write them all again. The same bytes as ``canonical_json_bytes`` of the document with those
    items: JCS writes an array as its elements' bytes joined by commas, and no other envelope
    field can hold the text ``"items":[]`` (hub ids, a UUID, a timestamp and the feed's integers
    hold no quote)."""
    head = canonical_json_bytes({**document, "items": []})
    if head.count(_EMPTY_ITEMS) != 1:  # cannot happen for a well-formed envelope; stay exact
        return canonical_json_bytes({**document, "items": [orjson.loads(i) for i in items]})
    return head.replace(_EMPTY_ITEMS, b'"items":[' + b",".join(items) + b"]")


def item_digest(item: dict[str, Any], *, part: bool = False) -> str:
    """``part``: ``item`` is part of a value that took the fast path (``canonical_json_part``)."""
    return digest_of(canonical_json_part(item) if part else canonical_json_bytes(item))


def digest_of(canonical: bytes) -> str:
    """An item's digest from its RFC 8785 bytes."""
    return hashlib.sha256(canonical).hexdigest()


def key_binding_document(
    *,
    hub: str,
    member: str,
    key_id: str,
    registration: bytes,
    not_before: datetime,
    revoked_at: datetime | None,
    issued_at: datetime,
) -> dict[str, Any]:
    return {
        "kind": KEY_BINDING_KIND,
        "v": WIRE_VERSION,
        "hub": hub,
        "member": member,
        "key_id": key_id,
        "registration_sha256": hashlib.sha256(registration).hexdigest(),
        "not_before": format_timestamp(not_before),
        "revoked_at": format_timestamp(revoked_at) if revoked_at is not None else None,
        "issued_at": format_timestamp(issued_at),
    }


def attestation_document(
    *,
    hub: str,
    signal_type: str,
    value: str,
    state: str,
    decided_at: datetime | str,
    policy: str,
    attested_at: datetime | str,
) -> dict[str, Any]:
    """``decided_at`` and ``attested_at`` as datetimes, or as their text already (a round's
    attestations share one ``attested_at``; a sender reads ``decided_at`` written)."""
    return {
        "kind": ATTESTATION_KIND,
        "v": WIRE_VERSION,
        "hub": hub,
        "signal": {"type": signal_type, "value": value},
        "state": state,
        "decided_at": decided_at if isinstance(decided_at, str) else format_timestamp(decided_at),
        "policy": policy[:MAX_POLICY_LENGTH],
        "attested_at": attested_at
        if isinstance(attested_at, str)
        else format_timestamp(attested_at),
    }


def attestation_canonical(document: dict[str, Any]) -> bytes:
    """The RFC 8785 bytes of a document from ``attestation_document``: text, the integer ``v``
    and the signal's two texts under fixed ASCII names are always within the domain where
    orjson writes JCS (``federation.canonical``), so the document is not walked first; text
    orjson cannot write (a lone surrogate) goes to the reference, as it would have."""
    try:
        return canonical_json_part(document)
    except orjson.JSONEncodeError:
        return canonical_json_bytes(document)


def batch_document(
    *,
    sender: str,
    receiver: str,
    batch_id: uuid.UUID,
    sent_at: datetime,
    items: list[dict[str, Any]],
    feed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    document = {
        "kind": BATCH_KIND,
        "v": WIRE_VERSION,
        "from": sender,
        "to": receiver,
        "id": str(batch_id),
        "sent_at": format_timestamp(sent_at),
        "items": items,
    }
    if feed is not None:
        document["feed"] = feed
    return document


def signed_pair(signed: SignedObject, *, name: str) -> dict[str, str | dict[str, Any]]:
    """``{name: document, "signature": base64}``: how a signed object sits inside an item."""
    document, signature = signed.as_wire()
    return {name: document, "signature": signature}


# --- Parsing ------------------------------------------------------------------------------------


def parse_batch(body: object) -> ParsedBatch:
    """Check a ``{"batch": {...}, "signature": "..."}`` body, as ``orjson.loads`` returned it (a
    pushed request's body, a pulled page: ``canonical_json_decoded``). Envelope faults raise
    ``MalformedWireObject``; a malformed item becomes an ``ItemProblem`` and the others parse."""
    if not isinstance(body, dict) or body.keys() != _SIGNED_PAIRS["batch"]:
        raise MalformedWireObject("body", "must be an object with exactly batch and signature")
    document = body["batch"]
    exact_fields(document, "batch", required=_BATCH_FIELDS, optional=_BATCH_OPTIONAL)
    check_kind(document, "batch", BATCH_KIND)
    sender = hub_id_field(document, "from", "batch.from")
    receiver = hub_id_field(document, "to", "batch.to")
    try:
        batch_id = uuid.UUID(document["id"]) if isinstance(document["id"], str) else None
    except ValueError:
        batch_id = None
    if batch_id is None or str(batch_id) != document["id"]:
        raise MalformedWireObject("batch.id", "must be a lowercase hyphenated UUID")
    sent_at = timestamp_field(document, "sent_at", "batch.sent_at")
    items = document["items"]
    if not isinstance(items, list) or len(items) > MAX_BATCH_ITEMS:
        raise MalformedWireObject("batch.items", f"must be a list of at most {MAX_BATCH_ITEMS}")
    feed = document.get("feed")
    if feed is not None and not isinstance(feed, dict):
        raise MalformedWireObject("batch.feed", "must be an object")
    # The envelope's bytes, and whether every part of it can be written without another walk
    # (the items, their attestations and key sections: each was canonicalised once per object).
    canonical = canonical_json_decoded(document)
    part = canonical is not None
    if canonical is None:
        canonical = canonical_field(document, "batch")
    envelope = SignedObject(document, canonical, signature_field(body, "signature"))
    parsed: list[ParsedItem] = []
    problems: list[ItemProblem] = []
    key_sections: dict[bytes, _ParsedKeySection] | None = {} if part else None
    for index, item in enumerate(items):
        try:
            parsed.append(parse_item(item, index=index, part=part, key_sections=key_sections))
        except MalformedWireObject as exc:
            digest = _safe_digest(item)
            problems.append(ItemProblem(index, digest, f"items[{index}].{exc.field}", exc.message))
    return ParsedBatch(
        envelope, sender, receiver, batch_id, sent_at, tuple(parsed), tuple(problems), feed
    )


def parse_item(
    item: object,
    *,
    index: int,
    part: bool = False,
    key_sections: dict[bytes, "_ParsedKeySection"] | None = None,
) -> ParsedItem:
    """``part``: the item is part of a batch whose canonical bytes took the fast path.
    ``key_sections`` (with ``part``): the key sections parsed so far in the batch, by their
    RFC 8785 bytes; most items of a batch carry one of a few, each parsed once."""
    if not isinstance(item, dict):
        raise MalformedWireObject("item", "must be an object")
    kind = item.get("type")
    if not isinstance(kind, str) or kind not in ITEM_TYPES:  # a list or object is unhashable
        raise MalformedWireObject("type", f"must be one of {sorted(ITEM_TYPES)}")
    exact_fields(item, "item", required=_ITEM_FIELDS[kind], optional=_ITEM_OPTIONAL[kind])
    path = item["path"]
    if (
        not isinstance(path, list)
        or not 1 <= len(path) <= MAX_PATH
        or not all(isinstance(hub, str) and HUB_ID.fullmatch(hub) for hub in path)
        or len(set(path)) != len(path)
    ):
        raise MalformedWireObject(
            "path", f"must list 1 to {MAX_PATH} distinct hub ids, origin first, sender last"
        )
    sent_to = item.get("sent_to", [])
    if (
        not isinstance(sent_to, list)
        or len(sent_to) > MAX_SENT_TO
        or not all(isinstance(hub, str) and HUB_ID.fullmatch(hub) for hub in sent_to)
        or len(set(sent_to)) != len(sent_to)
        or set(sent_to) & set(path)
    ):
        raise MalformedWireObject(
            "sent_to", f"must list at most {MAX_SENT_TO} distinct hub ids, none of them on the path"
        )
    contribution = None
    if kind == ITEM_CONTRIBUTION:
        if not isinstance(item["contribution"], dict):
            raise MalformedWireObject("contribution", "must be an object")
        contribution = {"contribution": item["contribution"], "signature": item["signature"]}
    registration = binding = key_digest = None
    if "key" in item and key_sections is not None:
        registration, binding, key_digest = _key_section_once(item["key"], key_sections)
    elif "key" in item:
        registration, binding = _key_section(item["key"], part=part)
        key_digest = item_digest(item["key"], part=part)
    attestations: tuple[SignedObject | RootedAttestation, ...] = ()
    if "attestations" in item:
        raw = item["attestations"]
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_ATTESTATIONS:
            raise MalformedWireObject(
                "attestations", f"must list 1 to {MAX_ATTESTATIONS} signed attestations"
            )
        attestations = tuple(
            parse_attestation(entry, field=f"attestations[{position}]", part=part)
            for position, entry in enumerate(raw)
        )
    return ParsedItem(
        index=index,
        type=kind,
        raw=item,
        digest=item_digest(item, part=part),
        path=tuple(path),
        contribution=contribution,
        registration=registration,
        binding=binding,
        attestations=attestations,
        sent_to=tuple(sent_to),
        key_digest=key_digest,
    )


def parse_attestation(
    pair: object, *, field: str = "attestation", part: bool = False
) -> SignedObject | RootedAttestation:
    """Either form of an attestation pair: signed alone (``{"attestation", "signature"}``) or
    under a root (``{"attestation", "index", "proof", "root_signature", "size"}``)."""
    if isinstance(pair, dict) and pair.keys() == roots.ROOTED_FIELDS:
        attestation_fields(pair["attestation"], field)
        return roots.parse_rooted(pair, pair["attestation"], field, part=part)
    if not isinstance(pair, dict) or pair.keys() != _SIGNED_PAIRS["attestation"]:
        raise MalformedWireObject(field, "must be {attestation, signature} or a rooted pair")
    document = pair["attestation"]
    attestation_fields(document, field)
    return SignedObject(
        document, canonical_field(document, field, part), signature_field(pair, field)
    )


def attestation_fields(document: object, field: str) -> None:
    """Check a ``concordat.attestation`` document, whichever form of pair carries it."""
    exact_fields(document, field, required=_ATTESTATION_FIELDS)
    check_kind(document, field, ATTESTATION_KIND)
    hub_id_field(document, "hub", f"{field}.hub")
    signal = document["signal"]
    if (
        not isinstance(signal, dict)
        or signal.keys() != _SIGNAL_FIELDS
        or not all(isinstance(part, str) for part in signal.values())
    ):
        raise MalformedWireObject(f"{field}.signal", "must be {type, value} strings")
    if not isinstance(document["state"], str) or document["state"] not in ATTESTED_STATES:
        raise MalformedWireObject(f"{field}.state", f"must be one of {sorted(ATTESTED_STATES)}")
    timestamp_field(document, "decided_at", f"{field}.decided_at")
    timestamp_field(document, "attested_at", f"{field}.attested_at")
    policy = document["policy"]
    if not isinstance(policy, str) or len(policy) > MAX_POLICY_LENGTH:
        raise MalformedWireObject(f"{field}.policy", f"must be text of at most {MAX_POLICY_LENGTH}")


def parse_key_binding(
    pair: object, *, field: str = "key.binding", part: bool = False
) -> SignedObject:
    if not isinstance(pair, dict) or pair.keys() != _SIGNED_PAIRS["binding"]:
        raise MalformedWireObject(field, "must be an object with exactly binding and signature")
    document = pair["binding"]
    exact_fields(document, field, required=_BINDING_FIELDS)
    check_kind(document, field, KEY_BINDING_KIND)
    hub_id_field(document, "hub", f"{field}.hub")
    if not isinstance(document["member"], str) or not _SLUG.fullmatch(document["member"]):
        raise MalformedWireObject(f"{field}.member", "must be the member's slug")
    if not isinstance(document["key_id"], str) or not _KEY_ID.fullmatch(document["key_id"]):
        raise MalformedWireObject(f"{field}.key_id", "must be 32 lowercase hex characters")
    digest = document["registration_sha256"]
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise MalformedWireObject(f"{field}.registration_sha256", "must be 64 lowercase hex")
    timestamp_field(document, "not_before", f"{field}.not_before")
    timestamp_field(document, "issued_at", f"{field}.issued_at")
    if document["revoked_at"] is not None:
        timestamp_field(document, "revoked_at", f"{field}.revoked_at")
    return SignedObject(
        document, canonical_field(document, field, part), signature_field(pair, field)
    )


# A parsed key section: the registration pair, the binding, the section's digest.
_ParsedKeySection = tuple[dict[str, Any], SignedObject, str]


def _key_section_once(section: object, known: dict[bytes, _ParsedKeySection]) -> _ParsedKeySection:
    """``_key_section`` of a section of a batch that took the fast path, parsed once per batch
    for each distinct section: two sections with the same RFC 8785 bytes are the same JSON value,
    so they parse alike (a malformed one raises each time: it is never kept)."""
    canonical = canonical_json_part(section)
    parsed = known.get(canonical)
    if parsed is None:
        registration, binding = _key_section(section, part=True)
        parsed = known[canonical] = (registration, binding, digest_of(canonical))
    return parsed


def _key_section(section: object, *, part: bool = False) -> tuple[dict[str, Any], SignedObject]:
    """``{"registration": {...}, "signature": "...", "binding": {...}, "binding_signature": "..."}``:
    the member's own registration (checked by ``federation.signing.parse_key_registration``
    later) and its home hub's binding."""
    if not isinstance(section, dict) or section.keys() != {
        "registration",
        "signature",
        "binding",
        "binding_signature",
    }:
        raise MalformedWireObject(
            "key", "must be an object with registration, signature, binding, binding_signature"
        )
    if not isinstance(section["registration"], dict):
        raise MalformedWireObject("key.registration", "must be an object")
    registration = {"registration": section["registration"], "signature": section["signature"]}
    binding = parse_key_binding(
        {"binding": section["binding"], "signature": section["binding_signature"]}, part=part
    )
    return registration, binding


# --- Field helpers ------------------------------------------------------------------------------


def _safe_digest(item: object) -> str | None:
    try:
        return item_digest(item)
    except (UnicodeEncodeError, ValueError, TypeError):
        return None
