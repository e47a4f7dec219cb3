"""A bulk request is checked and written in chunks (the pool verifies one while the one before is
written, in the request's one transaction): its per-item results, its rows and its audit events
are those of the request written whole. Chunks of three items here, so that each case spans
chunks. Also run on SQLite (tests/integration/test_pipelined_ingest_on_sqlite.py)."""

import pytest
from django.db import connection

from federation.contributions import entry_rows, services, storage
from federation.contributions.models import Contribution, Entry, Label
from federation.contributions.storage import CREATED, DUPLICATE, REJECTED
from federation.transparency.models import AuditEvent
from federation.vetting.models import VettingPolicy
from tests.support.races import race_behind_an_uncommitted_insert, submit_at_once

BULK = "/api/v1/contributions/bulk/"
CHUNK = 3


@pytest.fixture
def chunks(monkeypatch):
    """Chunks of ``CHUNK`` items; counts the chunks written (the last list: one per attempt)."""
    monkeypatch.setattr(services, "CHUNK_SIZE", CHUNK)
    written: list[int] = []
    store_chunk = storage._store_chunk

    def counted(batch, request, verified):
        written.append(len(verified))
        return store_chunk(batch, request, verified)

    monkeypatch.setattr(storage, "_store_chunk", counted)
    return written


def _post(party, items):
    response = party.client.post(BULK, {"items": items}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _statuses(body):
    return [(r["status"], (r.get("error") or {}).get("code")) for r in body["results"]]


@pytest.mark.django_db
def test_a_repeat_and_a_conflict_in_later_chunks_are_judged_against_the_first(
    acme_submitter, chunks
):
    first = acme_submitter.signed()
    uuid = first["contribution"]["uuid"]
    other_bytes = acme_submitter.signed(uuid=uuid)
    items = [
        first, acme_submitter.signed(), acme_submitter.signed(),
        first, other_bytes, acme_submitter.signed(),
        first,
    ]  # fmt: skip
    body = _post(acme_submitter, items)
    assert chunks == [3, 3, 1]
    assert _statuses(body) == [
        (CREATED, None), (CREATED, None), (CREATED, None),
        (DUPLICATE, None), (REJECTED, "uuid_conflict"), (CREATED, None),
        (DUPLICATE, None),
    ]  # fmt: skip
    assert body["results"][3]["entry_id"] == body["results"][6]["entry_id"]
    assert body["results"][3]["entry_id"] == body["results"][0]["entry_id"]
    assert Contribution.objects.count() == 4
    assert AuditEvent.objects.filter(action="contribution.accepted").count() == 4
    (conflict,) = AuditEvent.objects.filter(action="contribution.rejected")
    assert conflict.data["code"] == "uuid_conflict"
    assert (
        conflict.data["existing_content_hash"] == Contribution.objects.get(uuid=uuid).content_hash
    )


@pytest.mark.django_db
def test_stored_uuids_after_a_first_chunk_of_new_items_are_answered_as_a_lookup_would(
    acme_submitter, chunks
):
    """A request whose first chunk is all new writes its later chunks' adds without looking
    their UUIDs up: a stored one among them is still a duplicate, or a conflict with other
    bytes, and a stored retract repeated a duplicate, with nothing written twice."""
    signal = {"type": "md5", "value": "c" * 32}
    kept, other, add = (
        acme_submitter.signed(),
        acme_submitter.signed(),
        acme_submitter.signed(signal=signal),
    )
    retract = acme_submitter.signed(action="retract", labels=[], signal=signal)
    _post(acme_submitter, [kept, other, add])
    _post(acme_submitter, [retract])
    clashing = acme_submitter.signed(uuid=other["contribution"]["uuid"])
    items = [
        acme_submitter.signed(), acme_submitter.signed(), acme_submitter.signed(),
        kept, clashing, acme_submitter.signed(),
        retract,
    ]  # fmt: skip
    accepted = AuditEvent.objects.filter(action="contribution.accepted").count()

    body = _post(acme_submitter, items)

    assert _statuses(body) == [
        (CREATED, None), (CREATED, None), (CREATED, None),
        (DUPLICATE, None), (REJECTED, "uuid_conflict"), (CREATED, None),
        (DUPLICATE, None),
    ]  # fmt: skip
    assert (
        body["results"][3]["entry_id"]
        == Contribution.objects.get(uuid=kept["contribution"]["uuid"]).entry_id
    )
    assert Contribution.objects.count() == 4 + 4
    assert AuditEvent.objects.filter(action="contribution.accepted").count() == accepted + 4
    (conflict,) = AuditEvent.objects.filter(action="contribution.rejected")
    assert conflict.data["existing_content_hash"] == (
        Contribution.objects.get(uuid=other["contribution"]["uuid"]).content_hash
    )


@pytest.mark.django_db
def test_a_bad_signature_in_a_later_chunk_is_rejected_and_audited_and_the_rest_stored(
    acme_submitter, chunks
):
    items = [acme_submitter.signed() for _ in range(7)]
    items[5]["contribution"]["labels"] = ["terrorist-content"]  # no longer what was signed
    junk = {"nonsense": True}
    body = _post(acme_submitter, [*items[:4], junk, *items[4:]])
    assert chunks == [3, 2, 1]
    assert [code for _, code in _statuses(body)] == [
        None, None, None, None, "invalid", None, "bad_signature", None
    ]  # fmt: skip
    assert (body["created"], body["rejected"]) == (6, 2)
    assert Contribution.objects.count() == 6
    assert AuditEvent.objects.filter(action="contribution.accepted").count() == 6
    (forged,) = AuditEvent.objects.filter(action="contribution.rejected")
    assert (forged.data["code"], forged.data["index"]) == ("bad_signature", 6)
    assert forged.data["uuid"] == items[5]["contribution"]["uuid"]
    (summary,) = AuditEvent.objects.filter(action="contribution.malformed_items")
    assert summary.data["reasons"][0]["indexes"] == [[4, 4]]
    # The verification rejections are logged before storage's, as in one chunk.
    rejected = AuditEvent.objects.filter(action="contribution.rejected").order_by("pk")
    accepted = AuditEvent.objects.filter(action="contribution.accepted").order_by("pk")
    assert rejected.first().pk > accepted.last().pk


@pytest.mark.django_db
def test_retracts_in_early_chunks_follow_the_adds_of_later_ones(acme_submitter, chunks):
    signal = {"type": "md5", "value": "a" * 32}
    other = {"type": "md5", "value": "b" * 32}
    retract = acme_submitter.signed(action="retract", labels=[], signal=signal)
    orphan = acme_submitter.signed(action="retract", labels=[], signal=other)
    add = acme_submitter.signed(signal=signal)
    items = [
        retract, orphan, acme_submitter.signed(),
        acme_submitter.signed(), retract, acme_submitter.signed(),
        add, orphan,
    ]  # fmt: skip
    body = _post(acme_submitter, items)
    assert chunks == [3, 3, 2]
    assert _statuses(body) == [
        (CREATED, None), (REJECTED, "nothing_to_retract"), (CREATED, None),
        (CREATED, None), (DUPLICATE, None), (CREATED, None),
        (CREATED, None), (REJECTED, "nothing_to_retract"),
    ]  # fmt: skip
    entry = Entry.objects.get(value=signal["value"])
    assert body["results"][0]["entry_id"] == body["results"][4]["entry_id"] == entry.pk
    assert entry.state == Entry.State.RETRACTED
    stored_add = Contribution.objects.get(uuid=add["contribution"]["uuid"])
    assert stored_add.status == Contribution.Status.WITHDRAWN
    assert str(stored_add.withdrawn_by.uuid) == retract["contribution"]["uuid"]
    # Every acceptance is logged before the retraction it causes.
    log = list(AuditEvent.objects.order_by("pk").values_list("action", "object_id"))
    retracted_at = log.index(("entry.retracted", str(entry.pk)))
    add_at = log.index(("contribution.accepted", add["contribution"]["uuid"]))
    retract_at = log.index(("contribution.accepted", retract["contribution"]["uuid"]))
    assert add_at < retract_at < retracted_at


@pytest.mark.django_db
def test_a_trusted_members_signal_added_in_two_chunks_is_vetted_once(acme_submitter, chunks):
    acme_submitter.organisation.trusted = True
    acme_submitter.organisation.save()
    signal = {"type": "md5", "value": "c" * 32}
    items = [acme_submitter.signed(signal=signal), *(acme_submitter.signed() for _ in range(3))]
    items.append(acme_submitter.signed(signal=signal))
    body = _post(acme_submitter, items)
    assert chunks == [3, 2]
    assert body["created"] == 5
    entry = Entry.objects.get(value=signal["value"])
    assert entry.state == Entry.State.VETTED
    assert AuditEvent.objects.filter(action="entry.vetted").count() == 4
    assert AuditEvent.objects.filter(action="entry.vetted", object_id=str(entry.pk)).count() == 1


@pytest.fixture
def taxonomy(db):
    """Transactional tests flush the tables, seeded labels included; put back the one we use."""
    Label.objects.get_or_create(
        slug="attack-footage", defaults={"name": "Attack footage", "description": "test"}
    )


@pytest.mark.django_db(transaction=True)
def test_losing_a_race_in_a_later_chunk_reruns_the_write_and_answers_duplicate(
    acme_submitter, taxonomy, chunks, caplog
):
    """B's second chunk hits the row A holds uncommitted: after A commits, B's whole write runs
    again from the chunks already verified; the contested item is a duplicate, nothing is
    written twice."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time: B cannot reach A's row uncommitted")
    VettingPolicy.current()  # created now, not by A's transaction (B would wait for it there)
    contested = acme_submitter.signed()
    items = [*(acme_submitter.signed() for _ in range(4)), contested, acme_submitter.signed()]
    with caplog.at_level("INFO", logger="federation.db.retry"):
        # B blocks in its second chunk.
        outcomes = race_behind_an_uncommitted_insert(
            acme_submitter.actor, first=[contested], second=items
        )
    assert "raced a concurrent writer" in caplog.text
    assert not isinstance(outcomes["b"], Exception), outcomes["b"]
    # A's one chunk, B's two of the lost attempt, B's two again.
    assert chunks == [1, 3, 3, 3, 3]
    assert [r.status for r in outcomes["b"]] == [CREATED] * 4 + [DUPLICATE, CREATED]
    assert outcomes["b"][4].entry_id == outcomes["a"][0].entry_id
    assert Contribution.objects.count() == 6
    assert AuditEvent.objects.filter(action="contribution.accepted").count() == 6


@pytest.mark.django_db(transaction=True)
def test_concurrent_overlapping_bulks_over_many_chunks_never_fail(acme_submitter, taxonomy, chunks):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    VettingPolicy.current()
    shared = [acme_submitter.signed() for _ in range(20)]
    own = [[acme_submitter.signed() for _ in range(7)] for _ in range(2)]
    batches = [shared + own[0], list(reversed(shared)) + own[1]]
    outcomes = submit_at_once(acme_submitter.actor, batches)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    for results in outcomes:
        assert [r.index for r in results] == list(range(27))
        assert {r.status for r in results} <= {CREATED, DUPLICATE}
    assert sum(r.status == CREATED for results in outcomes for r in results) == 34
    assert Contribution.objects.count() == 34
    assert AuditEvent.objects.filter(action="contribution.accepted").count() == 34


@pytest.mark.django_db
def test_entries_are_inserted_as_new_until_one_exists_then_upserted(
    acme_submitter, chunks, monkeypatch
):
    """While the request's entries have all been new, a chunk's are inserted as new; the first
    that exists takes its chunk's insert back (nothing of it is kept), and that chunk and the
    rest of the request upsert."""
    existing = Entry.objects.create(signal_type="md5", value="e" * 32, state="rejected")
    tried: list[bool] = []
    copy_new_rows = entry_rows.copy_new_rows

    def counted(*args, **kwargs):
        pks = copy_new_rows(*args, **kwargs)
        tried.append(pks is not None)
        return pks

    monkeypatch.setattr(entry_rows, "copy_new_rows", counted)
    items = [acme_submitter.signed() for _ in range(3)]
    items += [
        acme_submitter.signed(),
        acme_submitter.signed(signal={"type": "md5", "value": "e" * 32}),
    ]
    items += [acme_submitter.signed() for _ in range(3)]
    body = _post(acme_submitter, items)

    assert chunks == [3, 3, 2] and body["created"] == 8
    # The third chunk upserts without trying; on SQLite every chunk upserts.
    assert tried == ([True, False] if connection.vendor == "postgresql" else [False])
    assert Entry.objects.count() == 8
    assert body["results"][4]["entry_id"] == existing.pk
    assert Entry.objects.get(pk=existing.pk).state == Entry.State.PENDING  # reopened
    assert sorted(Contribution.objects.values_list("entry_id", flat=True)) == sorted(
        r["entry_id"] for r in body["results"]
    )
