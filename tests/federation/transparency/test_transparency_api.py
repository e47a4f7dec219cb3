"""The log API: who may read it, public mode, the answers' shapes and the errors for bad input.
Every answer is checked with the standalone verifier's code."""

import base64
import json

import pytest
from concordat_client import verifier
from pymerkle import InmemoryTree

from federation.transparency.audit import AuditRecord, audit_record_many
from federation.transparency.models import AuditEvent
from federation.transparency.sequencer import sequence_pending
from members.actors import Actor
from tests.support.tampering import as_superuser_bypassing_triggers

ACTOR = Actor.system("test")


@pytest.fixture
def log(db):
    audit_record_many(
        AuditRecord(action="test.event", actor=ACTOR, object_id=str(i), data={"n": i, "text": "é✓"})
        for i in range(20)
    )
    sequence_pending(batch_size=8)
    # the parties' own creation is audited too: the log holds their events and these 20
    return AuditEvent.objects.count()


def vkey(client) -> verifier.VerifierKey:
    return verifier.parse_verifier_key(client.get("/api/v1/log/key").json()["vkey"])


def b64(value: str) -> bytes:
    return base64.b64decode(value)


def test_the_verifier_key_is_public(anonymous, log):
    response = anonymous.get("/api/v1/log/key")
    assert response.status_code == 200
    body = response.json()
    assert body["vkey"].startswith("hub.test.concordat+" + body["key_id"] + "+")
    assert body["algorithm"] == "ed25519"


@pytest.mark.parametrize("party", ["auditor", "consortium_admin"])
def test_auditors_and_consortium_admins_read_the_log(request, party, log):
    client = request.getfixturevalue(party).client
    response = client.get("/api/v1/log/checkpoint")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    signed = verifier.verify_checkpoint(response.content.decode(), vkey(client))
    assert signed.tree_size == log
    assert client.get("/api/v1/log/entries?start=0&end=5").status_code == 200
    assert client.get("/api/v1/log/proof/inclusion?index=3").status_code == 200
    assert client.get("/api/v1/log/proof/consistency?first=3").status_code == 200


@pytest.mark.parametrize("party", ["acme_submitter", "acme_reviewer", "acme_admin"])
def test_members_may_not_read_a_private_log(request, party, log):
    client = request.getfixturevalue(party).client
    for path in ("checkpoint", "entries?start=0&end=1", "proof/inclusion?index=0"):
        response = client.get(f"/api/v1/log/{path}")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"


def test_anonymous_readers_are_asked_to_authenticate(anonymous, log):
    response = anonymous.get("/api/v1/log/checkpoint")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_public_log_is_readable_by_anyone(anonymous, acme_submitter, log, settings):
    settings.TRANSPARENCY_LOG_PUBLIC = True
    for client in (anonymous, acme_submitter.client):
        assert client.get("/api/v1/log/checkpoint").status_code == 200
        assert client.get("/api/v1/log/entries?start=0&end=2").status_code == 200


def test_the_checkpoint_is_served_as_text_to_clients_asking_for_text(auditor, log):
    response = auditor.client.get("/api/v1/log/checkpoint", HTTP_ACCEPT="text/plain")
    assert response.status_code == 200
    assert response.content.decode().startswith(f"hub.test.concordat\n{log}\n")


def test_older_checkpoints_are_served_by_size(auditor, log):
    response = auditor.client.get("/api/v1/log/checkpoint?size=8")
    assert (
        verifier.verify_checkpoint(response.content.decode(), vkey(auditor.client)).tree_size == 8
    )
    missing = auditor.client.get("/api/v1/log/checkpoint?size=9")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_entries_hash_to_the_signed_root(auditor, log):
    client = auditor.client
    signed = verifier.verify_checkpoint(
        client.get("/api/v1/log/checkpoint").content.decode(), vkey(client)
    )
    body = client.get("/api/v1/log/entries?start=0&end=1000").json()
    assert body["tree_size"] == log and body["start"] == 0 and body["end"] == log
    entries = body["entries"]
    assert [entry["leaf_index"] for entry in entries] == list(range(log))
    leaves = [b64(entry["leaf"]) for entry in entries]
    for entry, leaf in zip(entries, leaves, strict=True):
        assert json.loads(leaf) == entry["event"]
        assert entry["event"]["kind"] == "concordat.audit-event"
        assert verifier.leaf_hash(leaf) == b64(entry["leaf_hash"])
    assert InmemoryTree.init_from_entries(leaves).get_root() == signed.root_hash
    assert (
        verifier.root_from_leaf_hashes([verifier.leaf_hash(leaf) for leaf in leaves])
        == signed.root_hash
    )


def test_entries_show_a_row_changed_after_logging(auditor, log):
    with as_superuser_bypassing_triggers():
        AuditEvent.objects.filter(leaf_index=4).update(data={"n": 999})
    entries = auditor.client.get("/api/v1/log/entries?start=0&end=1000").json()["entries"]
    changed = [
        entry["leaf_index"]
        for entry in entries
        if verifier.leaf_hash(b64(entry["leaf"])) != b64(entry["leaf_hash"])
    ]
    assert changed == [4]
    assert entries[4]["event"]["data"] == {"n": 999}


def test_proofs_verify_against_signed_checkpoints(auditor, log):
    client = auditor.client
    key = vkey(client)
    latest = verifier.verify_checkpoint(client.get("/api/v1/log/checkpoint").content.decode(), key)
    older = verifier.verify_checkpoint(
        client.get("/api/v1/log/checkpoint?size=8").content.decode(), key
    )
    leaves = [
        b64(e["leaf"]) for e in client.get("/api/v1/log/entries?start=0&end=1000").json()["entries"]
    ]
    for index in range(log):
        proof = client.get(f"/api/v1/log/proof/inclusion?index={index}&tree_size={log}").json()
        assert (proof["leaf_index"], proof["tree_size"]) == (index, log)
        path = [b64(node) for node in proof["inclusion_path"]]
        verifier.verify_inclusion(
            index, log, verifier.leaf_hash(leaves[index]), path, latest.root_hash
        )
    proof = client.get(f"/api/v1/log/proof/consistency?first=8&second={log}").json()
    assert (proof["tree_size_1"], proof["tree_size_2"]) == (8, log)
    verifier.verify_consistency(
        8, log, older.root_hash, latest.root_hash, [b64(node) for node in proof["consistency_path"]]
    )


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("proof/inclusion", "missing_parameter"),
        ("proof/inclusion?index=abc", "invalid"),
        ("proof/inclusion?index=-1", "invalid"),
        ("proof/inclusion?index={size}", "bad_leaf_index"),
        ("proof/inclusion?index=0&tree_size={above}", "bad_tree_size"),
        ("proof/inclusion?index=0&tree_size=0", "bad_tree_size"),
        ("proof/inclusion?index=99999999999999999999999", "invalid"),
        ("proof/consistency?first={above}", "bad_tree_size"),
        ("proof/consistency?first=5&second=4", "bad_tree_size"),
        ("proof/consistency?first=1&second={above}", "bad_tree_size"),
        ("entries?start=0", "missing_parameter"),
        ("entries?start=5&end=5", "bad_range"),
        ("entries?start=0&end=1001", "bad_range"),
        ("entries?start={size}&end={above}", "bad_range"),
        ("checkpoint?size=x", "invalid"),
    ],
)
def test_bad_parameters_get_the_error_shape(auditor, log, path, code):
    response = auditor.client.get(f"/api/v1/log/{path.format(size=log, above=log + 1)}")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


def test_entries_beyond_the_tree_are_cut_at_its_size(auditor, log):
    body = auditor.client.get(f"/api/v1/log/entries?start=15&end={log + 50}").json()
    assert [entry["leaf_index"] for entry in body["entries"]] == list(range(15, log))
    assert body["end"] == log


def test_before_the_first_checkpoint_the_log_answers_not_found(auditor):
    response = auditor.client.get("/api/v1/log/checkpoint")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_checkpoint"
    assert auditor.client.get("/api/v1/log/proof/inclusion?index=0").status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/log/entries?start=%C2%B2&end=3",
        "/api/v1/log/checkpoint?size=%C2%B2",
        "/api/v1/log/proof/inclusion?index=%C2%B2&tree_size=3",
        "/api/v1/log/proof/consistency?first=%D9%A1&second=3",
    ],
)
def test_non_ascii_digits_are_a_400_not_a_500(auditor, log, path):
    response = auditor.client.get(path)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
