"""The vPDQ frame list in its one canonical signed form (docs/video.md §1, docs/signing.md §15),
written from the documentation, as a partner in another language would: the hub's code is not
imported (tests/client/test_imports.py), and tests check it against the published vectors.

A frame is ``[frame_number, quality, pdq_hex, timestamp_ms]``; a canonical list holds 1 to 20,000
of them in strictly increasing frame number, timestamps never decreasing, integers only (no
float ever enters signed bytes), the hex in lowercase. Its canonical bytes are its RFC 8785
serialisation (compact JSON for this shape); the signal's value is their SHA-256 in hex.
"""

import hashlib
import json
import math
import re
from collections.abc import Iterable
from typing import Any

import rfc8785

MAX_FRAMES = 20_000
MAX_INT32 = 2**31 - 1
_LOWER_HEX = re.compile(r"[0-9a-f]{64}")
_ANY_HEX = re.compile(r"[0-9a-fA-F]{64}")

Frame = list  # [frame_number, quality, pdq_hex, timestamp_ms]


class FrameListError(ValueError):
    """Not a valid frame list; ``index`` is the offending frame's position (or None)."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__((f"frame {index}: " if index is not None else "") + message)
        self.index = index


def _integer(value: object, high: int) -> bool:
    return type(value) is int and 0 <= value <= high  # a bool is not a JSON number


def _check_frame(item: object, index: int, *, strict: bool) -> list[Any]:
    if not isinstance(item, list | tuple) or len(item) != 4:
        raise FrameListError(
            "each frame is an array [frame_number, quality, pdq_hex, timestamp_ms]", index=index
        )
    number, quality, pdq, timestamp_ms = item
    if not _integer(number, MAX_INT32):
        raise FrameListError(f"frame_number must be an integer 0 to {MAX_INT32}", index=index)
    if not _integer(quality, 100):
        raise FrameListError("quality must be an integer 0 to 100", index=index)
    if not isinstance(pdq, str) or not (_LOWER_HEX if strict else _ANY_HEX).fullmatch(pdq):
        case = "lowercase " if strict else ""
        raise FrameListError(f"pdq_hex must be 64 {case}hexadecimal characters", index=index)
    if not _integer(timestamp_ms, MAX_INT32):
        raise FrameListError(
            f"timestamp_ms must be an integer 0 to {MAX_INT32} (milliseconds)", index=index
        )
    return [number, quality, pdq.lower(), timestamp_ms]


def _check_list(frames: list[list[Any]]) -> None:
    if not frames:
        raise FrameListError("a vpdq signal has at least one frame")
    if len(frames) > MAX_FRAMES:
        raise FrameListError(f"at most {MAX_FRAMES} frames (this list has {len(frames)})")
    for index in range(1, len(frames)):
        if frames[index][0] <= frames[index - 1][0]:
            raise FrameListError(
                "frame numbers must be strictly increasing (sorted, no repeats)", index=index
            )
        if frames[index][3] < frames[index - 1][3]:
            raise FrameListError(
                "timestamps must not decrease as frame numbers increase", index=index
            )


def parse_frames(document: object) -> list[list[Any]]:
    """A list that must already be canonical (what a signed ``add`` carries); raises
    ``FrameListError`` at the first fault, as the hub refuses it."""
    if not isinstance(document, list):
        raise FrameListError("must be an array of frames")
    frames = [_check_frame(item, i, strict=True) for i, item in enumerate(document)]
    _check_list(frames)
    return frames


def normalise_frames(items: Iterable[object]) -> list[list[Any]]:
    """The canonical list of a lenient one (any order, hex in either case): sorted by frame
    number, hex lowercased; a repeated frame number or a timestamp going back is refused."""
    frames = [_check_frame(item, i, strict=False) for i, item in enumerate(items)]
    frames.sort(key=lambda frame: frame[0])
    _check_list(frames)
    return frames


def canonical_bytes(frames: list[list[Any]]) -> bytes:
    """The RFC 8785 bytes of a canonical list (compact JSON: integers and ASCII strings)."""
    return rfc8785.dumps(frames)


def digest(frames: list[list[Any]]) -> str:
    """The signal's value: lowercase hex SHA-256 of the canonical bytes."""
    return hashlib.sha256(canonical_bytes(frames)).hexdigest()


def seconds_to_ms(seconds: float) -> int:
    """Milliseconds from float seconds: ``seconds * 1000`` in IEEE-754 double, rounded to the
    nearest integer, halves up (docs/video.md §1; not ``floor(x + 0.5)``, whose addition can
    round a product just below one half up)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise FrameListError("a timestamp must be a number of seconds")
    if not math.isfinite(seconds) or seconds < 0:
        raise FrameListError("a timestamp must be a finite, non-negative number of seconds")
    product = float(seconds) * 1000.0
    whole = math.floor(product)
    return int(whole) + (1 if product - whole >= 0.5 else 0)


def from_vpdq_features(features: Iterable[Any]) -> list[list[Any]]:
    """The canonical list of the ``vpdq`` package's ``computeHash`` output (``frame_number``,
    ``quality``, ``hex``, ``timestamp`` in float seconds): every frame kept, whatever its
    quality (the quality floor is a matching setting)."""
    return normalise_frames(
        [f.frame_number, f.quality, f.hex, seconds_to_ms(f.timestamp)] for f in features
    )


# python-threatexchange's string form of a vPDQ signal (docs/video.md §2), for its extension
# only: it drops frame numbers and prints times with three significant digits, so it is never
# signed nor hashed into a value.


def to_threatexchange(frames: list[list[Any]]) -> str:
    """python-threatexchange's ``VPDQSignal`` string of a canonical list: a JSON array of
    ``"pdq_hex,quality,seconds"``, the seconds printed with the format spec ``.3``."""
    return json.dumps([f"{pdq},{quality},{ms / 1000:.3}" for _, quality, pdq, ms in frames])


def from_threatexchange(text: str) -> list[list[Any]]:
    """A canonical list from python-threatexchange's string form: frame number = position, the
    printed seconds to milliseconds (``seconds_to_ms``). Not the original list: its value
    differs from the digest of the vPDQ output it came from (docs/video.md §2)."""
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise FrameListError("python-threatexchange form: not JSON") from exc
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise FrameListError("python-threatexchange form: must be a JSON array of strings")
    frames = []
    for index, item in enumerate(items):
        parts = item.split(",")
        if len(parts) != 3:
            raise FrameListError("each item is 'pdq_hex,quality,seconds'", index=index)
        pdq, quality_text, seconds_text = parts
        try:
            quality, seconds = int(quality_text), float(seconds_text)
        except ValueError as exc:
            raise FrameListError("quality or seconds is not a number", index=index) from exc
        frames.append([index, quality, pdq, seconds_to_ms(seconds)])
    return normalise_frames(frames)
