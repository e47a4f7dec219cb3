"""The vpdq signal type: the canonical frame list (federation/video/frames.py) and vpdq
contributions through submission, bulk ingest, storage and retraction (docs/video.md,
docs/signing.md §15)."""

import hashlib
import json
import random
import types

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.contributions.models import Contribution, Entry
from federation.transparency.models import AuditEvent
from federation.video.frames import (
    MAX_FRAMES,
    Frame,
    FrameListError,
    from_threatexchange,
    from_vpdq_features,
    normalise_frames,
    parse_frames,
    seconds_to_ms,
    to_threatexchange,
)
from federation.video.models import VideoFrames
from tests.support.vpdq import digest_of, random_frames, vpdq_signal

# --- The canonical form -----------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 60, 1000])
def test_canonical_bytes_are_rfc8785_and_the_digest_is_their_sha256(count):
    frames = random_frames(count, seed=count)
    parsed = parse_frames(frames)
    assert parsed.canonical == rfc8785.dumps(frames)
    assert parsed.digest == digest_of(frames)
    assert parsed.to_document() == frames
    assert b" " not in parsed.canonical


def test_two_hashings_of_the_same_video_agree_whatever_order_and_case_they_arrive_in():
    frames = random_frames(30)
    shuffled = [[n, q, h.upper(), t] for n, q, h, t in frames]
    random.Random(7).shuffle(shuffled)
    assert normalise_frames(shuffled).digest == parse_frames(frames).digest


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([], "at least one frame"),
        ("[]", "must be an array"),
        ([[1, 100, "a" * 64, 0], [0, 100, "b" * 64, 0]], "strictly increasing"),
        ([[0, 100, "a" * 64, 0], [0, 100, "b" * 64, 0]], "strictly increasing"),
        ([[0, 100, "a" * 64, 50], [1, 100, "b" * 64, 40]], "must not decrease"),
        ([[0, 100, "A" * 64, 0]], "lowercase"),
        ([[0, 100, "a" * 63, 0]], "64 lowercase"),
        ([[0, 100, "g" * 64, 0]], "64 lowercase"),
        ([[0, 101, "a" * 64, 0]], "quality"),
        ([[0, -1, "a" * 64, 0]], "quality"),
        ([[0, True, "a" * 64, 0]], "quality"),
        ([[0, 100, "a" * 64, 1.0]], "timestamp_ms"),
        ([[0, 100, "a" * 64, -1]], "timestamp_ms"),
        ([[0, 100, "a" * 64, 2**31]], "timestamp_ms"),
        ([[2**31, 100, "a" * 64, 0]], "frame_number"),
        ([[0.0, 100, "a" * 64, 0]], "frame_number"),
        ([[0, 100, "a" * 64]], "each frame is an array"),
        ([[0, 100, "a" * 64, 0, 0]], "each frame is an array"),
        ([{"frame": 0}], "each frame is an array"),
    ],
)
def test_a_non_canonical_or_out_of_bounds_list_is_refused(frames, message):
    with pytest.raises(FrameListError, match=message):
        parse_frames(frames)


def test_at_most_twenty_thousand_frames():
    frames = [[n, 100, f"{n:064x}", n] for n in range(MAX_FRAMES + 1)]
    assert len(parse_frames(frames[:MAX_FRAMES])) == MAX_FRAMES
    with pytest.raises(FrameListError, match="at most 20000"):
        parse_frames(frames)
    with pytest.raises(FrameListError, match="at most"):
        normalise_frames(frames)


def test_the_error_names_the_offending_frame():
    frames = random_frames(5)
    frames[3][1] = 200
    with pytest.raises(FrameListError) as caught:
        parse_frames(frames)
    assert caught.value.index == 3
    assert str(caught.value).startswith("frame 3: ")
    frames = random_frames(8)
    frames[6][0] = frames[5][0]
    with pytest.raises(FrameListError, match="strictly increasing") as caught:
        parse_frames(frames)
    assert caught.value.index == 6
    frames = random_frames(8)
    frames[7][3] = frames[6][3] - 1
    with pytest.raises(FrameListError, match="must not decrease") as caught:
        parse_frames(frames)
    assert caught.value.index == 7


@pytest.mark.parametrize(
    ("seconds", "ms"),
    [(0, 0), (0.0, 0), (1 / 30, 33), (2 / 30, 67), (0.0125, 13), (0.0005, 1), (123.4567, 123457),
     (3600.0, 3_600_000), (0.9994, 999), (0.9995, 1000)],
)  # fmt: skip
def test_seconds_become_milliseconds_rounded_half_up(seconds, ms):
    assert seconds_to_ms(seconds) == ms


@pytest.mark.parametrize("seconds", [-0.001, float("nan"), float("inf"), "1.0", True])
def test_a_timestamp_that_is_not_a_non_negative_number_is_refused(seconds):
    with pytest.raises(FrameListError):
        seconds_to_ms(seconds)


def test_vpdq_package_features_convert_to_the_canonical_list():
    features = [
        types.SimpleNamespace(frame_number=30, quality=98, hex="C0" * 32, timestamp=1.0010000001),
        types.SimpleNamespace(frame_number=0, quality=100, hex="e2" * 32, timestamp=0.0),
    ]
    converted = from_vpdq_features(features)
    assert converted.frames == (Frame(0, 100, "e2" * 32, 0), Frame(30, 98, "c0" * 32, 1001))


# --- python-threatexchange's string form ---------------------------------------------------------


def test_to_threatexchange_drops_frame_numbers_and_prints_three_significant_digits():
    frames = parse_frames(
        [[0, 100, "a" * 64, 0], [30, 90, "b" * 64, 12_340], [3000, 55, "c" * 64, 123_400]]
    )
    assert json.loads(to_threatexchange(frames)) == [
        f"{'a' * 64},100,0.0",
        f"{'b' * 64},90,12.3",
        f"{'c' * 64},55,1.23e+02",
    ]


def test_from_threatexchange_numbers_frames_by_position_and_keeps_its_coarse_times():
    text = json.dumps([f"{'A' * 64},100,0.0", f"{'b' * 64},90,12.3", f"{'c' * 64},55,1.23e+02"])
    frames = from_threatexchange(text)
    assert [f.to_document() for f in frames.frames] == [
        [0, 100, "a" * 64, 0],
        [1, 90, "b" * 64, 12_300],
        [2, 55, "c" * 64, 123_000],
    ]


def test_the_threatexchange_round_trip_keeps_hashes_and_qualities_but_is_another_signal():
    original = parse_frames(random_frames(40, seed=3))
    back = from_threatexchange(to_threatexchange(original))
    assert [(f.pdq, f.quality) for f in back.frames] == [
        (f.pdq, f.quality) for f in original.frames
    ]
    assert back.digest != original.digest  # frame numbers and times were lost on the way


@pytest.mark.parametrize(
    "text", ["not json", '{"a": 1}', '["abc"]', json.dumps([f"{'a' * 64},high,0.0"]), "[1]"]
)
def test_a_malformed_threatexchange_string_is_refused(text):
    with pytest.raises(FrameListError):
        from_threatexchange(text)


# --- Contributions ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_vpdq_add_is_filed_under_its_digest_with_its_frames_stored(acme_submitter):
    frames = random_frames(120)
    response = acme_submitter.submit(signal=vpdq_signal(frames))
    assert response.status_code == 201, response.json()
    entry = Entry.objects.get(pk=response.json()["entry_id"])
    assert (entry.signal_type, entry.value) == ("vpdq", digest_of(frames))
    stored = VideoFrames.objects.get(entry=entry)
    assert stored.frame_count == 120
    assert stored.canonical.encode() == rfc8785.dumps(frames)
    assert json.loads(Contribution.objects.get().canonical)["signal"]["frames"] == frames
    assert AuditEvent.objects.filter(action="contribution.accepted").count() == 1


@pytest.mark.django_db
def test_two_members_hashing_the_same_video_share_one_entry_and_one_frame_list(
    acme_submitter, globex_submitter
):
    frames = random_frames(50)
    first = acme_submitter.submit(signal=vpdq_signal(frames))
    signal = vpdq_signal(frames)
    signal["value"] = signal["value"].upper()
    second = globex_submitter.submit(signal=signal)
    assert (first.status_code, second.status_code) == (201, 201), second.json()
    assert first.json()["entry_id"] == second.json()["entry_id"]
    assert VideoFrames.objects.count() == 1
    assert Entry.objects.get().value == digest_of(frames)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda s: s.update(value="0" * 64), "signal.value"),
        (lambda s: s["frames"].reverse(), "signal.frames"),
        (lambda s: s["frames"][0].__setitem__(2, s["frames"][0][2].upper()), "signal.frames"),
        (lambda s: s["frames"][0].__setitem__(3, 0.5), "signal.frames"),
        (lambda s: s.pop("frames"), "signal.frames"),
        (lambda s: s.update(frames=[]), "signal.frames"),
        (lambda s: s.update(quality=100), "signal.quality"),
    ],
    ids=[
        "value-not-digest",
        "unsorted",
        "uppercase",
        "float-time",
        "no-frames",
        "empty",
        "quality",
    ],
)
def test_a_malformed_vpdq_add_is_refused_as_invalid_and_audited(acme_submitter, change, field):
    signal = vpdq_signal(random_frames(10))
    change(signal)
    response = acme_submitter.submit(signal=signal)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["details"]["field"] == field
    assert not Entry.objects.exists() and not VideoFrames.objects.exists()
    assert AuditEvent.objects.filter(action="contribution.malformed_items").exists()


@pytest.mark.django_db
def test_frames_on_another_signal_type_or_on_a_retract_are_refused(acme_submitter):
    frames = random_frames(3)
    on_pdq = acme_submitter.submit(signal={"type": "pdq", "value": "a" * 64, "frames": frames})
    assert on_pdq.json()["error"]["details"]["field"] == "signal.frames"
    acme_submitter.submit(signal=vpdq_signal(frames))
    on_retract = acme_submitter.submit(action="retract", labels=[], signal=vpdq_signal(frames))
    assert on_retract.status_code == 400
    assert on_retract.json()["error"]["details"]["field"] == "signal.frames"


@pytest.mark.django_db
def test_a_vpdq_retract_names_the_signal_by_its_value_alone(acme_submitter):
    frames = random_frames(8)
    acme_submitter.submit(signal=vpdq_signal(frames))
    retract = acme_submitter.submit(
        action="retract", labels=[], signal={"type": "vpdq", "value": digest_of(frames)}
    )
    assert retract.status_code == 201, retract.json()
    assert Entry.objects.get().state == Entry.State.RETRACTED
    assert VideoFrames.objects.count() == 1  # the list stays: its digest still names the entry


@pytest.mark.django_db
def test_bulk_ingest_takes_vpdq_items_beside_other_types(acme_submitter):
    videos = [random_frames(20 + n, seed=n) for n in range(5)]
    items = [acme_submitter.signed(signal=vpdq_signal(frames)) for frames in videos]
    items.append(acme_submitter.signed(signal={"type": "pdq", "value": "ab" * 32}))
    bad = vpdq_signal(videos[0])
    bad["frames"] = bad["frames"][1:]
    items.append(acme_submitter.signed(signal=bad))
    response = acme_submitter.client.post(
        "/api/v1/contributions/bulk/", {"items": items}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["created"], body["rejected"]) == (6, 1)
    assert body["results"][6]["error"]["details"]["field"] == "signal.value"
    assert sorted(VideoFrames.objects.values_list("frame_count", flat=True)) == [20, 21, 22, 23, 24]


@pytest.mark.django_db
def test_the_partner_client_signs_a_video_add_the_hub_accepts(acme_submitter):
    from django.conf import settings

    from federation.partner_client import ContributionSigner

    signer = ContributionSigner(
        private_key=acme_submitter.private_key, hub_id=settings.HUB_ID, member="acme"
    )
    frames = normalise_frames(random_frames(9))
    response = acme_submitter.client.post(
        "/api/v1/contributions/", signer.add_video(frames, ["attack-footage"]), format="json"
    )
    assert response.status_code == 201, response.json()
    assert Entry.objects.get().value == frames.digest


@pytest.mark.django_db
def test_a_full_size_video_with_a_bad_signature_is_refused_and_audited_with_its_bytes(
    acme_submitter,
):
    signed = acme_submitter.signed(signal=vpdq_signal(random_frames(MAX_FRAMES, seed=5)))
    signed["contribution"]["labels"] = ["propaganda"]  # changed after signing
    response = acme_submitter.client.post("/api/v1/contributions/", signed, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_signature"
    event = AuditEvent.objects.get(action="contribution.rejected")
    assert len(event.data["canonical"]) > 1_000_000  # the evidence: what was signed, whole
    assert not Entry.objects.exists() and not VideoFrames.objects.exists()


# --- Properties -----------------------------------------------------------------------------------

_FRAME = st.tuples(
    st.integers(0, 2**31 - 1),
    st.integers(0, 100),
    st.binary(min_size=32, max_size=32).map(bytes.hex),
    st.integers(0, 2**31 - 1),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_FRAME, min_size=1, max_size=40, unique_by=lambda f: f[0]))
def test_any_list_of_distinct_frames_normalises_to_one_canonical_rfc8785_form(raw):
    # Timestamps must follow frame numbers: give the sorted frames sorted times.
    numbers = sorted(f[0] for f in raw)
    times = sorted(f[3] for f in raw)
    frames = [
        [n, q, h.upper() if n % 2 else h, t]
        for n, (_, q, h, _), t in zip(numbers, raw, times, strict=True)
    ]
    shuffled = list(reversed(frames))
    normalised = normalise_frames(shuffled)
    canonical = [[n, q, h.lower(), t] for n, q, h, t in frames]
    assert normalised.canonical == rfc8785.dumps(canonical)
    assert parse_frames(canonical) == normalised
    assert normalised.digest == hashlib.sha256(normalised.canonical).hexdigest()


@pytest.mark.django_db
def test_a_vpdq_entry_is_reviewed_vetted_and_disputed_like_any_signal(
    acme_submitter, globex_reviewer
):
    from tests.support.vetting import approve, feedback, set_policy, submit_entry

    set_policy(quorum=1)
    entry = submit_entry(acme_submitter, signal=vpdq_signal(random_frames(40)))
    queue = globex_reviewer.client.get("/api/v1/review/queue/").json()["results"]
    assert [(item["id"], item["signal_type"]) for item in queue] == [(entry.pk, "vpdq")]
    assert approve(globex_reviewer, entry).status_code == 200
    entry.refresh_from_db()
    assert entry.state == Entry.State.VETTED
    set_policy(dispute_threshold=1)
    assert feedback(globex_reviewer, entry, "false_positive").status_code in (200, 201)
    entry.refresh_from_db()
    assert entry.state == Entry.State.DISPUTED
