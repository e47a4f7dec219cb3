"""Federation with real parts: hubs as separate processes (gunicorn and a Celery worker each, its
own PostgreSQL database, Redis as the broker) talking HTTP on 127.0.0.1 (docs/federation.md).

Each test starts the hubs it needs through tests/support/federation_harness.py and peers them
with ``manage.py peer``. What a hub holds is read from its database; hand-built batches (the
refusals) are signed with the sending hub's own key file, as a peer (or an attacker holding a
peer's token) would send them.
"""

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from federation.canonical import canonical_json_bytes
from federation.partner_client import ContributionSigner
from federation.propagation.attestation_roots import ROOTED_FIELDS
from federation.propagation.wire import (
    attestation_document,
    batch_document,
    item_digest,
    key_binding_document,
    sign_document,
    signed_pair,
)
from federation.signing import sign_contribution
from tests.support.federation_harness import (
    FederationHub,
    item_uuid,
    reconcile_hubs,
    running_federation,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

# The default suite's backlog for the incident lane; the bench drains the full 10,000.
INCIDENT_BACKLOG = 3_000


def value_of(item: dict) -> str:
    return item["contribution"]["signal"]["value"]


def uuids(items: list[dict]) -> list[str]:
    return [item_uuid(item) for item in items]


def wait_drained(*hubs: FederationHub, timeout: float = 60) -> None:
    """Every outbox is empty of pending rows (what was owed has been delivered)."""
    wait_for(
        lambda: all(hub.outbox_pending() == 0 for hub in hubs),
        timeout=timeout,
        what="outboxes to drain: " + ", ".join(f"{h.name} {h.outbox_states()}" for h in hubs),
    )


def receipts(hub: FederationHub, items: list[dict]) -> list[tuple[str, str, list, list, str]]:
    return hub.sql(
        "SELECT c.uuid::text, r.peer_hub, r.path, r.attestations, r.effective_scope "
        "FROM federation_receipt r JOIN federation_contribution c ON c.id = r.contribution_id "
        "WHERE c.uuid = ANY(%s::uuid[]) ORDER BY r.id",
        (uuids(items),),
    )


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except Exception:
        return False
    return True


# --- a chain: A -> B -> C, scopes, and what follows an entry ---------------------------------------


@pytest.fixture(scope="class")
def chain():
    """a - b - c, each trusting its neighbours' vetting; c knows a by its key only (it checks
    a's bindings and attestations itself, with no link to a). The links share md5 and pdq
    entries labelled propaganda only (the scopes test's per-peer policy); the other tests
    share md5/propaganda entries, each with its own member and values."""
    with running_federation("a", "b", "c") as fed:
        a, b, c = fed.hubs
        fed.peer_up(
            [(a, b), (b, c)], known=[(c, a)], labels=["propaganda"], signal_types=["md5", "pdq"]
        )
        yield fed


class TestAChainOfThreeHubs:
    """a - b - c: propagation with the origin's signatures checked at c, scopes and per-peer
    policy, and what follows an entry (retraction, dispute outcome, key revocation). One chain
    for the three tests (class scope), each with its own member and values."""

    def test_a_vetted_entry_travels_a_to_b_to_c_and_c_verifies_the_origin_signatures(self, chain):
        a, b, c = chain.hubs
        alice = a.member("acme", trusted=True)
        item = alice.add("md5", labels=["propaganda"])
        alice.submit([item])
        assert a.entry_state("md5", value_of(item)) == "vetted"
        c.wait_for_contributions([item_uuid(item)], timeout=30)
        c.wait_for_entry_state("md5", value_of(item), "vetted")

        # C stores the member's bytes verbatim; they verify with the member's own public key.
        canonical, signature, origin, key_raw, org_hub, org_slug = c.sql(
            "SELECT c.canonical, c.signature, c.origin_hub, k.public_key, o.hub, o.slug "
            "FROM federation_contribution c JOIN members_signingkey k ON k.id = c.signing_key_id "
            "JOIN members_organisation o ON o.id = c.organisation_id WHERE c.uuid = %s",
            (item_uuid(item),),
        )[0]
        assert canonical.encode() == canonical_json_bytes(item["contribution"])
        assert bytes(key_raw) == alice.public_key_raw
        assert verify(alice.public_key_raw, bytes(signature), canonical.encode())
        assert base64.b64encode(bytes(signature)).decode() == item["signature"]
        assert (origin, org_hub, org_slug) == (a.hub_id, a.hub_id, "acme")  # a mirror of acme

        # C's receipt: from b, path [a, b], one attestation per hop, each by that hop's hub key.
        [(_uuid, peer_hub, path, attestations, scope)] = receipts(c, [item])
        assert (peer_hub, path, scope) == (b.hub_id, [a.hub_id, b.hub_id], "federation")
        assert [entry["attestation"]["hub"] for entry in attestations] == path
        for entry, hub in zip(attestations, (a, b), strict=True):
            document = entry["attestation"]
            assert document["signal"] == {"type": "md5", "value": value_of(item)}
            assert document["state"] == "vetted"
            assert verify(
                hub.public_key_raw,
                base64.b64decode(entry["signature"]),
                canonical_json_bytes(document),
            ), f"attestation of {hub.name} does not verify"

        # The key binding C keeps is a's, signed by a's hub key, for acme's key.
        [(binding, binding_signature)] = c.sql(
            "SELECT b.canonical, b.signature FROM federation_keybinding b "
            "JOIN members_signingkey k ON k.id = b.signing_key_id WHERE k.key_id = %s",
            (alice.key_id,),
        )
        assert verify(a.public_key_raw, bytes(binding_signature), binding.encode())
        assert '"hub":"' + a.hub_id + '"' in binding and '"member":"acme"' in binding

        # Nothing goes back: a holds no receipt, b has exactly the one from a.
        wait_drained(a, b, c)
        assert receipts(a, [item]) == []
        assert [row[1] for row in receipts(b, [item])] == [a.hub_id]

    def test_scopes_and_per_peer_label_and_signal_type_policy(self, chain):
        a, b, c = chain.hubs
        alice = a.member("acme", trusted=True)
        hub_only = alice.add("md5", scope="hub")
        one_hop = alice.add("md5", scope="peers")
        everywhere = alice.add("md5", scope="federation")
        other_label = alice.add("md5", labels=["glorification"])
        other_type = alice.add("sha256")
        items = [hub_only, one_hop, everywhere, other_label, other_type]
        alice.submit(items)
        assert all(a.entry_state(i["contribution"]["signal"]["type"], value_of(i)) == "vetted"
                   for i in items)  # fmt: skip

        c.wait_for_contributions([item_uuid(everywhere)], timeout=30)
        b.wait_for_contributions([item_uuid(one_hop)], timeout=30)
        wait_drained(a, b, c)
        assert b.contributions_present(uuids(items)) == 2  # one_hop and everywhere
        assert c.contributions_present(uuids(items)) == 1  # everywhere
        # `peers` arrives as hub-only at b, so b never forwarded it.
        by_uuid = {row[0]: row for row in receipts(b, items)}
        assert by_uuid[item_uuid(one_hop)][4] == "hub"
        assert by_uuid[item_uuid(everywhere)][4] == "federation"
        assert b.sql(
            "SELECT count(*) FROM federation_outboxitem o JOIN federation_contribution c "
            "ON c.id = o.contribution_id WHERE c.uuid = %s",
            (item_uuid(one_hop),),
        ) == [(0,)]
        # Filtered by a's outbound policy for b: no outbox row was ever written for them.
        assert a.sql(
            "SELECT count(*) FROM federation_outboxitem o JOIN federation_contribution c "
            "ON c.id = o.contribution_id WHERE c.uuid = ANY(%s::uuid[])",
            (uuids([hub_only, other_label, other_type]),),
        ) == [(0,)]

    def test_a_retraction_a_dispute_outcome_and_a_key_revocation_reach_every_hub_holding_the_entry(
        self, chain
    ):
        a, b, c = chain.hubs
        alice = a.member("acme", trusted=True)
        retracted, disputed, kept = (alice.add("md5") for _ in range(3))
        alice.submit([retracted, disputed, kept])
        for hub in (b, c):
            hub.wait_for_contributions(uuids([retracted, disputed, kept]), timeout=30)
            hub.wait_for_entry_state("md5", value_of(disputed), "vetted")

        # A retraction travels to every hub its add went to.
        alice.submit_one(alice.retract("md5", value_of(retracted)))
        for hub in (a, b, c):
            hub.wait_for_entry_state("md5", value_of(retracted), "retracted")

        # A dispute and its outcome: globex at a disagrees; a's admin rejects.
        admin = a.staff_token()
        status, body = a.request(
            "PATCH", "/api/v1/policy/", json_body={"dispute_threshold": 1}, token=admin
        )
        assert status == 200, body
        globex = a.member("globex", role="reviewer")
        entry_id = a.sql("SELECT id FROM federation_entry WHERE value = %s", (value_of(disputed),))[
            0
        ][0]
        status, body = a.request(
            "PUT", f"/api/v1/entries/{entry_id}/feedback/",
            json_body={"opinion": "disagree", "note": "not ours"}, token=globex.token,
        )  # fmt: skip
        assert status in (200, 201), body
        for hub in (a, b, c):
            hub.wait_for_entry_state("md5", value_of(disputed), "disputed")
        status, body = a.request(
            "POST", f"/api/v1/entries/{entry_id}/resolve/",
            json_body={"outcome": "reject", "reason": "news footage"}, token=admin,
        )  # fmt: skip
        assert status == 200, body
        for hub in (a, b, c):
            hub.wait_for_entry_state("md5", value_of(disputed), "rejected")

        # The member's key is revoked at its home hub: the newer binding reaches b and c.
        acme_admin = a.member("acme", role="member-admin")
        status, body = a.request(
            "POST", f"/api/v1/keys/{alice.key_id}/revoke/",
            json_body={"reason": "key leaked"}, token=acme_admin.token,
        )  # fmt: skip
        assert status == 200, body
        for hub in (b, c):
            wait_for(
                lambda hub=hub: (
                    hub.sql(
                        "SELECT revoked_at IS NOT NULL FROM members_signingkey WHERE key_id = %s",
                        (alice.key_id,),
                    )
                    == [(True,)]
                ),
                timeout=30,
                what=f"the revocation on {hub.name}",
            )
            bindings = hub.sql(
                "SELECT b.canonical, b.signature FROM federation_keybinding b JOIN "
                "members_signingkey k ON k.id = b.signing_key_id WHERE k.key_id = %s "
                "ORDER BY b.issued_at",
                (alice.key_id,),
            )
            assert len(bindings) == 2 and '"revoked_at":null' not in bindings[-1][0]
            assert verify(a.public_key_raw, bytes(bindings[-1][1]), bindings[-1][0].encode())
        # The untouched entry is still vetted everywhere.
        assert {hub.entry_state("md5", value_of(kept)) for hub in (a, b, c)} == {"vetted"}


def test_a_triangle_stores_each_contribution_once_everywhere_and_nothing_loops():
    with running_federation("a", "b", "c") as fed:
        a, b, c = fed.hubs
        fed.triangle()
        members = [hub.member(f"org-{hub.name}", trusted=True) for hub in fed.hubs]
        sent = {
            hub.name: [m.add("md5") for _ in range(15)]
            for hub, m in zip(fed.hubs, members, strict=True)
        }
        threads = [threading.Thread(target=m.submit, args=(sent[m.hub.name],)) for m in members]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        everything = [item for items in sent.values() for item in items]
        for hub in fed.hubs:
            hub.wait_for_contributions(uuids(everything), timeout=60)
        wait_drained(a, b, c)
        time.sleep(3)  # a sweep or two more: a bounce would show up now
        wait_drained(a, b, c)

        for hub in fed.hubs:
            # One row per contribution, however many paths brought it.
            assert hub.sql(
                "SELECT count(*), count(DISTINCT uuid) FROM federation_contribution"
            ) == [(45, 45)], hub.name
            own = sent[hub.name]
            # Nothing came back to its origin.
            assert receipts(hub, own) == [], hub.name
            foreign = [item for item in everything if item not in own]
            origin = {item_uuid(item): item["contribution"]["hub"] for item in foreign}
            rows = receipts(hub, foreign)
            from_origin = [row for row in rows if row[1] == origin[row[0]]]
            # Each foreign contribution arrived once from its origin: the origin named the third
            # hub in sent_to, so neither hub pushed it on to the other. With pulls on (the suite
            # run with CONCORDAT_IT_PULL_INTERVAL_SECONDS), the third hub's feed, which ignores
            # sent_to, may bring it a second time: stored once, a receipt for that arrival.
            assert sorted(row[0] for row in from_origin) == sorted(uuids(foreign)), hub.name
            for row in from_origin:
                assert row[2] == [row[1]] and row[1] != hub.hub_id, row
            others = hub.sql(
                "SELECT r.via, r.path FROM federation_receipt r JOIN federation_contribution c "
                "ON c.id = r.contribution_id WHERE c.uuid = ANY(%s::uuid[]) "
                "AND r.peer_hub <> c.origin_hub",
                (uuids(foreign),),
            )
            assert len(others) == len(rows) - len(from_origin)
            for via, path in others:
                assert via == "pull" and len(path) == 2 and hub.hub_id not in path, (via, path)
            # No outbox row ever targeted a hub already on the item's path.
            assert hub.sql(
                "SELECT count(*) FROM federation_outboxitem o JOIN members_peer p "
                "ON p.id = o.peer_id WHERE o.path @> to_jsonb(p.hub_id)"
            ) == [(0,)], hub.name
            assert hub.outbox_states().keys() <= {"delivered"}, hub.outbox_states()
            for event in hub.audit("federation.received"):
                assert [r for r in event.get("rejected", []) if r.get("code") == "loop"] == []


# --- delivery: a peer down, a lost outbox, a killed worker ----------------------------------------


def test_a_peer_down_while_1000_items_are_vetted_receives_each_exactly_once_after_it_returns():
    with running_federation("a", "b") as fed:
        a, b = fed.hubs
        fed.link(a, b)
        b.stop_web()
        alice = a.member("acme", trusted=True)
        items = [alice.add("md5") for _ in range(1_000)]
        alice.submit(items)
        wait_for(
            lambda: a.sql("SELECT count(*) FROM federation_outboxitem WHERE attempts > 0")[0][0],
            timeout=30,
            what="a's first failed delivery to b",
        )
        assert a.sql("SELECT count(*) FROM federation_outboxitem WHERE state = 'delivered'") == [
            (0,)
        ]
        time.sleep(2)  # more failed attempts: the retry must survive its backoff
        b.start_web()
        b.wait_web()
        b.wait_for_contributions(uuids(items), timeout=90)
        wait_drained(a)
        assert b.sql("SELECT count(*) FROM federation_contribution") == [(1_000,)]
        assert b.sql(
            "SELECT count(*), count(DISTINCT contribution_id) FROM federation_receipt"
        ) == [(1_000, 1_000)]
        assert a.outbox_states() == {"delivered": 1_000}
        accepted = sum(len(event["accepted"]) for event in b.audit("federation.received"))
        assert accepted == 1_000
        # b's answers said it takes attestations under a root: a's next pushes sign one root
        # per batch, and b checks each attestation's proof against it.
        assert a.sql("SELECT takes_attestation_roots FROM federation_peerlink") == [(True,)]
        later = [alice.add("md5") for _ in range(20)]
        alice.submit(later)
        b.wait_for_contributions(uuids(later), timeout=60)
        pairs = [row[3][-1] for row in receipts(b, later)]
        assert len(pairs) == 20 and all(pair.keys() == ROOTED_FIELDS for pair in pairs)
        roots = {pair["root_signature"] for pair in pairs}
        assert len(roots) < 20 and all(pair["attestation"]["hub"] == a.hub_id for pair in pairs)


def test_a_peer_whose_outbox_rows_were_deleted_converges_by_pull():
    pull = {"CONCORDAT_FEDERATION_PULL_INTERVAL_SECONDS": "2"}
    with running_federation("a", "b", env_by_hub={"b": pull}) as fed:
        a, b = fed.hubs
        fed.link(a, b)
        a.stop_worker()  # nothing is pushed while the rows exist
        alice = a.member("acme", trusted=True)
        items = [alice.add("md5") for _ in range(300)]
        alice.submit(items)
        deleted = a.sql("DELETE FROM federation_outboxitem RETURNING id")
        assert len(deleted) == 300
        a.start_worker()  # sequences a's change stream, which the feed serves
        b.wait_for_contributions(uuids(items), timeout=60)
        rows = receipts(b, items)
        assert len(rows) == 300 and {row[1] for row in rows} == {a.hub_id}
        assert b.sql("SELECT DISTINCT via FROM federation_receipt") == [("pull",)]
        assert b.sql("SELECT count(*) FROM federation_contribution") == [(300,)]
        cursor = b.sql("SELECT pull_cursor FROM federation_peerlink")[0][0]
        assert cursor > 0
        # b asked for attestations under roots: a's pages put them under one root per 64.
        pairs = [row[3][-1] for row in rows]
        assert all(pair.keys() == ROOTED_FIELDS for pair in pairs)
        assert len({pair["root_signature"] for pair in pairs}) < len(pairs)


def test_a_new_peers_first_pull_reads_every_page_of_a_feed_whose_compaction_dropped_a_removal():
    # Over 500 changes (two feed pages of 500), then a removal above the first page that a's
    # compaction drops. b, linked afterwards, learns it all by pull: its second page was refused
    # as stale (its cursor is below the dropped removal), and it read the first page forever.
    pull = {"CONCORDAT_FEDERATION_PULL_INTERVAL_SECONDS": "2"}
    with running_federation("a", "b", env_by_hub={"b": pull}) as fed:
        a, b = fed.hubs
        alice = a.member("acme", trusted=True)
        items = [alice.add("md5") for _ in range(600)]
        alice.submit(items)
        gone = alice.add("md5")
        alice.submit([gone])
        alice.submit([alice.retract("md5", gone["contribution"]["signal"]["value"])])
        a.manage("sync_sequence")
        a.sql(
            "UPDATE federation_entrychange SET recorded_at = now() - interval '91 days' "
            "WHERE entry_id = (SELECT id FROM federation_entry WHERE value = %s)",
            (gone["contribution"]["signal"]["value"],),
        )
        compaction = json.loads(a.manage("sync_sequence", "--compact").strip().splitlines()[-1])
        assert compaction["removals"] == 1
        compacted_through = a.sql("SELECT compacted_through FROM federation_syncstate")[0][0]
        assert compacted_through > 500
        fed.link(a, b)  # a's outbox holds nothing for a peer added now: b pulls it all

        b.wait_for_contributions(uuids(items), timeout=120)
        wait_for(
            lambda: (b.pull_cursor(a) or 0) >= a.sync_position(),
            timeout=60,
            what="b to pull a's feed to its end",
        )
        assert b.sql("SELECT count(*) FROM federation_contribution") == [(600,)]
        assert b.sql("SELECT last_pull_error FROM federation_peerlink") == [("",)]
        # Each item was served once: no page was read again from 0.
        served = [
            digest
            for event in a.audit("federation.sent")
            if event["via"] == "pull" and event["peer"] == b.hub_id
            for digest in event["items"]
        ]
        assert len(served) == len(set(served)) >= 600
        assert b.sql("SELECT DISTINCT via FROM federation_receipt") == [("pull",)]


def test_agreeing_hubs_that_push_and_pull_reconcile_ok():
    # Pulls on (every 2 s, beside the pushes): every entry reaches the peer twice, once pushed
    # and once pulled, and each hub's log records both, so an auditor pairs every item.
    pull = {"CONCORDAT_FEDERATION_PULL_INTERVAL_SECONDS": "2"}
    with running_federation("a", "b", extra_env=pull) as fed:
        a, b = fed.hubs
        fed.link(a, b)
        alice, bob = a.member("acme", trusted=True), b.member("bravo", trusted=True)
        from_a, from_b = [alice.add("md5") for _ in range(40)], [bob.add("md5") for _ in range(25)]
        alice.submit(from_a)
        bob.submit(from_b)
        alice.submit_one(alice.retract("md5", value_of(from_a[0])))
        b.wait_for_contributions(uuids(from_a), timeout=60)
        a.wait_for_contributions(uuids(from_b), timeout=60)
        wait_drained(a, b)

        def pulled_through() -> bool:
            return (a.pull_cursor(b) or 0) >= b.sync_position() > 0 and (
                b.pull_cursor(a) or 0
            ) >= a.sync_position() > 0

        wait_for(pulled_through, timeout=90, what="each hub to pull the other's feed to its end")
        wait_drained(a, b)
        for hub, other in ((a, b), (b, a)):
            pulled = [
                e
                for e in hub.audit("federation.received")
                if e["via"] == "pull" and e["accepted"] + e["duplicates"] + e["rejected"]
            ]
            assert pulled, hub.name  # pages with items (an empty page is recorded, not served)
            served = [e for e in other.audit("federation.sent") if e.get("via") == "pull"]
            assert {e["batch"] for e in pulled} <= {e["batch"] for e in served}

        done = reconcile_hubs(a, b)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "RESULT: OK, the two logs agree on what crossed between the hubs" in done.stdout
        for sender, receiver in ((a, b), (b, a)):
            line = f"OK    {sender.hub_id} -> {receiver.hub_id}: "
            assert line in done.stdout and "every one recorded, none other" in done.stdout
        print(done.stdout)


def test_a_revocation_whose_push_dead_lettered_reaches_the_peer_by_pull():
    # One attempt makes a dead letter at once; b pulls a's feed every 2 s.
    env = {"a": {"CONCORDAT_FEDERATION_MAX_ATTEMPTS": "1"},
           "b": {"CONCORDAT_FEDERATION_PULL_INTERVAL_SECONDS": "2"}}  # fmt: skip
    with running_federation("a", "b", env_by_hub=env) as fed:
        a, b = fed.hubs
        fed.link(a, b)
        alice = a.member("acme", trusted=True, role="member-admin")
        items = [alice.add("md5") for _ in range(3)]
        alice.submit(items)
        b.wait_for_contributions(uuids(items), timeout=60)
        wait_drained(a)
        # b's pulls have read a's feed to its end: otherwise a page still carrying the three
        # (pushed) contributions could bring the revocation in their key sections, as duplicates,
        # and no pulled page would count it as accepted.
        wait_for(
            lambda: (b.pull_cursor(a) or 0) >= a.sync_position() > 0,
            timeout=60,
            what="b to pull a's feed to its end",
        )
        b.stop_web()  # b's worker still pulls; nothing reaches b by push
        status, body = a.request(
            "POST", f"/api/v1/keys/{alice.key_id}/revoke/", json_body={"reason": "lost laptop"},
            token=alice.token,
        )  # fmt: skip
        assert status == 200, body

        def key_row_dead() -> bool:
            return a.sql("SELECT state FROM federation_outboxitem WHERE kind = 'key'") == [
                ("dead",)
            ]

        wait_for(key_row_dead, timeout=60, what="a's key item to b to be a dead letter")

        def revoked_on_b():
            return b.sql("SELECT revoked_at FROM members_signingkey WHERE key_id = %s",
                         (alice.key_id,))[0][0]  # fmt: skip

        wait_for(revoked_on_b, timeout=60, what="b to hold the revocation, by pull")
        assert (
            revoked_on_b()
            == a.sql(
                "SELECT revoked_at FROM members_signingkey WHERE key_id = %s", (alice.key_id,)
            )[0][0]
        )
        (revoked,) = b.audit("key.revoked")
        assert revoked["object_id"] == alice.key_id
        pulled = [e for e in b.audit("federation.received") if e["via"] == "pull" and e["accepted"]]
        assert pulled, "the revocation came on a pulled page"
        assert a.sql("SELECT state FROM federation_outboxitem WHERE kind = 'key'") == [("dead",)]


def test_a_worker_killed_with_sigkill_mid_batch_loses_nothing_and_duplicates_nothing():
    with running_federation("a", "b") as fed:
        a, b = fed.hubs
        fed.link(a, b)
        a.stop_worker()
        alice = a.member("acme", trusted=True)
        items = [alice.add("md5") for _ in range(3_000)]
        alice.submit(items)
        a.start_worker()
        wait_for(
            lambda: 0 < b.contributions_present(uuids(items)) < 3_000,
            timeout=60,
            interval=0.02,
            what="b to be receiving a's backlog",
        )
        a.kill_worker()
        when_killed = b.contributions_present(uuids(items))
        time.sleep(1)
        a.start_worker()
        b.wait_for_contributions(uuids(items), timeout=120)
        wait_drained(a)
        assert when_killed < 3_000
        assert b.sql("SELECT count(*), count(DISTINCT uuid) FROM federation_contribution") == [
            (3_000, 3_000)
        ]
        assert b.sql("SELECT count(*) FROM federation_receipt") == [(3_000,)]
        assert a.outbox_states() == {"delivered": 3_000}
        events = b.audit("federation.received")
        assert sum(len(event["accepted"]) for event in events) == 3_000


# --- what a receiver refuses ----------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class UnknownHub:
    """A hub no other hub has heard of: an id and a key, and nothing running."""

    hub_id: str
    hub_key: Ed25519PrivateKey


def hand_built_item(
    origin: FederationHub | UnknownHub,
    *,
    member_key: Ed25519PrivateKey | None = None,
    org: str = "acme",
    binding_key: Ed25519PrivateKey | None = None,
    signing_key: Ed25519PrivateKey | None = None,
    revoked_at: datetime | None = None,
    path: list[str] | None = None,
) -> dict:
    """A contribution item as ``origin`` would push it: the member's signed add, the key section
    (registration + ``origin``'s binding) and ``origin``'s attestation, path [origin]."""
    member_key = member_key or Ed25519PrivateKey.generate()
    signer = ContributionSigner(member_key, origin.hub_id, org)
    registration = signer.key_registration(created_at=now() - timedelta(hours=1))
    signed = signer.add("md5", uuid.uuid4().hex, ["propaganda"])
    if signing_key is not None:  # a forgery: the member's key id, someone else's signature
        signed["signature"] = sign_contribution(signing_key, signed["contribution"])
    binding = sign_document(
        binding_key or origin.hub_key,
        key_binding_document(
            hub=origin.hub_id,
            member=org,
            key_id=signer.key_id,
            registration=canonical_json_bytes(registration["registration"]),
            not_before=now() - timedelta(hours=1),
            revoked_at=revoked_at,
            issued_at=now() - timedelta(minutes=1),
        ),
    )
    attestation = sign_document(
        origin.hub_key,
        attestation_document(
            hub=origin.hub_id,
            signal_type="md5",
            value=signed["contribution"]["signal"]["value"],
            state="vetted",
            decided_at=now(),
            policy="trusted_member",
            attested_at=now(),
        ),
    )
    return {
        "type": "contribution",
        "contribution": signed["contribution"],
        "signature": signed["signature"],
        "key": {
            "registration": registration["registration"],
            "signature": registration["signature"],
            "binding": binding.document,
            "binding_signature": base64.b64encode(binding.signature).decode(),
        },
        "attestations": [signed_pair(attestation, name="attestation")],
        "path": path or [origin.hub_id],
    }


def signed_batch(
    sender: FederationHub | UnknownHub, receiver: FederationHub, items: list[dict]
) -> dict:
    signed = sign_document(
        sender.hub_key,
        batch_document(
            sender=sender.hub_id, receiver=receiver.hub_id, batch_id=uuid.uuid4(),
            sent_at=now(), items=items,
        ),
    )  # fmt: skip
    return {"batch": signed.document, "signature": base64.b64encode(signed.signature).decode()}


def push(receiver: FederationHub, body: dict, token: str | None) -> tuple[int, dict]:
    return receiver.request("POST", "/api/v1/federation/batches", json_body=body, token=token)


def test_a_receiver_refuses_bad_batches_whole_and_bad_items_alone_and_audits_both():
    x = UnknownHub("x.hub.test", Ed25519PrivateKey.generate())
    with running_federation("a", "b", worker=False) as fed:
        a, b = fed.hubs
        fed.link(a, b)
        token = fed.tokens[("a", "b")]
        good = [hand_built_item(a), hand_built_item(a)]
        forged = hand_built_item(a, signing_key=Ed25519PrivateKey.generate())
        unbound = hand_built_item(a, binding_key=Ed25519PrivateKey.generate())
        revoked = hand_built_item(a, revoked_at=now() - timedelta(minutes=5))
        unknown_origin = hand_built_item(x, path=[x.hub_id, a.hub_id])  # x is unknown to b
        items = [good[0], forged, unbound, revoked, unknown_origin, good[1]]
        status, body = push(b, signed_batch(a, b, items), token)
        assert status == 200, body
        assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 0, 4), body
        statuses = [(r["index"], r["status"], r.get("code")) for r in body["results"]]
        assert [s[1] for s in statuses] == ["accepted", *["rejected"] * 4, "accepted"], statuses
        assert statuses[3][2] == "key_not_active" and statuses[4][2] == "unknown_hub", statuses
        assert [r["digest"] for r in body["results"]] == [item_digest(i) for i in items]
        assert b.contributions_present(uuids(good)) == 2
        assert b.contributions_present(uuids([forged, unbound, revoked, unknown_origin])) == 0
        [event] = b.audit("federation.received")
        assert sorted(event["accepted"]) == sorted(item_digest(i) for i in good)
        rejected = {r["item"]: r["code"] for r in event["rejected"]}
        assert set(rejected) == {item_digest(i) for i in items[1:5]}
        assert rejected[item_digest(revoked)] == "key_not_active"

        # The same batch again: acknowledged, nothing changes.
        status, again = push(b, signed_batch(a, b, good), token)
        assert (status, again["accepted"], again["duplicates"]) == (200, 0, 2), again
        assert b.sql("SELECT count(*) FROM federation_contribution") == [(2,)]

        refusals = []
        # A tampered batch: changed after a signed it.
        tampered = signed_batch(a, b, [hand_built_item(a)])
        tampered["batch"]["items"][0]["contribution"]["labels"] = ["recruitment"]
        refusals.append(("tampered", push(b, tampered, token), (400, 401, 403)))
        # An unknown peer: x is not registered at b (no token of its own; it borrows a's).
        refusals.append(("unknown peer", push(b, signed_batch(x, b, [hand_built_item(x)]), token),
                         (400, 401, 403)))  # fmt: skip
        refusals.append(("no token", push(b, signed_batch(a, b, [hand_built_item(a)]), None),
                         (401,)))  # fmt: skip
        # A suspended peer, with its valid token and signature.
        b.peer_update(a, state="suspended")
        suspended_item = hand_built_item(a)
        refusals.append(("suspended", push(b, signed_batch(a, b, [suspended_item]), token), (403,)))
        for what, (status, answer), allowed in refusals:
            assert status in allowed, (what, status, answer)
            assert set(answer) == {"error"} and answer["error"]["code"], (what, answer)
        assert b.sql("SELECT count(*) FROM federation_contribution") == [(2,)]
        refused = b.audit("federation.batch_refused")
        assert len(refused) >= 3, refused  # tampered, unknown peer, suspended
        assert all(event["code"] for event in refused), refused
        b.peer_update(a, state="active")
        status, body = push(b, signed_batch(a, b, [suspended_item]), token)
        assert (status, body["accepted"]) == (200, 1), body


# --- the incident lane ----------------------------------------------------------------------------


def test_an_incident_item_overtakes_a_backlog_of_ordinary_items():
    """a owes b a backlog of ordinary vetted items; its worker (one slot only) is draining it
    when an incident item is vetted: the incident item goes through its own lane after at most
    the batch in flight, while most of the backlog is still owed. Overtaking is counted in
    items, so rounds are one batch here (the bench measures the lane with the default)."""
    one_batch_rounds = {"CONCORDAT_FEDERATION_DRAIN_PARALLEL": "1"}
    with running_federation("a", "b", worker_concurrency=1, extra_env=one_batch_rounds) as fed:
        a, b = fed.hubs
        fed.link(a, b)
        admin = a.staff_token()
        status, incident = a.request(
            "POST", "/api/v1/incidents/",
            json_body={"name": "Live attack", "auto_vet": True}, token=admin,
        )  # fmt: skip
        assert status == 201, incident
        alice = a.member("acme", trusted=True)
        a.stop_worker()
        ordinary = [alice.add("md5") for _ in range(INCIDENT_BACKLOG)]
        alice.submit(ordinary)
        a.start_worker()
        wait_for(
            lambda: b.contributions_present(uuids(ordinary)) > 0,
            timeout=60,
            interval=0.02,
            what="the backlog to start arriving",
        )
        urgent = alice.add("md5", incident=incident["id"])
        alice.submit([urgent])
        submitted = time.monotonic()
        began = b.contributions_present(uuids(ordinary))
        assert a.sql(
            "SELECT count(*) FROM federation_outboxitem WHERE lane = 'incident' AND peer_id = "
            "(SELECT id FROM members_peer WHERE hub_id = %s)",
            (b.hub_id,),
        ) == [(1,)]
        b.wait_for_contributions([item_uuid(urgent)], timeout=60, interval=0.02)
        urgent_after = time.monotonic() - submitted
        had = b.contributions_present(uuids(ordinary))
        b.wait_for_contributions(uuids(ordinary), timeout=300)
        drained_after = time.monotonic() - submitted
    print(
        f"\nincident lane: arrived {urgent_after:.2f} s after its submission, when b had "
        f"{had}/{INCIDENT_BACKLOG} of the backlog ({began} when it was submitted); the backlog "
        f"drained {drained_after:.2f} s after it"
    )
    # At most the batch in flight and one more went before it (500 items each), and at least a
    # batch of the backlog was still owed when it arrived. Counted in items, not seconds: on a
    # fast machine the rest of a 3,000-item backlog drains in under a second.
    assert had - began <= 1_000, (began, had)
    assert INCIDENT_BACKLOG - had >= 500, (had, urgent_after, drained_after)
