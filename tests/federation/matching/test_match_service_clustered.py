"""The match service on clustered data (many near-duplicates, so each query has many results):
its answers equal numpy brute force, in the answer's order, whether the matched entries are
rendered from the database or kept from an earlier request; and a kept rendering never outlives
a change of its entry, sequenced or not yet."""

import json

import numpy as np
import pytest
from rest_framework.renderers import JSONRenderer

from federation.contributions.models import Entry
from federation.matching.index import words_hex
from federation.matching.services import ONE_TRIP_SIGNALS, Signal, match_signals
from federation.sync.changes import sync_changes_record
from federation.sync.sequencer import sync_sequence_pending
from federation.transparency.actions import Action
from federation.transparency.models import AuditEvent
from tests.support.bench_seeding import copy_vetted_pdq_entries

CENTRES = 40
PER_CENTRE = 25


def _near(rows: np.ndarray, rng, low: int, high: int) -> np.ndarray:
    out = rows.copy()
    count = rng.integers(low, high + 1, size=len(rows))
    for i, k in enumerate(count.tolist()):
        for bit in rng.choice(256, k, replace=False).tolist():
            out[i, bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
    return out


@pytest.fixture
def clustered(acme_submitter):
    """CENTRES clusters of PER_CENTRE hashes 1-6 bits from their centre, shared (vetted); and
    queries 0-12 bits from a centre, plus a few random ones."""
    from django.db import connection

    rng = np.random.default_rng(7)
    centres = rng.integers(0, 2**64, size=(CENTRES, 4), dtype=np.uint64)
    hashes = np.unique(_near(np.repeat(centres, PER_CENTRE, axis=0), rng, 1, 6), axis=0)
    queries = np.concatenate(
        [
            _near(centres[rng.integers(0, CENTRES, size=60)], rng, 0, 12),
            rng.integers(0, 2**64, size=(5, 4), dtype=np.uint64),
        ]
    )
    connection.ensure_connection()
    copy_vetted_pdq_entries(
        connection.connection,
        [words_hex(h) for h in hashes],
        origin_hub="test.localhost",
        # No ANALYZE: a table's row estimate outlives the test's rollback (PostgreSQL updates
        # it in place), and other tests plan these tables as never analysed.
        analyze=False,
    )
    sync_sequence_pending()
    return hashes, queries


def _brute_force(hashes, queries, threshold) -> list[list[tuple[str, int]]]:
    """Per query, (value, distance) within the threshold, by distance then value."""
    out = []
    for q in queries:
        d = np.bitwise_count(hashes ^ q).sum(axis=1)
        rows = np.flatnonzero(d <= threshold)
        out.append(sorted(((words_hex(hashes[r]), int(d[r])) for r in rows), key=lambda m: m[::-1]))
    return out


def _answers(results) -> list[list[tuple[str, int]]]:
    return [[(m["signal"]["value"], m["distance"]) for m in r["matches"]] for r in results]


def _match(party, queries, threshold, **options):
    signals = [Signal("pdq", words_hex(q)) for q in queries]
    return match_signals(actor=party.actor, signals=signals, threshold=threshold, **options)


@pytest.mark.parametrize("threshold", [0, 6, 16, 31, 48])
def test_clustered_batches_are_answered_exactly_as_brute_force(
    clustered, globex_reviewer, threshold
):
    hashes, queries = clustered
    truth = _brute_force(hashes, queries, threshold)

    rendered = _match(globex_reviewer, queries, threshold)  # from the database
    kept = _match(globex_reviewer, queries, threshold)  # from the renderings kept

    assert _answers(rendered) == truth
    assert _answers(kept) == truth
    assert kept == rendered
    if threshold >= 16:
        assert sum(map(len, truth)) > 10 * len(queries)  # many results per query
    match = rendered[0]["matches"][0] if rendered[0]["matches"] else None
    if match is not None:
        assert match["state"] == "vetted" and match["quality"] == 90
        assert match["contributors"] == [{"member": "acme", "hub": "test.localhost"}]


def test_the_quality_floor_applies_to_kept_renderings(clustered, globex_reviewer):
    hashes, queries = clustered
    _match(globex_reviewer, queries, 31)

    assert _answers(_match(globex_reviewer, queries, 31, quality_min=90)) == _brute_force(
        hashes, queries, 31
    )
    assert not any(_answers(_match(globex_reviewer, queries, 31, quality_min=91)))


def test_a_kept_rendering_never_outlives_a_change_not_yet_sequenced(clustered, globex_reviewer):
    _, queries = clustered
    before = _match(globex_reviewer, queries[:1], 31)[0]["matches"]
    assert len(before) > 5
    gone, relabelled = before[0]["signal"]["value"], before[1]["signal"]["value"]
    entry = Entry.objects.get(signal_type="pdq", value=gone)
    Entry.objects.filter(pk=entry.pk).update(state=Entry.State.REJECTED)
    sync_changes_record(entry_ids=[entry.pk], reason="rejected")  # no position yet
    other = Entry.objects.get(signal_type="pdq", value=relabelled)
    Entry.objects.filter(pk=other.pk).update(state=Entry.State.DISPUTED)
    sync_changes_record(entry_ids=[other.pk], reason="disputed")

    after = _match(globex_reviewer, queries[:1], 31)[0]["matches"]

    assert [m["signal"]["value"] for m in after] == [m["signal"]["value"] for m in before[1:]]
    assert after[0]["state"] == "disputed"
    assert all(m["state"] == "vetted" for m in after[1:])


# A batch (more than ONE_TRIP_SIGNALS): the check (its plan settings set and put back in the
# same query string), then the audit event.
CHECK_AND_AUDIT = 2
# A small request: its check and its audit event in one statement.
CHECK_WITH_AUDIT = 1


def test_a_batch_whose_renderings_are_kept_reads_no_entry(
    clustered, globex_reviewer, django_assert_num_queries
):
    _, queries = clustered
    _match(globex_reviewer, queries, 31)

    # one round trip for the stream's position and the entries changed past it (bounded_query:
    # its plan settings set and put back in the same query string), one for the audit event:
    # none per match
    with django_assert_num_queries(CHECK_AND_AUDIT):
        _match(globex_reviewer, queries, 31)


@pytest.mark.parametrize("threshold", [16, 31])
def test_small_requests_are_answered_exactly_as_brute_force(clustered, globex_reviewer, threshold):
    """Requests of up to ``ONE_TRIP_SIGNALS`` signals, answered before their check."""
    hashes, queries = clustered
    truth = _brute_force(hashes, queries, threshold)
    for start in range(0, len(queries), ONE_TRIP_SIGNALS):
        chunk = queries[start : start + ONE_TRIP_SIGNALS]
        rendered = _match(globex_reviewer, chunk, threshold)  # from the database
        kept = _match(globex_reviewer, chunk, threshold)  # from the renderings kept
        assert _answers(rendered) == _answers(kept) == truth[start : start + len(chunk)]


def _events() -> list[dict]:
    return list(
        AuditEvent.objects.filter(action=Action.MATCH_REQUESTED)
        .order_by("id")
        .values_list("data", flat=True)
    )


def test_a_small_request_sends_its_check_with_its_audit_event(
    clustered, globex_reviewer, django_assert_num_queries
):
    _, queries = clustered
    _match(globex_reviewer, queries[:ONE_TRIP_SIGNALS], 31)
    before = len(_events())

    with django_assert_num_queries(CHECK_WITH_AUDIT):
        results = _match(globex_reviewer, queries[:ONE_TRIP_SIGNALS], 31)

    events = _events()
    assert len(events) == before + 1
    counts = [len(r["matches"]) for r in results]
    assert events[-1] == {
        "signals": {"pdq": ONE_TRIP_SIGNALS},
        "threshold": 31,
        "quality_min": None,
        "matched_signals": sum(c > 0 for c in counts),
        "matches": sum(counts),
    }


@pytest.mark.parametrize("sequenced", [False, True])
def test_when_a_change_is_pending_a_small_request_is_answered_again_and_audited_once(
    clustered, globex_reviewer, sequenced
):
    """The answer built before the check is dropped when the check finds a change the index has
    not applied (not yet sequenced, or sequenced past its position): the event is written once,
    with the counts of the answer given."""
    _, queries = clustered
    before = _match(globex_reviewer, queries[:1], 31)[0]["matches"]
    gone = before[0]["signal"]["value"]
    entry = Entry.objects.get(signal_type="pdq", value=gone)
    Entry.objects.filter(pk=entry.pk).update(state=Entry.State.REJECTED)
    sync_changes_record(entry_ids=[entry.pk], reason="rejected")
    if sequenced:
        sync_sequence_pending()
    events = len(_events())

    after = _match(globex_reviewer, queries[:1], 31)[0]["matches"]

    assert [m["signal"]["value"] for m in after] == [m["signal"]["value"] for m in before[1:]]
    assert [event["matches"] for event in _events()[events:]] == [len(before) - 1]


def test_far_behind_the_stream_every_entry_is_rendered_from_the_database(
    clustered, globex_reviewer, monkeypatch
):
    hashes, queries = clustered
    _match(globex_reviewer, queries, 31)
    monkeypatch.setattr("federation.matching.store.CHANGED_MAX", 1)
    entry = Entry.objects.filter(signal_type="pdq").first()
    Entry.objects.filter(pk=entry.pk).update(state=Entry.State.RETRACTED)
    sync_changes_record(entry_ids=[entry.pk], reason="retracted")  # one change: "too many"

    answers = _answers(_match(globex_reviewer, queries, 31))

    kept = hashes[[words_hex(h) != entry.value for h in hashes]]
    assert answers == _brute_force(kept, queries, 31)


def test_a_kept_rendering_never_outlives_a_change_sequenced_past_the_store(
    clustered, globex_reviewer, django_assert_num_queries
):
    _, queries = clustered
    before = _match(globex_reviewer, queries[:1], 31)[0]["matches"]
    changed = before[0]["signal"]["value"]
    entry = Entry.objects.get(signal_type="pdq", value=changed)
    Entry.objects.filter(pk=entry.pk).update(state=Entry.State.DISPUTED)
    sync_changes_record(entry_ids=[entry.pk], reason="disputed")
    sync_sequence_pending()  # past the store's position: the next request catches up first

    after = _match(globex_reviewer, queries[:1], 31)[0]["matches"]

    assert [m["signal"]["value"] for m in after] == [m["signal"]["value"] for m in before]
    assert after[0]["state"] == "disputed"
    assert all(m["state"] == "vetted" for m in after[1:])
    _match(globex_reviewer, queries[:1], 31)  # caught up: renders the changed entry and keeps it
    with django_assert_num_queries(CHECK_WITH_AUDIT):  # then the check with the audit event only
        again = _match(globex_reviewer, queries[:1], 31)[0]["matches"]
    assert again == after


def _api(party, queries, threshold, quality_min=None, md5=True):
    signals = [{"type": "pdq", "value": words_hex(q)} for q in queries]
    if md5:  # else pdq signals only: the answer laid out at once (pdq_answer_document)
        signals.append({"type": "md5", "value": "A" * 32})  # not shared: no matches
    response = party.client.post(
        "/api/v1/match",
        {"signals": signals, "threshold": threshold, "quality_min": quality_min},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    return response.content


@pytest.mark.parametrize(
    ("threshold", "quality_min"),
    [(0, None), (16, None), (31, None), (31, 90), (31, 91), (48, None)],
)
@pytest.mark.parametrize("gone", [False, True])
@pytest.mark.parametrize("md5", [True, False])
def test_the_api_answer_is_the_service_results_as_json(
    clustered, globex_reviewer, threshold, quality_min, gone, md5
):
    """The API renders its answer as bytes (``match_answer``): the same document as the dicts of
    ``match_signals``, byte for byte as the framework's JSON renderer writes them, whether the
    entries are rendered from the database or kept, and when a kept entry has left the shared
    set (a change not yet sequenced)."""
    hashes, queries = clustered
    options = {"threshold": threshold, "quality_min": quality_min}
    signals = [Signal("pdq", words_hex(q)) for q in queries] + [Signal("md5", "a" * 32)] * md5

    def expected():
        results = match_signals(actor=globex_reviewer.actor, signals=signals, **options)
        return {**options, "results": results}

    first = _api(globex_reviewer, queries, **options, md5=md5)  # renders from the database
    if gone:
        value = _brute_force(hashes, queries[:1], 31)[0][0][0]  # kept if the threshold reached it
        entry = Entry.objects.get(signal_type="pdq", value=value)
        Entry.objects.filter(pk=entry.pk).update(state=Entry.State.REJECTED)
        sync_changes_record(entry_ids=[entry.pk], reason="rejected")
        hashes = hashes[[words_hex(h) != value for h in hashes]]
    kept = _api(globex_reviewer, queries, **options, md5=md5)

    want = expected()
    assert json.loads(kept) == want
    assert kept == JSONRenderer().render(want)
    if not gone:
        assert json.loads(first) == want
    truth = _brute_force(hashes, queries, threshold)
    if quality_min == 91:
        truth = [[] for _ in truth]  # every entry has quality 90
    assert _answers(json.loads(kept)["results"]) == [*truth, *[[]] * md5]
    if threshold >= 16 and quality_min != 91:
        assert sum(map(len, truth)) > 10 * len(queries)
