"""The shortcuts to a batch's bytes write exactly what the reference writes: a sender's batch
spliced from its items' bytes, a receiver's parts of a batch written without a second domain
walk, and hub signatures by libsodium (docs/federation.md, "Wire format")."""

import hashlib
import uuid
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.canonical import canonical_bytes, canonical_json_bytes
from federation.propagation import wire
from federation.signing import sign_bytes

MOMENT = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


def _attestation(value: str) -> dict:
    document = wire.attestation_document(
        hub="a.hub", signal_type="md5", value=value, state="vetted", decided_at=MOMENT,
        policy="trusted member \u00e9\U0001f600 \"quoted\" \\ \t", attested_at=MOMENT,
    )  # fmt: skip
    return wire.signed_pair(wire.sign_document(Ed25519PrivateKey.generate(), document),
                            name="attestation")  # fmt: skip


def _items() -> list[dict]:
    return [
        {
            "type": "entry",
            "attestations": [_attestation(f"{n:032x}")],
            "path": ["a.hub"],
            # Text JCS escapes, non-ASCII, a non-BMP character and a key that sorts differently
            # by UTF-16 code units (outside the fast domain: written by the reference).
            **({"extra": {"\ue000": 1, "\U0001f600": "x\u0001\u2028"}} if n == 1 else {}),
        }
        for n in range(3)
    ]


@pytest.mark.parametrize("feed", [None, {"after": 3, "next": 9, "more": True}])
def test_a_batch_spliced_from_its_items_bytes_is_its_rfc8785_bytes(feed):
    items = _items()
    document = wire.batch_document(
        sender="a.hub", receiver="b.hub", batch_id=uuid.uuid4(), sent_at=MOMENT, items=items,
        feed=feed,
    )  # fmt: skip
    spliced = wire.batch_canonical(document, [canonical_json_bytes(item) for item in items])
    assert spliced == canonical_bytes(document)


def test_an_empty_batch_spliced_is_its_rfc8785_bytes():
    document = wire.batch_document(
        sender="a.hub", receiver="b.hub", batch_id=uuid.uuid4(), sent_at=MOMENT, items=[]
    )
    assert wire.batch_canonical(document, []) == canonical_bytes(document)


def test_the_parts_of_a_parsed_batch_have_their_rfc8785_bytes():
    key = Ed25519PrivateKey.generate()
    items = [item for item in _items() if "extra" not in item]
    document = wire.batch_document(
        sender="a.hub", receiver="b.hub", batch_id=uuid.uuid4(), sent_at=MOMENT, items=items
    )
    body = wire.signed_pair(wire.sign_document(key, document), name="batch")
    parsed = wire.parse_batch(body)
    assert parsed.envelope.canonical == canonical_bytes(document)
    for item, raw in zip(parsed.items, items, strict=True):
        assert item.digest == hashlib.sha256(canonical_bytes(raw)).hexdigest()
        (attestation,) = item.attestations
        assert attestation.canonical == canonical_bytes(raw["attestations"][0]["attestation"])


def test_an_item_outside_the_fast_domain_is_digested_by_the_reference():
    items = _items()
    items[0]["attestations"][0]["attestation"]["v"] = 1.0  # a float: malformed, still digested
    document = wire.batch_document(
        sender="a.hub", receiver="b.hub", batch_id=uuid.uuid4(), sent_at=MOMENT, items=items
    )
    parsed = wire.parse_batch(wire.signed_pair(wire.sign_document(
        Ed25519PrivateKey.generate(), document), name="batch"))  # fmt: skip
    assert parsed.envelope.canonical == canonical_bytes(document)
    assert [problem.index for problem in parsed.problems] == [0, 1]  # the float; "extra"
    assert parsed.problems[0].digest == hashlib.sha256(canonical_bytes(items[0])).hexdigest()
    (item,) = parsed.items
    assert item.digest == hashlib.sha256(canonical_bytes(items[2])).hexdigest()


def _key_item(section: dict) -> dict:
    return {"type": "key", "key": section, "path": ["a.hub"]}


def test_the_key_sections_a_batch_repeats_are_parsed_once_each():
    key = Ed25519PrivateKey.generate()
    binding = wire.key_binding_document(
        hub="a.hub", member="acme", key_id="0" * 32, registration=b"{}", not_before=MOMENT,
        revoked_at=None, issued_at=MOMENT,
    )  # fmt: skip
    document, signature = wire.sign_document(key, binding).as_wire()
    section = {
        "registration": {"kind": "concordat.key"},
        "signature": "",
        "binding": document,
        "binding_signature": signature,
    }
    malformed = {**section, "binding": {**document, "member": "not a slug"}}
    items = [_key_item(dict(section)), _key_item(malformed), _key_item(dict(section))]
    items.append(_key_item(dict(malformed)))
    batch = wire.batch_document(
        sender="a.hub", receiver="b.hub", batch_id=uuid.uuid4(), sent_at=MOMENT, items=items
    )
    parsed = wire.parse_batch(wire.signed_pair(wire.sign_document(key, batch), name="batch"))

    first, second = parsed.items
    assert (first.index, second.index) == (0, 2)
    assert second.binding is first.binding and second.registration is first.registration
    digest = hashlib.sha256(canonical_bytes(section)).hexdigest()
    assert first.key_digest == second.key_digest == digest
    assert first.binding.canonical == canonical_bytes(document)
    # A malformed section is refused wherever it is repeated, with the same message.
    assert [(p.index, p.field) for p in parsed.problems] == [
        (1, "items[1].key.binding.member"),
        (3, "items[3].key.binding.member"),
    ]


def test_hub_signatures_by_libsodium_are_the_ed25519_signatures():
    key = Ed25519PrivateKey.generate()
    for message in (b"", b"batch", bytes(range(256)) * 9):
        assert sign_bytes(key, message) == key.sign(message)
