"""Black bars cut from a video's frames before PDQ (docs/client.md, "Video"): the client's own
hashing of vPDQ's frames equals the vpdq package's on whole frames, bars are judged on the first
frames together and cut from every frame, the crop is reported, and `--keep-bars` hashes the
frames whole."""

import csv
import io
import json
import subprocess

import numpy
import pytest
from concordat_client import bars, video

from tests.support import client_cli as cli
from tests.support import client_media as media


def _hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _copy(original, path, video_filter, *extra):
    command = ["ffmpeg", "-v", "error", "-y", "-i", str(original), "-vf", video_filter, *extra]
    subprocess.run([*command, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bars")
    original = media.write_video(folder / "original.mp4", seed=21, seconds=8)
    return {
        "original": original,
        "letterboxed": _copy(original, folder / "letterboxed.mp4", "pad=320:320:0:40"),
        "pillarboxed": _copy(
            original, folder / "pillarboxed.mp4", "scale=240:180,pad=320:180:40:0"
        ),
        "ntsc": _copy(original, folder / "ntsc.mp4", "fps=30000/1001"),
    }


@pytest.mark.parametrize(
    "name, fps", [("original", 1), ("original", 0), ("ntsc", 1), ("ntsc", 2.5), ("ntsc", 0)]
)
def test_the_clients_frames_equal_the_vpdq_packages_on_whole_frames(clips, name, fps):
    """Same frames picked, same numbers and times (frame number / frame rate, at 29.97 frames a
    second too), same PDQ hashes and qualities: on a video without bars nothing changes."""
    ours = video.frame_list(clips[name], fps=fps)
    assert ours == video.vpdq_frames(clips[name], fps=fps)
    assert len(ours) > 5


def test_a_video_without_bars_is_the_vpdq_packages_own_output(clips):
    frames, crop = video.video_frames(clips["original"])
    assert crop is None
    assert frames == video.vpdq_frames(clips["original"])


@pytest.mark.parametrize(
    "name, crop",
    [("letterboxed", (0, 40, 320, 240, 320, 320)), ("pillarboxed", (40, 0, 240, 180, 320, 180))],
)
def test_bars_are_found_cut_and_reported(clips, name, crop):
    original = video.vpdq_frames(clips["original"])
    whole = video.vpdq_frames(clips[name])
    frames, found = video.video_frames(clips[name])
    assert found == bars.Crop(*crop)
    # vPDQ's frames, numbered and timed as vPDQ does; near the original's once the bars are cut.
    assert [(f[0], f[3]) for f in frames] == [(f[0], f[3]) for f in whole]
    cut = [_hamming(a[2], b[2]) for a, b in zip(frames, original, strict=True)]
    kept = [_hamming(a[2], b[2]) for a, b in zip(whole, original, strict=True)]
    print(name, "distances with bars cut", cut, "whole", kept)
    assert max(cut) <= 31 < min(kept)
    # Turned off: the vpdq package's frames, bars and all.
    assert video.video_frames(clips[name], trim_bars=False) == (whole, None)


def test_live_sampling_cuts_the_bars_found_on_its_first_five_frames(clips):
    sampled = video.SampledFrames(str(clips["letterboxed"]), trim_bars=True, look=5)
    try:
        streamed = list(sampled)
    finally:
        sampled.close()
    assert sampled.crop == bars.Crop(0, 40, 320, 240, 320, 320)
    hashed, _ = video.video_frames(clips["letterboxed"])
    assert [f[2] for f in streamed] == [f[2] for f in hashed]
    plain = video.SampledFrames(str(clips["letterboxed"]))
    try:
        assert [f[2] for f in plain] == [f[2] for f in video.vpdq_frames(clips["letterboxed"])]
    finally:
        plain.close()
    assert plain.crop is None


def _frame(height=60, width=80, *, top=0, bottom=0, left=0, right=0, level=200):
    pixels = numpy.full((height, width, 3), level, dtype=numpy.uint8)
    pixels[:top] = 0
    pixels[height - bottom :] = 0
    pixels[:, :left] = 0
    pixels[:, width - right :] = 0
    return pixels


def test_bars_are_what_every_frame_shows_dark_frames_aside():
    frames = [_frame(top=10, bottom=8), _frame(top=6, bottom=9, left=2), _frame(height=60)[:] * 0]
    assert bars.detect(frames) == bars.Crop(0, 6, 80, 46, 80, 60)
    assert bars.detect([_frame()]) is None
    assert bars.detect([_frame() * 0] * 3) is None  # black throughout: nothing to judge
    # At most 40 % of a dimension an edge, whatever is dark.
    assert bars.detect([_frame(top=50)]) == bars.Crop(0, 24, 80, 36, 80, 60)
    # Frames of another size than the first are not judged, and are kept whole.
    crop = bars.detect([_frame(top=10), _frame(height=30, top=0)])
    assert crop == bars.Crop(0, 10, 80, 50, 80, 60)
    assert crop.apply(_frame(height=30)).shape == (30, 80, 3)
    assert crop.apply(_frame()).shape == (50, 80, 3)


def test_the_trimmer_holds_the_first_frames_then_gives_every_frame_cut():
    dark = [_frame() * 0] * 4
    frames = [*dark, *[_frame(top=10)] * 3, _frame()]
    trimmer = bars.Trimmer(iter(frames), look=2)
    assert trimmer.decide() == bars.Crop(0, 10, 80, 50, 80, 60)
    assert len(trimmer.held) == 6  # four dark ones are not judged; two bright ones are
    out = list(trimmer)
    assert [f.shape[0] for f in out] == [50] * 8
    # No more than 3 x look frames are held, bright or not.
    held = bars.Trimmer(iter([_frame() * 0] * 20), look=2)
    assert held.decide() is None and len(held.held) == 6


def test_hash_reports_the_crop_and_keep_bars_turns_it_off(clips, tmp_path):
    env = cli.environment(tmp_path)
    [record] = [
        r
        for r in cli.json_lines(cli.run(env, "hash", str(clips["letterboxed"])))
        if r["type"] == "vpdq"
    ]
    assert record["crop"] == bars.Crop(0, 40, 320, 240, 320, 320).as_json()
    frames, _ = video.video_frames(clips["letterboxed"])
    assert record["frames"] == frames
    [plain] = [
        r
        for r in cli.json_lines(cli.run(env, "hash", "--keep-bars", str(clips["letterboxed"])))
        if r["type"] == "vpdq"
    ]
    assert "crop" not in plain and plain["frames"] == video.vpdq_frames(clips["letterboxed"])
    [unbarred] = [
        r
        for r in cli.json_lines(cli.run(env, "hash", str(clips["original"])))
        if r["type"] == "vpdq"
    ]
    assert unbarred["crop"] is None
    rows = list(
        csv.DictReader(
            io.StringIO(cli.run(env, "hash", "--format", "csv", str(clips["letterboxed"])).stdout)
        )
    )
    [row] = [r for r in rows if r["type"] == "vpdq"]
    assert json.loads(row["crop"]) == record["crop"]
