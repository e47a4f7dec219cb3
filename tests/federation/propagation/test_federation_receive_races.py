"""Two peers delivering the same contribution (and its new key and member) at the same moment:
stored once, two receipts, no error (the losing batch's transaction is rolled back and run again)."""

import threading

import pytest
from django.db import connection

from federation.contributions.models import Contribution, Label
from federation.propagation.models import KeyBinding, Receipt
from federation.receiving.receive import batch_receive
from members.models import Organisation, SigningKey
from tests.support.federation import RemoteHub, contribution_item


def _receive_together(deliveries):
    """Run ``batch_receive`` for each (hub, body) in its own thread and connection, released
    together; returns the results by hub id and the errors."""
    start = threading.Barrier(len(deliveries))
    results, errors = {}, []

    def receive(hub, body):
        try:
            start.wait()
            results[hub.hub_id] = batch_receive(peer=hub.peer, body=body, via="push")
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=receive, args=delivery) for delivery in deliveries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


@pytest.mark.django_db(transaction=True)
def test_the_same_new_contribution_from_two_peers_at_once_is_stored_once():
    # Transactional tests flush the tables, seeded labels included: put back the one used.
    Label.objects.get_or_create(slug="attack-footage", defaults={"name": "Attack footage"})
    bravo, charlie = RemoteHub("bravo.example"), RemoteHub("charlie.example")
    for attempt in range(4):
        member = bravo.member(f"acme{attempt % 2}")  # then a known member with a new key
        document = member.contribution()
        results, errors = _receive_together(
            [
                (bravo, bravo.batch([contribution_item(member, document)])),
                (
                    charlie,
                    charlie.batch([contribution_item(member, document, via=[bravo, charlie])]),
                ),
            ]
        )
        assert errors == []
        statuses = sorted(r.results[0].status for r in results.values())
        assert statuses == ["accepted", "duplicate"]
        assert Contribution.objects.filter(uuid=document["uuid"]).count() == 1
        assert Receipt.objects.filter(contribution__uuid=document["uuid"]).count() == 2
        assert Organisation.objects.filter(slug=f"acme{attempt % 2}").count() == 1
        key = SigningKey.objects.get(key_id=member.key_id)
        assert KeyBinding.objects.filter(signing_key=key).count() == 1


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a second PostgreSQL session holds the rows"
)
@pytest.mark.django_db(transaction=True)
def test_a_batch_does_not_wait_for_another_holding_its_keys_row():
    # Batches signed by one key (a member's backlog, sent as parallel batches) must not be
    # applied one after another: receiving takes no lock on a key it already holds, nor on its
    # member's mirror. Another transaction holds both rows as a concurrent batch does (the key
    # share lock of its foreign keys); this batch must still go through, not wait for it.
    import psycopg
    from django.db import connections

    Label.objects.get_or_create(slug="attack-footage", defaults={"name": "Attack footage"})
    bravo = RemoteHub("bravo.example")
    member = bravo.member("acme")
    first = batch_receive(
        peer=bravo.peer, body=bravo.batch([contribution_item(member, member.contribution())]),
        via="push",
    )  # fmt: skip
    assert [r.status for r in first.results] == ["accepted"]
    key = SigningKey.objects.get(key_id=member.key_id)

    params = connections["default"].get_connection_params()
    params = {k: v for k, v in params.items() if k not in ("context", "cursor_factory")}
    with psycopg.connect(**params) as holder:
        holder.execute("SELECT 1 FROM members_signingkey WHERE id = %s FOR KEY SHARE", [key.pk])
        holder.execute(
            "SELECT 1 FROM members_organisation WHERE id = %s FOR KEY SHARE", [key.organisation_id]
        )
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        try:
            second = batch_receive(
                peer=bravo.peer,
                body=bravo.batch([contribution_item(member, member.contribution())]),
                via="push",
            )
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = 0")
        holder.rollback()
    assert [r.status for r in second.results] == ["accepted"]
