"""Draining the outbox to a receiving hub (federation/propagation/delivery.py), against a local
HTTP server on 127.0.0.1 that answers like a hub: batches, results, failures, backoff, dead
letters, the admin's retry, and a killed worker's lease."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from federation.hubkey import hub_public_key
from federation.lifecycle import entries_transition
from federation.propagation import delivery
from federation.propagation.delivery import (
    _claim,
    backoff_seconds,
    outbox_drain,
    partition,
)
from federation.propagation.models import OutboxItem, PeerLink
from federation.propagation.peers import peer_update
from federation.propagation.retry import outbox_retry
from federation.propagation.wire import item_digest, parse_batch
from federation.transparency.models import AuditEvent
from federation.vetting.models import Incident
from tests.support.sending import (
    ACTOR,
    accept_all,
    make_peer,
    rows,
    vetted_entry,
)


@pytest.fixture
def bravo(db, receiver):
    return make_peer("bravo.hub", url=receiver.url)


def drain(peer, lane="normal", **kw):
    return outbox_drain(peer_id=peer.pk, lane=lane, **kw)


def test_a_batch_is_signed_sent_with_the_token_and_its_items_delivered(
    acme_submitter, bravo, receiver, statements
):
    for _ in range(3):
        vetted_entry(acme_submitter)

    result = drain(bravo)

    assert (result.batches, result.delivered) == (1, 3)
    (body,) = receiver.batches
    batch = parse_batch(body)
    assert batch.envelope.verify(hub_public_key())
    assert (batch.sender, batch.receiver) == (settings.HUB_ID, "bravo.hub")
    assert len(batch.items) == 3 and batch.problems == ()
    (headers,) = receiver.headers
    assert headers["path"] == "/api/v1/federation/batches"
    assert headers["Authorization"] == f"Bearer {bravo.outbound_token}"
    digests = [item_digest(item) for item in body["batch"]["items"]]
    assert [(r.state, r.digest) for r in rows()] == [("delivered", d) for d in digests]
    assert all(r.delivered_at and r.claimed_until is None for r in rows())
    (sent,) = AuditEvent.objects.filter(action="federation.sent")
    assert (sent.object_type, sent.object_id) == ("peer", "bravo.hub")
    assert sent.data == {
        "peer": "bravo.hub",
        "batch": str(batch.batch_id),
        "via": "push",
        "items": digests,
    }
    assert PeerLink.objects.get(peer=bravo).last_push_at is not None
    assert drain(bravo).batches == 0  # nothing left


def test_batches_are_bounded_and_go_oldest_first(acme_submitter, bravo, receiver, settings):
    settings.FEDERATION_BATCH_SIZE = 3
    settings.FEDERATION_DRAIN_PARALLEL = 1
    for _ in range(7):
        vetted_entry(acme_submitter)
    order = [r.contribution_id for r in rows()]

    assert drain(bravo).batches == 1  # one round per task by default, and more is due
    assert drain(bravo, max_rounds=5).batches == 2

    assert [len(b["batch"]["items"]) for b in receiver.batches] == [3, 3, 1]
    sent = [i["contribution"]["uuid"] for i in receiver.items()]
    from federation.contributions.models import Contribution

    assert sent == [str(Contribution.objects.get(pk=pk).uuid) for pk in order]


@pytest.mark.parametrize(
    ("keyed", "parts", "size", "expected"),
    [
        # Batches fill one after another, and are bounded.
        ([(1, "a"), (2, "b"), (3, "c")], 2, 2, ([[1, 2], [3]], [])),
        # A group goes where it started, even to an earlier batch.
        ([(1, "a"), (2, "b"), (3, "c"), (4, "a")], 2, 2, ([[1, 2], [3]], [4])),
        ([(1, "a"), (2, "b"), (3, "a"), (4, "c")], 2, 3, ([[1, 2, 3], [4]], [])),
        # Out of batches: the rest waits for the next round, in order.
        ([(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "a")], 2, 2, ([[1, 2], [3, 4]], [5])),
        # A full group's batch stops the round there: nothing after the row overtakes it.
        ([(1, "a"), (2, "a"), (3, "a"), (4, "b")], 3, 2, ([[1, 2]], [3, 4])),
        ([], 4, 500, ([], [])),
    ],
)
def test_partition(keyed, parts, size, expected):
    assert partition(keyed, parts=parts, size=size) == expected


def test_a_round_posts_its_batches_at_once_and_an_entrys_items_stay_together(
    acme_submitter, bravo, receiver, settings
):
    settings.FEDERATION_BATCH_SIZE = 2
    settings.FEDERATION_DRAIN_PARALLEL = 3
    entries = [vetted_entry(acme_submitter) for _ in range(5)]
    entries_transition(entry_ids=[entries[0].pk], to="disputed", actor=ACTOR)
    # Every batch of the round waits here for the other two: sent one after another, they
    # would time out and fail.
    barrier = threading.Barrier(3, timeout=10)

    def answer(body):
        barrier.wait()
        return 200, accept_all(body)

    receiver.answer = answer

    first = drain(bravo)

    assert (first.batches, first.delivered, first.failed) == (3, 5, 0)
    assert first.more  # the dispute: its entry's batch was full, so it waits for the next round
    (waiting,) = rows(state="pending")
    assert (waiting.kind, waiting.attempts, waiting.claimed_until) == ("entry", 0, None)
    receiver.answer = None
    assert drain(bravo).delivered == 1
    assert {r.state for r in rows()} == {"delivered"}
    # The first entry's add and its dispute: the add was sent first, in a batch of its own round.
    signals = [
        [item["attestations"][-1]["attestation"]["signal"]["value"] for item in b["batch"]["items"]]
        for b in receiver.batches
    ]
    assert sorted(len(batch) for batch in signals[:3]) == [1, 2, 2]
    assert signals[3] == [entries[0].value]
    assert entries[0].value in [value for batch in signals[:3] for value in batch]
    assert AuditEvent.objects.filter(action="federation.sent").count() == 4


def test_a_rejected_item_is_refused_alone(acme_submitter, bravo, receiver, statements):
    receiver.answer = lambda body: (
        200,
        accept_all(body, status_of=lambda i, item: "rejected" if i == 1 else "duplicate"),
    )
    for _ in range(3):
        vetted_entry(acme_submitter)

    result = drain(bravo)

    assert (result.delivered, result.refused) == (2, 1)
    assert [r.state for r in rows()] == ["delivered", "refused", "delivered"]
    assert rows()[1].last_error == "bad_signature: forged"
    assert len(AuditEvent.objects.get(action="federation.sent").data["items"]) == 2


def test_a_failed_batch_backs_off_each_row_with_jitter(acme_submitter, bravo, receiver, settings):
    settings.FEDERATION_BACKOFF_BASE_SECONDS = 10
    receiver.answer = lambda body: (503, {"error": {"code": "unavailable", "message": "down"}})
    for _ in range(20):
        vetted_entry(acme_submitter)
    before = timezone.now()

    result = drain(bravo)

    after = timezone.now()
    assert (result.failed, result.delivered) == (20, 0)
    waiting = rows()
    assert {(r.state, r.attempts, r.claimed_until) for r in waiting} == {("pending", 1, None)}
    assert {r.last_error for r in waiting} == {"HTTP 503 unavailable: down"}
    for row in waiting:
        assert before + timedelta(seconds=5) <= row.next_attempt_at <= after + timedelta(seconds=10)
    assert len({r.next_attempt_at for r in waiting}) > 1  # each row draws its own jitter
    link = PeerLink.objects.get(peer=bravo)
    assert link.last_push_error == "HTTP 503 unavailable: down" and link.last_push_at is None
    # The lane waits while its oldest row backs off.
    assert drain(bravo).batches == 0 and len(receiver.batches) == 1


def test_backoff_grows_exponentially_within_its_jitter_and_is_capped(settings):
    settings.FEDERATION_BACKOFF_BASE_SECONDS = 2
    settings.FEDERATION_BACKOFF_MAX_SECONDS = 60
    for attempts, nominal in [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (12, 60)]:
        draws = [backoff_seconds(attempts) for _ in range(200)]
        assert all(nominal * 0.5 <= d <= nominal for d in draws)
        assert max(draws) - min(draws) > nominal * 0.2  # jittered, not fixed


def test_repeated_failures_grow_the_wait_then_dead_letter(
    acme_submitter, bravo, receiver, settings
):
    settings.FEDERATION_BACKOFF_BASE_SECONDS = 4
    settings.FEDERATION_MAX_ATTEMPTS = 4
    receiver.answer = lambda body: (500, {})
    vetted_entry(acme_submitter)
    waits = []
    for _attempt in range(3):
        started = timezone.now()
        drain(bravo)
        (row,) = rows()
        waits.append((row.next_attempt_at - started).total_seconds())
        OutboxItem.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    assert [r.attempts for r in rows()] == [3]
    for n, wait in enumerate(waits, start=1):
        assert 4 * 2 ** (n - 1) * 0.5 - 0.1 <= wait <= 4 * 2 ** (n - 1) + 0.1

    result = drain(bravo)

    assert result.dead == 1
    (row,) = rows()
    assert (row.state, row.attempts, row.last_error) == ("dead", 4, "HTTP 500")
    (event,) = AuditEvent.objects.filter(action="federation.dead_lettered")
    assert event.object_id == "bravo.hub"
    assert event.data == {"items": [row.pk], "attempts": 4, "message": "HTTP 500"}
    assert drain(bravo).batches == 0  # a dead letter is not retried by itself


def test_an_unreachable_peer_is_a_failure_like_any_other(acme_submitter, db):
    peer = make_peer("gone.hub", url="http://127.0.0.1:9")  # discard port: nothing listens
    vetted_entry(acme_submitter)
    result = drain(peer)
    assert result.failed == 1 and rows()[0].last_error.startswith("ConnectionRefusedError")


def test_the_admins_retry_puts_dead_and_refused_rows_back(
    acme_submitter, bravo, receiver, settings
):
    settings.FEDERATION_MAX_ATTEMPTS = 1
    receiver.answer = lambda body: (500, {})
    vetted_entry(acme_submitter)
    drain(bravo)
    (row,) = rows()
    assert row.state == "dead"

    assert outbox_retry(item_ids=[row.pk], actor=ACTOR) == 1

    row.refresh_from_db()
    assert (row.state, row.attempts) == ("pending", 0)
    (event,) = AuditEvent.objects.filter(action="federation.retried")
    assert (event.object_id, event.data) == ("bravo.hub", {"items": [row.pk]})
    receiver.answer = None
    assert drain(bravo).delivered == 1
    assert outbox_retry(item_ids=[row.pk], actor=ACTOR) == 0  # delivered rows stay delivered


def test_a_killed_workers_rows_come_back_after_the_lease_and_are_acknowledged(
    acme_submitter, bravo, receiver, statements
):
    for _ in range(2):
        vetted_entry(acme_submitter)
    claimed = _claim(bravo, "normal")  # the worker claimed, posted, and was killed
    assert [r.attempts for r in claimed] == [1, 1]

    assert drain(bravo).batches == 0  # in flight: the lane waits for the lease
    OutboxItem.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))
    receiver.answer = lambda body: (200, accept_all(body, status_of=lambda i, item: "duplicate"))

    result = drain(bravo)

    assert (result.batches, result.delivered) == (1, 2)
    assert {(r.state, r.attempts) for r in rows()} == {("delivered", 2)}


def test_a_claim_stops_at_the_first_row_in_flight_and_waits_while_the_head_backs_off(
    acme_submitter, bravo, statements
):
    for _ in range(4):
        vetted_entry(acme_submitter)
    first, second, third, fourth = rows()
    later = timezone.now() + timedelta(minutes=5)
    OutboxItem.objects.filter(pk=third.pk).update(claimed_until=later, attempts=1)

    claimed = _claim(bravo, "normal")

    assert [(r.pk, r.attempts, r.path) for r in claimed] == [(first.pk, 1, []), (second.pk, 1, [])]
    assert claimed[0].claimed_until > timezone.now()
    assert [(r.attempts, r.claimed_until) for r in rows()] == [
        (1, claimed[0].claimed_until), (1, claimed[0].claimed_until), (1, later), (0, None),
    ]  # fmt: skip
    OutboxItem.objects.update(claimed_until=None, next_attempt_at=later)
    OutboxItem.objects.filter(pk__in=[second.pk, third.pk, fourth.pk]).update(
        next_attempt_at=timezone.now()
    )
    assert _claim(bravo, "normal") is None  # the head backs off: the lane waits
    assert {r.attempts for r in rows()} == {1, 0}


def test_a_key_rows_path_comes_back_from_the_claim_as_a_list(acme_submitter, bravo, statements):
    entry = vetted_entry(acme_submitter)
    OutboxItem.objects.filter(entry=entry).update(path=["alpha.hub", "bravo.hub"])

    (claimed,) = _claim(bravo, "normal")

    assert claimed.path == ["alpha.hub", "bravo.hub"]


def test_the_first_push_to_a_peer_without_a_link_row_writes_one(
    acme_submitter, bravo, receiver, statements
):
    vetted_entry(acme_submitter)
    PeerLink.objects.filter(peer=bravo).delete()

    assert drain(bravo).delivered == 1

    assert PeerLink.objects.get(peer=bravo).last_push_at is not None
    assert AuditEvent.objects.filter(action="federation.sent").count() == 1


def test_the_sent_events_are_sequenced_once_the_lane_has_nothing_left_due(
    acme_submitter, bravo, receiver, settings, monkeypatch
):
    settings.FEDERATION_BATCH_SIZE = 1
    settings.FEDERATION_DRAIN_PARALLEL = 1
    asked = []
    monkeypatch.setattr(delivery, "audit_inserted", lambda: asked.append(True))
    for _ in range(2):
        vetted_entry(acme_submitter)

    first = drain(bravo)
    assert (first.delivered, first.more, asked) == (1, True, [])  # a backlog: the periodic run
    second = drain(bravo)
    assert (second.delivered, second.more, asked) == (1, False, [True])
    assert AuditEvent.objects.filter(action="federation.sent").count() == 2


def test_the_incident_lane_is_not_held_behind_the_normal_one(acme_submitter, bravo, receiver):
    incident = Incident.objects.create(name="Event", description="d")
    for _ in range(3):
        vetted_entry(acme_submitter)
    OutboxItem.objects.update(next_attempt_at=timezone.now() + timedelta(hours=1))  # a backlog
    vetted_entry(acme_submitter, incident=str(incident.pk))

    assert drain(bravo, "normal").batches == 0
    assert drain(bravo, "incident").delivered == 1
    assert [i["contribution"]["incident"] for i in receiver.items()] == [str(incident.pk)]


def test_a_suspended_peer_or_one_without_a_token_is_not_sent_anything(
    acme_submitter, bravo, receiver
):
    vetted_entry(acme_submitter)
    peer_update(peer=bravo, state="suspended", actor=ACTOR)
    assert drain(bravo).batches == 0
    tokenless = make_peer("quiet.hub", url=receiver.url, token=False)
    assert outbox_drain(peer_id=tokenless.pk, lane="normal").batches == 0
    assert receiver.batches == []


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="an advisory lock (the embedded demo's SQLite takes none: one solo worker)",
)
def test_a_second_drain_of_the_same_lane_steps_aside(acme_submitter, bravo, receiver):
    from django.db import connections

    vetted_entry(acme_submitter)
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_lock(%s, %s)", delivery._lock_key(bravo.pk, "normal")
            )
        assert drain(bravo).batches == 0
        # Released explicitly: closing the connection ends its session, and the lock, only when
        # the server gets to it, which the next drain could overtake.
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_unlock(%s, %s)", delivery._lock_key(bravo.pk, "normal")
            )
    finally:
        other.close()
    assert drain(bravo).delivered == 1


def test_push_failures_and_dead_letters_are_logged_at_warning_with_peer_and_count(
    acme_submitter, bravo, receiver, settings, caplog
):
    settings.FEDERATION_MAX_ATTEMPTS = 2
    receiver.answer = lambda body: (500, {})
    vetted_entry(acme_submitter)
    vetted_entry(acme_submitter)

    with caplog.at_level("WARNING", logger="federation.propagation.delivery"):
        drain(bravo)
        OutboxItem.objects.update(next_attempt_at=timezone.now())
        drain(bravo)

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "push to bravo.hub failed: 2 items (2 to retry, 0 dead-lettered): HTTP 500",
        "dead-lettered 2 items for bravo.hub after 2 attempts: HTTP 500",
        "push to bravo.hub failed: 2 items (0 to retry, 2 dead-lettered): HTTP 500",
    ]


def test_items_the_peer_refuses_are_logged_at_warning(acme_submitter, bravo, receiver, caplog):
    receiver.answer = lambda body: (200, accept_all(body, status_of=lambda i, item: "rejected"))
    vetted_entry(acme_submitter)

    with caplog.at_level("WARNING", logger="federation.propagation.delivery"):
        drain(bravo)

    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("bravo.hub refused 1 items of batch ")
    assert warning.endswith("(not retried): bad_signature: forged")
