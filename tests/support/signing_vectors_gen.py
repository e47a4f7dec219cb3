"""Generator of docs/signing-vectors.json, the signing test vectors partners implement against.

The file is committed; tests/federation/test_signing_vectors.py checks that regenerating it gives
identical bytes, so change the cases here and rerun:

    .venv/bin/python -m tests.support.signing_vectors_gen

Everything is deterministic: private seeds are SHA-256 of a fixed label, timestamps and UUIDs are
fixed, and Ed25519 signatures are deterministic (RFC 8032 §5.1.6).
"""

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

VECTORS_PATH = Path(__file__).resolve().parents[2] / "docs" / "signing-vectors.json"

HUB = "hub.example.org"
# A hub id (any string of at most 200 characters) that exercises the JCS string rules: raw UTF-8
# for non-ASCII (2-, 3- and 4-byte sequences), U+2028 left raw, the two-character escapes for '"',
# '\\' and TAB, \u00XX (lowercase hex) for other control characters, '/' and '<>&' left raw.
EXOTIC_HUB = 'Hüb Zürich — 東京 "\u03b1" <&> \u2028\U0001f600 / \\ \t\u001f end'


def seed_for(label: str) -> bytes:
    return hashlib.sha256(f"concordat signing vectors: {label}".encode()).digest()


def seed_private_key(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def seed_public_key(seed: bytes) -> bytes:
    return (
        seed_private_key(seed)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def _contribution(seed: bytes, **fields: Any) -> dict[str, Any]:
    from members.models import key_id_for

    document: dict[str, Any] = {
        "kind": "concordat.contribution",
        "v": 1,
        "hub": HUB,
        "member": "acme",
        "key_id": key_id_for(seed_public_key(seed)),
        "uuid": "",
        "created_at": "2026-01-31T12:00:00Z",
        "action": "add",
        "signal": {},
        "labels": ["attack-footage"],
        "scope": "federation",
    }
    document.update(fields)
    return document


def _go_html_escaped(canonical: bytes) -> bytes:
    """What Go's encoding/json.Marshal emits by default: <, >, &, U+2028 and U+2029 escaped."""
    text = canonical.decode()
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text.encode()


def build_vectors() -> list[dict[str, Any]]:
    from federation.canonical import canonical_bytes

    key_a = seed_for("acme key 1")
    key_b = seed_for("acme key 2")
    vectors: list[dict[str, Any]] = []

    def add(
        name: str,
        description: str,
        seed: bytes,
        contribution: dict[str, Any],
        *,
        signed_message: bytes | None = None,
        signing_seed: bytes | None = None,
        signature_b64: str | None = None,
        reason: str | None = None,
    ) -> None:
        vectors.append(
            _vector(
                name,
                description,
                seed,
                "contribution",
                contribution,
                signed_message=signed_message,
                signing_seed=signing_seed,
                signature_b64=signature_b64,
                reason=reason,
            )
        )

    def signature_of(name: str) -> str:
        return next(v["signature_b64"] for v in vectors if v["id"] == name)

    pdq_add = _contribution(
        key_a,
        uuid="0b6f3a52-8d1e-4c7a-9f60-2e5b1d4c8a01",
        signal={
            "type": "pdq",
            "value": "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
        },
    )
    add("pdq-add", "A plain PDQ add with one label.", key_a, pdq_add)
    add(
        "md5-add",
        "An MD5 add kept on this hub (scope hub).",
        key_a,
        _contribution(
            key_a,
            uuid="5d2c7e10-3b4f-4e8a-b1c9-7f0a6d2e9b13",
            created_at="2026-01-31T12:00:01Z",
            signal={"type": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e"},
            labels=["propaganda"],
            scope="hub",
        ),
    )
    add(
        "sha256-add",
        "A SHA-256 add with two labels (array order is kept: JCS sorts object keys, never "
        "arrays), scope peers, and a created_at with microseconds.",
        key_a,
        _contribution(
            key_a,
            uuid="9a1e4b7c-2d3f-4a5b-8c6d-0e1f2a3b4c5d",
            created_at="2026-01-31T12:00:02.123456Z",
            signal={
                "type": "sha256",
                "value": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            },
            labels=["propaganda", "attack-footage"],
            scope="peers",
        ),
    )
    add(
        "pdq-retract",
        "A retract of the pdq-add signal: action retract, labels is present and empty.",
        key_a,
        _contribution(
            key_a,
            uuid="c4e8a2f6-1b3d-4f5a-9e7c-8d6b4a2c0e13",
            created_at="2026-02-01T09:30:00Z",
            action="retract",
            signal=copy.deepcopy(pdq_add["signal"]),
            labels=[],
        ),
    )
    add(
        "pdq-incident-quality",
        "A PDQ add tagged with an incident, carrying the PDQ quality (0-100). Note the key order: "
        "incident sorts between hub and key_id, quality before type inside signal.",
        key_a,
        _contribution(
            key_a,
            uuid="7f3c1a9e-5b2d-4e6f-8a0b-1c2d3e4f5a6b",
            created_at="2026-02-01T10:00:00Z",
            signal={
                "type": "pdq",
                "value": "358c86641a5269ab5b0db5f1b2315c1642cef9652c39b6ced9f646d91f071927",
                "quality": 87,
            },
            labels=["attack-footage"],
            incident="3e2d1c0b-a987-4654-b321-0fedcba98765",
        ),
    )
    add(
        "explicit-null-incident",
        'An MD5 add with "incident": null. Null means absent to the hub, but the member is part '
        "of the signed bytes, so it must be signed exactly as sent.",
        key_a,
        _contribution(
            key_a,
            uuid="1d2e3f40-5a6b-4c7d-8e9f-a0b1c2d3e4f5",
            created_at="2026-02-01T10:00:01Z",
            signal={"type": "md5", "value": "9e107d9d372bb6826bd81d3542a419d6"},
            incident=None,
        ),
    )
    exotic = _contribution(
        key_a,
        hub=EXOTIC_HUB,
        uuid="e0d1c2b3-a495-4867-8f9e-0a1b2c3d4e5f",
        created_at="2026-02-01T11:00:00Z",
        signal={
            "type": "md5",
            "value": "e4d909c290d0fb1ca068ffaddf22cbd0",
        },
    )
    add(
        "non-ascii-hub",
        "A hub id with non-ASCII characters (2-, 3- and 4-byte UTF-8), U+2028, quotes, a "
        "backslash, '/', '<&>', a TAB and U+001F. JCS writes non-ASCII, U+2028, '/' and '<&>' "
        "raw, escapes '\"' and '\\' with a backslash, TAB as \\t and U+001F as \\u001f. "
        "Hub ids are compared exactly (no Unicode normalisation).",
        key_a,
        exotic,
    )
    add(
        "uppercase-hex-value",
        "A PDQ value in uppercase hexadecimal. The signature covers the bytes as sent (uppercase); "
        "the hub accepts it and files the entry under the lowercase value.",
        key_a,
        _contribution(
            key_a,
            uuid="2b4d6f80-1a3c-4e5f-9b7d-c0e2a4b6d8f0",
            created_at="2026-02-01T12:00:00Z",
            signal={
                "type": "pdq",
                "value": "F8F8F0CEE0F4A84F06370A22038F63F0B36E2ED596621E1D33E6B39C4E9C9B23",
            },
        ),
    )

    # Invalid cases: the signature must not verify over the canonical bytes shown.
    tampered_value = copy.deepcopy(pdq_add)
    tampered_value["signal"]["value"] = tampered_value["signal"]["value"][:-1] + "3"
    add(
        "tampered-value",
        "pdq-add with its signal value changed after signing (last hex digit 2 -> 3).",
        key_a,
        tampered_value,
        signature_b64=signature_of("pdq-add"),
        reason="the contribution was changed after it was signed",
    )
    add(
        "wrong-key",
        "pdq-add signed by another key (seed 'acme key 2') while key_id names this key.",
        key_a,
        copy.deepcopy(pdq_add),
        signing_seed=key_b,
        reason="signed by a different private key than the one key_id names",
    )
    field_added = copy.deepcopy(pdq_add)
    field_added["incident"] = "3e2d1c0b-a987-4654-b321-0fedcba98765"
    add(
        "field-added",
        "pdq-add with an incident field added after signing (still a well-formed contribution).",
        key_a,
        field_added,
        signature_b64=signature_of("pdq-add"),
        reason="a field was added after signing",
    )
    add(
        "signature-truncated",
        "pdq-add's signature with its last four base64 characters removed (63 bytes, 84 "
        "characters).",
        key_a,
        copy.deepcopy(pdq_add),
        signature_b64=signature_of("pdq-add")[:-4],
        reason="the signature is not 64 bytes / 88 base64 characters",
    )
    flipped = bytearray(base64.b64decode(signature_of("pdq-add")))
    flipped[0] ^= 0x01
    add(
        "signature-bit-flipped",
        "pdq-add's signature with the lowest bit of its first byte flipped.",
        key_a,
        copy.deepcopy(pdq_add),
        signature_b64=base64.b64encode(bytes(flipped)).decode(),
        reason="the signature was altered",
    )
    add(
        "signature-unpadded-base64url",
        "pdq-add's signature bytes, but in unpadded URL-safe base64 (86 characters).",
        key_a,
        copy.deepcopy(pdq_add),
        signature_b64=base64.urlsafe_b64encode(base64.b64decode(signature_of("pdq-add")))
        .decode()
        .rstrip("="),
        reason="the signature must be standard base64 with padding (88 characters)",
    )
    add(
        "signed-non-canonical-json",
        "pdq-add signed over ordinary JSON (insertion order, ', ' and ': ' separators) instead "
        "of its RFC 8785 form.",
        key_a,
        copy.deepcopy(pdq_add),
        signed_message=json.dumps(pdq_add).encode(),
        reason="the signed bytes are not the RFC 8785 canonical form",
    )
    add(
        "signed-html-escaped-json",
        "non-ascii-hub signed over bytes in which <, >, & and U+2028 were escaped as \\u003c, "
        "\\u003e, \\u0026 and \\u2028, as Go's encoding/json.Marshal does by default.",
        key_a,
        copy.deepcopy(exotic),
        signed_message=_go_html_escaped(canonical_bytes(exotic)),
        reason="the signed bytes escape characters that RFC 8785 writes raw",
    )
    vectors.extend(_key_registration_vectors(key_a, key_b))
    vectors.extend(_vpdq_vectors(key_a))
    return vectors


def _key_registration(seed: bytes, **fields: Any) -> dict[str, Any]:
    from members.models import key_id_for

    document: dict[str, Any] = {
        "kind": "concordat.key",
        "v": 1,
        "hub": HUB,
        "member": "acme",
        "key_id": key_id_for(seed_public_key(seed)),
        "public_key": base64.b64encode(seed_public_key(seed)).decode(),
        "created_at": "2026-01-31T11:00:00Z",
    }
    document.update(fields)
    return document


def _vector(
    name: str,
    description: str,
    seed: bytes,
    field: str,
    document: dict[str, Any],
    *,
    signed_message: bytes | None = None,
    signing_seed: bytes | None = None,
    signature_b64: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """One vector: the key (from ``seed``), ``document`` under ``field``, its canonical bytes and
    a signature over them (or over ``signed_message``, by ``signing_seed``), unless given."""
    from federation.canonical import canonical_bytes
    from members.models import key_id_for

    canonical = canonical_bytes(document)
    if signature_b64 is None:
        message = canonical if signed_message is None else signed_message
        raw = seed_private_key(signing_seed or seed).sign(message)
        signature_b64 = base64.b64encode(raw).decode()
    vector: dict[str, Any] = {
        "id": name,
        "description": description,
        "seed_hex": seed.hex(),
        "public_key_hex": seed_public_key(seed).hex(),
        "key_id": key_id_for(seed_public_key(seed)),
        field: document,
        "canonical_utf8": canonical.decode(),
        "canonical_sha256_hex": hashlib.sha256(canonical).hexdigest(),
        "signature_b64": signature_b64,
        "valid": reason is None,
    }
    if reason is not None:
        vector["reason"] = reason
    return vector


def _key_registration_vectors(key_a: bytes, key_b: bytes) -> list[dict[str, Any]]:
    """Key registrations (proof of possession): the object is signed by the key it registers.
    ``seed_hex``/``public_key_hex``/``key_id`` are those of the key being registered."""

    vectors: list[dict[str, Any]] = []

    def add(name, description, seed, registration, *, signing_seed=None, signature_b64=None,
            reason=None) -> None:  # fmt: skip
        vectors.append(
            _vector(
                name,
                description,
                seed,
                "key_registration",
                registration,
                signing_seed=signing_seed,
                signature_b64=signature_b64,
                reason=reason,
            )
        )

    registration = _key_registration(key_a)
    add(
        "key-registration",
        "The registration of the vectors' key for member acme: signed by that key itself.",
        key_a,
        registration,
    )
    add(
        "key-registration-second-key",
        "A second key of acme, registered for rotation, with microseconds in created_at.",
        key_b,
        _key_registration(key_b, created_at="2026-02-01T08:15:30.250000Z"),
    )
    add(
        "key-registration-signed-by-another-key",
        "acme's key registration signed by another key (seed 'acme key 2'): what someone who "
        "does not hold the key would send to register it as theirs.",
        key_a,
        copy.deepcopy(registration),
        signing_seed=key_b,
        reason="not signed by the key it registers: no proof of possession",
    )
    tampered = copy.deepcopy(registration)
    tampered["member"] = "globex"
    add(
        "key-registration-member-changed",
        "key-registration with member changed from acme to globex after signing.",
        key_a,
        tampered,
        signature_b64=next(v["signature_b64"] for v in vectors if v["id"] == "key-registration"),
        reason="the registration was changed after it was signed",
    )
    return vectors


def _vpdq_frames() -> list[list[Any]]:
    """Three frames of a 30-frames-a-second video hashed once a second (docs/video.md §1)."""
    hashes = [
        hashlib.sha256(f"concordat vpdq vector frame {n}".encode()).hexdigest() for n in range(3)
    ]
    return [[0, 100, hashes[0], 0], [30, 87, hashes[1], 1000], [60, 42, hashes[2], 2002]]


def _frames_vector(name: str, description: str, frames: Any, reason: str | None = None):
    """A frame-list vector: the list, and its canonical bytes and digest, or why it is refused."""
    from federation.video.frames import parse_frames

    vector: dict[str, Any] = {"id": name, "description": description, "vpdq_frames": frames}
    if reason is None:
        parsed = parse_frames(frames)
        vector["canonical_utf8"] = parsed.canonical.decode()
        vector["digest_hex"] = parsed.digest
    vector["valid"] = reason is None
    if reason is not None:
        vector["reason"] = reason
    return vector


def _vpdq_vectors(key_a: bytes) -> list[dict[str, Any]]:
    """vpdq: frame lists (canonical or refused), then signed contributions carrying one."""
    from federation.video.frames import parse_frames

    frames = _vpdq_frames()
    digest = parse_frames(frames).digest
    vectors = [
        _frames_vector(
            "vpdq-frames-three", "Three frames, canonical: its bytes and digest.", frames
        ),
        _frames_vector(
            "vpdq-frames-single-equal-times",
            "Two frames with the same millisecond (allowed: timestamps never decrease).",
            [[7, 0, frames[0][2], 233], [8, 100, frames[0][2], 233]],
        ),
    ]

    def refused(name: str, description: str, value: Any, reason: str) -> None:
        vectors.append(_frames_vector(name, description, value, reason))

    refused(
        "vpdq-frames-unsorted",
        "The three frames, last first.",
        frames[::-1],
        "frame numbers must be strictly increasing",
    )
    refused(
        "vpdq-frames-repeated-number",
        "Frame 30 twice.",
        [frames[0], frames[1], frames[1]],
        "frame numbers must be strictly increasing",
    )
    refused(
        "vpdq-frames-uppercase-hex",
        "A PDQ hash in uppercase.",
        [[0, 100, frames[0][2].upper(), 0]],
        "pdq_hex must be lowercase",
    )
    refused(
        "vpdq-frames-float-timestamp",
        "A timestamp written 1000.0 (a float).",
        [[0, 100, frames[0][2], 1000.0]],
        "timestamp_ms must be an integer",
    )
    refused(
        "vpdq-frames-seconds-timestamp",
        "The timestamp in seconds as a string.",
        [[0, 100, frames[0][2], "1.0"]],
        "timestamp_ms must be an integer",
    )
    refused(
        "vpdq-frames-time-goes-back",
        "Timestamps decrease as frame numbers increase.",
        [[0, 100, frames[0][2], 1000], [1, 100, frames[1][2], 999]],
        "timestamps must not decrease",
    )
    refused(
        "vpdq-frames-quality-101",
        "Quality above 100.",
        [[0, 101, frames[0][2], 0]],
        "quality must be an integer 0 to 100",
    )
    refused(
        "vpdq-frames-boolean-quality",
        "Quality true (a boolean is not a number).",
        [[0, True, frames[0][2], 0]],
        "quality must be an integer 0 to 100",
    )
    refused("vpdq-frames-empty", "No frames.", [], "at least one frame")
    refused(
        "vpdq-frames-object",
        "A frame as an object instead of a 4-item array.",
        [{"frame_number": 0, "quality": 100, "pdq_hex": frames[0][2], "timestamp_ms": 0}],
        "each frame is a 4-item array",
    )
    refused(
        "vpdq-frames-threatexchange-form",
        "python-threatexchange's string form, which is never signed (docs/video.md §2).",
        [f"{frames[0][2]},100,0.0", f"{frames[1][2]},87,1.0"],
        "each frame is a 4-item array",
    )

    add = _contribution(
        key_a,
        uuid="3c0e9d4a-6b1f-4f2e-8a7d-5e4c3b2a1f09",
        created_at="2026-01-31T12:00:05Z",
        labels=["livestreamed-attack"],
        signal={"type": "vpdq", "value": digest, "frames": frames},
    )
    signed = _vector(
        "vpdq-add",
        "A vPDQ add: the frame list and its digest as value; JCS "
        "sorts the signal's members frames, type, value.",
        key_a,
        "contribution",
        add,
    )
    vectors.append(signed)
    vectors.append(
        _vector(
            "vpdq-retract",
            "The retract of vpdq-add: the signal by its value alone, no frames.",
            key_a,
            "contribution",
            _contribution(
                key_a,
                uuid="8e2f1a3b-4c5d-4e6f-9a0b-1c2d3e4f5a6b",
                created_at="2026-01-31T12:00:06Z",
                action="retract",
                labels=[],
                signal={"type": "vpdq", "value": digest},
            ),
        )
    )
    tampered = copy.deepcopy(add)
    tampered["signal"]["frames"][1][1] = 100
    tampered["signal"]["value"] = parse_frames(tampered["signal"]["frames"]).digest
    vectors.append(
        _vector(
            "vpdq-frames-tampered",
            "vpdq-add with one frame's quality raised to 100 after signing, and the value "
            "recomputed to match: the frame list is signed, so the signature fails.",
            key_a,
            "contribution",
            tampered,
            signature_b64=signed["signature_b64"],
            reason="the frame list was changed after it was signed",
        )
    )
    return vectors


def render() -> str:
    return json.dumps(build_vectors(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.test")
    django.setup()
    VECTORS_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {VECTORS_PATH}")


if __name__ == "__main__":
    main()
