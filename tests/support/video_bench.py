"""Synthetic shared videos for the video benchmarks: random frame hashes, one query video made
of a run of one shared video's frames with up to 12 bits flipped each, and the process's RSS."""

import os

import numpy as np

from federation.matching.video import DistinctFrames


def rss() -> int:
    """The process's resident memory in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def synthetic_videos(*, count: int, frames: int, query_frames: int, seed: int):
    """``(words, videos, query, target)``: ``count`` videos of ``frames`` random frames (quality
    100, one a second) as ``(value, state, DistinctFrames)``, the frame words they share, and a
    query of ``query_frames`` frames from the middle third's first video (``target``)."""
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 2**64, size=(count * frames, 4), dtype=np.uint64)
    quality = np.full(frames, 100, dtype=np.int16)
    ms = np.arange(frames, dtype=np.int64) * 1000
    videos = [
        (f"{i:064x}", "vetted", DistinctFrames(words[i * frames : (i + 1) * frames], quality, ms))
        for i in range(count)
    ]
    target = count // 3
    start = target * frames + 100
    query_words = words[start : start + query_frames].copy()
    for row in query_words:
        for bit in rng.choice(256, size=int(rng.integers(0, 13)), replace=False):
            row[bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
    query = DistinctFrames(
        query_words,
        np.full(query_frames, 100, dtype=np.int16),
        np.arange(query_frames, dtype=np.int64) * 1000,
    )
    return words, videos, query, target
