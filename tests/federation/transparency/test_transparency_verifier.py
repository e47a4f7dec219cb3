"""The standalone verifier run in-process against the hub's real API (the Django test client in
place of HTTP): exact canonical leaves, member signatures of accepted contributions, staleness,
figures reconciled with the log, the state directory, incremental runs and the split-view check."""

import base64
import io
import json
from datetime import timedelta

import pytest
import rfc8785
from concordat_client import crosscheck, verifier
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.contributions.models import Contribution
from federation.hubkey import hub_private_key
from federation.transparency.audit import AuditRecord, audit_record_many
from federation.transparency.checkpoints import hub_verifier_key
from federation.transparency.models import AuditEvent, Checkpoint
from federation.transparency.sequencer import sequence_pending
from members.actors import Actor
from tests.support.tampering import as_superuser_bypassing_triggers
from tests.support.verifier_hub import InProcessHub

ACTOR = Actor.system("test")


def record(count: int, *, action: str = "test.event") -> None:
    audit_record_many(
        AuditRecord(action=action, actor=ACTOR, object_id=str(i), data={"n": i})
        for i in range(count)
    )


def verify(hub, tmp_path, **options) -> tuple[int, str]:
    out = io.StringIO()
    options.setdefault("state_dir", tmp_path / "state")
    code = verifier.run(
        hub="http://hub.test", vkey=hub_verifier_key(), token=None, out=out, client=hub, **options
    )
    return code, out.getvalue()


@pytest.fixture
def hub(auditor):
    return InProcessHub(auditor.client)


# --- point 11: the exact bytes ------------------------------------------------------------------


def test_a_leaf_with_a_duplicate_key_is_refused():
    leaf = b'{"action":"a","action":"b","kind":"concordat.audit-event","v":1}'
    with pytest.raises(verifier.CanonicalError, match="duplicate key 'action'"):
        verifier.check_leaf(leaf, json.loads(leaf))


def test_an_event_document_saying_true_where_the_leaf_says_1_is_refused():
    document = {
        "kind": "concordat.audit-event", "v": 1, "id": 1, "action": "x", "organisation": "",
        "occurred_at": "2026-01-01T00:00:00.000000Z", "data": {"n": 1},
        "actor": {}, "object": {},
    }  # fmt: skip
    leaf = rfc8785.dumps(document)
    assert verifier.check_leaf(leaf, document) == document
    with pytest.raises(verifier.CanonicalError, match="differs from the leaf bytes"):
        verifier.check_leaf(leaf, {**document, "data": {"n": True}})


@pytest.mark.parametrize(
    "leaf",
    [
        b'{"v":1, "kind":"concordat.audit-event"}',  # whitespace
        b'{"v":1,"kind":"concordat.audit-event"}',  # keys out of order
        b'{"kind":"concordat.audit-event","v":1.0}',  # 1.0 for 1
        b'{"kind":"concordat.audit-event","v":1,"x":"\\u00e9"}',  # an escape JCS does not use
        b'{"kind":"concordat.audit-event","v":1,"x":"\\ud800"}',  # a lone surrogate
        b'{"kind":"concordat.audit-event","v":NaN}',
    ],
)
def test_non_canonical_leaf_bytes_are_refused(leaf):
    with pytest.raises(verifier.CanonicalError):
        verifier.parse_canonical(leaf)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_the_verifiers_own_jcs_gives_the_bytes_of_the_rfc8785_package(value):
    try:
        expected = rfc8785.dumps(value)
    except UnicodeEncodeError:  # a lone surrogate: neither may encode it
        with pytest.raises(verifier.CanonicalError):
            verifier.canonical_json(value)
        return
    assert verifier.canonical_json(value) == expected
    assert verifier.canonical_json(verifier.parse_canonical(expected)) == expected


@pytest.mark.django_db
def test_a_hub_serving_non_canonical_leaf_bytes_fails_naming_the_leaf(hub, tmp_path):
    record(3)
    sequence_pending()
    target = AuditEvent.objects.order_by("leaf_index").last().leaf_index

    def loosen(path, params, content):
        if path != "/entries":
            return content
        page = json.loads(content)
        for entry in page["entries"]:
            if entry["leaf_index"] == target:
                loose = json.dumps(entry["event"]).encode()  # spaces, key order of the row
                entry["leaf"] = base64.b64encode(loose).decode()
        return json.dumps(page).encode()

    hub.rewrite = loosen
    code, output = verify(hub, tmp_path, spot_checks=0)
    assert code == 1, output
    assert f"leaf {target}: the bytes are not in RFC 8785 canonical form" in output


# --- point 9: member signatures -----------------------------------------------------------------


def accepted_leaf(uuid_text: str) -> int:
    return AuditEvent.objects.get(action="contribution.accepted", object_id=uuid_text).leaf_index


@pytest.mark.django_db
def test_the_log_serves_the_signed_bytes_of_accepted_contributions_by_leaf(
    acme_submitter, auditor, acme_admin
):
    acme_submitter.submit()
    sequence_pending()
    contribution = Contribution.objects.get()
    leaf = accepted_leaf(str(contribution.uuid))
    response = auditor.client.get(f"/api/v1/log/contributions?start=0&end={leaf + 1}")
    assert response.status_code == 200
    (item,) = response.json()["contributions"]
    assert item == {
        "leaf_index": leaf,
        "uuid": str(contribution.uuid),
        "canonical": base64.b64encode(contribution.canonical.encode()).decode(),
        "signature": base64.b64encode(bytes(contribution.signature)).decode(),
    }
    assert acme_admin.client.get("/api/v1/log/contributions?start=0&end=5").status_code == 403
    too_many = auditor.client.get("/api/v1/log/contributions?start=0&end=1001")
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "bad_range"


@pytest.mark.django_db
def test_the_verifier_checks_every_accepted_contributions_member_signature(
    acme_submitter, hub, tmp_path
):
    for _ in range(3):
        acme_submitter.submit()
    sequence_pending()
    code, output = verify(hub, tmp_path)
    assert code == 0, output
    assert "OK    3 accepted contributions: signed bytes hash to the leaf's content_hash" in output


@pytest.mark.django_db
def test_stored_signed_bytes_that_differ_from_the_logged_hash_fail_naming_the_leaf(
    acme_submitter, hub, tmp_path
):
    acme_submitter.submit()
    sequence_pending()
    contribution = Contribution.objects.get()
    with as_superuser_bypassing_triggers():
        Contribution.objects.filter(pk=contribution.pk).update(
            canonical=contribution.canonical.replace("attack-footage", "other-label")
        )
    code, output = verify(hub, tmp_path)
    assert code == 1, output
    leaf = accepted_leaf(str(contribution.uuid))
    assert (
        f"leaf {leaf} (contribution {contribution.uuid}): SHA-256 of the signed bytes is not "
        "the leaf's content_hash" in output
    )


@pytest.mark.django_db
def test_a_forged_signature_fails_naming_the_leaf(acme_submitter, globex_submitter, hub, tmp_path):
    acme_submitter.submit()
    contribution = Contribution.objects.get()
    # Signed by another member's key: the hub logged and stored the same (wrong) signature.
    forged = globex_submitter.private_key.sign(contribution.canonical.encode())
    with as_superuser_bypassing_triggers():
        Contribution.objects.filter(pk=contribution.pk).update(signature=forged)
    event = AuditEvent.objects.get(action="contribution.accepted")
    event.data["signature"] = base64.b64encode(forged).decode()
    with as_superuser_bypassing_triggers():
        AuditEvent.objects.filter(pk=event.pk).update(data=event.data)  # before it is logged
    sequence_pending()
    code, output = verify(hub, tmp_path)
    assert code == 1, output
    assert (
        f"leaf {accepted_leaf(str(contribution.uuid))} (contribution {contribution.uuid}): "
        "the member signature does not verify" in output
    )


@pytest.mark.django_db
def test_a_leaf_whose_fields_differ_from_the_signed_contribution_fails(
    acme_submitter, hub, tmp_path
):
    acme_submitter.submit()
    event = AuditEvent.objects.get(action="contribution.accepted")
    event.data["labels"] = ["something-else"]
    with as_superuser_bypassing_triggers():
        AuditEvent.objects.filter(pk=event.pk).update(
            data=event.data
        )  # logged so, before sequencing
    sequence_pending()
    code, output = verify(hub, tmp_path)
    assert code == 1, output
    leaf = AuditEvent.objects.get(pk=event.pk).leaf_index
    assert f"leaf {leaf} (contribution {event.object_id}): the leaf's labels differ" in output


@pytest.mark.django_db
def test_a_contribution_without_an_earlier_key_registration_fails(acme_submitter, hub, tmp_path):
    acme_submitter.submit()
    with as_superuser_bypassing_triggers():
        AuditEvent.objects.filter(action="key.registered").update(action="key.something")
    sequence_pending()
    code, output = verify(hub, tmp_path)
    assert code == 1, output
    assert "no key.registered or key.received leaf before it for key" in output


# --- point 6: staleness -------------------------------------------------------------------------


@pytest.mark.django_db
def test_checkpoints_carry_the_signed_time_the_verifier_reads():
    record(2)
    sequence_pending()
    checkpoint = Checkpoint.objects.order_by("-tree_size").first()
    lines = checkpoint.note.split("\n")
    assert lines[3] == f"concordat-signed-at {checkpoint.created_at:%Y-%m-%dT%H:%M:%SZ}"
    signed = verifier.verify_checkpoint(
        checkpoint.note, verifier.parse_verifier_key(hub_verifier_key())
    )
    assert signed.signed_at == checkpoint.created_at
    # The body is still origin, size, root first: a C2SP verifier reads those and ignores the rest.
    assert lines[:3] == [
        signed.origin,
        str(checkpoint.tree_size),
        base64.b64encode(signed.root_hash).decode(),
    ]


@pytest.mark.django_db
def test_the_verifier_warns_when_the_checkpoint_is_older_than_max_age_while_events_wait(
    hub, tmp_path
):
    record(2)
    sequence_pending()
    signed_at = Checkpoint.objects.order_by("-tree_size").first().created_at
    later = signed_at + timedelta(hours=2)
    code, output = verify(hub, tmp_path, max_age=3600, now=later)
    assert code == 0, output  # nothing waits: an old checkpoint is not stale
    assert "nothing waits to be sequenced" in output
    record(1)  # waits: no sequencer ran
    code, output = verify(hub, tmp_path, max_age=3600, now=later)
    assert code == 3, output
    assert "WARN  the latest checkpoint is 7200 s old, beyond --max-age 3600 s" in output
    assert "RESULT: OK with 1 warnings" in output
    code, output = verify(hub, tmp_path, max_age=3 * 3600, now=later)
    assert code == 0, output
    assert "within --max-age" in output


# --- point 10: figures from the log ------------------------------------------------------------


@pytest.mark.django_db
def test_reconcile_matches_the_hubs_figures_with_the_leaves(acme_submitter, hub, tmp_path):
    acme_submitter.submit()
    acme_submitter.submit(labels=["attack-footage", "propaganda"])
    sequence_pending()
    month = AuditEvent.objects.first().occurred_at.strftime("%Y-%m")
    code, output = verify(hub, tmp_path, reconcile_figures=True, month=month)
    assert code == 0, output
    size = Checkpoint.objects.order_by("-tree_size").first().tree_size
    assert f"OK    reconciled at checkpoint {size}, month {month}" in output
    figures = json.loads(output.split("FIGURES ", 1)[1].splitlines()[0])
    assert figures["contributions_accepted"] == 2
    assert figures["contributions_by_label"] == {"attack-footage": 2, "propaganda": 1}
    assert figures["contributions_by_organisation"] == {"acme": 2}


@pytest.mark.django_db
def test_reconcile_fails_when_the_hubs_figures_differ_from_the_leaves(
    acme_submitter, hub, tmp_path
):
    acme_submitter.submit()
    sequence_pending()

    def inflate(path, params, content):
        if path != "/figures":
            return content
        figures = json.loads(content)
        figures["contributions_by_label"]["attack-footage"] += 5
        return json.dumps(figures).encode()

    hub.rewrite = inflate
    code, output = verify(hub, tmp_path, reconcile_figures=True)
    assert code == 1, output
    assert "contributions_by_label: the hub says {'attack-footage': 6}, the leaves say" in output


# --- point 12: the state directory --------------------------------------------------------------


@pytest.mark.django_db
def test_runs_are_incremental_and_keep_the_history_of_checkpoints(acme_submitter, hub, tmp_path):
    acme_submitter.submit()
    sequence_pending()
    first_size = Checkpoint.objects.order_by("-tree_size").first().tree_size
    code, output = verify(hub, tmp_path, reconcile_figures=True)
    assert code == 0, output
    assert f"fetched {first_size} entries (leaves 0 to {first_size - 1})" in output
    acme_submitter.submit()
    record(3)
    sequence_pending()
    size = Checkpoint.objects.order_by("-tree_size").first().tree_size
    hub.requests.clear()
    code, output = verify(hub, tmp_path, reconcile_figures=True, spot_checks=0, recheck=0)
    assert code == 0, output
    assert f"fetched the {size - first_size} new entries (leaves {first_size} to {size - 1})" in (
        output
    )
    assert f"the previous checkpoint (size {first_size}) is a prefix of this one" in output
    assert "1 accepted contributions" in output
    assert f"reconciled at checkpoint {size}" in output  # running figures kept in the state
    entry_ranges = [
        p for path, p in hub.requests if path == "/entries" and p["end"] > p["start"] + 1
    ]
    assert all(p["start"] >= first_size for p in entry_ranges)
    history = verifier.load_history(tmp_path / "state")
    assert [item["tree_size"] for item in history] == [first_size, size]
    code, output = verify(hub, tmp_path, full=True, spot_checks=0)
    assert code == 0, output
    assert f"fetched {size} entries (leaves 0 to {size - 1})" in output
    assert len(verifier.load_history(tmp_path / "state")) == 2  # the same checkpoint again


@pytest.mark.django_db
def test_the_state_directory_defaults_to_the_home_directory(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    record(1)
    sequence_pending()
    code, output = verify(hub, tmp_path, state_dir=None)
    assert code == 0, output
    assert (tmp_path / ".concordat-verifier" / "hub.test.concordat" / "state.json").exists()


@pytest.mark.django_db
def test_a_damaged_state_is_refused(hub, tmp_path):
    record(3)
    sequence_pending()
    assert verify(hub, tmp_path)[0] == 0
    path = tmp_path / "state" / "state.json"
    saved = json.loads(path.read_text())
    saved["frontier"][0] = base64.b64encode(b"x" * 32).decode()
    path.write_text(json.dumps(saved))
    code, output = verify(hub, tmp_path)
    assert code == 1
    assert "cannot be used (its frontier does not give the saved checkpoint's root)" in output


def compare(first, second, hub=None) -> tuple[int, str]:
    out = io.StringIO()
    code = crosscheck.compare(
        first=first, second=second, vkey=hub_verifier_key(), hub=None, token=None, out=out,
        client=hub,
    )  # fmt: skip
    return code, out.getvalue()


@pytest.mark.django_db
def test_compare_finds_two_auditors_views_consistent(hub, tmp_path):
    record(3)
    sequence_pending()
    assert verify(hub, tmp_path, state_dir=tmp_path / "a")[0] == 0
    record(2)
    sequence_pending()
    assert verify(hub, tmp_path, state_dir=tmp_path / "b")[0] == 0
    code, output = compare(tmp_path / "a", tmp_path / "b", hub)
    assert code == 0, output
    assert "is a prefix of size" in output
    code, output = compare(tmp_path / "a", tmp_path / "b")
    assert code == 0 and "pass --hub" in output


@pytest.mark.django_db
def test_compare_reports_two_signed_roots_for_one_size_as_evidence(hub, tmp_path):
    record(3)
    sequence_pending()
    assert verify(hub, tmp_path, state_dir=tmp_path / "a")[0] == 0
    size = Checkpoint.objects.order_by("-tree_size").first().tree_size
    # The other auditor was shown another tree of the same size, signed with the hub's key.
    key = verifier.parse_verifier_key(hub_verifier_key())
    body = f"{key.name}\n{size}\n{base64.b64encode(b'y' * 32).decode()}\n"
    signature = base64.b64encode(key.key_id + hub_private_key().sign(body.encode())).decode()
    note = f"{body}\n\u2014 {key.name} {signature}\n"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "checkpoints.jsonl").write_text(json.dumps({"checkpoint": note}) + "\n")
    code, output = compare(tmp_path / "a", tmp_path / "b", hub)
    assert code == 1, output
    assert f"SPLIT VIEW: the hub signed 2 different roots for tree size {size}" in output
    assert base64.b64encode(b"y" * 32).decode() in output  # the evidence itself


# --- the rotating re-check of old leaves (docs/transparency.md, step 4) -------------------------


@pytest.mark.django_db
def test_an_incremental_run_rechecks_old_leaves_in_rotation(hub, tmp_path):
    record(10)
    sequence_pending()
    code, output = verify(hub, tmp_path)
    assert code == 0, output
    seen, expected, cursor = [], [], 0
    while len(expected) < 2 or expected[-1] != "0 to 3":
        verified_before = Checkpoint.objects.order_by("-tree_size").first().tree_size
        # From where the last run stopped, 4 at a time, up to what the earlier runs verified,
        # then from leaf 0 again.
        start = cursor if cursor < verified_before else 0
        end = min(start + 4, verified_before)
        expected.append(f"{start} to {end - 1}")
        cursor = end if end < verified_before else 0
        record(1)
        sequence_pending()
        code, output = verify(hub, tmp_path, recheck=4, spot_checks=0)
        assert code == 0, output
        seen.append(output.split("re-checked old leaves ")[1].split(" in full")[0])
        assert len(seen) < 10
    assert seen == expected and len(seen) > 2
    assert f"a pass over all {verified_before} earlier leaves takes" in output


@pytest.mark.django_db
def test_an_old_row_edited_after_a_run_is_caught_by_the_next_incremental_run(hub, tmp_path):
    """What a spot check may miss: a row-level edit of an old event, caught by the rotating
    re-check (and not seen at all with it switched off)."""
    record(10)
    sequence_pending()
    assert verify(hub, tmp_path)[0] == 0
    event = AuditEvent.objects.get(leaf_index=6)
    with as_superuser_bypassing_triggers():
        AuditEvent.objects.filter(pk=event.pk).update(data={"n": 600})
    record(1)
    sequence_pending()
    code, output = verify(hub, tmp_path, recheck=0, spot_checks=0)
    assert code == 0, output  # the gap: without the re-check an incremental run passes
    record(1)
    sequence_pending()
    code, output = verify(hub, tmp_path, spot_checks=0)
    assert code == 1, output
    assert "leaf 6: its bytes no longer hash to the committed leaf hash" in output


@pytest.mark.django_db
def test_the_recheck_proves_old_bytes_against_the_signed_root(hub, tmp_path):
    """A hub that serves an edited leaf with a committed hash to match is caught: the leaves'
    subtree is proven in the signed tree."""
    record(8)
    sequence_pending()
    assert verify(hub, tmp_path)[0] == 0
    record(1)
    sequence_pending()

    def forge(path, params, content):
        if path != "/entries" or params.get("start") != 0:
            return content
        page = json.loads(content)
        for entry in page["entries"]:
            if entry["leaf_index"] == 5:
                entry["event"]["data"] = {"n": 500}
                leaf = rfc8785.dumps(entry["event"])
                entry["leaf"] = base64.b64encode(leaf).decode()
                entry["leaf_hash"] = base64.b64encode(verifier.leaf_hash(leaf)).decode()
        return json.dumps(page).encode()

    code, output = verify(InProcessHub(hub.client, rewrite=forge), tmp_path, spot_checks=0)
    assert code == 1, output
    assert "leaves 0 to 7: the hub's proof does not hold the subtrees of these leaves' bytes" in (
        output
    )


def test_ranges_split_into_aligned_subtrees():
    assert verifier.aligned_blocks(0, 11) == [(0, 8), (8, 2), (10, 1)]
    assert verifier.aligned_blocks(4, 13) == [(4, 4), (8, 4), (12, 1)]
    assert verifier.aligned_blocks(3, 3) == []
