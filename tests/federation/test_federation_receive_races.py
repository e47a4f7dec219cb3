"""Two peers delivering the same contribution (and its new key and member) at the same moment:
stored once, two receipts, no error (the losing batch's transaction is rolled back and run again)."""

import threading

import pytest
from django.db import connection

from federation.contributions.models import Contribution, Label
from federation.propagation.models import KeyBinding, Receipt
from federation.propagation.receive import batch_receive
from members.models import Organisation, SigningKey
from tests.federation.federation_helpers import RemoteHub, contribution_item


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
