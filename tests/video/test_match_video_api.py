"""``POST /api/v1/match`` with vpdq signals (docs/video.md, "Matching"): shared videos with
their percentages and frame pairs, frames against photos and photos against frames, bounds and
bad input, the aggregate audit event, and the index following the change stream."""

import json

import pytest
from rest_framework.renderers import JSONRenderer

from federation.matching.services import (
    match_signal_parse,
    match_signals,
    match_video_parameters,
    match_vpdq_parse,
)
from federation.matching.video import brute_force_videos
from federation.transparency.actions import Action
from federation.transparency.models import AuditEvent
from tests.support.vetting import error_code
from tests.support.video import match, share_photo, share_video, vpdq_query
from tests.support.video_media import frame_list_distinct

pytestmark = pytest.mark.django_db


@pytest.fixture
def trusted_acme(acme, acme_submitter):
    acme.trusted = True  # its adds are vetted at once
    acme.save()
    return acme_submitter


def test_a_reencoded_copy_matches_the_shared_video_with_percentages_and_pairs(
    trusted_acme, globex_reviewer, videos
):
    original = videos["original"].frames
    unrelated = videos["unrelated_noise"].frames
    share_video(trusted_acme, original)
    share_video(trusted_acme, unrelated)
    copy = videos["reencoded"].frames

    response = match(globex_reviewer, [vpdq_query(copy)])

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["frame_quality_min"], body["query_match_min"], body["compared_match_min"]) == (
        50,
        80,
        0,
    )
    (result,) = body["results"]
    assert result["signal"] == {"type": "vpdq", "value": copy.digest, "frames": len(copy)}
    (found,) = result["matches"]
    (expected,) = brute_force_videos(
        frame_list_distinct(copy),
        [
            (original.digest, "vetted", frame_list_distinct(original)),
            (unrelated.digest, "vetted", frame_list_distinct(unrelated)),
        ],
    )
    assert found["signal"] == {"type": "vpdq", "value": original.digest}
    assert found["state"] == "vetted" and found["labels"] == ["attack-footage"]
    assert found["contributors"] == [{"member": "acme", "hub": "hub.test.concordat"}]
    assert found["query_percent"] == round(expected.query_percent, 2) == 100.0
    assert found["compared_percent"] == round(expected.compared_percent, 2)
    assert (found["matched_frames"], found["query_frames"]) == (
        expected.matched_query_frames,
        expected.query_frames,
    )
    assert found["pairs"] == [
        {"query_ms": p.query_ms, "shared_ms": p.shared_ms, "distance": p.distance}
        for p in expected.pairs
    ]
    assert found["distance"] == expected.pairs[0].distance
    assert result["frame_matches"] == []

    event = AuditEvent.objects.filter(action=Action.MATCH_REQUESTED).latest("id")
    assert event.data["signals"] == {"vpdq": 1}
    assert event.data["video"]["frames"] == len(copy)
    assert event.data["matches"] == 1
    assert "frames" not in str(event.data.get("values", ""))


def test_thresholds_are_settable_per_request(trusted_acme, globex_reviewer, videos):
    share_video(trusted_acme, videos["original"].frames)
    trimmed = [vpdq_query(videos["trimmed"].frames)]  # covers half of the original
    assert len(match(globex_reviewer, trimmed).json()["results"][0]["matches"]) == 1
    assert (
        match(globex_reviewer, trimmed, compared_match_min=60).json()["results"][0]["matches"] == []
    )
    assert match(globex_reviewer, trimmed, threshold=0).json()["results"][0]["matches"] == []


def test_a_frame_matching_a_shared_photo_is_reported_and_a_pdq_query_can_ask_for_frames(
    trusted_acme, globex_reviewer, videos
):
    original = videos["original"].frames
    still = original.frames[12]  # the still of the video, shared as an image
    photo = share_photo(trusted_acme, still.pdq)
    copy = videos["reencoded"].frames

    (result,) = match(globex_reviewer, [vpdq_query(copy)]).json()["results"]
    assert result["matches"] == []  # the video itself is not shared (yet)
    hits = result["frame_matches"]
    assert hits and {h["signal"]["value"] for h in hits} == {photo.value}
    assert any(abs(h["query_ms"] - still.timestamp_ms) <= 100 for h in hits)
    assert all(h["distance"] <= 31 for h in hits)

    share_video(trusted_acme, original)  # followed from the change stream, no reload
    pdq = [{"type": "pdq", "value": still.pdq}]
    plain = match(globex_reviewer, pdq).json()["results"][0]
    assert "frame_matches" not in plain
    assert [m["signal"]["value"] for m in plain["matches"]] == [photo.value]
    (asked,) = match(globex_reviewer, pdq, include_frames=True).json()["results"]
    (frame,) = asked["frame_matches"]
    assert frame["signal"] == {"type": "vpdq", "value": original.digest}
    assert (frame["distance"], frame["shared_ms"]) == (0, still.timestamp_ms)


def test_bad_vpdq_input_is_a_documented_400(trusted_acme, globex_reviewer, videos, monkeypatch):
    frames = videos["original"].frames.to_document()
    cases = [
        ([{"type": "vpdq"}], {}, "invalid_signal"),
        ([{"type": "vpdq", "frames": [[0, 100, "zz", 0]]}], {}, "invalid_signal"),
        ([{"type": "vpdq", "frames": frames}], {"query_match_min": 101}, "invalid_video_parameter"),
        (
            [{"type": "vpdq", "frames": frames}],
            {"include_frames": "yes"},
            "invalid_video_parameter",
        ),
    ]
    for signals, params, code in cases:
        response = match(globex_reviewer, signals, **params)
        assert response.status_code == 400, response.content
        assert error_code(response) == code
    bad = match(globex_reviewer, [{"type": "vpdq", "frames": [[0, 100, "zz", 0]]}]).json()
    assert bad["error"]["details"] == {"field": "frames", "frame": 0, "index": 0}

    from federation.matching import api

    monkeypatch.setattr(api, "MAX_FRAMES_PER_REQUEST", 40)
    response = match(globex_reviewer, [{"type": "vpdq", "frames": frames}] * 2)
    assert response.status_code == 400 and error_code(response) == "too_many_items"
    assert response.json()["error"]["details"]["index"] == 1
    assert not AuditEvent.objects.filter(action=Action.MATCH_REQUESTED).exists()


def test_a_retracted_video_stops_matching_and_its_frames_leave_the_index(
    trusted_acme, globex_reviewer, videos
):
    from federation.matching.store import match_store
    from federation.sync.sequencer import sync_sequence_pending

    original = videos["original"].frames
    share_video(trusted_acme, original)
    query = [vpdq_query(videos["reencoded"].frames)]
    assert len(match(globex_reviewer, query).json()["results"][0]["matches"]) == 1
    store = match_store()
    assert (len(store.video), len(store.video.frames)) == (1, 30)

    retract = {"type": "vpdq", "value": original.digest}
    response = trusted_acme.submit(action="retract", labels=[], signal=retract)
    assert response.status_code == 201, response.content
    sync_sequence_pending()

    assert match(globex_reviewer, query).json()["results"][0]["matches"] == []
    assert (len(store.video), len(store.video.frames)) == (0, 0)


@pytest.mark.parametrize("threshold", [8, 31, 48])
def test_the_api_answer_with_videos_is_the_service_results_as_json(
    trusted_acme, globex_reviewer, videos, threshold
):
    """Videos, their frames against photos and photos against their frames in one request: the
    API's answer (rendered as bytes) is the document the service's dicts make, byte for byte as
    the framework's JSON renderer writes them."""
    original = videos["original"].frames
    still = original.frames[12]
    share_video(trusted_acme, original)
    share_photo(trusted_acme, still.pdq)
    copy = videos["reencoded"].frames
    body = [
        vpdq_query(copy),
        {"type": "pdq", "value": still.pdq},
        {"type": "md5", "value": "a" * 32},
    ]
    signals = [
        match_vpdq_parse(frames=body[0]["frames"]),
        match_signal_parse(signal_type="pdq", value=still.pdq),
        match_signal_parse(signal_type="md5", value="a" * 32),
    ]
    video = match_video_parameters(include_frames=True)

    response = match(globex_reviewer, body, threshold=threshold, include_frames=True)

    assert response.status_code == 200, response.content
    results = match_signals(
        actor=globex_reviewer.actor, signals=signals, threshold=threshold, video=video
    )
    want = {
        "threshold": threshold,
        "quality_min": None,
        "frame_quality_min": 50,
        "query_match_min": 80,
        "compared_match_min": 0,
        "include_frames": True,
        "results": results,
    }
    assert json.loads(response.content) == want
    assert response.content == JSONRenderer().render(want)
    assert results[0]["matches"] and results[0]["frame_matches"]  # a video and a photo
    assert results[1]["matches"] and results[1]["frame_matches"]  # a photo and a video's frame
