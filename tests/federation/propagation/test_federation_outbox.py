"""The federation outbox (federation/propagation/outbox.py): which rows each change writes, to
whom, in which lane, in the changing transaction, and at what cost (docs/federation.md,
"Sending")."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from federation.contributions.models import Contribution, Entry, Label
from federation.lifecycle import entries_transition
from federation.propagation.outbox import outbox_record_adds, outbox_record_transitions
from federation.propagation.peers import peer_update
from federation.vetting.models import Incident
from members.services import signing_key_revoke
from tests.support.parties import random_hex
from tests.support.sending import (
    ACTOR,
    arrival,
    foreign_member,
    make_peer,
    owed,
    rows,
    submit,
    vet,
    vetted_entry,
)

SQL_ONLY = {
    "test_vetting_in_bulk_costs_one_outbox_statement_whatever_the_number",
    "test_the_lifecycle_call_adds_one_statement_only_when_it_could_share",
}


@pytest.fixture(autouse=True, params=["postgresql", "portable"])
def writer(request, monkeypatch):
    """Every rule holds for both writers: the SQL one, and the ORM one the embedded demo's
    SQLite uses (run here on PostgreSQL by making the outbox module see another database)."""
    if request.param == "postgresql" and connection.vendor != "postgresql":
        pytest.skip("the SQL writer runs on PostgreSQL only")
    if request.param == "portable":
        if request.node.originalname in SQL_ONLY:
            pytest.skip("counts the SQL writer's statements")
        from federation.propagation import outbox

        class Elsewhere:
            vendor = "sqlite"

            def __getattr__(self, name):
                return getattr(connection, name)

        monkeypatch.setattr(outbox, "connection", Elsewhere())
    return request.param


@pytest.fixture
def bravo(db):
    return make_peer("bravo.hub")


@pytest.fixture
def charlie(db):
    return make_peer("charlie.hub")


def add_of(entry: Entry) -> Contribution:
    return Contribution.objects.get(entry=entry, action="add")


def test_vetting_an_entry_owes_each_active_add_to_every_active_linked_peer(
    acme_submitter, globex_submitter, bravo, charlie
):
    suspended = make_peer("suspended.hub")
    peer_update(peer=suspended, state="suspended", actor=ACTOR)
    make_peer("known.hub", url="")  # known by its key only: never sent anything
    signal = {"type": "pdq", "value": random_hex(64)}
    entry = submit(acme_submitter, signal=signal)
    submit(globex_submitter, signal=signal)
    assert rows() == []  # pending: nothing is shareable yet

    vet(entry)

    adds = list(Contribution.objects.filter(entry=entry).values_list("pk", flat=True))
    assert owed() == {
        (hub, "contribution", pk) for hub in ("bravo.hub", "charlie.hub") for pk in adds
    }
    assert {(r.state, r.lane, r.attempts, r.entry_id) for r in rows()} == {
        ("pending", "normal", 0, entry.pk)
    }


def test_a_withdrawn_add_is_not_sent_when_the_entry_is_vetted(
    acme_submitter, globex_submitter, bravo
):
    signal = {"type": "md5", "value": random_hex(32)}
    entry = submit(acme_submitter, signal=signal)
    submit(globex_submitter, signal=signal)
    assert globex_submitter.submit(action="retract", signal=signal, labels=[]).status_code == 201

    vet(entry)

    assert owed() == {("bravo.hub", "contribution", add_of_org(entry, "acme"))}


def add_of_org(entry, slug) -> int:
    return Contribution.objects.get(entry=entry, action="add", organisation__slug=slug).pk


@pytest.mark.parametrize("scope,sent", [("hub", False), ("peers", True), ("federation", True)])
def test_own_members_scopes(acme_submitter, bravo, scope, sent):
    entry = vetted_entry(acme_submitter, scope=scope)
    assert bool(owed()) is sent
    if sent:
        assert owed() == {("bravo.hub", "contribution", add_of(entry).pk)}


def test_a_relayed_contribution_travels_on_only_with_scope_federation(db, bravo, charlie):
    alpha = foreign_member("alpha.hub")
    make_peer("alpha.hub")
    onward = alpha.contribution(scope="federation")
    one_hop = alpha.contribution(scope="peers")
    for contribution in (onward, one_hop):
        arrival(contribution, peer_hub="alpha.hub", path=["alpha.hub"])

    vet(onward.entry, one_hop.entry)

    # peers scope stops after one hop; the origin is never sent its own contribution back
    assert owed() == {
        ("bravo.hub", "contribution", onward.pk),
        ("charlie.hub", "contribution", onward.pk),
    }
    assert {tuple(r.path) for r in rows()} == {("alpha.hub",)}


def test_never_to_a_hub_on_the_items_path_nor_to_one_it_arrived_from(db, bravo, charlie):
    make_peer("delta.hub")
    alpha = foreign_member("alpha.hub")
    contribution = alpha.contribution()
    arrival(contribution, peer_hub="bravo.hub", path=["alpha.hub", "bravo.hub"])
    arrival(contribution, peer_hub="charlie.hub", path=["alpha.hub", "charlie.hub"])

    vet(contribution.entry)

    assert owed() == {("delta.hub", "contribution", contribution.pk)}
    assert rows()[0].path == ["alpha.hub", "bravo.hub"]  # the first arrival's path


def test_never_to_a_hub_an_arrival_said_it_was_also_sent_to(db, bravo, charlie):
    # alpha sent the item to this hub and to bravo: bravo gets it from alpha, not from here.
    alpha = foreign_member("alpha.hub")
    contribution = alpha.contribution()
    arrival(contribution, peer_hub="alpha.hub", path=["alpha.hub"], sent_to=["bravo.hub"])

    vet(contribution.entry)

    assert owed() == {("charlie.hub", "contribution", contribution.pk)}


@pytest.mark.parametrize(
    "policy,item,sent",
    [
        ({"outbound_scopes": ["federation"]}, {"scope": "peers"}, False),
        ({"outbound_scopes": ["federation"]}, {"scope": "federation"}, True),
        ({"outbound_scopes": ["peers"]}, {"scope": "federation"}, False),
        ({"outbound_labels": ["propaganda"]}, {"labels": ["attack-footage"]}, False),
        ({"outbound_labels": ["attack-footage", "x"]}, {"labels": ["attack-footage"]}, True),
        ({"outbound_signal_types": ["md5"]}, {}, False),  # the party's default is a PDQ hash
        ({"outbound_signal_types": ["pdq", "md5"]}, {}, True),
    ],
)
def test_each_peers_outbound_policy(acme_submitter, policy, item, sent):
    from federation.contributions.models import Label

    Label.objects.get_or_create(slug="propaganda", defaults={"name": "P", "description": "p"})
    make_peer("picky.hub", **policy)
    vetted_entry(acme_submitter, **item)
    assert bool(owed()) is sent


def test_an_add_to_a_shared_entry_is_sent_and_nothing_is_sent_twice(
    acme_submitter, globex_submitter, bravo
):
    signal = {"type": "pdq", "value": random_hex(64)}
    entry = vetted_entry(acme_submitter, signal=signal)
    first = rows()
    submit(globex_submitter, signal=signal)  # the entry is already vetted

    assert owed() == {
        ("bravo.hub", "contribution", add_of_org(entry, "acme")),
        ("bravo.hub", "contribution", add_of_org(entry, "globex")),
    }
    # Asking again (another move, a re-run) writes nothing new.
    assert outbox_record_adds(uuids=Contribution.objects.values_list("uuid", flat=True)) == 0
    assert rows()[0].pk == first[0].pk and len(rows()) == 2


def test_an_add_to_a_pending_entry_is_not_sent(acme_submitter, globex_submitter, bravo):
    signal = {"type": "pdq", "value": random_hex(64)}
    submit(acme_submitter, signal=signal)
    submit(globex_submitter, signal=signal)
    assert rows() == []


def test_a_retract_goes_to_every_peer_its_add_was_sent_to_whatever_its_scope(
    acme_submitter, bravo, charlie
):
    incident = Incident.objects.create(name="Christchurch", description="d")
    entry = vetted_entry(acme_submitter, incident=str(incident.pk))
    peer_update(peer=charlie, state="suspended", actor=ACTOR)  # after it was owed the add
    make_peer("late.hub")  # registered after the add was sent: never had it

    response = acme_submitter.submit(
        action="retract", signal={"type": entry.signal_type, "value": entry.value}, labels=[],
        scope="hub",
    )  # fmt: skip
    assert response.status_code == 201, response.json()

    retract = Contribution.objects.get(entry=entry, action="retract")
    assert owed(contribution=retract) == {("bravo.hub", "contribution", retract.pk)}
    (row,) = rows(contribution=retract)
    assert row.lane == "incident"  # the lane of the add it follows: it never overtakes it
    assert row.pk > rows(contribution=add_of(entry), peer=bravo)[0].pk


def test_incident_contributions_go_in_the_incident_lane(acme_submitter, bravo):
    incident = Incident.objects.create(name="Event", description="d")
    vetted_entry(acme_submitter, incident=str(incident.pk))
    vetted_entry(acme_submitter)
    assert sorted(r.lane for r in rows()) == ["incident", "normal"]


@pytest.mark.parametrize(
    "moves,items",
    [
        (["disputed"], 1),
        (["disputed", "rejected"], 2),
        (["disputed", "vetted"], 2),
    ],
)
def test_a_dispute_and_its_outcome_send_an_entry_item_to_the_peers_holding_the_entry(
    acme_submitter, bravo, moves, items
):
    entry = vetted_entry(acme_submitter)
    make_peer("late.hub")  # never sent the entry
    for state in moves:
        entries_transition(entry_ids=[entry.pk], to=state, actor=ACTOR)

    entry_rows = rows(kind="entry")
    assert [(r.peer.hub_id, r.entry_id) for r in entry_rows] == [("bravo.hub", entry.pk)] * items


def test_moves_that_share_nothing_write_no_rows(acme_submitter, bravo):
    entry = submit(acme_submitter)
    entries_transition(entry_ids=[entry.pk], to="rejected", actor=ACTOR)  # never shared
    entries_transition(entry_ids=[entry.pk], to="retracted", actor=ACTOR)
    assert rows() == []


def test_a_revoked_key_sends_a_key_item_to_the_peers_sent_its_contributions(
    acme_submitter, globex_submitter, bravo, charlie
):
    from federation.propagation.bindings import key_bindings_for
    from federation.propagation.models import KeyBinding

    vetted_entry(acme_submitter)
    key = acme_submitter.signing_key
    key_bindings_for([key])  # the key was bound when its contribution was first sent
    vetted_entry(globex_submitter)  # another key: not concerned

    signing_key_revoke(key=key, reason="compromised", actor=ACTOR)

    assert owed(kind="key") == {("bravo.hub", "key", key.pk), ("charlie.hub", "key", key.pk)}
    newest = KeyBinding.objects.filter(signing_key=key).order_by("-issued_at").first()
    assert '"revoked_at":null' not in newest.canonical
    assert KeyBinding.objects.filter(signing_key=key).count() == 2


def test_a_never_bound_key_revoked_sends_nothing_and_signs_nothing(acme_submitter, bravo):
    from federation.propagation.models import KeyBinding

    signing_key_revoke(key=acme_submitter.signing_key, reason="lost", actor=ACTOR)
    assert rows() == [] and not KeyBinding.objects.exists()


def test_rows_roll_back_with_the_change(acme_submitter, bravo):
    entry = submit(acme_submitter)
    with pytest.raises(RuntimeError), transaction.atomic():
        vet(entry)
        assert len(rows()) == 1
        raise RuntimeError("the change fails later")
    assert rows() == []


@pytest.mark.django_db(transaction=True)
def test_a_commit_nudges_each_peer_and_lane_once(monkeypatch):
    from federation.propagation import delivery
    from tests.support.parties import make_member, make_organisation

    nudged = []
    monkeypatch.setattr(delivery, "request_drain", lambda **kw: nudged.append(kw))
    party = make_member("alice", make_organisation("acme"), "submitter")
    # transactional tests run on a flushed database: the taxonomy is made here
    Label.objects.get_or_create(
        slug="attack-footage", defaults={"name": "Attack", "description": "a"}
    )
    bravo = make_peer("bravo.hub")
    entries = [submit(party) for _ in range(3)]
    nudged.clear()

    vet(*entries)

    assert nudged == [{"peer_id": bravo.pk, "lane": "normal"}]


@pytest.mark.parametrize("count", [1, 1000])
def test_vetting_in_bulk_costs_one_outbox_statement_whatever_the_number(
    db, django_assert_max_num_queries, count
):
    for name in ("bravo.hub", "charlie.hub", "delta.hub"):
        make_peer(name)
    alpha = foreign_member("alpha.hub")
    contributions = [alpha.contribution() for _ in range(count)]
    for contribution in contributions:
        arrival(contribution, peer_hub="alpha.hub", path=["alpha.hub"])
    ids = [c.entry_id for c in contributions]

    # lock-and-read, UPDATE, audit events INSERT … SELECT (their data alike), change stream
    # INSERT … SELECT, outbox INSERT … SELECT, TAXII versions INSERT … SELECT
    with django_assert_max_num_queries(6):
        entries_transition(entry_ids=ids, to="vetted", actor=ACTOR)

    assert len(rows()) == 3 * count


def test_the_lifecycle_call_adds_one_statement_only_when_it_could_share(acme_submitter, bravo):
    entry = vetted_entry(acme_submitter)
    with CaptureQueriesContext(connection) as captured:
        entries_transition(entry_ids=[entry.pk], to="retracted", actor=ACTOR)
    assert not any("federation_outboxitem" in q["sql"] for q in captured.captured_queries)
    assert outbox_record_transitions([]) == 0
