"""The pure checks of federation/contributions/checks.py under local and relay contexts.

A relayed contribution (one a peer hub accepted) passes exactly the same structure and signature
checks as a member's own, under other time rules: it must have been valid when it was signed,
however old it is now. Most of these tests need no database: keys and taxonomy are given.
"""

import dataclasses
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from federation.contributions.checks import (
    CheckContext,
    MemberKeys,
    TimeRule,
    check_contributions,
    check_contributions_in_chunks,
)
from federation.signing import format_timestamp, sign_contribution
from members.models import SigningKey, key_id_for
from tests.support.parties import raw_public_key

PEER_HUB = "hub-b.example"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _key(private_key: Ed25519PrivateKey, *, not_before: datetime, revoked_at=None) -> SigningKey:
    public = raw_public_key(private_key)
    return SigningKey(
        key_id=key_id_for(public), public_key=public, not_before=not_before, revoked_at=revoked_at
    )


def _item(private_key, *, hub=PEER_HUB, member="acme", created_at=NOW, signature=None):
    document = {
        "kind": "concordat.contribution",
        "v": 1,
        "hub": hub,
        "member": member,
        "key_id": key_id_for(raw_public_key(private_key)),
        "uuid": str(uuid.uuid4()),
        "created_at": format_timestamp(created_at),
        "action": "add",
        "signal": {"type": "md5", "value": uuid.uuid4().hex},
        "labels": ["attack-footage"],
        "scope": "federation",
    }
    return {
        "contribution": document,
        "signature": signature or sign_contribution(private_key, document),
    }


def _context(key: SigningKey, *, rule: str, origin_hub=PEER_HUB, member=None, key_hub=PEER_HUB):
    time_rule = TimeRule.relay(now=NOW) if rule == "relay" else TimeRule.local(now=NOW)
    return CheckContext(
        origin_hub=origin_hub,
        member=member,
        keys=MemberKeys(hub=key_hub, member="acme", keys=[key]),
        time=time_rule,
        labels={"attack-footage": 1},
    )


def _codes(outcome) -> list[str]:
    return [r.code for r in outcome.rejections]


@pytest.fixture
def private_key():
    return Ed25519PrivateKey.generate()


def test_thirty_day_old_contribution_passes_relay_rules_and_fails_local_rules(private_key):
    key = _key(private_key, not_before=NOW - timedelta(days=40))
    item = _item(private_key, created_at=NOW - timedelta(days=30))
    relay = check_contributions(items=[item], context=_context(key, rule="relay"))
    assert _codes(relay) == [] and len(relay.verified) == 1
    assert relay.verified[0].parsed.hub == PEER_HUB
    local = check_contributions(items=[item], context=_context(key, rule="local"))
    assert _codes(local) == ["clock_skew"] and local.verified == []


def test_key_revoked_after_signing_passes_relay_rules_but_not_local_rules(private_key):
    key = _key(
        private_key, not_before=NOW - timedelta(days=40), revoked_at=NOW - timedelta(hours=1)
    )
    item = _item(private_key, created_at=NOW - timedelta(days=2))
    assert _codes(check_contributions(items=[item], context=_context(key, rule="relay"))) == []
    local = check_contributions(items=[item], context=_context(key, rule="local"))
    assert _codes(local) == ["key_not_active"]


@pytest.mark.parametrize("rule", ["relay", "local"])
def test_key_not_yet_active_at_created_at_fails_under_both_rules(private_key, rule):
    key = _key(private_key, not_before=NOW - timedelta(days=1))
    item = _item(private_key, created_at=NOW - timedelta(days=2))
    outcome = check_contributions(items=[item], context=_context(key, rule=rule))
    assert _codes(outcome) == ["key_not_active"]


@pytest.mark.parametrize("rule", ["relay", "local"])
def test_wrong_signature_fails_under_both_rules(private_key, rule):
    key = _key(private_key, not_before=NOW - timedelta(days=40))
    forger = Ed25519PrivateKey.generate()
    item = _item(private_key, created_at=NOW - timedelta(minutes=1))
    item["signature"] = sign_contribution(forger, item["contribution"])
    outcome = check_contributions(items=[item], context=_context(key, rule=rule))
    assert _codes(outcome) == ["bad_signature"] and outcome.verified == []
    assert outcome.rejections[0].claim  # a verifiable claim: it keeps its evidence


@pytest.mark.parametrize("rule", ["relay", "local"])
def test_relay_and_local_rules_both_refuse_a_contribution_dated_ahead_of_the_clock(
    private_key, rule
):
    key = _key(private_key, not_before=NOW - timedelta(days=40))
    item = _item(private_key, created_at=NOW + timedelta(hours=1))
    outcome = check_contributions(items=[item], context=_context(key, rule=rule))
    assert _codes(outcome) == ["clock_skew"]


def test_foreign_hub_field_is_accepted_only_under_a_context_naming_that_hub(private_key):
    key = _key(private_key, not_before=NOW - timedelta(days=40))
    item = _item(private_key, hub=PEER_HUB, created_at=NOW - timedelta(minutes=1))
    naming_peer = _context(key, rule="relay", origin_hub=PEER_HUB)
    assert _codes(check_contributions(items=[item], context=naming_peer)) == []
    naming_other = _context(key, rule="relay", origin_hub="hub-c.example")
    assert _codes(check_contributions(items=[item], context=naming_other)) == ["wrong_hub"]
    local = _context(key, rule="local", origin_hub=settings.HUB_ID, member="acme")
    assert _codes(check_contributions(items=[item], context=local)) == ["wrong_hub"]


def test_relay_context_binds_keys_to_their_member_and_hub(private_key):
    key = _key(private_key, not_before=NOW - timedelta(days=40))
    other_member = _item(private_key, member="globex", created_at=NOW - timedelta(minutes=1))
    outcome = check_contributions(items=[other_member], context=_context(key, rule="relay"))
    assert _codes(outcome) == ["unknown_key"]  # acme's key does not sign for globex
    # The same member slug on another hub is another member: its keys do not count here.
    elsewhere = _context(key, rule="relay", key_hub="hub-c.example")
    item = _item(private_key, created_at=NOW - timedelta(minutes=1))
    assert _codes(check_contributions(items=[item], context=elsewhere)) == ["unknown_key"]


def test_local_context_names_the_member(private_key):
    key = _key(private_key, not_before=NOW - timedelta(days=40))
    item = _item(private_key, hub=settings.HUB_ID, member="globex")
    local = CheckContext(
        origin_hub=settings.HUB_ID,
        member="acme",
        keys=MemberKeys(hub=settings.HUB_ID, member="acme", keys=[key]),
        time=TimeRule.local(now=NOW),
        labels={"attack-footage": 1},
    )
    assert _codes(check_contributions(items=[item], context=local)) == ["member_mismatch"]


def test_malformed_items_are_rejections_without_a_claim(private_key):
    key = _key(private_key, not_before=NOW - timedelta(days=40))
    outcome = check_contributions(items=[{}, {"x": 1}], context=_context(key, rule="relay"))
    assert _codes(outcome) == ["invalid", "invalid"]
    assert [r.claim for r in outcome.rejections] == [False, False]


@pytest.mark.django_db
def test_storage_records_the_origin_hub_from_the_signed_hub_field(acme_submitter):
    from federation.contributions.models import Contribution, Label
    from federation.contributions.storage import contributions_store

    now = datetime.now(UTC)
    item = _item(acme_submitter.private_key, created_at=now - timedelta(days=30))
    context = CheckContext(
        origin_hub=PEER_HUB,
        member=None,
        keys=MemberKeys(hub=PEER_HUB, member="acme", keys=[acme_submitter.signing_key]),
        time=TimeRule.relay(now=now),
        labels=dict(Label.objects.values_list("slug", "id")),
    )
    acme_submitter.signing_key.not_before = now - timedelta(days=40)
    outcome = check_contributions(items=[item], context=context)
    (result,) = contributions_store(
        actor=acme_submitter.actor,
        outcome=outcome,
        item_count=1,
        label_ids=context.labels,
        now=now,
    )
    assert result.status == "created"
    stored = Contribution.objects.get(uuid=item["contribution"]["uuid"])
    assert stored.origin_hub == PEER_HUB != settings.HUB_ID
    local = Contribution.objects.get(
        uuid=acme_submitter.submit().json()["uuid"]
    )  # a member's own submission names this hub
    assert local.origin_hub == settings.HUB_ID


def test_small_first_and_last_chunks_and_full_ones_between_are_the_outcome_of_the_whole(
    private_key,
):
    key = _key(private_key, not_before=NOW - timedelta(days=1))
    items = [_item(private_key) for _ in range(25)]
    items[5]["signature"] = items[6]["signature"]  # forged, in the second chunk
    items[20] = {"contribution": {}, "signature": "x"}  # malformed, in the fourth
    context = _context(key, rule="relay")
    chunks = list(
        check_contributions_in_chunks(
            items=items, context=context, chunk_size=8, first_chunk_size=2
        )
    )
    whole = check_contributions(items=items, context=context)
    sizes = [len(chunk.verified) + len(chunk.rejections) for chunk in chunks]
    assert sizes == [2, 8, 8, 5, 2]
    assert [v.index for chunk in chunks for v in chunk.verified] == [
        v.index for v in whole.verified
    ]
    assert (
        [(r.index, r.code) for chunk in chunks for r in chunk.rejections]
        == [(r.index, r.code) for r in whole.rejections]
        == [(5, "bad_signature"), (20, "invalid")]
    )


def _chunked(items, context):
    return list(
        check_contributions_in_chunks(
            items=items, context=context, chunk_size=3, first_chunk_size=1
        )
    )


def test_chunks_judge_incidents_on_the_callers_thread_after_the_signature(private_key):
    # The chunks are parsed on a thread of their own; the incidents (a query, in a member's
    # context) are read on the caller's, once, and judged only for items whose signature holds.
    key = _key(private_key, not_before=NOW - timedelta(days=1))
    known, unknown = uuid.uuid4(), uuid.uuid4()
    items = [_item(private_key) for _ in range(7)]
    for index, incident in ((2, known), (4, unknown), (6, unknown)):
        document = items[index]["contribution"]
        document["incident"] = str(incident)
        items[index]["signature"] = sign_contribution(private_key, document)
    items[6]["signature"] = items[0]["signature"]  # forged: reported as forged, not as unknown
    readers = []

    def incidents():
        readers.append(threading.current_thread())
        return frozenset({known})

    context = dataclasses.replace(_context(key, rule="relay"), incidents=incidents)
    chunks = _chunked(items, context)
    assert [len(c.verified) + len(c.rejections) for c in chunks] == [1, 3, 2, 1]
    assert [(r.index, r.code) for c in chunks for r in c.rejections] == [
        (4, "unknown_incident"),
        (6, "bad_signature"),
    ]
    assert readers == [threading.current_thread()]


def test_a_failure_while_parsing_ahead_reaches_the_caller(private_key):
    key = _key(private_key, not_before=NOW - timedelta(days=1))

    class Broken(MemberKeys):
        def key_for(self, hub, member, key_id):
            raise RuntimeError("key store unavailable")

    context = dataclasses.replace(
        _context(key, rule="relay"), keys=Broken(hub=PEER_HUB, member="acme", keys=[key])
    )
    with pytest.raises(RuntimeError, match="key store unavailable"):
        _chunked([_item(private_key) for _ in range(5)], context)


def test_the_switch_interval_is_lowered_while_chunks_run_ahead_and_put_back_after(private_key):
    key = _key(private_key, not_before=NOW - timedelta(days=1))
    items = [_item(private_key) for _ in range(7)]
    before = sys.getswitchinterval()
    chunks = check_contributions_in_chunks(
        items=items, context=_context(key, rule="relay"), chunk_size=3, first_chunk_size=1
    )
    seen = [sys.getswitchinterval() for _chunk in chunks]
    assert seen == [0.0005] * 4
    assert sys.getswitchinterval() == before
