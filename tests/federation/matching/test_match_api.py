"""The match API: PDQ by distance, md5/sha256 exact, what members see of each matched entry,
bounds and bad input, the quality floor, an empty index, the aggregate audit event, and the
index following the change stream (vetted: matchable; retracted: gone) without a reload."""

import secrets
import time

import pytest
from django.test import override_settings

from federation.contributions.models import Entry, Label
from federation.matching.store import match_store
from federation.sync.sequencer import sync_sequence_pending
from federation.transparency.actions import Action
from federation.transparency.models import AuditEvent
from tests.support.vetting import error_code, feedback, set_policy, submit_entry


@pytest.fixture
def trusted_acme(acme, acme_submitter):
    acme.trusted = True  # its adds are vetted at once
    acme.save()
    return acme_submitter


def flipped(value: str, bits: int) -> str:
    number = int(value, 16)
    for bit in range(0, bits * 7, 7):  # spread over the bytes
        number ^= 1 << bit
    return f"{number:064x}"


def share(party, signal_type="pdq", value=None, quality=90, labels=("attack-footage",)):
    value = value or secrets.token_hex(32 if signal_type != "md5" else 16)
    signal = {"type": signal_type, "value": value}
    if signal_type == "pdq":
        signal["quality"] = quality
    entry = submit_entry(party, labels=list(labels), signal=signal)
    sync_sequence_pending()
    return entry


def match(party, signals, **params):
    return party.client.post("/api/v1/match", {"signals": signals, **params}, format="json")


def test_a_pdq_near_duplicate_matches_with_distance_and_what_members_see(
    trusted_acme, globex_reviewer
):
    entry = share(trusted_acme)
    query = flipped(entry.value, 9)

    response = match(globex_reviewer, [{"type": "pdq", "value": query}])

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["threshold"] == 31 and body["quality_min"] is None
    (result,) = body["results"]
    assert result["signal"] == {"type": "pdq", "value": query}
    assert result["matches"] == [
        {
            "signal": {"type": "pdq", "value": entry.value},
            "distance": 9,
            "state": "vetted",
            "labels": ["attack-footage"],
            "contributors": [{"member": "acme", "hub": "hub.test.concordat"}],
            "quality": 90,
        }
    ]


def test_the_threshold_bounds_the_distance(trusted_acme, globex_reviewer):
    entry = share(trusted_acme)
    query = [{"type": "pdq", "value": flipped(entry.value, 20)}]
    assert match(globex_reviewer, query, threshold=19).json()["results"][0]["matches"] == []
    assert len(match(globex_reviewer, query, threshold=20).json()["results"][0]["matches"]) == 1


def test_md5_and_sha256_match_exactly_and_uppercase_is_normalised(trusted_acme, globex_reviewer):
    md5 = share(trusted_acme, "md5")
    sha = share(trusted_acme, "sha256")

    response = match(
        globex_reviewer,
        [
            {"type": "md5", "value": md5.value.upper()},
            {"type": "sha256", "value": sha.value},
            {"type": "sha256", "value": flipped(sha.value, 1)},
        ],
    )

    results = response.json()["results"]
    assert results[0]["signal"]["value"] == md5.value
    assert [len(r["matches"]) for r in results] == [1, 1, 0]
    assert results[1]["matches"][0]["distance"] == 0


def test_pending_entries_never_match(acme_submitter, globex_reviewer):
    entry = share(acme_submitter)  # acme is not trusted: the entry waits for review
    assert entry.state == Entry.State.PENDING
    response = match(globex_reviewer, [{"type": "pdq", "value": entry.value}])
    assert response.json()["results"][0]["matches"] == []


def test_an_empty_index_answers_no_matches(globex_reviewer):
    response = match(globex_reviewer, [{"type": "pdq", "value": "0" * 64}])
    assert response.status_code == 200
    assert response.json()["results"] == [
        {"signal": {"type": "pdq", "value": "0" * 64}, "matches": []}
    ]


def test_the_quality_floor_drops_lower_quality_entries(trusted_acme, globex_reviewer):
    good = share(trusted_acme, quality=90)
    poor = share(trusted_acme, quality=40)
    signals = [{"type": "pdq", "value": good.value}, {"type": "pdq", "value": poor.value}]

    results = match(globex_reviewer, signals, quality_min=50).json()["results"]

    assert [len(r["matches"]) for r in results] == [1, 0]


@pytest.mark.parametrize(
    ("signal", "field"),
    [
        ({"type": "pdq", "value": "ab" * 31}, "value"),  # too short
        ({"type": "pdq", "value": "zz" * 32}, "value"),  # not hex
        ({"type": "md5", "value": "ab" * 32}, "value"),  # a sha256's length
        ({"type": "tlsh", "value": "ab" * 32}, "type"),
        ({"type": "pdq", "value": 12}, None),
    ],
)
def test_a_bad_signal_is_refused_with_its_index(globex_reviewer, signal, field):
    response = match(globex_reviewer, [{"type": "pdq", "value": "0" * 64}, signal])
    assert response.status_code == 400
    assert error_code(response) == "invalid_signal"
    details = response.json()["error"]["details"]
    assert details["index"] == 1
    if field:
        assert details["field"] == field


def test_bounds_on_signals_threshold_and_quality(globex_reviewer):
    one = {"type": "pdq", "value": "0" * 64}
    with override_settings(MATCH_MAX_SIGNALS=3):
        response = match(globex_reviewer, [one] * 4)
        assert (response.status_code, error_code(response)) == (400, "too_many_items")
        assert response.json()["error"]["details"] == {"limit": 3, "received": 4}
        assert match(globex_reviewer, [one] * 3).status_code == 200
    assert error_code(match(globex_reviewer, [])) == "invalid"
    assert error_code(match(globex_reviewer, [one], threshold=64)) == "invalid_threshold"
    assert error_code(match(globex_reviewer, [one], threshold="31")) == "invalid_threshold"
    assert error_code(match(globex_reviewer, [one], quality_min=101)) == "invalid_quality"


@pytest.mark.parametrize("threshold", ["31", 31.0, True, [31], {"t": 31}, -1, 64])
def test_a_bad_threshold_names_its_bounds_whatever_its_type(globex_reviewer, threshold):
    response = match(globex_reviewer, [{"type": "pdq", "value": "0" * 64}], threshold=threshold)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_threshold"
    assert response.json()["error"]["details"] == {"min": 0, "max": 63}


@pytest.mark.parametrize(
    ("name", "code", "bounds"),
    [("threshold", "invalid_threshold", 63), ("quality_min", "invalid_quality", 100)],
)
def test_a_query_parameter_that_is_not_an_integer_names_its_bounds(
    globex_reviewer, name, code, bounds
):
    response = globex_reviewer.client.get(
        "/api/v1/match", {"type": "pdq", "value": "0" * 64, name: "3.5"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["details"] == {"min": 0, "max": bounds}


def test_the_default_limit_is_a_thousand_signals(globex_reviewer):
    one = {"type": "md5", "value": "0" * 32}
    assert match(globex_reviewer, [one] * 1000).status_code == 200
    assert error_code(match(globex_reviewer, [one] * 1001)) == "too_many_items"


def test_the_single_signal_form_for_curl(trusted_acme, globex_reviewer):
    entry = share(trusted_acme)
    query = flipped(entry.value, 3).upper()

    response = globex_reviewer.client.get(
        "/api/v1/match", {"type": "pdq", "value": query, "threshold": "2"}
    )
    assert response.json()["results"][0]["matches"] == []
    response = globex_reviewer.client.get("/api/v1/match", {"type": "pdq", "value": query})
    assert response.json()["results"][0]["matches"][0]["distance"] == 3
    bad = globex_reviewer.client.get("/api/v1/match", {"type": "pdq", "value": "x"})
    assert (bad.status_code, error_code(bad)) == (400, "invalid_signal")
    bad = globex_reviewer.client.get(
        "/api/v1/match", {"type": "pdq", "value": query, "threshold": "a"}
    )
    assert error_code(bad) == "invalid_threshold"


def test_each_request_is_audited_in_aggregate_without_the_values(trusted_acme, globex_reviewer):
    entry = share(trusted_acme)
    signals = [
        {"type": "pdq", "value": entry.value},
        {"type": "pdq", "value": "0" * 64},
        {"type": "md5", "value": "1" * 32},
    ]
    match(globex_reviewer, signals)

    (event,) = AuditEvent.objects.filter(action=Action.MATCH_REQUESTED)
    assert event.organisation == "globex"
    assert event.data == {
        "signals": {"pdq": 2, "md5": 1},
        "threshold": 31,
        "quality_min": None,
        "matched_signals": 1,
        "matches": 1,
    }
    assert entry.value not in str(event.data)


def test_the_hub_can_be_configured_to_audit_the_values(trusted_acme, globex_reviewer):
    with override_settings(MATCH_AUDIT_VALUES=True):
        match(globex_reviewer, [{"type": "md5", "value": "A" * 32}])
    (event,) = AuditEvent.objects.filter(action=Action.MATCH_REQUESTED)
    assert event.data["values"] == [{"type": "md5", "value": "a" * 32, "matches": 0}]


def test_the_index_follows_the_stream_without_reloading(trusted_acme, globex_reviewer):
    """Loaded once; then a newly vetted entry matches and a retracted one stops matching, both
    applied from the change stream to the same index object."""
    store = match_store()
    pdq_index = store.pdq
    entry = share(trusted_acme)
    signal = [{"type": "pdq", "value": entry.value}]

    assert len(match(globex_reviewer, signal).json()["results"][0]["matches"]) == 1
    assert len(pdq_index) == 1

    trusted_acme.submit(action="retract", labels=[], signal={"type": "pdq", "value": entry.value})
    sync_sequence_pending()

    assert match(globex_reviewer, signal).json()["results"][0]["matches"] == []
    assert match_store() is store and store.pdq is pdq_index
    assert len(pdq_index) == 0


def test_a_disputed_entry_still_matches_marked_disputed_and_leaves_when_rejected(
    trusted_acme, globex_reviewer, consortium_admin
):
    set_policy(dispute_threshold=1)
    entry = share(trusted_acme)
    signal = [{"type": "pdq", "value": entry.value}]
    assert match(globex_reviewer, signal).json()["results"][0]["matches"][0]["state"] == "vetted"

    assert feedback(globex_reviewer, entry, "false_positive").status_code == 200
    sync_sequence_pending()
    (found,) = match(globex_reviewer, signal).json()["results"]
    assert found["matches"][0]["state"] == "disputed"
    assert match_store().pdq.search([entry.value], threshold=0)[0].state == "disputed"

    response = consortium_admin.client.post(
        f"/api/v1/entries/{entry.pk}/resolve/",
        {"outcome": "reject", "reason": "not what it claims"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    sync_sequence_pending()
    assert match(globex_reviewer, signal).json()["results"][0]["matches"] == []
    assert len(match_store().pdq) == 0


@pytest.mark.django_db(transaction=True)
def test_the_follower_thread_applies_vetting_and_retraction_within_a_second(
    trusted_acme, globex_reviewer
):
    """With real commits: the follower (polling every 50 ms) makes a vetted entry matchable and
    a retracted one unmatchable, each within a second of its change being sequenced."""
    # A transactional test runs on a flushed database: make the label the seed migration made.
    Label.objects.get_or_create(slug="attack-footage", defaults={"name": "Attack footage"})
    with override_settings(MATCH_FOLLOW=True, MATCH_POLL_SECONDS=0.05):
        store = match_store()  # loaded empty, follower started
        value = secrets.token_hex(32)

        def applied_within_a_second(expected: int) -> float:
            started = time.monotonic()
            while time.monotonic() - started < 1.0:
                if len(store.pdq.search([value], threshold=0)) == expected:
                    return time.monotonic() - started
                time.sleep(0.01)
            raise AssertionError(f"not applied within a second (expected {expected} match)")

        share(trusted_acme, value=value)  # committed and sequenced
        applied_within_a_second(1)
        trusted_acme.submit(action="retract", labels=[], signal={"type": "pdq", "value": value})
        sync_sequence_pending()
        applied_within_a_second(0)


def test_the_follower_compares_positions_before_it_reads_a_page(monkeypatch):
    """A poll that finds the stream where the store is reads no page (the page statement cost
    about 0.9 s on a database without statistics, four times a second in every process)."""
    from federation.matching import store as store_module

    pages = []

    def counting_changes_after(**kwargs):
        pages.append(kwargs)
        return real_changes_after(**kwargs)

    real_changes_after = store_module.changes_after
    monkeypatch.setattr(store_module, "changes_after", counting_changes_after)
    store = store_module.MatchStore()  # at the stream's position (0: nothing sequenced)
    with override_settings(MATCH_POLL_SECONDS=0.01):
        store.start_following()
        try:
            time.sleep(0.3)  # about 30 polls
        finally:
            store.stop_following()

    assert pages == []
