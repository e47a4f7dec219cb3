"""Hashing videos (docs/client.md, "Video"): vPDQ with the ``vpdq`` package into the canonical
frame list (``frames.py``), and frames sampled by FFmpeg and hashed one by one with ``pdqhash``
(a letterboxed video's frames without their bars, the mirrored and rotated frame lists of
``--rotations``, and ``live``).

Nothing is written to disk: ``vpdq`` decodes the file itself, and FFmpeg sends its frames
through a pipe as PPM images (each carries its own size, so a stream may change resolution).
"""

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from concordat_client import bars
from concordat_client import frames as framelist
from concordat_client.bars import Crop

VIDEO_SUFFIXES = {
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".wmv", ".mpg", ".mpeg", ".ts",
    ".m2ts", ".3gp", ".ogv", ".asf",
}  # fmt: skip
# pdqhash.compute_dihedral's order of the eight hashes.
DIHEDRAL = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flipx",
    "flipy",
    "flipplus",
    "flipminus",
)


class VideoError(Exception):
    """A video could not be read or hashed."""


class MissingTool(VideoError):
    """A package or program video work needs is not installed."""


def sniff_video(head: bytes) -> bool:
    """Whether a file's first bytes are those of a common video container: ISO BMFF (MP4, MOV,
    3GP: ``ftyp`` at offset 4, not an audio-only or still-image brand), Matroska/WebM, AVI, FLV,
    MPEG program and transport streams, ASF/WMV, Ogg with a Theora stream."""
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return brand not in (b"M4A ", b"M4B ", b"M4P ", b"heic", b"heix", b"mif1", b"avif")
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, WebM
        return True
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return True
    if head.startswith((b"FLV\x01", b"\x00\x00\x01\xba", b"\x30\x26\xb2\x75\x8e\x66\xcf\x11")):
        return True
    if head.startswith(b"OggS") and b"\x80theora" in head:
        return True
    # MPEG-TS: a sync byte every 188 bytes.
    return len(head) >= 377 and head[0] == head[188] == head[376] == 0x47


def is_video(path: Path) -> bool:
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return True
    try:
        with path.open("rb") as file:
            return sniff_video(file.read(512))
    except OSError:
        return False


def seconds_per_hash(fps: float) -> float:
    """vPDQ's interval between hashed frames for ``fps`` frames a second (0: every frame)."""
    if fps < 0:
        raise VideoError("--fps must be 0 (every frame) or positive")
    return 0.0 if fps == 0 else 1.0 / fps


def vpdq_frames(path: Path, *, fps: float = 1.0) -> list[list[Any]]:
    """The canonical vPDQ frame list of a video file (the ``vpdq`` package; ``fps`` frames
    hashed a second, vPDQ's default being 1). Raises ``VideoError`` when it has no frame."""
    try:
        import vpdq
    except ImportError as exc:
        raise MissingTool(
            "hashing videos needs the vpdq package: pip install './client[video]'"
        ) from exc
    try:
        features = vpdq.computeHash(str(path), seconds_per_hash=seconds_per_hash(fps))
    except Exception as exc:  # vpdq raises plain exceptions for undecodable files
        raise VideoError(f"{path}: vpdq could not hash it ({exc})") from exc
    if not features:
        raise VideoError(f"{path}: no video frame to hash")
    return framelist.from_vpdq_features(features)


def video_frames(
    path: Path, *, fps: float = 1.0, trim_bars: bool = True, ffmpeg: str = "ffmpeg"
) -> tuple[list[list[Any]], Crop | None]:
    """A video's canonical frame list and the crop that cut its black bars (None: none cut).
    Without bars (or with ``trim_bars`` off) it is ``vpdq_frames``, the ``vpdq`` package's own
    output; with bars, ``frame_list`` hashes vPDQ's frames without them."""
    crop = find_bars(path, fps=fps, ffmpeg=ffmpeg) if trim_bars else None
    if crop is None:
        return vpdq_frames(path, fps=fps), None
    return frame_list(path, fps=fps, crop=crop, ffmpeg=ffmpeg), crop


# --- vPDQ's frames through FFmpeg -----------------------------------------------------------


def frame_rate(path: Path, *, ffprobe: str = "ffprobe") -> float:
    """The frame rate vPDQ reads: the first video stream's average rate, else its base rate."""
    if shutil.which(ffprobe) is None:
        raise MissingTool(
            f"{ffprobe!r} not found: cutting black bars needs FFmpeg (or hash with --keep-bars)"
        )
    command = [ffprobe, "-v", "error", "-select_streams", "v:0", "-of", "json"]
    command += ["-show_entries", "stream=avg_frame_rate,r_frame_rate", str(path)]
    done = subprocess.run(command, capture_output=True, timeout=60, check=False)  # noqa: S603
    try:
        stream = json.loads(done.stdout)["streams"][0]
    except (ValueError, KeyError, IndexError):
        message = done.stderr.decode(errors="replace").strip() or "no video stream"
        raise VideoError(f"{path}: FFmpeg found no video stream ({message})") from None
    for key in ("avg_frame_rate", "r_frame_rate"):
        number, _, denominator = stream.get(key, "0/0").partition("/")
        if int(number or 0) and int(denominator or 0):
            return int(number) / int(denominator)
    raise VideoError(f"{path}: the video has no frame rate")


def frame_step(fps: float, rate: float) -> int:
    """vPDQ hashes every ``frame_step``-th decoded frame: seconds per hash x frame rate,
    truncated, at least 1."""
    import numpy

    return int(seconds_per_hash(fps) * float(numpy.float32(rate))) or 1


def vpdq_seconds(number: int, rate: float) -> float:
    """The time vPDQ gives the ``number``-th decoded frame: the frame number over the frame
    rate in single precision (its timestamps are exactly these: at 30000/1001 frames a second,
    frame 165 is 5.50549984 s, 5505 ms, where double precision gives 5.5055, 5506 ms)."""
    import numpy

    return float(numpy.float32(number) / numpy.float32(rate))


def vpdq_command(path: Path, *, step: int, ffmpeg: str = "ffmpeg") -> list[str]:
    """FFmpeg writing the frames vPDQ hashes (every ``step``-th decoded frame of the first
    video stream, none duplicated or dropped), converted to RGB with the Lanczos scaler as vPDQ
    converts them, as PPM images on standard output."""
    if shutil.which(ffmpeg) is None:
        raise MissingTool(
            f"{ffmpeg!r} not found: cutting black bars needs FFmpeg (or hash with --keep-bars)"
        )
    keep = f"select='not(mod(n,{step}))',scale=flags=lanczos,format=rgb24"
    command = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path)]
    command += ["-map", "0:v:0", "-an", "-sn", "-vf", keep, "-fps_mode", "passthrough"]
    return [*command, "-f", "image2pipe", "-c:v", "ppm", "pipe:1"]


def find_bars(
    path: Path, *, fps: float = 1.0, look: int = bars.BAR_FRAMES, ffmpeg: str = "ffmpeg"
) -> Crop | None:
    """The black bars of a video file, judged on the first ``look`` frames vPDQ hashes that are
    not dark throughout (``bars.Trimmer``); FFmpeg is stopped once they are read."""
    step = frame_step(fps, frame_rate(path))
    sampled = SampledFrames(
        str(path), fps=fps, command=vpdq_command(path, step=step, ffmpeg=ffmpeg)
    )
    try:
        return bars.Trimmer(sampled.pixels(), look=look).decide()
    finally:
        sampled.close()


def frame_list(
    path: Path, *, fps: float = 1.0, crop: Crop | None = None, ffmpeg: str = "ffmpeg"
) -> list[list[Any]]:
    """vPDQ's canonical frame list computed here: the frames vPDQ hashes, numbered and timed as
    vPDQ numbers and times them (frame number / frame rate), each cut to ``crop`` and hashed
    with ``pdqhash``. Uncropped, it equals ``vpdq_frames`` frame for frame (tested)."""
    rate = frame_rate(path)
    step = frame_step(fps, rate)
    sampled = SampledFrames(
        str(path), fps=fps, crop=crop, command=vpdq_command(path, step=step, ffmpeg=ffmpeg)
    )
    pdqhash = _pdqhash()
    found = []
    try:
        for index, pixels in enumerate(sampled.pixels()):
            bits, quality = pdqhash.compute(pixels)
            number = index * step
            ms = framelist.seconds_to_ms(vpdq_seconds(number, rate))
            found.append([number, int(quality), bits_to_hex(bits), ms])
        stderr = sampled.error()
        if sampled.process.wait() != 0:
            raise VideoError(f"{path}: FFmpeg failed: {stderr}")
    finally:
        sampled.close()
    if not found:
        raise VideoError(f"{path}: no video frame to hash")
    return framelist.normalise_frames(found)


# --- frames sampled through FFmpeg ----------------------------------------------------------


def ffmpeg_command(
    source: str, *, fps: float, real_time: bool, ffmpeg: str = "ffmpeg"
) -> list[str]:
    """FFmpeg reading ``source`` (a file or anything FFmpeg opens), keeping ``fps`` frames a
    second, writing them to standard output as PPM (RGB) images. ``real_time`` reads a file at
    its own pace (``-re``), as a broadcast would arrive."""
    if shutil.which(ffmpeg) is None:
        raise MissingTool(f"{ffmpeg!r} not found: install FFmpeg or name it with --ffmpeg")
    if fps <= 0:
        raise VideoError("sampling frames needs --fps above 0")
    command = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
    if real_time:
        command.append("-re")
    # The first frame, then the first at least 1/fps after the last one kept, as vPDQ keeps
    # every (fps x interval)-th frame: the frames vPDQ hashes (the fps filter would take the
    # frame nearest each tick instead, half an interval later). vfr: no frame duplicated.
    interval = 1.0 / fps - 0.0005
    keep = f"select='isnan(prev_selected_t)+gte(t-prev_selected_t,{interval:.6f})'"
    command += ["-i", source, "-an", "-sn", "-vf", keep, "-fps_mode", "vfr"]
    return [*command, "-f", "image2pipe", "-c:v", "ppm", "-pix_fmt", "rgb24", "pipe:1"]


def _token(stream: IO[bytes]) -> bytes | None:
    """The next whitespace-separated token of a PPM header (comments skipped)."""
    token = b""
    while True:
        char = stream.read(1)
        if not char:
            return token or None
        if char == b"#" and not token:
            while char not in (b"\n", b""):
                char = stream.read(1)
            continue
        if char.isspace():
            if token:
                return token
            continue
        token += char


def read_ppm_frames(stream: IO[bytes]) -> Iterator[Any]:
    """RGB frames (numpy arrays, height x width x 3) from a stream of binary PPM images."""
    import numpy

    while True:
        magic = _token(stream)
        if magic is None:
            return
        if magic != b"P6":
            raise VideoError(f"unexpected image in FFmpeg's output ({magic[:8]!r})")
        width, height, maximum = (int(_token(stream) or b"0") for _ in range(3))
        if maximum != 255 or width <= 0 or height <= 0:
            raise VideoError("FFmpeg sent a PPM image this reader does not take")
        size = width * height * 3
        data = stream.read(size)
        if len(data) < size:
            return  # cut short: FFmpeg stopped mid-frame
        yield numpy.frombuffer(data, dtype=numpy.uint8).reshape(height, width, 3)


def _pdqhash():
    try:
        import pdqhash
    except ImportError as exc:
        raise MissingTool(
            "hashing frames needs the pdqhash package: pip install './client[video]'"
        ) from exc
    return pdqhash


def bits_to_hex(bits: Any) -> str:
    return int("".join("1" if bit else "0" for bit in bits), 2).to_bytes(32, "big").hex()


def frame_ms(index: int, fps: float) -> int:
    """The stream time of the ``index``-th frame kept at ``fps`` frames a second."""
    return framelist.seconds_to_ms(index / fps)


class SampledFrames:
    """Frames of ``source`` sampled by FFmpeg at ``fps``, each hashed with PDQ: iterate for
    ``[frame_number, quality, pdq_hex, timestamp_ms]`` (numbered from 0 in the sample, timed by
    their place in it). ``close()`` stops FFmpeg; ``error()`` is what it said when it failed.

    Black bars: each frame is cut to ``crop`` when one is given; with ``trim_bars`` the bars
    are judged on the first ``look`` frames (held back until then, ``bars.Trimmer``) and
    ``crop`` holds the decision once the first frame is out (None: no bars)."""

    def __init__(
        self,
        source: str,
        *,
        fps: float = 1.0,
        real_time: bool = False,
        ffmpeg: str = "ffmpeg",
        trim_bars: bool = False,
        crop: Crop | None = None,
        look: int = bars.BAR_FRAMES,
        command: list[str] | None = None,
    ) -> None:
        self.fps, self.crop, self.look = fps, crop, look
        self.trim_bars = trim_bars and crop is None
        # An argument list, no shell: the source is the caller's own file or URL.
        self.process = subprocess.Popen(  # noqa: S603
            command or ffmpeg_command(source, fps=fps, real_time=real_time, ffmpeg=ffmpeg),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    def pixels(self) -> Iterator[Any]:
        """The frames as RGB arrays, their bars cut as the class says."""
        frames = read_ppm_frames(self.process.stdout)
        if self.crop is not None:
            yield from (self.crop.apply(pixels) for pixels in frames)
        elif self.trim_bars:
            trimmer = bars.Trimmer(frames, look=self.look)
            self.crop = trimmer.decide()
            yield from trimmer
        else:
            yield from frames

    def __iter__(self) -> Iterator[list[Any]]:
        pdqhash = _pdqhash()
        for index, pixels in enumerate(self.pixels()):
            bits, quality = pdqhash.compute(pixels)
            yield [index, int(quality), bits_to_hex(bits), frame_ms(index, self.fps)]

    def dihedral(self) -> Iterator[list[list[Any]]]:
        """Per frame, the 8 frames of its rotations and mirrors (``DIHEDRAL`` order)."""
        pdqhash = _pdqhash()
        for index, pixels in enumerate(self.pixels()):
            hashes, quality = pdqhash.compute_dihedral(pixels)
            ms = frame_ms(index, self.fps)
            yield [[index, int(quality), bits_to_hex(bits), ms] for bits in hashes]

    def close(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
        return self.process.returncode

    def error(self) -> str:
        if self.process.stderr is None or self.process.stderr.closed:
            return ""
        return self.process.stderr.read().decode(errors="replace").strip()[-2000:]


def dihedral_frame_lists(
    path: Path, *, fps: float, crop: Crop | None = None, ffmpeg: str = "ffmpeg"
) -> dict[str, list]:
    """The canonical frame lists of the video's 7 rotations and mirrors (not ``original``,
    which ``video_frames`` gives), from FFmpeg's frames at ``fps``, cut to ``crop`` (the bars
    ``video_frames`` found): a mirrored or turned copy of a shared video matches through one."""
    sampled = SampledFrames(str(path), fps=fps, crop=crop, ffmpeg=ffmpeg)
    lists: dict[str, list] = {name: [] for name in DIHEDRAL[1:]}
    try:
        for eight in sampled.dihedral():
            for name, frame in zip(DIHEDRAL, eight, strict=True):
                if name != "original":
                    lists[name].append(frame)
        stderr = sampled.error()
        if sampled.process.wait() != 0:
            raise VideoError(f"{path}: FFmpeg failed: {stderr}")
    finally:
        sampled.close()
    if not lists["flipx"]:
        raise VideoError(f"{path}: no video frame to hash")
    return {name: framelist.normalise_frames(frames) for name, frames in lists.items()}
