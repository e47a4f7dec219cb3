"""Real videos, real hashing (ffmpeg + vpdq): derived copies against their original, unrelated
videos, mirrored copies; the index always equals the brute-force oracle. The measured figures
are written in docs/video.md ("Measured: derived copies")."""

import pytest

from federation.matching.video import VideoIndex, brute_force_videos
from tests.support.video_media import DERIVED, UNRELATED

# Derived copies that match the original at the defaults (distance 31, quality 50, query 80 %).
MATCHING = (
    "reencoded",
    "scaled",
    "trimmed",
    "letterbox_removed",
    "logo",
    "mirrored_flipped",
)
# Copies PDQ does not see through at distance 31 (docs/video.md says what the client can do).
NOT_MATCHING = ("cropped", "letterboxed", "mirrored")


@pytest.fixture(scope="module")
def shared(videos):
    """The shared set: the original and two unrelated videos."""
    return [
        (f"{i:064x}", "vetted", videos[name].distinct)
        for i, name in enumerate(("original", "unrelated_noise", "unrelated_fractal"))
    ]


@pytest.fixture(scope="module")
def index(shared):
    index = VideoIndex()
    index.build(shared)
    return index


def _report(name, matches):
    print(
        name,
        [(m.value[-1], round(m.query_percent, 1), round(m.compared_percent, 1)) for m in matches],
    )


@pytest.mark.parametrize("name", MATCHING)
def test_derived_copy_matches_its_original_only(videos, shared, index, name):
    query = videos[name].distinct
    got = index.search(query)
    _report(name, index.search(query, query_min=0))
    assert got == brute_force_videos(query, shared)
    assert [m.value for m in got] == [shared[0][0]]
    [match] = got
    assert match.query_percent >= 80
    assert match.pairs and all(pair.distance <= 31 for pair in match.pairs)


@pytest.mark.parametrize("name", NOT_MATCHING)
def test_copies_pdq_does_not_survive_do_not_match_at_the_defaults(videos, shared, index, name):
    query = videos[name].distinct
    _report(name, index.search(query, query_min=0))
    assert index.search(query) == brute_force_videos(query, shared) == []
    loose = dict(query_min=0, threshold=40)
    assert index.search(query, **loose) == brute_force_videos(query, shared, **loose)


def test_trimmed_copy_covers_half_of_the_original(videos, index):
    [match] = index.search(videos["trimmed"].distinct)
    assert match.query_percent == 100.0
    assert 40 <= match.compared_percent <= 60  # 15 s of 30
    # The pairs point at the moment: the copy starts 7 s into the original.
    for pair in match.pairs:
        assert abs(pair.shared_ms - pair.query_ms - 7000) <= 1000


@pytest.mark.parametrize("name", ("unrelated_pattern", *UNRELATED))
def test_unrelated_videos_match_nothing_else(videos, shared, index, name):
    query = videos[name].distinct
    for kw in ({}, {"query_min": 0}):
        got = index.search(query, **kw)
        assert got == brute_force_videos(query, shared, **kw)
        # An unrelated video matches only itself (when it is one of the shared ones).
        assert {m.value for m in got} <= {v for v, _, f in shared if f is not None} - {shared[0][0]}
    own = [v for v, _, f in shared if f.words.tobytes() == query.words.tobytes()]
    assert [m.value for m in index.search(query)] == own


def test_every_derived_copy_equals_the_oracle_at_loose_settings(videos, shared, index):
    for name in DERIVED:
        query = videos[name].distinct
        for kw in ({"query_min": 0, "quality_min": 0}, {"threshold": 48, "compared_min": 20}):
            assert index.search(query, **kw) == brute_force_videos(query, shared, **kw)
