"""Checkpoints are C2SP tlog-checkpoint bodies in C2SP signed notes: byte-exact format, key ids
and verifier keys checked against the Go sumdb/note reference vector, and verification by the
standalone verifier."""

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from concordat_client import verifier
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import override_settings

from federation.hubkey import hub_public_key_bytes
from federation.transparency import checkpoints

# The example of golang.org/x/mod/sumdb/note (also in C2SP implementations' test suites): a
# signer key PRIVATE+KEY+<name>+<key id>+base64(0x01 || 32-byte seed), its verifier key, and the
# note it signs. Ed25519 is deterministic, so signing the text must give these exact bytes.
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def go_private_key() -> Ed25519PrivateKey:
    encoded = GO_SIGNER_KEY.split("+", 4)[4]
    raw = base64.b64decode(encoded)
    assert raw[0] == 1
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def test_key_id_and_verifier_key_match_the_go_reference_vector():
    public_key = go_private_key().public_key().public_bytes_raw()
    assert checkpoints.key_id("PeterNeumann", public_key).hex() == "c74f20a3"
    assert checkpoints.verifier_key("PeterNeumann", public_key) == GO_VERIFIER_KEY


def test_key_id_is_sha256_of_name_newline_type_and_key():
    public_key = bytes(range(32))
    expected = hashlib.sha256(b"hub.example\n\x01" + public_key).digest()[:4]
    assert checkpoints.key_id("hub.example", public_key) == expected
    assert expected.hex() == "9e3e9387"  # pinned; the Go vector above is the independent one


def test_signing_reproduces_the_go_reference_note_byte_for_byte():
    assert (
        checkpoints.sign_note(GO_TEXT, name="PeterNeumann", private_key=go_private_key()) == GO_NOTE
    )


def test_the_verifier_opens_the_go_reference_note_and_rejects_a_changed_one():
    key = verifier.parse_verifier_key(GO_VERIFIER_KEY)
    assert verifier.verify_note(GO_NOTE, key) == GO_TEXT
    with pytest.raises(verifier.NoteError, match="does not verify"):
        verifier.verify_note(GO_NOTE.replace("cryptography", "cryptographY"), key)


@override_settings(HUB_ID="hub.example.org/log")
def test_hub_checkpoint_note_is_exactly_the_c2sp_format():
    root = hashlib.sha256(b"root").digest()
    signed_at = datetime(2026, 12, 2, 1, 2, 3, tzinfo=UTC)
    note = checkpoints.sign_checkpoint(tree_size=42, root_hash=root, signed_at=signed_at)
    assert note.endswith("\n") and note.count("\n\n") == 1
    body, signature_line = note[:-1].split("\n\n")
    assert body + "\n" == (
        f"hub.example.org/log\n42\n{base64.b64encode(root).decode()}\n"
        "concordat-signed-at 2026-12-02T01:02:03Z\n"
    )
    assert signature_line.startswith("\u2014 hub.example.org/log ")
    blob = base64.b64decode(signature_line.split(" ")[2])
    assert len(blob) == 4 + 64
    assert blob[:4] == checkpoints.key_id("hub.example.org/log", hub_public_key_bytes())
    signed = verifier.verify_checkpoint(
        note, verifier.parse_verifier_key(checkpoints.hub_verifier_key())
    )
    assert (signed.origin, signed.tree_size, signed.root_hash) == ("hub.example.org/log", 42, root)
    assert signed.signed_at == signed_at


def test_the_verifier_rejects_notes_by_other_keys_and_ignores_extra_signatures():
    root = hashlib.sha256(b"r").digest()
    ours = Ed25519PrivateKey.generate()
    theirs = Ed25519PrivateKey.generate()
    body = checkpoints.checkpoint_body(origin="log.example", tree_size=3, root_hash=root)
    key = verifier.parse_verifier_key(
        checkpoints.verifier_key("log.example", ours.public_key().public_bytes_raw())
    )
    by_them = checkpoints.sign_note(body, name="log.example", private_key=theirs)
    with pytest.raises(verifier.NoteError, match=r"no signature by log\.example"):
        verifier.verify_note(by_them, key)
    by_us = checkpoints.sign_note(body, name="log.example", private_key=ours)
    witness_line = by_them.split("\n\n")[1].replace("log.example", "witness.example")
    cosigned = by_us + witness_line
    assert verifier.verify_checkpoint(cosigned, key).tree_size == 3
    forged = by_us.replace("\n3\n", "\n4\n")
    with pytest.raises(verifier.NoteError):
        verifier.verify_note(forged, key)


@pytest.mark.parametrize(
    "text",
    ["log\n3\n", "log\n03\nAAAA\n", "log\nthree\n" + "A" * 44 + "\n", "log\n3\nAAAA\n"],
)
def test_malformed_checkpoint_bodies_are_rejected(text):
    with pytest.raises(verifier.NoteError):
        verifier.parse_checkpoint(text)


@pytest.mark.parametrize(
    "vkey", ["", "a+b", "name+00000000+AQ==", GO_VERIFIER_KEY.replace("c74f", "c75f")]
)
def test_malformed_verifier_keys_are_rejected(vkey):
    with pytest.raises(verifier.NoteError):
        verifier.parse_verifier_key(vkey)


@pytest.mark.parametrize("name", ["", "has space", "has+plus"])
def test_key_names_that_the_format_cannot_carry_are_refused(name):
    with pytest.raises(ValueError):
        checkpoints.check_key_name(name)


def test_the_worked_example_in_the_docs_is_exact():
    """docs/transparency.md: key seed bytes 0..31, origin hub.example.org, leaves "leaf 0..2"."""
    from federation.transparency import merkle

    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    hashes = [merkle.leaf_hash(f"leaf {i}".encode()) for i in range(3)]
    root = merkle.range_hash(0, 3, merkle.new_nodes(old_size=0, leaf_hashes=hashes, frontier={}))
    body = checkpoints.checkpoint_body(origin="hub.example.org", tree_size=3, root_hash=root)
    note = checkpoints.sign_note(body, name="hub.example.org", private_key=key)
    assert note == (
        "hub.example.org\n3\n1Pksj7uJcg6ztVZ3x9fvrd/rENEaGoSguo8aIzN/qpU=\n\n"
        "\u2014 hub.example.org LOnHVd0eVA8p8+2Wx7vnvfYElGl3oF2IrF3dZVcwGsysmEDy7rsPpTfAN6WpNNy02DbFw6M1b+qVtr+YcVndU3AeCAc=\n"
    )
    vkey = checkpoints.verifier_key("hub.example.org", key.public_key().public_bytes_raw())
    assert vkey == "hub.example.org+2ce9c755+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
    assert verifier.verify_checkpoint(note, verifier.parse_verifier_key(vkey)).tree_size == 3
    stamped = checkpoints.sign_note(
        checkpoints.checkpoint_body(
            origin="hub.example.org",
            tree_size=3,
            root_hash=root,
            signed_at=datetime(2026, 12, 1, tzinfo=UTC),
        ),
        name="hub.example.org",
        private_key=key,
    )
    assert stamped == (
        "hub.example.org\n3\n1Pksj7uJcg6ztVZ3x9fvrd/rENEaGoSguo8aIzN/qpU=\n"
        "concordat-signed-at 2026-12-01T00:00:00Z\n\n"
        "\u2014 hub.example.org LOnHVfTBVd0gKJ2GTIg2NuzbOmwwP7m9LQCLvlU1Rox5TLL1RukMJ53wipbWOS18z51OayACB1SBruJB1xxlW+c3Xw4=\n"
    )
    signed = verifier.verify_checkpoint(stamped, verifier.parse_verifier_key(vkey))
    assert signed.signed_at == datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize("size", ["\u00b2", "\u0661\u0662", "012", "-1", ""])
def test_the_verifier_refuses_a_checkpoint_size_that_is_not_plain_ascii_decimal(size):
    root = base64.b64encode(bytes(32)).decode()
    with pytest.raises(verifier.NoteError):
        verifier.parse_checkpoint(f"origin\n{size}\n{root}\n")
