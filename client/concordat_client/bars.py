"""Black bars (letterbox, pillarbox) at the edges of a video, found on its first frames and cut
from every frame before PDQ (docs/client.md, "Video": letterbox bars).

PDQ hashes the whole frame, so a copy re-framed with bars (a 4:3 film padded into 16:9, a 16:9
one into 4:3) hashes far from its original: 96-114 bits apart in the tests, where the same
frames without their bars are a few bits away. A still image's bars are judged on the image
(``hashing.trim_bars``); a video's are judged once, on its first frames together, and the same
crop is applied to every frame, so a dark scene later in the video is never cut into.

The rule: a row or column is a bar when no value of it exceeds ``BAR_LEVEL`` (of 255) in any of
the first ``look`` frames that are not dark throughout (a fade from black tells nothing); each
edge's bar is the run of such rows or columns from that edge, at most ``MAX_BAR`` of the
dimension. No bar at any edge: no crop, and the video is hashed exactly as vPDQ hashes it."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

BAR_LEVEL = 32  # a row or column with no value above this (of 255) is black
BAR_FRAMES = 10  # frames a file's bars are judged on (those not dark throughout)
LIVE_BAR_FRAMES = 5  # live: the frames held back before the first is sent (no later alert at 5)
MAX_BAR = 0.4  # the most of a dimension one edge's bar may take (a 9:16 video in 16:9: 34 %)


@dataclass(frozen=True)
class Crop:
    """The picture kept of ``frame_width`` x ``frame_height`` frames: ``width`` x ``height`` at
    (``x``, ``y``) from the top left, in pixels."""

    x: int
    y: int
    width: int
    height: int
    frame_width: int
    frame_height: int

    def apply(self, pixels: Any) -> Any:
        """The picture of one frame (height x width x 3). A frame of another size (a stream that
        changed resolution) is kept whole: these bars were not measured on it."""
        import numpy

        if pixels.shape[:2] != (self.frame_height, self.frame_width):
            return pixels
        picture = pixels[self.y : self.y + self.height, self.x : self.x + self.width]
        return numpy.ascontiguousarray(picture)

    def as_json(self) -> dict[str, int]:
        return {
            "x": self.x,
            "y": self.y,
            "width": self.width,
            "height": self.height,
            "frame_width": self.frame_width,
            "frame_height": self.frame_height,
        }

    def __str__(self) -> str:
        return (
            f"{self.width}x{self.height} at ({self.x},{self.y}) of "
            f"{self.frame_width}x{self.frame_height}"
        )


def _run(dark: Any, limit: int) -> int:
    """How many leading items of the boolean array ``dark`` are true, at most ``limit``."""
    run = 0
    while run < limit and dark[run]:
        run += 1
    return run


def dark_edges(pixels: Any) -> tuple[int, int, int, int] | None:
    """The black rows at the top and bottom and columns at the left and right of one frame
    (each at most ``MAX_BAR`` of its dimension); None when the frame is dark throughout."""
    if int(pixels.max()) <= BAR_LEVEL:
        return None
    height, width = pixels.shape[:2]
    rows = pixels.max(axis=(1, 2)) <= BAR_LEVEL
    columns = pixels.max(axis=(0, 2)) <= BAR_LEVEL
    tall, wide = int(height * MAX_BAR), int(width * MAX_BAR)
    return (
        _run(rows, tall),
        _run(rows[::-1], tall),
        _run(columns, wide),
        _run(columns[::-1], wide),
    )


def detect(frames: Iterable[Any]) -> Crop | None:
    """The crop that removes the bars every frame of ``frames`` shows (frames dark throughout,
    and frames of another size than the first, are not counted); None when there is none."""
    size = None
    edges = None
    for pixels in frames:
        if size is None:
            size = pixels.shape[:2]
        elif pixels.shape[:2] != size:
            continue
        found = dark_edges(pixels)
        if found is not None:
            edges = found if edges is None else tuple(map(min, edges, found))
    if edges is None or not any(edges):
        return None
    top, bottom, left, right = edges
    height, width = size
    return Crop(left, top, width - left - right, height - top - bottom, width, height)


class Trimmer:
    """Frames (RGB arrays) without their bars: the first ``look`` frames that are not dark
    throughout (at most ``3 * look`` frames in all) are read and held to judge the bars, then
    every frame is given cropped, those held first. ``crop`` is the decision (None: no bars)."""

    def __init__(self, frames: Iterable[Any], *, look: int = BAR_FRAMES) -> None:
        self._frames = iter(frames)
        self.look = look
        self.held: list[Any] = []
        self.decided = False
        self.crop: Crop | None = None

    def decide(self) -> Crop | None:
        if not self.decided:
            judged = 0
            for pixels in self._frames:
                self.held.append(pixels)
                judged += int(pixels.max()) > BAR_LEVEL
                if judged >= self.look or len(self.held) >= 3 * self.look:
                    break
            self.crop = detect(self.held)
            self.decided = True
        return self.crop

    def __iter__(self) -> Iterator[Any]:
        crop = self.decide()
        held, self.held = self.held, []
        for pixels in held:
            yield crop.apply(pixels) if crop else pixels
        for pixels in self._frames:
            yield crop.apply(pixels) if crop else pixels
