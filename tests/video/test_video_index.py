"""The video frame index against the brute-force oracle (synthetic frame lists; real videos are
in test_real_videos.py)."""

import numpy as np
import pytest

from federation.matching.video import (
    DistinctFrames,
    VideoIndex,
    brute_force_videos,
    distinct_frames,
)


def _video(rng, n, *, quality=None):
    words = rng.integers(0, 2**64, size=(n, 4), dtype=np.uint64)
    q = rng.integers(0, 101, size=n) if quality is None else np.full(n, quality)
    return words, q.astype(np.int16), np.arange(n, dtype=np.int64) * 1000


def _flip(rng, words, bits):
    out = words.copy()
    for row in out:
        for b in rng.choice(256, size=bits, replace=False):
            row[b // 64] ^= np.uint64(1) << np.uint64(b % 64)
    return out


@pytest.fixture
def library():
    rng = np.random.default_rng(7)
    videos = []
    for i in range(40):
        videos.append(
            (f"{i:064x}", "vetted" if i % 3 else "disputed", distinct_frames(*_video(rng, 30)))
        )
    return rng, videos


def _both(index, videos, query, **kw):
    return index.search(query, **kw), brute_force_videos(query, videos, **kw)


def test_distinct_frames_keep_first_timestamp_and_best_quality():
    words = np.array([[1, 0, 0, 0], [2, 0, 0, 0], [1, 0, 0, 0]], dtype=np.uint64)
    frames = distinct_frames(words, np.array([40, 90, 70]), np.array([0, 1000, 2000]))
    assert frames.words[:, 0].tolist() == [1, 2]
    assert frames.quality.tolist() == [70, 90]
    assert frames.timestamp_ms.tolist() == [0, 1000]
    assert frames.kept(50).words[:, 0].tolist() == [1, 2]
    assert frames.kept(80).words[:, 0].tolist() == [2]


@pytest.mark.parametrize("incremental", [False, True])
def test_index_equals_oracle_on_copies_and_partial_copies(library, incremental):
    rng, videos = library
    index = VideoIndex()
    if incremental:
        index.build([])
        for value, state, frames in videos:
            index.upsert(value, state=state, frames=frames)
    else:
        index.build(videos)
    for target in (0, 5, 17):
        frames = videos[target][2]
        for bits, take in ((0, 30), (12, 30), (25, 20), (31, 10), (40, 30)):
            words = _flip(rng, frames.words[:take], bits)
            noise = _video(rng, 5)
            query = distinct_frames(
                np.concatenate([words, noise[0]]),
                np.concatenate([frames.quality[:take], noise[1]]),
                np.arange(take + 5) * 500,
            )
            for kw in (
                {},
                {"quality_min": 0, "query_min": 50},
                {"quality_min": 80, "query_min": 0, "compared_min": 30},
                {"threshold": 20, "query_min": 10},
            ):
                got, expected = _both(index, videos, query, **kw)
                assert got == expected
    # A full copy at distance <= 31 matches its original and nothing else at the defaults.
    exact = index.search(videos[5][2])
    assert [m.value for m in exact] == [videos[5][0]]
    assert exact[0].query_percent == 100.0 and exact[0].compared_percent == 100.0
    assert exact[0].state == videos[5][1]


def test_shared_frame_hash_in_two_videos_posts_to_both_and_removal_keeps_the_other():
    rng = np.random.default_rng(3)
    a = _video(rng, 10, quality=90)
    b_words = a[0].copy()
    b_words[5:] = rng.integers(0, 2**64, size=(5, 4), dtype=np.uint64)
    b = (b_words, a[1], a[2])
    videos = [("a" * 64, "vetted", distinct_frames(*a)), ("b" * 64, "vetted", distinct_frames(*b))]
    index = VideoIndex()
    index.build(videos)
    query = distinct_frames(a[0][:5], a[1][:5], a[2][:5])
    assert [m.value for m in index.search(query)] == ["a" * 64, "b" * 64]
    assert index.frames.__len__() == 15
    assert index.remove("a" * 64, frames=videos[0][2])
    assert len(index.frames) == 10  # the 5 frames only "a" had left the frame index
    got = index.search(query)
    assert [m.value for m in got] == ["b" * 64]
    assert got == brute_force_videos(query, videos[1:])
    index.upsert("a" * 64, state="disputed", frames=videos[0][2])
    assert [(m.value, m.state) for m in index.search(query)] == [
        ("a" * 64, "disputed"),
        ("b" * 64, "vetted"),
    ]
    assert index.search(query) == brute_force_videos(
        query, [("a" * 64, "disputed", videos[0][2]), videos[1]]
    )


def test_low_quality_frames_count_on_neither_side():
    rng = np.random.default_rng(5)
    words, _, ms = _video(rng, 10)
    quality = np.array([90] * 6 + [10] * 4, dtype=np.int16)
    shared = [("c" * 64, "vetted", distinct_frames(words, quality, ms))]
    index = VideoIndex()
    index.build(shared)
    query = distinct_frames(words[:6], quality[:6], ms[:6])
    [match] = index.search(query, compared_min=100)
    assert (match.matched_shared_frames, match.shared_frames) == (6, 6)
    assert index.search(query, quality_min=0, compared_min=100) == []
    assert index.search(query, quality_min=0, compared_min=60) == brute_force_videos(
        query, shared, quality_min=0, compared_min=60
    )


def test_pairs_are_the_nearest_shared_frame_per_query_frame():
    rng = np.random.default_rng(9)
    words, quality, ms = _video(rng, 20, quality=100)
    index = VideoIndex()
    shared = [("d" * 64, "vetted", distinct_frames(words, quality, ms))]
    index.build(shared)
    query = DistinctFrames(words[3:8].copy(), quality[3:8], np.arange(5) * 40)
    [match] = index.search(query, query_min=100)
    assert [(p.query_ms, p.shared_ms, p.distance) for p in match.pairs] == [
        (0, 3000, 0),
        (40, 4000, 0),
        (80, 5000, 0),
        (120, 6000, 0),
        (160, 7000, 0),
    ]
