"""The client's video parts without a hub: the canonical frame list against the published vpdq
vectors (docs/signing-vectors.json), signing a vpdq add exactly as the hub verifies it, video
sniffing, FFmpeg's sampled frames against vPDQ's, and the offline video index against the hub's
own brute-force oracle (federation.matching.video) on the same frame lists."""

import base64
import json
import random
from pathlib import Path

import numpy
import pytest
import rfc8785
from concordat_client import frames, signing, video
from concordat_client.local import VideoIndex
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.matching import video as hub_video
from federation.video import frames as hub_frames
from tests.support import client_media as media

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "signing-vectors.json").read_text()
)
FRAME_VECTORS = [v for v in VECTORS if "vpdq_frames" in v]
VPDQ_SIGNED = [
    v for v in VECTORS if v.get("contribution", {}).get("signal", {}).get("type") == "vpdq"
]


def by_id(vectors):
    return pytest.mark.parametrize("vector", vectors, ids=[v["id"] for v in vectors])


@by_id(FRAME_VECTORS)
def test_the_client_reproduces_every_frame_list_vector(vector):
    if vector["valid"]:
        parsed = frames.parse_frames(vector["vpdq_frames"])
        assert frames.canonical_bytes(parsed).decode() == vector["canonical_utf8"]
        assert frames.digest(parsed) == vector["digest_hex"]
    else:
        with pytest.raises(frames.FrameListError):
            frames.parse_frames(vector["vpdq_frames"])


@by_id([v for v in VPDQ_SIGNED if v["valid"]])
def test_the_client_signs_the_vpdq_vectors_byte_for_byte(vector):
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vector["seed_hex"]))
    published = vector["contribution"]
    signal = dict(published["signal"])
    if "frames" in signal:  # the client builds the value from the frames, as `submit` does
        signal["frames"] = frames.parse_frames(signal["frames"])
        assert frames.digest(signal["frames"]) == signal["value"]
    signed = signing.contribution(
        key, hub=published["hub"], member=published["member"], action=published["action"],
        signal=signal, labels=published["labels"], scope=published["scope"],
        incident=published.get("incident"), item_uuid=published["uuid"],
        created_at=published["created_at"],
    )  # fmt: skip
    assert rfc8785.dumps(signed["contribution"]).decode() == vector["canonical_utf8"]
    assert signed["signature"] == vector["signature_b64"]
    assert base64.b64decode(signed["signature"]) == base64.b64decode(vector["signature_b64"])


def test_normalising_and_milliseconds_agree_with_the_hub():
    rng = random.Random(3)
    for _ in range(200):
        seconds = rng.choice([rng.random() * 300, rng.randrange(10**6) / 2000, 0.0125, 0.9995])
        assert frames.seconds_to_ms(seconds) == hub_frames.seconds_to_ms(seconds)
    lenient = [[30, 87, "AB" * 32, 1000], [0, 100, "cd" * 32, 0]]
    ours = frames.normalise_frames(lenient)
    theirs = hub_frames.normalise_frames(lenient)
    assert frames.canonical_bytes(ours) == theirs.canonical
    assert frames.digest(ours) == theirs.digest
    for bad in ([[0, 1, "ab" * 32, 5], [0, 1, "cd" * 32, 6]], [[0, 1, "ab" * 32, 5], [1, 1, "cd" * 32, 4]], []):  # fmt: skip
        with pytest.raises(frames.FrameListError):
            frames.normalise_frames(bad)
        with pytest.raises(hub_frames.FrameListError):
            hub_frames.normalise_frames(bad)


def test_threatexchange_string_form_is_the_vpdq_extensions_and_the_hubs():
    from threatexchange.extensions.vpdq.vpdq_util import VpdqCompactFeature, vpdq_to_json

    times = [0, 1500, 12_340, 99_999, 123_400, 999_900, 3_600_000]
    canonical = [[n * 7, 40 + n, f"{n:x}" * 64, ms] for n, ms in enumerate(times)]
    text = frames.to_threatexchange(canonical)
    features = [VpdqCompactFeature(pdq, quality, ms / 1000) for _, quality, pdq, ms in canonical]
    assert text == vpdq_to_json(features)  # what VPDQSignal.hash_from_file writes
    assert text == hub_frames.to_threatexchange(hub_frames.normalise_frames(canonical))
    assert json.loads(text)[4].endswith(",1.23e+02")
    back = frames.from_threatexchange(text)
    assert back == hub_frames.from_threatexchange(text).to_document()
    assert [f[0] for f in back] == list(range(len(times)))  # numbers dropped: positions
    assert [f[3] for f in back] == [0, 1500, 12_300, 100_000, 123_000, 1_000_000, 3_600_000]
    assert frames.to_threatexchange(back) == text
    for bad in ("not json", '[["a"]]', '["ab,1"]', '["' + "ab" * 32 + ',x,1.0"]'):
        with pytest.raises(frames.FrameListError):
            frames.from_threatexchange(bad)


def test_videos_are_found_by_suffix_or_by_their_first_bytes(tmp_path):
    clip = media.write_video(tmp_path / "clip.mp4", seed=3, seconds=2)
    hidden = tmp_path / "upload-1234"
    hidden.write_bytes(clip.read_bytes())
    picture = tmp_path / "picture.bin"
    media.picture(1).save(picture, format="PNG")
    assert video.is_video(clip) and video.is_video(hidden)
    assert not video.is_video(picture)
    assert video.sniff_video(b"\x1a\x45\xdf\xa3" + b"\0" * 60)  # Matroska/WebM
    assert not video.sniff_video(b"\0\0\0\x20ftypM4A " + b"\0" * 60)  # audio only


def test_ffmpeg_sampled_frames_are_vpdq_frames(tmp_path):
    """The frames ``live`` and ``--rotations`` hash (FFmpeg's, through a pipe) are those vPDQ
    hashes, hash for hash: same frames picked, same PDQ."""
    clip = media.write_video(tmp_path / "clip.mp4", seed=4, seconds=6)
    by_vpdq = video.vpdq_frames(clip, fps=1)
    sampled = video.SampledFrames(str(clip), fps=1)
    try:
        by_ffmpeg = list(sampled)
    finally:
        sampled.close()
    assert [f[2] for f in by_ffmpeg] == [f[2] for f in by_vpdq]
    assert [f[3] for f in by_ffmpeg] == [f[3] for f in by_vpdq]


def _hub_distinct(frame_list):
    return hub_video.distinct_frames(
        numpy.frombuffer(bytes.fromhex("".join(f[2] for f in frame_list)), dtype=">u8")
        .astype(numpy.uint64)
        .reshape(-1, 4),
        numpy.array([f[1] for f in frame_list], dtype=numpy.int16),
        numpy.array([f[3] for f in frame_list], dtype=numpy.int64),
    )


def _flip(hex_value: str, bits: int, rng: random.Random) -> str:
    value = int(hex_value, 16)
    for bit in rng.sample(range(256), bits):
        value ^= 1 << bit
    return f"{value:064x}"


def test_the_offline_video_index_answers_what_the_hub_oracle_answers():
    rng = random.Random(9)
    shared = []
    for n in range(30):
        hashes = [f"{rng.getrandbits(256):064x}" for _ in range(rng.randrange(5, 40))]
        if n % 5 == 0:
            hashes += hashes[:3]  # repeated frames: one distinct frame each
        shared.append(
            [[i * 15, rng.choice([30, 49, 50, 80, 100]), h, i * 1000] for i, h in enumerate(hashes)]
        )
    documents = [
        {"signal": {"type": "vpdq", "value": frames.digest(f)}, "state": "vetted", "labels": ["x"],
         "contributors": [], "quality": None}
        for f in shared
    ]  # fmt: skip
    index = VideoIndex(list(zip(documents, shared, strict=True)))
    oracle_set = [
        (d["signal"]["value"], "vetted", _hub_distinct(f))
        for d, f in zip(documents, shared, strict=True)
    ]
    for trial in range(40):
        source = shared[trial % len(shared)]
        start = rng.randrange(len(source))
        query = [
            [i, rng.choice([40, 60, 100]), _flip(f[2], rng.choice([0, 5, 20, 31, 32, 40]), rng),
             i * 1000 + 7]
            for i, f in enumerate(source[start:] + shared[(trial + 3) % len(shared)][:2])
        ]  # fmt: skip
        for settings in (
            {},
            {"query_min": 0},
            {"threshold": 20, "quality_min": 0, "compared_min": 30, "query_min": 10},
        ):
            ours = index.search(query, **settings)
            theirs = hub_video.brute_force_videos(_hub_distinct(query), oracle_set, **settings)
            assert [
                (m["signal"]["value"], m["query_percent"], m["compared_percent"], m["query_frames"],
                 m["matched_frames"], m["shared_frames"], m["matched_shared_frames"], m["distance"],
                 [(p["query_ms"], p["shared_ms"], p["distance"]) for p in m["pairs"]])
                for m in ours
            ] == [
                (m.value, round(m.query_percent, 2), round(m.compared_percent, 2), m.query_frames,
                 m.matched_query_frames, m.shared_frames, m.matched_shared_frames,
                 min(p.distance for p in m.pairs),
                 [(p.query_ms, p.shared_ms, p.distance) for p in m.pairs])
                for m in theirs
            ]  # fmt: skip


class FakeHub:
    """The hub's live and frame-list endpoints as the client sees them, scripted."""

    def __init__(self, *, full_after: int | None = None, lists: dict | None = None) -> None:
        self.full_after, self.lists = full_after, lists or {}
        self.opened, self.closed, self.calls, self.asked = [], [], [], []

    def live_open(self, **settings):
        session = {"id": f"s{len(self.opened)}", "frames": 0, "calls": 0, "state": "open"}
        self.opened.append((session, settings))
        return session

    def live_frames(self, session_id, frames):
        from concordat_client.hub import HubError

        self.calls.append((session_id, [f[0] for f in frames]))
        held = sum(len(f) for s, f in self.calls[:-1] if s == session_id)
        if self.full_after is not None and held + len(frames) > self.full_after:
            self.calls.pop()
            raise HubError(409, "session_full", "full")
        alert = {"signal": {"type": "vpdq", "value": "v" * 64}, "pairs": []}
        return {"alerts": [alert] if frames[-1][0] >= 4 else [], "frame_matches": []}

    def live_close(self, session_id):
        self.closed.append(session_id)
        return {"id": session_id, "state": "closed"}

    def video_frames(self, values):
        self.asked.append(list(values))
        first, *rest = values
        answer = {"lists": [], "deferred": rest, "unknown": []}
        if first in self.lists:
            answer["lists"] = [{"value": first, "frame_count": 1, "frames": self.lists[first]}]
        else:
            answer["unknown"] = [first]
        return answer


def _frames(count):
    return [[i, 100, f"{i:064x}", i * 1000] for i in range(count)]


def test_a_live_run_reports_each_alert_once_renews_a_full_session_and_always_closes():
    from concordat_client.live import LiveStream

    hub, seen = FakeHub(full_after=6), []
    alerts = LiveStream(
        hub, settings={"min_frames": 5}, batch=2, emit=lambda kind, doc: seen.append(kind)
    ).run(_frames(10))
    assert list(alerts) == ["v" * 64] and seen.count("alert") == 1
    assert [s["id"] for s, _ in hub.opened] == ["s0", "s1"] and hub.closed == ["s0", "s1"]
    assert [c for s, c in hub.calls if s == "s1"] == [[6, 7], [8, 9]]  # the refused batch resent
    assert hub.opened[0][1] == {"min_frames": 5}

    def broken():
        yield from _frames(3)
        raise KeyboardInterrupt

    hub = FakeHub()
    with pytest.raises(KeyboardInterrupt):
        LiveStream(hub, settings={}, emit=lambda kind, doc: None).run(broken())
    assert hub.closed == ["s0"] and len(hub.calls) == 3


class MirrorHub(FakeHub):
    """Alerts only on the frames of one transform (their hashes start with ``f``)."""

    def live_frames(self, session_id, frames):
        self.hashes = getattr(self, "hashes", {})
        self.hashes.setdefault(session_id, set()).update(f[2][:3] for f in frames)
        answer = super().live_frames(session_id, frames)
        if not frames[-1][2].startswith("f"):
            answer["alerts"] = []
        return answer


def test_a_live_run_with_rotations_feeds_one_session_per_transform_and_names_the_alerting_one():
    from concordat_client.hub import HubError
    from concordat_client.live import DihedralLiveStreams
    from concordat_client.video import DIHEDRAL

    def turned(count):
        for i in range(count):  # per sampled frame its 8 frames; flipx's hash starts with "f"
            yield [
                [i, 100, ("f" if name == "flipx" else "0") + f"{place:02x}{i:061x}", i * 1000]
                for place, name in enumerate(DIHEDRAL)
            ]

    hub, seen = MirrorHub(), []
    runner = DihedralLiveStreams(
        hub, settings={"min_frames": 5}, batch=2, emit=lambda kind, doc: seen.append((kind, doc))
    )
    alerts = runner.run(turned(10))
    assert list(alerts) == ["v" * 64] and alerts["v" * 64]["transform"] == "flipx"
    assert [doc["transform"] for kind, doc in seen if kind == "alert"] == ["flipx"]
    opened = [doc["transform"] for kind, doc in seen if kind == "opened"]
    assert opened == list(DIHEDRAL) and sorted(hub.closed) == [f"s{i}" for i in range(8)]
    # Each session got its own transform's frames only, every frame, in order.
    for place, (session, _) in enumerate(hub.opened):
        sent = [frame for s, frames in hub.calls if s == session["id"] for frame in frames]
        assert sent == list(range(10)), place
        mark = "f" if DIHEDRAL[place] == "flipx" else "0"
        assert hub.hashes[session["id"]] == {f"{mark}{place:02x}"}
    assert (runner.frames_sent, runner.calls) == (10, 40)

    def broken():
        yield from turned(3)
        raise KeyboardInterrupt

    hub = MirrorHub()
    with pytest.raises(KeyboardInterrupt):
        DihedralLiveStreams(hub, settings={}, emit=lambda kind, doc: None).run(broken())
    assert len(hub.closed) == 8 and len(hub.calls) == 24

    class Crowded(MirrorHub):  # the member has 8 sessions open already: the third is refused
        def live_open(self, **settings):
            if len(self.opened) == 2:
                raise HubError(429, "too_many_sessions", "too many")
            return super().live_open(**settings)

    hub = Crowded()
    with pytest.raises(HubError):
        DihedralLiveStreams(hub, settings={}, emit=lambda kind, doc: None).run(turned(3))
    assert hub.closed == ["s0", "s1"] and hub.calls == []


def test_sync_fetches_each_frame_list_once_checks_it_and_drops_it_with_its_entry(tmp_path):
    from concordat_client.hub import HubError
    from concordat_client.local import SharedSet

    good = [[0, 90, "ab" * 32, 0], [15, 80, "cd" * 32, 1000]]
    value, gone = frames.digest(good), "f" * 64
    local = SharedSet(tmp_path / "copy.sqlite")
    upserts = [
        {"op": "upsert", "signal": {"type": "vpdq", "value": v}, "state": "vetted", "labels": [],
         "contributors": [], "quality": None}
        for v in (value, gone)
    ]  # fmt: skip
    local.apply(upserts, cursor="c1")
    hub = FakeHub(lists={value: good})
    assert local.fetch_video_frames(hub) == 1
    # The deferred value is asked again, and the one the hub no longer shares is left.
    assert hub.asked == [[value, gone], [gone]] and value < gone
    assert local.fetch_video_frames(hub) == 0  # held: not asked again; the unknown one waits
    index = local.video_index()
    [found] = index.search(good)
    assert (found["query_percent"], found["matched_frames"]) == (100.0, 2)
    local.apply([{"op": "remove", "signal": {"type": "vpdq", "value": value}}], cursor="c2")
    assert local.video_count() == 0
    local.apply(upserts[:1], cursor="c3")
    with pytest.raises(HubError, match="does not hash"):
        local.fetch_video_frames(FakeHub(lists={value: [[0, 91, "ab" * 32, 0]]}))


def test_the_threatexchange_extension_carries_each_video_in_threatexchange_form():
    from concordat_client.hub import HubError
    from concordat_client.tx_extension import ConcordatSignalExchangeAPI
    from threatexchange.extensions.vpdq.vpdq import VPDQSignal
    from threatexchange.signal_type.pdq.signal import PdqSignal

    good = [[0, 90, "ab" * 32, 0], [15, 80, "cd" * 32, 12_340]]
    value, gone = frames.digest(good), "f" * 64

    def change(signal_type, signal_value, op="upsert"):
        return {"op": op, "signal": {"type": signal_type, "value": signal_value},
                "state": "vetted", "labels": ["x"], "contributors": []}  # fmt: skip

    page = [change("vpdq", value), change("vpdq", gone), change("pdq", "ab" * 32)]
    api = ConcordatSignalExchangeAPI("http://hub.invalid", "token")
    api.hub = hub = FakeHub(lists={value: good})
    hub.changes = lambda cursor: {"changes": page, "next": "c1", "more": False}
    [delta] = api.fetch_iter([PdqSignal, VPDQSignal], None)
    # The list served is carried in threatexchange's form; the one retracted meanwhile is left.
    assert hub.asked == [[value, gone], [gone]]
    assert set(delta.updates) == {("vpdq", value), ("pdq", "ab" * 32)}
    record = delta.updates[("vpdq", value)]
    assert record.threatexchange_signal == frames.to_threatexchange(good)
    VPDQSignal.validate_signal_str(record.threatexchange_signal)
    converted = api.naive_convert_to_signal_type([PdqSignal, VPDQSignal], None, delta.updates)
    assert converted[VPDQSignal] == {frames.to_threatexchange(good): record}
    assert list(converted[PdqSignal]) == ["ab" * 32]
    # A removal needs no frames: the key is the Concordat value.
    page = [change("vpdq", value, op="remove")]
    hub.asked.clear()
    [delta] = api.fetch_iter([VPDQSignal], None)
    assert delta.updates == {("vpdq", value): None} and hub.asked == []
    # Without threatexchange's vpdq type, no frames are asked and no video is kept.
    page = [change("vpdq", value), change("pdq", "ab" * 32)]
    [delta] = api.fetch_iter([PdqSignal], None)
    assert set(delta.updates) == {("pdq", "ab" * 32)} and hub.asked == []
    # A list that does not hash to its value is refused.
    api.hub = FakeHub(lists={value: [[0, 91, "ab" * 32, 0]]})
    api.hub.changes = hub.changes
    with pytest.raises(HubError, match="does not hash"):
        list(api.fetch_iter([VPDQSignal], None))


def test_the_threatexchange_extension_skips_invalid_signals_and_refuses_ambiguous_feedback():
    from concordat_client.hub import HubError
    from concordat_client.tx_extension import ConcordatSignalExchangeAPI, ConcordatSignalMetadata
    from threatexchange.exchanges import fetch_state as state
    from threatexchange.signal_type.pdq.signal import PdqSignal

    api = ConcordatSignalExchangeAPI("http://hub.invalid", "token")
    record = ConcordatSignalMetadata(state="vetted", labels=[], contributors=[])
    fetched = {("pdq", "ab" * 32): record, ("pdq", "not a pdq hash"): record}
    converted = api.naive_convert_to_signal_type([PdqSignal], None, fetched)
    assert list(converted[PdqSignal]) == ["ab" * 32]

    # Two shared videos whose frame lists differ only in what the string form drops (frame
    # numbers): feedback through threatexchange could land on either, so it goes on neither.
    one = [[0, 90, "ab" * 32, 0], [15, 80, "cd" * 32, 12_340]]
    two = [[0, 90, "ab" * 32, 0], [16, 80, "cd" * 32, 12_340]]
    assert frames.to_threatexchange(one) == frames.to_threatexchange(two)
    lists = {frames.digest(one): one, frames.digest(two): two}

    class TwoVideos:
        def match(self, signals, **settings):
            return [{"matches": [{"signal": {"type": "vpdq", "value": v}} for v in lists]}]

        def video_frames(self, values):
            return {"lists": [{"value": v, "frames": lists[v]} for v in values]}

        def feedback(self, *args):
            raise AssertionError("no feedback may be sent")

    api.hub = TwoVideos()
    opinion = state.SignalOpinion(False, state.SignalOpinionCategory.NEGATIVE_CLASS, set())
    from threatexchange.extensions.vpdq.vpdq import VPDQSignal

    with pytest.raises(HubError, match="ambiguous"):
        api.report_opinion(VPDQSignal, frames.to_threatexchange(one), opinion)
