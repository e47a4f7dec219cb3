"""Generator of docs/federation-vectors.json, the wire-format vectors other hubs implement against.

The file is committed; tests/federation/propagation/test_federation_vectors.py checks that regenerating it
gives identical bytes, so change the cases here and rerun:

    .venv/bin/python -m tests.support.federation_vectors_gen

Everything is deterministic: seeds are SHA-256 of fixed labels, times and UUIDs are fixed, and
Ed25519 signatures are deterministic (RFC 8032). The scenario: member ``acme`` of hub A signs a
contribution; hub A binds acme's key and vets the entry; hub B, which received it from A, vets it
too and sends it on to hub C in a batch (naming hub D, which hub A also sent it to, in
``sent_to``), with an entry item (hub B's dispute of another entry)
and a key item (hub A's revocation of acme's key, relayed by B).
"""

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support.signing_vectors_gen import seed_private_key, seed_public_key

VECTORS_PATH = Path(__file__).resolve().parents[2] / "docs" / "federation-vectors.json"

HUB_A = "hub-a.example.org"
HUB_B = "hub-b.example.org"
HUB_C = "hub-c.example.org"
HUB_D = "hub-d.example.org"  # hub A sent the contribution there too (the item's sent_to)
MEMBER = "acme"
BATCH_ID = "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b"
CONTRIBUTION_UUID = "0b6f3a52-8d1e-4c7a-9f60-2e5b1d4c8a01"
PDQ_VALUE = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6339cd3e1ab4c"
DISPUTED_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
VPDQ_CONTRIBUTION_UUID = "5a7b9c1d-2e3f-4a5b-8c7d-9e0f1a2b3c4d"
VPDQ_BATCH_ID = "7d8e9f0a-1b2c-4d3e-9f5a-6b7c8d9e0f1a"


def seed_for(label: str) -> bytes:
    return hashlib.sha256(f"concordat federation vectors: {label}".encode()).digest()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _vetted(
    hub: str, signal_type: str, value: str, *, decided: str, attested: str,
    policy: str = "quorum 2 of 3",
) -> dict[str, Any]:  # fmt: skip
    """``hub``'s attestation that it vetted the signal."""
    from federation.propagation import wire

    return wire.attestation_document(
        hub=hub,
        signal_type=signal_type,
        value=value,
        state="vetted",
        decided_at=_at(decided),
        policy=policy,
        attested_at=_at(attested),
    )


def _signed(name: str, seed: bytes, signer: str, document: dict[str, Any]) -> dict[str, Any]:
    from federation.canonical import canonical_bytes

    canonical = canonical_bytes(document)
    return {
        "id": name,
        "signer": signer,
        "object": document,
        "canonical_utf8": canonical.decode(),
        "canonical_sha256_hex": hashlib.sha256(canonical).hexdigest(),
        "signature_b64": base64.b64encode(seed_private_key(seed).sign(canonical)).decode(),
    }


def build_vectors() -> dict[str, Any]:
    from federation.canonical import canonical_bytes
    from federation.propagation import wire
    from federation.signing import key_registration_document
    from members.models import key_id_for

    hub_seeds = {hub: seed_for(f"hub key {hub}") for hub in (HUB_A, HUB_B, HUB_C)}
    member_seed = seed_for("acme key")
    member_public = seed_public_key(member_seed)

    registration = key_registration_document(
        hub=HUB_A, member=MEMBER, public_key=member_public, created_at=_at("2026-01-30T09:00:00Z")
    )
    registration_vector = _signed(
        "key-registration", member_seed, f"{MEMBER}@{HUB_A}", registration
    )
    binding = wire.key_binding_document(
        hub=HUB_A,
        member=MEMBER,
        key_id=key_id_for(member_public),
        registration=canonical_bytes(registration),
        not_before=_at("2026-01-30T09:00:00Z"),
        revoked_at=None,
        issued_at=_at("2026-01-30T09:00:05Z"),
    )
    binding_vector = _signed("key-binding", hub_seeds[HUB_A], HUB_A, binding)
    revocation = dict(
        binding,
        revoked_at="2026-02-01T00:00:00Z",
        issued_at="2026-02-01T00:00:10Z",
    )
    revocation_vector = _signed("key-binding-revocation", hub_seeds[HUB_A], HUB_A, revocation)
    contribution = {
        "kind": "concordat.contribution",
        "v": 1,
        "hub": HUB_A,
        "member": MEMBER,
        "key_id": key_id_for(member_public),
        "uuid": CONTRIBUTION_UUID,
        "created_at": "2026-01-31T12:00:00Z",
        "action": "add",
        "signal": {"type": "pdq", "value": PDQ_VALUE, "quality": 90},
        "labels": ["attack-footage"],
        "scope": "federation",
    }
    contribution_vector = _signed("contribution", member_seed, f"{MEMBER}@{HUB_A}", contribution)
    attestations = []
    for hub, decided, attested in (
        (HUB_A, "2026-01-31T12:00:02Z", "2026-01-31T12:00:03Z"),
        (HUB_B, "2026-01-31T12:00:04Z", "2026-01-31T12:00:05Z"),
    ):
        document = _vetted(hub, "pdq", PDQ_VALUE, decided=decided, attested=attested)
        attestations.append(_signed(f"attestation-{hub}", hub_seeds[hub], hub, document))
    dispute = wire.attestation_document(
        hub=HUB_B,
        signal_type="md5",
        value=DISPUTED_MD5,
        state="disputed",
        decided_at=_at("2026-01-31T13:00:00Z"),
        policy="dispute threshold 2",
        attested_at=_at("2026-01-31T13:00:01Z"),
    )
    dispute_vector = _signed("attestation-dispute", hub_seeds[HUB_B], HUB_B, dispute)

    def pair(vector: dict[str, Any], name: str) -> dict[str, Any]:
        return {name: vector["object"], "signature": vector["signature_b64"]}

    key_section = {
        "registration": registration,
        "signature": registration_vector["signature_b64"],
        "binding": binding,
        "binding_signature": binding_vector["signature_b64"],
    }
    items = [
        {
            "type": "contribution",
            "contribution": contribution,
            "signature": contribution_vector["signature_b64"],
            "key": key_section,
            "attestations": [pair(a, "attestation") for a in attestations],
            "path": [HUB_A, HUB_B],
            "sent_to": [HUB_D],
        },
        {
            "type": "entry",
            "attestations": [pair(dispute_vector, "attestation")],
            "path": [HUB_B],
        },
        {
            "type": "key",
            "key": {
                **key_section,
                "binding": revocation,
                "binding_signature": revocation_vector["signature_b64"],
            },
            "path": [HUB_A, HUB_B],
        },
    ]
    item_vectors = [
        {
            "id": f"item-{item['type']}",
            "item": item,
            "canonical_utf8": canonical_bytes(item).decode(),
            "digest_hex": wire.item_digest(item),
        }
        for item in items
    ]
    batch = wire.batch_document(
        sender=HUB_B,
        receiver=HUB_C,
        batch_id=uuid.UUID(BATCH_ID),
        sent_at=_at("2026-01-31T12:00:06Z"),
        items=items,
        feed={"after": 0, "next": 3, "more": False},
    )
    batch_vector = _signed("batch", hub_seeds[HUB_B], HUB_B, batch)
    return {
        "description": "Test vectors of the Concordat federation wire format (docs/federation.md, "
        "'Wire format'). Canonical bytes are RFC 8785 (JCS) as UTF-8; signatures are pure "
        "Ed25519 in padded standard base64; a hub's or member's key is derived from seed_hex "
        "(32 bytes) as in docs/signing.md §11. signer names the key that made signature_b64: a "
        "bare hub id (hub-a.example.org) is that hub's hub key (hubs[], by hub_id); "
        "<member>@<hub> (acme@hub-a.example.org) is that member's own signing key (member, by "
        "member and hub), not an address.",
        "hubs": [
            {
                "hub_id": hub,
                "seed_hex": seed.hex(),
                "public_key_hex": seed_public_key(seed).hex(),
                "public_key_b64": base64.b64encode(seed_public_key(seed)).decode(),
            }
            for hub, seed in hub_seeds.items()
        ],
        "member": {
            "hub": HUB_A,
            "member": MEMBER,
            "seed_hex": member_seed.hex(),
            "public_key_hex": member_public.hex(),
            "public_key_b64": base64.b64encode(member_public).decode(),
            "key_id": key_id_for(member_public),
        },
        "signed": [
            registration_vector,
            binding_vector,
            revocation_vector,
            contribution_vector,
            *attestations,
            dispute_vector,
        ],
        "items": item_vectors,
        "batch": {**batch_vector, "body": pair(batch_vector, "batch")},
        "expected_results_at_hub_c": [
            {"index": 0, "digest": item_vectors[0]["digest_hex"], "status": "accepted"},
            {"index": 1, "digest": item_vectors[1]["digest_hex"], "status": "accepted"},
            {"index": 2, "digest": item_vectors[2]["digest_hex"], "status": "accepted"},
        ],
        "vpdq": _vpdq_vectors(hub_seeds, member_seed, key_section, pair),
        "rooted": _rooted_vectors(hub_seeds, member_seed, key_section),
    }


def _vpdq_vectors(hub_seeds, member_seed, key_section, pair) -> dict[str, Any]:
    """A vpdq add travelling from hub A straight to hub C: the frame list rides inside the
    member's signed contribution, so the wire format is unchanged (docs/federation.md)."""
    from federation.canonical import canonical_bytes
    from federation.propagation import wire
    from federation.video.frames import parse_frames
    from members.models import key_id_for
    from tests.support.signing_vectors_gen import _vpdq_frames

    frames = _vpdq_frames()
    contribution = {
        "kind": "concordat.contribution",
        "v": 1,
        "hub": HUB_A,
        "member": MEMBER,
        "key_id": key_id_for(seed_public_key(member_seed)),
        "uuid": VPDQ_CONTRIBUTION_UUID,
        "created_at": "2026-01-31T12:30:00Z",
        "action": "add",
        "signal": {"type": "vpdq", "value": parse_frames(frames).digest, "frames": frames},
        "labels": ["livestreamed-attack"],
        "scope": "federation",
    }
    contribution_vector = _signed(
        "contribution-vpdq", member_seed, f"{MEMBER}@{HUB_A}", contribution
    )
    attestation = _signed(
        f"attestation-vpdq-{HUB_A}",
        hub_seeds[HUB_A],
        HUB_A,
        _vetted(
            HUB_A,
            "vpdq",
            contribution["signal"]["value"],
            decided="2026-01-31T12:30:02Z",
            attested="2026-01-31T12:30:03Z",
        ),
    )
    item = {
        "type": "contribution",
        "contribution": contribution,
        "signature": contribution_vector["signature_b64"],
        "key": key_section,
        "attestations": [pair(attestation, "attestation")],
        "path": [HUB_A],
    }
    batch = wire.batch_document(
        sender=HUB_A,
        receiver=HUB_C,
        batch_id=uuid.UUID(VPDQ_BATCH_ID),
        sent_at=_at("2026-01-31T12:30:04Z"),
        items=[item],
    )
    batch_vector = _signed("batch-vpdq", hub_seeds[HUB_A], HUB_A, batch)
    digest = wire.item_digest(item)
    return {
        "signed": [contribution_vector, attestation],
        "item": {
            "id": "item-contribution-vpdq",
            "item": item,
            "canonical_utf8": canonical_bytes(item).decode(),
            "digest_hex": digest,
        },
        "batch": {**batch_vector, "body": pair(batch_vector, "batch")},
        "expected_results_at_hub_c": [{"index": 0, "digest": digest, "status": "accepted"}],
    }


ROOTED_BATCH_ID = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
ROOTED_UUIDS = (
    "9e8d7c6b-5a49-4837-a625-1403f2e1d0c1",
    "9e8d7c6b-5a49-4837-a625-1403f2e1d0c2",
    "9e8d7c6b-5a49-4837-a625-1403f2e1d0c3",
)


def _rooted_vectors(hub_seeds, member_seed, key_section) -> dict[str, Any]:
    """Hub A sends hub C three of acme's adds in one batch, its three attestations under one
    root (docs/federation.md, "Attestations under one root"): a tree of three leaves, so one
    proof is shorter than the others. The tree is computed by tests/support/rfc9162.py, the
    RFC's definitions as written, not by the hub's code."""
    from federation.canonical import canonical_bytes
    from federation.propagation import wire
    from members.models import key_id_for
    from tests.support.rfc9162 import mth, path

    contributions, attestations = [], []
    for position, uuid_text in enumerate(ROOTED_UUIDS):
        contribution = {
            "kind": "concordat.contribution",
            "v": 1,
            "hub": HUB_A,
            "member": MEMBER,
            "key_id": key_id_for(seed_public_key(member_seed)),
            "uuid": uuid_text,
            "created_at": f"2026-01-31T14:00:0{position}Z",
            "action": "add",
            "signal": {"type": "md5", "value": hashlib.sha256(uuid_text.encode()).hexdigest()[:32]},
            "labels": ["attack-footage"],
            "scope": "federation",
        }
        contributions.append(
            _signed(f"contribution-rooted-{position}", member_seed, f"{MEMBER}@{HUB_A}",
                    contribution)
        )  # fmt: skip
        attestations.append(
            _vetted(
                HUB_A,
                "md5",
                contribution["signal"]["value"],
                decided="2026-01-31T14:00:05Z",
                attested="2026-01-31T14:00:06Z",
                policy="trusted member",
            )
        )
    leaves = [canonical_bytes(document) for document in attestations]
    root = {
        "kind": "concordat.attestation-root",
        "v": 1,
        "hub": HUB_A,
        "size": len(leaves),
        "root": mth(leaves).hex(),
        "attested_at": "2026-01-31T14:00:06Z",
    }
    root_vector = _signed("attestation-root", hub_seeds[HUB_A], HUB_A, root)
    items = [
        {
            "type": "contribution",
            "contribution": vector["object"],
            "signature": vector["signature_b64"],
            "key": key_section,
            "attestations": [
                {
                    "attestation": attestations[index],
                    "index": index,
                    "proof": base64.b64encode(b"".join(path(index, leaves))).decode(),
                    "root_signature": root_vector["signature_b64"],
                    "size": len(leaves),
                }
            ],
            "path": [HUB_A],
        }
        for index, vector in enumerate(contributions)
    ]
    batch = wire.batch_document(
        sender=HUB_A,
        receiver=HUB_C,
        batch_id=uuid.UUID(ROOTED_BATCH_ID),
        sent_at=_at("2026-01-31T14:00:07Z"),
        items=items,
    )
    batch_vector = _signed("batch-rooted", hub_seeds[HUB_A], HUB_A, batch)
    item_vectors = [
        {
            "id": f"item-contribution-rooted-{index}",
            "item": item,
            "canonical_utf8": canonical_bytes(item).decode(),
            "digest_hex": wire.item_digest(item),
        }
        for index, item in enumerate(items)
    ]
    return {
        "signed": [*contributions, root_vector],
        "leaves": [
            {
                "index": index,
                "attestation": document,
                "canonical_utf8": leaf.decode(),
                "leaf_hash_hex": hashlib.sha256(b"\x00" + leaf).hexdigest(),
            }
            for index, (document, leaf) in enumerate(zip(attestations, leaves, strict=True))
        ],
        "items": item_vectors,
        "batch": {
            **batch_vector,
            "body": {"batch": batch_vector["object"], "signature": batch_vector["signature_b64"]},
        },
        "expected_results_at_hub_c": [
            {"index": index, "digest": vector["digest_hex"], "status": "accepted"}
            for index, vector in enumerate(item_vectors)
        ],
    }


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
