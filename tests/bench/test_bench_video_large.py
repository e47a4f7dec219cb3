"""Video matching at 100,000 shared videos (docs/video.md, "Measured"): 300 frames each, 30,000,000
frames, one 60-frame query, the frame index alone.

python-threatexchange's ``VPDQIndex`` is not run at this size: its build alone took 70-90 s at
10,000 videos (tests/bench/test_bench_video.py, which compares both there) and its flat faiss
search grows with the frames, so at ten times the size it would take most of an hour. The answer
is checked against the brute-force oracle instead, on the target video and a sample.

The test runs only when the machine has the memory (``MemAvailable`` at least ``PEAK_BYTES_PER_FRAME``
per frame, and 12 GiB): other processes share it, and the kernel's out-of-memory killer would pick
one of them as readily as this one. ``CONCORDAT_BENCH_VIDEO_LARGE_N`` sets the number of videos.
"""

import os
import resource
import statistics
import time

import pytest

from federation.matching.video import DistinctFrames, VideoIndex, brute_force_videos
from tests.support.video_bench import rss, synthetic_videos

pytestmark = pytest.mark.bench

N = int(os.environ.get("CONCORDAT_BENCH_VIDEO_LARGE_N", 100_000))
FRAMES = 300
QUERY_FRAMES = 60
RUNS = 9
# The process's peak while it builds (the frame list, the index, and the build's sorting and CSR
# temporaries), per shared frame, measured at 20,000 videos.
PEAK_BYTES_PER_FRAME = 560
MIN_AVAILABLE = 12 * 2**30


def _available() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def test_bench_video_query_at_100k_videos():
    frames = N * FRAMES
    needed = max(MIN_AVAILABLE, frames * PEAK_BYTES_PER_FRAME)
    available = _available()
    if available < needed:
        message = (
            f"[video 100k] skipped: {available / 2**30:.1f} GiB available, "
            f"{needed / 2**30:.1f} GiB needed for {frames:,} frames"
        )
        print(f"\n{message}")
        pytest.skip(message)
    before = rss()
    words, videos, query, target = synthetic_videos(
        count=N, frames=FRAMES, query_frames=QUERY_FRAMES, seed=29
    )
    with_data = rss()

    started = time.perf_counter()
    index = VideoIndex()
    index.build(videos)
    build = time.perf_counter() - started
    sample = [videos[target], *videos[:: max(N // 50, 1)]]
    sample = [
        (v, s, DistinctFrames(f.words.copy(), f.quality, f.timestamp_ms)) for v, s, f in sample
    ]
    del videos, words
    index_rss = rss() - with_data
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before

    got = index.search(query)
    assert [m.value for m in got] == [f"{target:064x}"]
    assert brute_force_videos(query, sample) == got
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        index.search(query)
        timings.append(time.perf_counter() - started)
    print(
        f"\n[video 100k] {N:,} videos, {frames:,} frames: build {build:.0f} s; 60-frame query "
        f"{statistics.median(timings) * 1000:.2f} ms (median of {RUNS}), one match, equal to "
        f"the oracle on the target and {len(sample) - 1} others; "
        f"{index.memory_bytes() / frames:.0f} B/frame of arrays, RSS growth "
        f"{index_rss / frames:.0f} B/frame (the frame list freed), peak "
        f"{peak / frames:.0f} B/frame ({peak / 2**30:.1f} GiB); "
        f"{available / 2**30:.1f} GiB were available"
    )
