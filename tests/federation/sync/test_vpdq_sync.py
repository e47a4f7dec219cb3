"""vpdq entries in sync (docs/sync.md, "Video frame lists"): the change stream and the export
name them by value like any signal; ``GET /api/v1/sync/frames`` serves their frame lists,
bounded per request."""

import gzip
import json

import pytest

from federation.sync.sequencer import sync_sequence_pending
from federation.video import api
from federation.video.models import VideoFrames
from tests.support.sending import submit, vetted_entry
from tests.support.vpdq import digest_of, random_frames, vpdq_signal

pytestmark = pytest.mark.django_db
FRAMES = "/api/v1/sync/frames"


def frames_page(client, values):
    response = client.get(FRAMES, {"values": ",".join(values)})
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def test_a_vetted_vpdq_entry_is_in_the_stream_and_export_and_its_frames_are_served(
    acme_submitter, globex_submitter
):
    frames = random_frames(75)
    vetted_entry(acme_submitter, signal=vpdq_signal(frames))
    sync_sequence_pending()
    changes = globex_submitter.client.get("/api/v1/sync/changes").json()["changes"]
    assert [c["signal"] for c in changes] == [{"type": "vpdq", "value": digest_of(frames)}]
    export = globex_submitter.client.get("/api/v1/sync/export")
    lines = gzip.decompress(b"".join(export.streaming_content)).splitlines()
    assert json.loads(lines[0])["signal"]["value"] == digest_of(frames)

    page = frames_page(globex_submitter.client, [digest_of(frames).upper()])
    assert page == {
        "lists": [{"value": digest_of(frames), "frame_count": 75, "frames": frames}],
        "deferred": [],
        "unknown": [],
    }


def test_values_not_in_the_shared_set_are_unknown(acme_submitter, globex_submitter):
    pending = random_frames(5, seed=1)
    submit(acme_submitter, signal=vpdq_signal(pending))  # pending review: not shared
    shared = random_frames(6, seed=2)
    vetted_entry(acme_submitter, signal=vpdq_signal(shared))
    wanted = [digest_of(pending), "f" * 64, digest_of(shared)]
    page = frames_page(globex_submitter.client, wanted)
    assert [item["value"] for item in page["lists"]] == [digest_of(shared)]
    assert page["unknown"] == [digest_of(pending), "f" * 64]


def test_a_page_stops_at_its_frame_budget_and_defers_the_rest(
    acme_submitter, globex_submitter, monkeypatch
):
    monkeypatch.setattr(api, "MAX_FRAMES_PER_PAGE", 250)
    videos = [random_frames(100, seed=n) for n in range(4)]
    for frames in videos:
        vetted_entry(acme_submitter, signal=vpdq_signal(frames))
    values = [digest_of(frames) for frames in videos]
    page = frames_page(globex_submitter.client, values)
    assert [item["value"] for item in page["lists"]] == values[:2]
    assert page["deferred"] == values[2:]
    rest = frames_page(globex_submitter.client, page["deferred"])
    assert [item["frames"] for item in rest["lists"]] == videos[2:]
    assert VideoFrames.objects.count() == 4


def test_one_list_larger_than_the_budget_is_still_served(
    acme_submitter, globex_submitter, monkeypatch
):
    monkeypatch.setattr(api, "MAX_FRAMES_PER_PAGE", 10)
    frames = random_frames(50)
    vetted_entry(acme_submitter, signal=vpdq_signal(frames))
    page = frames_page(globex_submitter.client, [digest_of(frames)])
    assert page["lists"][0]["frame_count"] == 50 and page["deferred"] == []


@pytest.mark.parametrize(
    "values",
    [None, "", "abc", "g" * 64, ",".join(["a" * 64] * 101), "a" * 64 + ",", "a" * 64 + " "],
)
def test_malformed_values_are_a_400_naming_the_parameter(globex_submitter, values):
    params = {} if values is None else {"values": values}
    response = globex_submitter.client.get(FRAMES, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and error["details"]["parameter"] == "values"
