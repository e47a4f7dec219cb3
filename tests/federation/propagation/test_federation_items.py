"""Wire items built from outbox rows (federation/propagation/items.py): each parses with the
wire's own parser and every signature in it verifies with the key that must have made it."""

import hashlib
from datetime import UTC, datetime, timedelta
from datetime import timezone as timezone_of

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from federation.canonical import canonical_bytes, canonical_json_bytes
from federation.contributions.models import Entry
from federation.hubkey import hub_public_key
from federation.lifecycle import entries_transition
from federation.propagation.items import ItemsBuilder, policy_summary
from federation.propagation.models import KeyBinding
from federation.propagation.wire import (
    attestation_document,
    key_binding_document,
    parse_item,
    sign_document,
    signed_pair,
)
from federation.signing import (
    decode_signature,
    format_timestamp,
    parse_key_registration,
    verify_key_registration,
    verify_signature,
)
from members.services import signing_key_revoke
from tests.support.sending import (
    ACTOR,
    arrival,
    foreign_member,
    make_peer,
    new_hub_key,
    row_refs,
    rows,
    vet,
    vetted_entry,
)
from tests.support.vetting import set_policy


def items_build(refs, *, peer_hub, now, push=True):
    """The items of ``refs`` built in one batch, as dicts."""
    return ItemsBuilder(refs, peer_hub=peer_hub, now=now, push=push).build(refs)


def build(peer_hub="bravo.hub", **filters):
    return items_build(row_refs(rows(**filters)), peer_hub=peer_hub, now=timezone.now())


def check_key_section(parsed, *, home_key, hub, member):
    registration = parse_key_registration(parsed.registration["registration"])
    assert verify_key_registration(registration, decode_signature(parsed.registration["signature"]))
    binding = parsed.binding
    assert binding.verify(home_key)
    assert binding.document["hub"] == hub and binding.document["member"] == member
    assert binding.document["key_id"] == registration.key_id
    assert (
        binding.document["registration_sha256"]
        == hashlib.sha256(registration.canonical).hexdigest()
    )
    return registration


def test_a_local_contribution_travels_verbatim_with_its_binding_and_this_hubs_attestation(
    acme_submitter,
):
    make_peer("bravo.hub")
    set_policy(auto_vet_trusted=True)
    acme_submitter.organisation.trusted = True
    acme_submitter.organisation.save()
    entry = vetted_entry(acme_submitter)

    built = build()

    ((_row_id, item, digest),) = built.items
    parsed = parse_item(item, index=0)
    assert parsed.digest == digest and parsed.path == (settings.HUB_ID,)
    contribution = parsed.contribution
    from federation.contributions.models import Contribution

    stored = Contribution.objects.get(entry=entry)
    assert canonical_json_bytes(contribution["contribution"]) == stored.canonical.encode()
    member_key = Ed25519PublicKey.from_public_bytes(acme_submitter.signing_key.public_key_bytes)
    assert verify_signature(
        member_key, decode_signature(contribution["signature"]), stored.canonical.encode()
    )
    check_key_section(parsed, home_key=hub_public_key(), hub=settings.HUB_ID, member="acme")
    assert parsed.binding.document["revoked_at"] is None
    (attestation,) = parsed.attestations
    assert attestation.verify(hub_public_key())
    assert attestation.document["hub"] == settings.HUB_ID
    assert attestation.document["state"] == "vetted"
    assert attestation.document["signal"] == {"type": entry.signal_type, "value": entry.value}
    assert attestation.document["policy"] == "trusted member"


@pytest.mark.parametrize("moment", [
    datetime(2026, 3, 1, 9, 5, 7, tzinfo=UTC),  # whole seconds: no fraction
    datetime(2026, 3, 1, 9, 5, 7, 40, tzinfo=UTC),  # six digits, leading zeros kept
    datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=timezone_of(timedelta(hours=-5))),  # UTC: next year
])  # fmt: skip
def test_the_attestation_names_the_entrys_decision_time_as_signed_timestamps_are_written(
    acme_submitter, moment
):
    make_peer("bravo.hub")
    entry = vetted_entry(acme_submitter)
    Entry.objects.filter(pk=entry.pk).update(state_changed_at=moment)

    ((_row_id, item, _digest),) = build().items

    (attestation,) = parse_item(item, index=0).attestations
    assert attestation.document["decided_at"] == format_timestamp(moment)


def test_the_binding_is_signed_once_and_kept(acme_submitter):
    make_peer("bravo.hub")
    make_peer("charlie.hub")
    vetted_entry(acme_submitter)
    first = build("bravo.hub", peer__hub_id="bravo.hub").items[0][1]
    second = build("charlie.hub", peer__hub_id="charlie.hub").items[0][1]
    assert KeyBinding.objects.count() == 1
    assert first["key"] == second["key"]


def bind_at_home(member, home_key=None) -> None:
    """The member's home hub's binding of its key, as it arrived here."""
    document = key_binding_document(
        hub=member.hub, member=member.organisation.slug, key_id=member.signing_key.key_id,
        registration=member.signing_key.registration.encode(),
        not_before=member.signing_key.not_before, revoked_at=None, issued_at=timezone.now(),
    )  # fmt: skip
    signed = sign_document(home_key or new_hub_key()[0], document)
    KeyBinding.objects.create(
        signing_key=member.signing_key, canonical=signed.canonical.decode(),
        signature=signed.signature, issued_at=timezone.now(), received_from=member.hub,
    )  # fmt: skip


def test_a_relayed_contribution_carries_the_attestations_it_arrived_with_and_extends_the_path(db):
    alpha_key, _ = new_hub_key()
    alpha = foreign_member("alpha.hub")
    make_peer("alpha.hub")
    make_peer("charlie.hub")
    contribution = alpha.contribution()
    entry = contribution.entry
    alphas = signed_pair(
        sign_document(
            alpha_key,
            attestation_document(
                hub="alpha.hub", signal_type=entry.signal_type, value=entry.value,
                state="vetted", decided_at=timezone.now(), policy="quorum", attested_at=timezone.now(),
            ),
        ),
        name="attestation",
    )  # fmt: skip
    arrival(contribution, peer_hub="alpha.hub", path=["alpha.hub"], attestations=[alphas])
    bind_at_home(alpha, alpha_key)
    vet(entry)

    built = build("charlie.hub")

    ((row, item, _digest),) = built.items
    assert built.canonical[row] == canonical_bytes(item)  # the arrival's attestation included
    parsed = parse_item(item, index=0)
    assert parsed.path == ("alpha.hub", settings.HUB_ID)
    assert [a.document["hub"] for a in parsed.attestations] == ["alpha.hub", settings.HUB_ID]
    assert parsed.attestations[0].verify(alpha_key.public_key())
    assert parsed.attestations[1].verify(hub_public_key())
    assert parsed.attestations[1].document["policy"] == "peer alpha.hub (trust)"
    check_key_section(
        parsed, home_key=alpha_key.public_key(), hub="alpha.hub", member=alpha.organisation.slug
    )
    assert KeyBinding.objects.count() == 1  # a foreign key is never bound here


def test_a_relayed_contribution_whose_key_has_no_home_binding_cannot_be_built(db):
    alpha = foreign_member("alpha.hub")
    make_peer("charlie.hub")
    contribution = alpha.contribution()
    arrival(contribution, peer_hub="alpha.hub", path=["alpha.hub"])
    vet(contribution.entry)

    built = build("charlie.hub")

    assert built.items == [] and "no binding from its home hub" in next(iter(built.failed.values()))


def test_an_item_for_a_hub_on_its_path_is_dropped_at_build_time(db):
    alpha = foreign_member("alpha.hub")
    make_peer("charlie.hub")
    contribution = alpha.contribution()
    vet(contribution.entry)  # the row is written before the arrival is recorded
    arrival(contribution, peer_hub="charlie.hub", path=["alpha.hub", "charlie.hub"])

    built = build("charlie.hub")

    assert built.items == [] and built.dropped == [rows()[0].pk]


def test_sent_to_names_the_other_peers_this_hub_sends_the_contribution_to(acme_submitter):
    for name in ("bravo.hub", "charlie.hub", "delta.hub"):
        make_peer(name)
    vetted_entry(acme_submitter)
    assert len(rows()) == 3

    for peer_hub, others in [
        ("bravo.hub", ["charlie.hub", "delta.hub"]),
        ("delta.hub", ["bravo.hub", "charlie.hub"]),
    ]:
        ((_row, item, _digest),) = build(peer_hub, peer__hub_id=peer_hub).items
        assert item["sent_to"] == others
        assert parse_item(item, index=0).sent_to == tuple(others)


def test_a_relayed_contribution_adds_its_arrivals_sent_to_and_is_not_pushed_to_them(db):
    alpha = foreign_member("alpha.hub")
    make_peer("charlie.hub")
    make_peer("delta.hub")
    contribution = alpha.contribution()
    vet(contribution.entry)  # rows to charlie and delta, written before the arrival is recorded
    arrival(
        contribution, peer_hub="alpha.hub", path=["alpha.hub"], sent_to=["charlie.hub", "x.hub"]
    )
    bind_at_home(alpha)

    to_charlie = build("charlie.hub", peer__hub_id="charlie.hub")
    to_delta = build("delta.hub", peer__hub_id="delta.hub")

    assert to_charlie.items == [] and len(to_charlie.dropped) == 1
    ((row, item, _digest),) = to_delta.items
    assert item["path"] == ["alpha.hub", settings.HUB_ID]
    assert item["sent_to"] == ["charlie.hub", "x.hub"]
    assert to_delta.canonical[row] == canonical_bytes(item)
    # The pull feed still offers it to charlie (pulling is the safety net for a lost push).
    refs = row_refs(rows(peer__hub_id="charlie.hub"))
    (pulled,) = items_build(refs, peer_hub="charlie.hub", now=timezone.now(), push=False).items
    assert pulled[1]["sent_to"] == ["delta.hub", "x.hub"]


def test_an_item_sent_to_one_peer_only_has_no_sent_to(acme_submitter):
    make_peer("bravo.hub")
    vetted_entry(acme_submitter)
    ((_row, item, _digest),) = build().items
    assert "sent_to" not in item


def test_entry_and_key_items(acme_submitter):
    make_peer("bravo.hub")
    entry = vetted_entry(acme_submitter)
    build()  # the contribution is sent: its key is bound
    entries_transition(entry_ids=[entry.pk], to="disputed", actor=ACTOR)
    signing_key_revoke(key=acme_submitter.signing_key, reason="compromised", actor=ACTOR)

    entry_item = build(kind="entry").items[0][1]
    parsed = parse_item(entry_item, index=0)
    (attestation,) = parsed.attestations
    assert attestation.verify(hub_public_key()) and attestation.document["state"] == "disputed"
    assert parsed.path == (settings.HUB_ID,)

    key_item = build(kind="key").items[0][1]
    parsed = parse_item(key_item, index=0)
    check_key_section(parsed, home_key=hub_public_key(), hub=settings.HUB_ID, member="acme")
    assert parsed.binding.document["revoked_at"] is not None
    assert parsed.path == (settings.HUB_ID,)


def test_a_retract_attests_the_retraction(acme_submitter):
    make_peer("bravo.hub")
    entry = vetted_entry(acme_submitter)
    response = acme_submitter.submit(
        action="retract", signal={"type": entry.signal_type, "value": entry.value}, labels=[]
    )
    assert response.status_code == 201
    items = [item for _row, item, _d in build().items]
    assert [i["contribution"]["action"] for i in items] == ["add", "retract"]
    assert [parse_item(i, index=0).attestations[-1].document["state"] for i in items] == [
        "retracted",
        "retracted",
    ]


@pytest.mark.parametrize("snapshot,text", [
    ({"rule": "quorum", "effective_quorum": 2}, "quorum of reviewers (2 needed)"),
    ({"rule": "admin_ruling"}, "admin ruling"),
    ({"rule": "trusted_peer", "peer": "alpha.hub"}, "peer alpha.hub (trust)"),
    (None, "hub policy"),
])  # fmt: skip
def test_policy_summaries(snapshot, text):
    assert policy_summary(snapshot) == text


def test_a_round_builder_loads_once_and_builds_each_batch_alike(acme_submitter):
    make_peer("bravo.hub")
    for _ in range(6):
        vetted_entry(acme_submitter)
    refs = row_refs(rows())
    now = timezone.now()
    build()  # binds the key on first use
    whole = items_build(refs, peer_hub="bravo.hub", now=now)

    builder = ItemsBuilder(refs, peer_hub="bravo.hub", now=now)
    first = builder.build(refs[:2])
    with CaptureQueriesContext(connection) as captured:
        second = builder.build(refs[2:])

    assert captured.captured_queries == []
    # Ed25519 signatures are deterministic: the same items, byte for byte.
    assert first.items + second.items == whole.items


def test_a_push_builds_the_same_bytes_without_the_items_dicts(acme_submitter):
    make_peer("bravo.hub")
    make_peer("charlie.hub")  # named in each item's sent_to
    for _ in range(3):
        vetted_entry(acme_submitter)
    refs = row_refs(rows(peer__hub_id="bravo.hub"))
    now = timezone.now()
    build()  # binds the key on first use
    whole = items_build(refs, peer_hub="bravo.hub", now=now)

    pushed = ItemsBuilder(refs, peer_hub="bravo.hub", now=now, documents=False).build(refs)

    assert pushed.canonical == whole.canonical
    assert [(pk, digest) for pk, _item, digest in pushed.items] == [
        (pk, digest) for pk, _item, digest in whole.items
    ]
    assert [item for _pk, item, _digest in pushed.items] == [None, None, None]
    assert all(b'"sent_to":["charlie.hub"]' in pushed.canonical[pk] for pk in pushed.canonical)


def test_building_a_batch_costs_a_fixed_number_of_queries(acme_submitter):
    make_peer("bravo.hub")

    def cost(count: int) -> int:
        for _ in range(count):
            vetted_entry(acme_submitter)
        build()  # binds the key on first use
        with CaptureQueriesContext(connection) as captured:
            built = build()
        assert len(built.items) >= count
        return len(captured.captured_queries)

    assert cost(2) == cost(60)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="lists of ids as one array")
def test_a_round_passes_each_list_of_ids_as_one_array(acme_submitter):
    make_peer("bravo.hub")
    make_peer("charlie.hub")
    for _ in range(5):
        vetted_entry(acme_submitter)
    build()  # binds the key on first use

    with CaptureQueriesContext(connection) as captured:
        assert len(build(peer__hub_id="bravo.hub").items) == 5

    # Not Django's ``IN (%s, %s, …)`` of a foreign key's ``__in`` (a placeholder per id).
    assert [query["sql"] for query in captured if " IN (" in query["sql"]] == []


def test_each_items_bytes_are_its_rfc8785_bytes_with_shared_parts_written_once(acme_submitter):
    make_peer("bravo.hub")
    make_peer("charlie.hub")
    entries = [vetted_entry(acme_submitter) for _ in range(3)]  # one key section shared by all
    first = build(peer__hub_id="bravo.hub")  # the contributions are sent: their key is bound
    entries_transition(entry_ids=[entries[0].pk], to="disputed", actor=ACTOR)
    signing_key_revoke(key=acme_submitter.signing_key, reason="compromised", actor=ACTOR)

    then = build(peer__hub_id="bravo.hub", kind__in=["entry", "key"])

    built = [(batch, *item) for batch in (first, then) for item in batch.items]
    assert [item["type"] for _batch, _row, item, _digest in built] == [
        *["contribution"] * 3,
        *["entry", "key"],
    ]
    for batch, row, item, digest in built:
        assert batch.canonical[row] == canonical_bytes(item)
        assert digest == hashlib.sha256(canonical_bytes(item)).hexdigest()
