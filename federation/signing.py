"""The signed formats members use: contributions and key registrations (proof of possession) —
the exact bytes a member signs, and their verification.

docs/signing.md is the specification partners implement; docs/signing-vectors.json holds test
vectors that tests/federation/test_signing_vectors.py checks against this module and PyNaCl.

A submission is ``{"contribution": {...}, "signature": "<base64>"}``. The signed message is the
RFC 8785 (JCS) canonical UTF-8 encoding of the contribution object, whose ``kind`` and ``v``
fields separate it from every other kind of object Concordat signs.

A key registration is ``{"registration": {...}, "signature": "<base64>"}``: the registration object
(``kind`` ``concordat.key``) names the hub, the member, the key id and the public key, and is
signed by that very key, so that registering a key proves holding its private half. The hub keeps
the canonical bytes and signature verbatim; they are the member's own binding of key to member.
"""

import base64
import binascii
import contextlib
import functools
import hashlib
import operator
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import (
    crypto_core_ed25519_is_valid_point,
    crypto_sign,
    crypto_sign_seed_keypair,
)

from federation.canonical import JCS_ORJSON_OPTION, canonical_bytes
from federation.contributions.models import Contribution, ContributionScope
from federation.signal_types import HEX_LENGTHS, normalise_signal_value
from federation.signature_processes import signed_message_valid
from federation.video.frames import FrameList, FrameListError, parse_frames

CONTRIBUTION_KIND = "concordat.contribution"
CONTRIBUTION_VERSION = 1
KEY_REGISTRATION_KIND = "concordat.key"
KEY_REGISTRATION_VERSION = 1
KEY_REGISTRATION_FIELDS = frozenset(
    {"kind", "v", "hub", "member", "key_id", "public_key", "created_at"}
)

REQUIRED_FIELDS = frozenset(
    {
        "kind",
        "v",
        "hub",
        "member",
        "key_id",
        "uuid",
        "created_at",
        "action",
        "signal",
        "labels",
        "scope",
    }
)
OPTIONAL_FIELDS = frozenset({"incident"})
_ALL_FIELDS = REQUIRED_FIELDS | OPTIONAL_FIELDS
SIGNAL_FIELDS = frozenset({"type", "value"})
SIGNAL_OPTIONAL_FIELDS = frozenset({"quality", "frames"})
MAX_LABELS = 16
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
_KEY_ID = re.compile(r"[0-9a-f]{32}")
# Exactly the strings ``str(uuid.UUID(s)) == s`` holds for: 32 lowercase hex digits, hyphenated
# 8-4-4-4-12 (checked here instead of writing each parsed UUID back out to compare).
_UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,64}")
_ACTIONS = frozenset(Contribution.Action.values)
# Plain strings: comparing with the enum members themselves cost 0.3 µs each per item.
_ADD = Contribution.Action.ADD.value
_RETRACT = Contribution.Action.RETRACT.value
_SCOPES = frozenset(ContributionScope.values)


class MalformedSignedObject(ValueError):
    """A signed object (contribution or key registration) is not well-formed; ``field`` names
    the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class MalformedContribution(MalformedSignedObject):
    """The object is not a well-formed contribution."""


class ParsedContribution(NamedTuple):
    """A well-formed contribution and its canonical bytes (signature not yet checked).

    Immutable as a tuple rather than as a frozen dataclass: a frozen dataclass sets each of its
    16 fields through ``object.__setattr__``, which cost a tenth of ``parse_contribution``."""

    document: dict[str, Any]
    canonical: bytes
    content_hash: str
    hub: str
    member: str
    key_id: str
    uuid: uuid.UUID  # its text, the same as ``str(uuid)``, is ``document["uuid"]``
    created_at: datetime
    action: str
    signal_type: str
    value: str  # normalised (lowercase)
    quality: int | None
    labels: tuple[str, ...]
    scope: str
    incident: uuid.UUID | None
    frames: FrameList | None = None  # a vpdq add's canonical frame list (docs/video.md)


def _validated_contribution_bytes(document: dict[str, Any]) -> bytes:
    """RFC 8785 bytes of a contribution that has passed every check above, quickly.

    After validation every key is ASCII and known, and every value is a string, a small integer,
    null, or a list or object of those. On that domain JCS (keys sorted by UTF-16 code units, no
    whitespace, the same short escapes and lowercase \\u00xx for control characters, non-ASCII
    left as is) and orjson with sorted keys give the same bytes, many times faster than the
    pure-Python rfc8785 package on this hot path.
    ``canonical_bytes`` (rfc8785) stays the reference for everything else; a property test checks
    the two agree on generated contributions (tests/federation/test_canonical_bytes.py).
    """
    try:
        return orjson.dumps(document, option=JCS_ORJSON_OPTION)
    except orjson.JSONEncodeError as exc:  # a lone surrogate has no UTF-8 form: cannot be signed
        raise MalformedContribution(
            "contribution", "contains text that is not valid Unicode"
        ) from exc


def parse_contribution(document: object) -> ParsedContribution:
    """Check the structure of a contribution object and compute its canonical bytes.

    Raises ``MalformedContribution`` naming the first field at fault.
    """
    return _plain_contribution(document) or _contribution_checked_in_full(document)


# A plain contribution's fields (``_plain_contribution``), read in one call, and their types.
_PLAIN_FIELDS = operator.itemgetter(
    "kind", "v", "hub", "member", "key_id", "uuid", "created_at", "action", "signal", "labels", "scope"
)  # fmt: skip
_PLAIN_TYPES = (str, int, str, str, str, str, str, str, dict, list, str)
# Text that JSON (RFC 8785 included) writes as it is: printable ASCII but quote and backslash.
_PLAIN_TEXT = re.compile(r"[ !#-\[\]-~]{1,200}")
# A plain signal's value, lowercase, by type (a vpdq add's frames and a quality: full checks).
_PLAIN_VALUES = {kind: re.compile(f"[0-9a-f]{{{n}}}") for kind, n in HEX_LENGTHS.items()}
del _PLAIN_VALUES["vpdq"]


def _plain_contribution(document: object) -> ParsedContribution | None:
    """``parse_contribution`` of a contribution of the common shape, in fewer steps, or None
    for any other, left to the full checks (which name the field at fault): every field of its
    exact JSON type, the signal's type and value alone, and every text one that JSON writes as
    it is (the hub of ``_PLAIN_TEXT``; the other fields' patterns allow nothing else). So its
    canonical bytes are written here, with no encoder: RFC 8785's (keys in code point order, no
    whitespace, nothing to escape), held to the rfc8785 package by a property test
    (test_canonical_bytes.py), and every result to the full checks' one
    (test_contribution_parsing.py). No encoder (its output buffer, allocated per call, was most
    of its cost in bulk), no call per field: 1.8 µs less per item of a 10,000-item request."""
    if type(document) is not dict:
        return None
    keys = document.keys()
    incident = document.get("incident")
    if keys == REQUIRED_FIELDS or (keys == _ALL_FIELDS and incident is None):
        incident_text = "" if keys == REQUIRED_FIELDS else '"incident":null,'
    elif keys == _ALL_FIELDS and type(incident) is str and _UUID_TEXT.fullmatch(incident):
        incident_text = f'"incident":"{incident}",'
    else:
        return None
    values = _PLAIN_FIELDS(document)
    if tuple(map(type, values)) != _PLAIN_TYPES:
        return None
    kind, v, hub, member, key_id, uuid_text, created_at, action, signal, labels, scope = values
    moment = _plain_claim(hub, member, key_id, created_at)
    if not (
        moment is not None
        and kind == CONTRIBUTION_KIND
        and v == CONTRIBUTION_VERSION
        and _UUID_TEXT.fullmatch(uuid_text)
        and action in _ACTIONS
        and scope in _SCOPES
        and signal.keys() == SIGNAL_FIELDS
        and (not labels if action == _RETRACT else 0 < len(labels) <= MAX_LABELS)
        and all(type(label) is str and _SLUG.fullmatch(label) for label in labels)
        and len(set(labels)) == len(labels)
    ):
        return None
    signal_type, value = signal["type"], signal["value"]
    pattern = _PLAIN_VALUES.get(signal_type) if type(signal_type) is str else None
    if pattern is None or type(value) is not str or not pattern.fullmatch(value):
        return None
    label_list = '"' + '","'.join(labels) + '"' if labels else ""
    canonical = (
        f'{{"action":"{action}","created_at":"{created_at}","hub":"{hub}",{incident_text}'
        f'"key_id":"{key_id}","kind":"{kind}","labels":[{label_list}],"member":"{member}",'
        f'"scope":"{scope}","signal":{{"type":"{signal_type}","value":"{value}"}},'
        f'"uuid":"{uuid_text}","v":{v}}}'
    ).encode()
    incident_uuid = uuid.UUID(incident) if incident is not None else None
    return tuple.__new__(ParsedContribution, (  # the NamedTuple's own __new__ costs 0.3 µs more
        document, canonical, hashlib.sha256(canonical).hexdigest(), hub, member, key_id,
        uuid.UUID(uuid_text), moment, action, signal_type, value, None, tuple(labels), scope,
        incident_uuid, None,
    ))  # fmt: skip


@functools.lru_cache(maxsize=256)
def _plain_claim(hub: str, member: str, key_id: str, created_at: str) -> datetime | None:
    """The time of a plain contribution's claim, its four texts of their patterns, else None:
    once per distinct claim, which a request's items mostly share (1.2 µs an item less)."""
    with contextlib.suppress(ValueError):  # fromisoformat: not a real date and time
        if _PLAIN_TEXT.fullmatch(hub) and _SLUG.fullmatch(member) and _KEY_ID.fullmatch(key_id):
            return datetime.fromisoformat(created_at) if _TIMESTAMP.fullmatch(created_at) else None
    return None


def _contribution_checked_in_full(document: object) -> ParsedContribution:
    """``parse_contribution`` of any object, field by field: the checks that define what is
    accepted, and the refusals' wording."""
    if not isinstance(document, dict):
        raise MalformedContribution("contribution", "must be a JSON object")
    keys = document.keys()
    if keys != REQUIRED_FIELDS and keys != _ALL_FIELDS:
        _refuse_fields(keys)
    if document["kind"] != CONTRIBUTION_KIND:
        raise MalformedContribution("kind", f"must be {CONTRIBUTION_KIND!r}")
    if document["v"] != CONTRIBUTION_VERSION or type(document["v"]) is not int:
        raise MalformedContribution("v", f"must be the integer {CONTRIBUTION_VERSION}")
    hub = _string(document, "hub", 200)
    member = _string(document, "member", 64)
    if not _SLUG.fullmatch(member):
        raise MalformedContribution("member", "must be the organisation's slug")
    key_id = _string(document, "key_id", 32)
    if not _KEY_ID.fullmatch(key_id):
        raise MalformedContribution("key_id", "must be 32 lowercase hexadecimal characters")
    contribution_uuid = _uuid(document, "uuid")
    created_at = _timestamp(document, "created_at")
    action = document["action"]
    if not isinstance(action, str) or action not in _ACTIONS:
        raise MalformedContribution("action", f"must be one of {sorted(_ACTIONS)}")
    signal_type, value, quality, frames = _signal(document["signal"], action)
    labels = _labels(document["labels"], action)
    scope = document["scope"]
    if not isinstance(scope, str) or scope not in _SCOPES:
        raise MalformedContribution("scope", f"must be one of {sorted(_SCOPES)}")
    incident = document.get("incident")
    incident_uuid = _uuid(document, "incident") if incident is not None else None
    canonical = _validated_contribution_bytes(document)
    return ParsedContribution(
        document=document,
        canonical=canonical,
        content_hash=hashlib.sha256(canonical).hexdigest(),
        hub=hub,
        member=member,
        key_id=key_id,
        uuid=contribution_uuid,
        created_at=created_at,
        action=action,
        signal_type=signal_type,
        value=value,
        quality=quality,
        labels=labels,
        scope=scope,
        incident=incident_uuid,
        frames=frames,
    )


def _refuse_fields(keys) -> None:
    """Raise for the first missing field, else for the first unknown one (``keys`` are neither
    the required fields nor those and the optional ones)."""
    missing = REQUIRED_FIELDS - keys
    if missing:
        raise MalformedContribution(sorted(missing)[0], "this field is required")
    # The name is the client's: quote it bounded and escaped, never as a field name (it would
    # reach the audit log, and PostgreSQL's jsonb refuses some characters, such as NUL).
    name = ascii(sorted(keys - _ALL_FIELDS)[0][:64])
    raise MalformedContribution(
        "contribution", f"unknown field {name} (nothing unsigned-for is accepted)"
    )


def decode_signature(signature: object) -> bytes:
    """Decode a standard base64 (RFC 4648 §4, padded) Ed25519 signature."""
    raw = _canonical_base64(signature, length=88)
    if raw is None:
        problem = strict_base64_problem(signature, length=88)
        raise MalformedContribution(
            "signature", problem or "must be 64 bytes in padded base64 (88 characters)"
        )
    return raw


def _canonical_base64(text: object, *, length: int) -> bytes | None:
    """The bytes ``text`` spells when it is their one canonical padded standard base64 spelling
    of ``length`` characters (``strict_base64_problem`` is None), else None: the common case
    decoded once, without working out what is wrong."""
    if not isinstance(text, str) or len(text) != length or not text.isascii():
        return None
    try:
        raw = binascii.a2b_base64(text)
    except binascii.Error:
        return None
    # Re-encoding gives ``text`` back only if every character was of the alphabet, the padding
    # right and the unused bits zero: what the strict check below asks for.
    return raw if binascii.b2a_base64(raw, newline=False) == text.encode("ascii") else None


def strict_base64_problem(text: object, *, length: int) -> str | None:
    """Why ``text`` is not the one canonical padded standard base64 spelling of ``length``
    characters: ``""`` for a wrong type or length (callers say what they expect), a message
    otherwise; ``None`` when it is. ``b64decode`` ignores the unused low bits of the last
    character ("Dw==" and "Dx==" give the same bytes), so the decoded bytes are re-encoded and
    compared: a signed or signature value has exactly one spelling (docs/signing.md §12)."""
    if not isinstance(text, str) or len(text) != length:
        return ""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        return "is not valid base64"
    if base64.b64encode(raw).decode("ascii") != text:
        return "is not canonical base64 (non-zero pad bits)"
    return None


def verify_signature(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is an Ed25519 signature of ``message`` under ``public_key``.

    Verified by libsodium (``crypto_sign_open``, through PyNaCl): 73 microseconds a signature
    through this function on this project's 2-core machines, against 110 for OpenSSL's (through
    ``cryptography``); verification was over half of a receiving hub's profile. On the keys a
    hub accepts (prime-order points: check 3 of a key registration, docs/signing.md) the two
    agree on every signature an honest signer can produce; libsodium is the stricter on crafted
    ones (it also refuses a small-order R). Tests run both over the vectors and random flips."""
    if len(signature) != 64:
        return False
    return signed_message_valid(signature + message, public_key.public_bytes_raw())


def sign_bytes(private_key: Ed25519PrivateKey, message: bytes) -> bytes:
    """``private_key.sign(message)`` (Ed25519 is deterministic: the same 64 bytes), by libsodium:
    16 µs against OpenSSL's 26 on this project's machines, where a sending hub signs one
    attestation per entry and peer."""
    return crypto_sign(message, _sodium_secret(private_key))[:64]


@functools.lru_cache(maxsize=16)
def _sodium_secret(private_key: Ed25519PrivateKey) -> bytes:
    seed = private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return crypto_sign_seed_keypair(seed)[1]


def sign_contribution(private_key: Ed25519PrivateKey, document: dict[str, Any]) -> str:
    """Sign a contribution object as a member would; used by the demo, tests and benchmarks."""
    return base64.b64encode(private_key.sign(canonical_bytes(document))).decode()


def format_timestamp(moment: datetime) -> str:
    """The timestamp form used in signed objects: UTC, ``Z``, whole seconds or microseconds."""
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _string(document: dict, name: str, max_length: int) -> str:
    value = document[name]
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise MalformedContribution(
            name, f"must be a non-empty string of at most {max_length} characters"
        )
    return value


def _uuid(document: dict, name: str) -> uuid.UUID:
    value = document[name]
    if not isinstance(value, str) or not _UUID_TEXT.fullmatch(value):
        raise MalformedContribution(name, "must be a UUID in its 36-character lowercase form")
    return uuid.UUID(value)


def _timestamp(document: dict, name: str) -> datetime:
    value = document[name]
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise MalformedContribution(
            name, "must be an RFC 3339 UTC time such as 2026-01-31T12:00:00Z"
        )
    try:
        # Read with its Z: UTC (``datetime.UTC`` itself), ten times faster than reading without
        # it and setting the zone with ``replace``.
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise MalformedContribution(name, "is not a real date and time") from exc


def _signal(signal: object, action: str) -> tuple[str, str, int | None, FrameList | None]:
    if not isinstance(signal, dict):
        raise MalformedContribution("signal", "must be an object with type and value")
    keys = signal.keys()
    if keys != SIGNAL_FIELDS:
        if SIGNAL_FIELDS - keys:
            raise MalformedContribution("signal", "must have both type and value")
        if keys - SIGNAL_FIELDS - SIGNAL_OPTIONAL_FIELDS:
            raise MalformedContribution("signal", "has an unknown field")
    signal_type = signal["type"]
    try:
        value = normalise_signal_value(signal_type, signal["value"])
    except ValueError as exc:
        raise MalformedContribution("signal", str(exc)) from exc
    quality = signal.get("quality")
    if quality is not None:
        if signal_type != "pdq":
            raise MalformedContribution("signal.quality", "only pdq signals carry a quality")
        if type(quality) is not int or not 0 <= quality <= 100:
            raise MalformedContribution("signal.quality", "must be an integer from 0 to 100")
    return signal_type, value, quality, _frames(signal, signal_type, value, action)


def _frames(signal: dict, signal_type: str, value: str, action: str) -> FrameList | None:
    """A vpdq add's frame list: present, already canonical, and hashing to the value (which is
    the entry's identity); a retract names the signal by its value alone (docs/signing.md §15)."""
    present = "frames" in signal
    if signal_type != "vpdq" or action != _ADD:
        if present:
            raise MalformedContribution("signal.frames", "only a vpdq add carries frames")
        return None
    if not present:
        raise MalformedContribution("signal.frames", "a vpdq add carries its frame list")
    try:
        frames = parse_frames(signal["frames"])
    except FrameListError as exc:
        raise MalformedContribution("signal.frames", str(exc)) from exc
    if frames.digest != value:
        raise MalformedContribution(
            "signal.value", "must be the SHA-256 of the canonical frame list (docs/video.md)"
        )
    return frames


def _labels(labels: object, action: str) -> tuple[str, ...]:
    if not isinstance(labels, list) or len(labels) > MAX_LABELS:
        raise MalformedContribution("labels", f"must be a list of at most {MAX_LABELS} label slugs")
    for label in labels:
        if not isinstance(label, str) or not _SLUG.fullmatch(label):
            raise MalformedContribution("labels", "each label must be a slug string")
    if len(labels) > 1 and len(set(labels)) != len(labels):
        raise MalformedContribution("labels", "must not repeat a label")
    if action == _ADD and not labels:
        raise MalformedContribution("labels", "an add must carry at least one label")
    if action == _RETRACT and labels:
        raise MalformedContribution("labels", "a retract carries no labels")
    return tuple(labels)


# --- Key registrations (proof of possession) ----------------------------------------------------


class MalformedKeyRegistration(MalformedSignedObject):
    """The object is not a well-formed key registration; ``code`` says why: ``invalid_proof``
    (malformed), or ``invalid_key`` (a weak public key)."""

    def __init__(self, field: str, message: str, *, code: str = "invalid_proof") -> None:
        super().__init__(field, message)
        self.code = code


@dataclass(frozen=True, slots=True)
class ParsedKeyRegistration:
    """A well-formed key registration and its canonical bytes (signature not yet checked)."""

    document: dict[str, Any]
    canonical: bytes
    hub: str
    member: str
    key_id: str
    public_key: bytes  # raw 32 bytes, a valid point of the prime-order subgroup
    created_at: datetime

    @property
    def derived_key_id(self) -> str:
        from members.models import key_id_for

        return key_id_for(self.public_key)


def parse_key_registration(document: object) -> ParsedKeyRegistration:
    """Check the structure of a key registration object and compute its RFC 8785 bytes.

    Raises ``MalformedKeyRegistration`` naming the first field at fault. Whether ``hub``,
    ``member`` and ``key_id`` are the right ones is the caller's check (they are well-formed
    here); so is the signature.
    """
    if not isinstance(document, dict):
        raise MalformedKeyRegistration("registration", "must be a JSON object")
    missing = KEY_REGISTRATION_FIELDS - document.keys()
    if missing:
        raise MalformedKeyRegistration(sorted(missing)[0], "this field is required")
    unknown = document.keys() - KEY_REGISTRATION_FIELDS
    if unknown:
        name = ascii(sorted(unknown)[0][:64])
        raise MalformedKeyRegistration(
            "registration", f"unknown field {name} (nothing unsigned-for is accepted)"
        )
    if document["kind"] != KEY_REGISTRATION_KIND:
        raise MalformedKeyRegistration("kind", f"must be {KEY_REGISTRATION_KIND!r}")
    if document["v"] != KEY_REGISTRATION_VERSION or type(document["v"]) is not int:
        raise MalformedKeyRegistration("v", f"must be the integer {KEY_REGISTRATION_VERSION}")
    try:
        hub = _string(document, "hub", 200)
        member = _string(document, "member", 64)
        key_id = _string(document, "key_id", 32)
        created_at = _timestamp(document, "created_at")
    except MalformedContribution as exc:
        raise MalformedKeyRegistration(exc.field, exc.message) from None
    if not _SLUG.fullmatch(member):
        raise MalformedKeyRegistration("member", "must be the organisation's slug")
    if not _KEY_ID.fullmatch(key_id):
        raise MalformedKeyRegistration("key_id", "must be 32 lowercase hexadecimal characters")
    public_key = _registered_public_key(document["public_key"])
    try:
        canonical = canonical_bytes(document)
    except (UnicodeEncodeError, ValueError) as exc:  # a lone surrogate cannot be signed
        raise MalformedKeyRegistration(
            "registration", "contains text that is not valid Unicode"
        ) from exc
    return ParsedKeyRegistration(
        document=document,
        canonical=canonical,
        hub=hub,
        member=member,
        key_id=key_id,
        public_key=public_key,
        created_at=created_at,
    )


def _registered_public_key(text: object) -> bytes:
    problem = strict_base64_problem(text, length=44)
    if problem is not None:
        raise MalformedKeyRegistration(
            "public_key",
            problem or "must be the raw 32-byte key in padded base64 (44 characters)",
        )
    raw = base64.b64decode(text)
    if len(raw) != 32:
        # 44 canonical characters also spell 31 bytes ("==") or 33 (no padding).
        raise MalformedKeyRegistration(
            "public_key", f"must be the raw 32-byte key in padded base64 (these are {len(raw)})"
        )
    # On the curve, canonically encoded, in the prime-order subgroup: a small-order key's
    # signatures can verify over any message, so a "proof" under it would prove nothing.
    if not crypto_core_ed25519_is_valid_point(raw):
        raise MalformedKeyRegistration(
            "public_key",
            "is not a valid Ed25519 public key (small-order and non-canonical points are refused)",
            code="invalid_key",
        )
    return raw


def verify_key_registration(parsed: ParsedKeyRegistration, signature: bytes) -> bool:
    """Whether ``signature`` is the registered key's own signature over the registration."""
    public_key = Ed25519PublicKey.from_public_bytes(parsed.public_key)
    return verify_signature(public_key, signature, parsed.canonical)


def key_registration_document(
    *, hub: str, member: str, public_key: bytes, created_at: datetime
) -> dict[str, Any]:
    """The registration object for ``public_key`` (raw 32 bytes), as docs/signing.md defines it."""
    from members.models import key_id_for

    return {
        "kind": KEY_REGISTRATION_KIND,
        "v": KEY_REGISTRATION_VERSION,
        "hub": hub,
        "member": member,
        "key_id": key_id_for(public_key),
        "public_key": base64.b64encode(public_key).decode(),
        "created_at": format_timestamp(created_at),
    }


def sign_key_registration(private_key: Ed25519PrivateKey, document: dict[str, Any]) -> str:
    """Sign a registration object with the key it registers (base64 of the signature)."""
    return base64.b64encode(private_key.sign(canonical_bytes(document))).decode()
