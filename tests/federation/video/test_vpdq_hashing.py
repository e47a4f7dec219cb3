"""The canonical form against real vPDQ output: a short video made with ffmpeg and hashed with
the vpdq package gives one canonical list, the same for every hashing of the file, that a hub
accepts as signed (docs/video.md §1 and §2)."""

import subprocess

import pytest
import vpdq

from federation.video.frames import (
    from_threatexchange,
    from_vpdq_features,
    parse_frames,
    seconds_to_ms,
    to_threatexchange,
)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("vpdq") / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc=duration=6:size=192x144:rate=25", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


def test_two_hashings_of_one_file_give_the_same_canonical_list_and_value(video):
    first = vpdq.computeHash(str(video), seconds_per_hash=1, thread_count=1)
    second = vpdq.computeHash(str(video), seconds_per_hash=1, thread_count=1)
    assert len(first) >= 5
    a, b = from_vpdq_features(first), from_vpdq_features(second)
    assert a.canonical == b.canonical and a.digest == b.digest
    # The canonical list is what a hub accepts as signed: parsing it strictly changes nothing.
    assert parse_frames(a.to_document()).digest == a.digest
    for feature, frame in zip(sorted(first, key=lambda f: f.frame_number), a.frames, strict=True):
        assert (frame.number, frame.quality, frame.pdq) == (
            feature.frame_number,
            feature.quality,
            feature.hex.lower(),
        )
        assert frame.timestamp_ms == seconds_to_ms(feature.timestamp)
        assert abs(frame.timestamp_ms / 1000 - feature.timestamp) <= 0.0005


def test_python_threatexchange_form_of_real_output_keeps_every_hash(video):
    frames = from_vpdq_features(vpdq.computeHash(str(video), seconds_per_hash=1, thread_count=1))
    back = from_threatexchange(to_threatexchange(frames))
    assert [f.pdq for f in back.frames] == [f.pdq for f in frames.frames]
    assert [f.number for f in back.frames] == list(range(len(frames)))
