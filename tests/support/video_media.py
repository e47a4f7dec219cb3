"""Real test videos: made with ffmpeg (moving shapes and text over a textured, panning
background), derived copies as the issue lists them, hashed with the ``vpdq`` package as is
(``Library[name]``) and as the partner client hashes them (``Library.client``: black bars cut;
``Library.mirror``: the frames flipped back, as ``--rotations`` queries them).

PDQ, like every DCT hash, is tuned to natural images: on flat synthetic colours its bits sit on
the median and flip under any edit. The background is therefore 1/f ("pink") noise, the spectrum
of natural images, generated here from a seed (no media file in the repository)."""

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import vpdq
from concordat_client import video as client_video

from federation.matching.index import pdq_words
from federation.matching.video import DistinctFrames, distinct_frames
from federation.video.frames import FrameList, from_vpdq_features, normalise_frames

FPS = 15
_SHAPES = (
    "drawbox=x='mod(t*40,240)':y='60+50*sin(t)':w=70:h=70:color=red:t=fill,"
    "drawbox=x='250-mod(t*25,230)':y=20:w=40:h=90:color=0x3060ff:t=fill,"
    "drawtext=text='LIVE %{eif\\:t\\:d}':x=20+t*2:y=180:fontsize=36:fontcolor=white"
)
_OTHER_SHAPES = (
    "drawbox=x='mod(t*70,280)':y=150:w=40:h=40:color=green:t=fill,"
    "drawtext=text='NEWS %{eif\\:t\\:d}':x=200-t*3:y=30:fontsize=30:fontcolor=yellow"
)


def _pan(shapes: str) -> str:
    """A 320x240 window wandering over the 640x480 background, with ``shapes`` drawn on it."""
    return f"crop=320:240:'160+150*sin(t*0.3)':'120+110*cos(t*0.23)',{shapes}"


# name: (input, filter, extra ffmpeg arguments); inputs are "bg:<seed>" (a panned pink-noise
# still), "lavfi:<source>" or another recipe's name.
RECIPES: dict[str, tuple[str, str, list[str]]] = {
    "original": ("bg:1", _pan(_SHAPES), ["-t", "30"]),
    "reencoded": ("original", "null", ["-b:v", "150k"]),
    "scaled": ("original", "scale=640:480", []),
    "trimmed": ("original", "null", ["-ss", "7", "-t", "15"]),
    "cropped": ("original", "crop=iw*0.95:ih*0.95", []),
    "letterboxed": ("original", "scale=320:180,pad=320:240:0:30", []),
    "logo": (
        "original",
        "drawbox=x=270:y=12:w=40:h=20:color=white@0.5:t=fill,"
        "drawtext=text='TV1':x=276:y=14:fontsize=14:fontcolor=black@0.5",
        [],
    ),
    "mirrored": ("original", "hflip", []),
    "unrelated_noise": ("bg:2", _pan(_OTHER_SHAPES), ["-t", "20"]),
    "unrelated_fractal": (
        "lavfi:mandelbrot=s=320x240:r=15",
        "drawtext=text='NEWS':x=20:y=20+t*3:fontsize=28:fontcolor=white",
        ["-t", "20"],
    ),
    "unrelated_pattern": (
        "lavfi:testsrc2=s=320x240:r=15",
        "drawbox=x='mod(t*50,280)':y=100:w=40:h=40:color=red:t=fill",
        ["-t", "15"],
    ),
}
DERIVED = (
    "reencoded",
    "scaled",
    "trimmed",
    "cropped",
    "letterboxed",
    "logo",
    "mirrored",
)
UNRELATED = ("unrelated_noise", "unrelated_fractal", "unrelated_pattern")


def pink_noise_ppm(seed: int, path: Path, height: int = 480, width: int = 640) -> None:
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1
    image = np.empty((height, width, 3))
    for channel in range(3):
        spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f
        plane = np.real(np.fft.ifft2(spectrum))
        image[..., channel] = np.clip(128 + 45 * (plane - plane.mean()) / plane.std(), 0, 255)
    path.write_bytes(b"P6 %d %d 255\n" % (width, height) + image.astype(np.uint8).tobytes())


@dataclass(frozen=True)
class Video:
    name: str
    path: Path
    frames: FrameList  # canonical
    crop: object = None  # the client's crop of its black bars (``concordat_client.bars.Crop``)

    @property
    def distinct(self) -> DistinctFrames:
        return frame_list_distinct(self.frames)


def frame_list_distinct(frames: FrameList) -> DistinctFrames:
    return distinct_frames(
        pdq_words([f.pdq for f in frames.frames]),
        np.array([f.quality for f in frames.frames], dtype=np.int16),
        np.array([f.timestamp_ms for f in frames.frames], dtype=np.int64),
    )


class Library:
    """The recipes made on demand into ``folder`` (one ffmpeg run and one hashing each)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._videos: dict[str, Video] = {}
        self._client: dict[tuple[str, str], Video] = {}

    def _input(self, source: str) -> list[str]:
        kind, _, rest = source.partition(":")
        if kind == "bg":
            still = self.folder / f"bg{rest}.ppm"
            if not still.exists():
                pink_noise_ppm(int(rest), still)
            return ["-loop", "1", "-framerate", str(FPS), "-i", str(still)]
        if kind == "lavfi":
            return ["-f", "lavfi", "-i", rest]
        return ["-i", str(self[source].path)]

    def __getitem__(self, name: str) -> Video:
        if name not in self._videos:
            source, video_filter, extra = RECIPES[name]
            recipe = repr(RECIPES[name]).encode()
            path = self.folder / f"{name}-{hashlib.sha256(recipe).hexdigest()[:8]}.mp4"
            if not path.exists():
                command = ["ffmpeg", "-v", "error", "-y", *self._input(source)]
                command += ["-vf", video_filter, *extra, "-c:v", "libx264", "-pix_fmt", "yuv420p"]
                subprocess.run([*command, str(path)], check=True, timeout=300)
            frames = from_vpdq_features(vpdq.computeHash(str(path)))
            self._videos[name] = Video(name, path, frames)
        return self._videos[name]

    def client(self, name: str) -> Video:
        """The recipe hashed as ``concordat hash`` hashes it (black bars found and cut)."""
        if (name, "client") not in self._client:
            path = self[name].path
            frames, crop = client_video.video_frames(path)
            self._client[name, "client"] = Video(name, path, normalise_frames(frames), crop)
        return self._client[name, "client"]

    def mirror(self, name: str) -> Video:
        """The recipe's frames flipped left to right, as ``match --rotations`` queries them
        (pdqhash's ``flipy``)."""
        if (name, "mirror") not in self._client:
            path = self[name].path
            frames = client_video.dihedral_frame_lists(path, fps=1.0)["flipy"]
            self._client[name, "mirror"] = Video(name, path, normalise_frames(frames))
        return self._client[name, "mirror"]
