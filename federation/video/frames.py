"""The vPDQ frame list: its one canonical signed form, validation, normalisation, identity digest,
and conversion from and to the forms other tools use (docs/signing.md §15, docs/video.md).

A vPDQ hash is, per sampled frame, the frame number, the frame's quality (0-100), its PDQ hash
(64 hex) and its timestamp. The canonical form is the JSON array

    [[frame_number, quality, "pdq_hex", timestamp_ms], ...]

in strictly increasing frame number order, PDQ hex in lowercase and timestamps in integer
milliseconds (no float ever enters signed bytes). Its canonical bytes are its RFC 8785 (JCS)
serialisation, which for this shape is compact JSON; the entry's identity (the signal's
``value``) is the lowercase hex SHA-256 of those bytes, so two members hashing the same file with
the same vPDQ settings sign the same value.

The signed form is strict (``parse_frames``): a hub refuses a list that is not already
canonical, so the signed bytes and the digest agree. Lenient input (``normalise_frames``: any
order, uppercase hex, float seconds) is for the edges only: the vpdq package's output, match
queries, python-threatexchange's string form (which drops frame numbers and prints timestamps to
three significant digits, so it is never signed).
"""

import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import orjson

# 20,000 frames is 5 h 33 min at vPDQ's default of one hash a second; about 90 bytes a frame in
# canonical JSON, so at most ~1.8 MB a signal, four to a bulk request of the default 8 MiB.
MAX_FRAMES = 20_000
# Frame numbers and timestamps fit a signed 32-bit integer (a 24-day video at 1,000 frames a
# second), so stores and other languages can keep them in an int32.
MAX_FRAME_NUMBER = 2**31 - 1
MAX_TIMESTAMP_MS = 2**31 - 1
PDQ_HEX_LENGTH = 64
_LOWER_HEX = re.compile(r"[0-9a-f]{64}")
_ANY_HEX = re.compile(r"[0-9a-fA-F]{64}")
# python-threatexchange prints a timestamp with the format spec ".3" (three significant digits).
THREATEXCHANGE_TIMESTAMP_FORMAT = ".3"


class FrameListError(ValueError):
    """A frame list is not valid; ``index`` is the offending frame's position (or None)."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        where = f"frame {index}: " if index is not None else ""
        super().__init__(where + message)
        self.index = index
        self.message = message


class Frame(NamedTuple):
    """One sampled frame of a vPDQ hash, in canonical form (a tuple: cheap to build by the
    thousand)."""

    number: int
    quality: int
    pdq: str  # 64 lowercase hex characters
    timestamp_ms: int

    def to_document(self) -> list[int | str]:
        return [self.number, self.quality, self.pdq, self.timestamp_ms]


@dataclass(frozen=True, slots=True)
class FrameList:
    """A canonical vPDQ frame list with its canonical bytes and identity digest."""

    frames: tuple[Frame, ...]
    canonical: bytes
    digest: str  # lowercase hex SHA-256 of ``canonical``: the entry's value

    def __len__(self) -> int:
        return len(self.frames)

    def to_document(self) -> list[list[int | str]]:
        return [frame.to_document() for frame in self.frames]


def _int_in(value: object, low: int, high: int) -> bool:
    # bool is an int subclass in Python, but not a JSON number: refuse it.
    return type(value) is int and low <= value <= high


def _check_frame(item: object, index: int, *, strict: bool) -> Frame:
    if not isinstance(item, list | tuple) or len(item) != 4:
        raise FrameListError(
            "each frame is an array [frame_number, quality, pdq_hex, timestamp_ms]", index=index
        )
    number, quality, pdq, timestamp_ms = item
    if not _int_in(number, 0, MAX_FRAME_NUMBER):
        raise FrameListError(
            f"frame_number must be an integer 0 to {MAX_FRAME_NUMBER}", index=index
        )
    if not _int_in(quality, 0, 100):
        raise FrameListError("quality must be an integer 0 to 100", index=index)
    pattern = _LOWER_HEX if strict else _ANY_HEX
    if not isinstance(pdq, str) or not pattern.fullmatch(pdq):
        case = "lowercase " if strict else ""
        raise FrameListError(f"pdq_hex must be 64 {case}hexadecimal characters", index=index)
    if not _int_in(timestamp_ms, 0, MAX_TIMESTAMP_MS):
        raise FrameListError(
            f"timestamp_ms must be an integer 0 to {MAX_TIMESTAMP_MS} (milliseconds)", index=index
        )
    return Frame(number, quality, pdq.lower(), timestamp_ms)


def _check_order(frames: Sequence[Frame]) -> None:
    for index in range(1, len(frames)):
        previous, frame = frames[index - 1], frames[index]
        if frame.number <= previous.number:
            raise FrameListError(
                "frame numbers must be strictly increasing (sorted, no repeats)", index=index
            )
        if frame.timestamp_ms < previous.timestamp_ms:
            raise FrameListError(
                "timestamps must not decrease as frame numbers increase", index=index
            )


def _check_count(count: int) -> None:
    if count == 0:
        raise FrameListError("a vpdq signal has at least one frame")
    if count > MAX_FRAMES:
        raise FrameListError(f"at most {MAX_FRAMES} frames (this list has {count})")


def _frame_list(frames: tuple[Frame, ...]) -> FrameList:
    canonical = canonical_frames_bytes(frames)
    return FrameList(frames, canonical, hashlib.sha256(canonical).hexdigest())


def parse_frames(document: object, *, max_frames: int = MAX_FRAMES) -> FrameList:
    """The frame list of a signed object, which must already be canonical: an array of 1 to
    ``max_frames`` arrays ``[frame_number, quality, pdq_hex, timestamp_ms]``, integers (not
    booleans, not floats such as ``1.0``) in their bounds, lowercase hex, frame numbers strictly
    increasing and timestamps not decreasing. Raises ``FrameListError`` at the first fault."""
    if not isinstance(document, list):
        raise FrameListError("must be an array of frames")
    _check_count(len(document))
    if len(document) > max_frames:
        raise FrameListError(f"at most {max_frames} frames here (this list has {len(document)})")
    frames = []
    last_number, last_ms = -1, 0
    hex_match = _LOWER_HEX.fullmatch
    # One combined test per frame on the ingest path; the first frame failing it goes through
    # the detailed checks, which say what is wrong.
    for index, item in enumerate(document):
        if type(item) is list and len(item) == 4:
            number, quality, pdq, time_ms = item
            if (
                type(number) is int
                and type(quality) is int
                and type(time_ms) is int
                and type(pdq) is str
                and last_number < number <= MAX_FRAME_NUMBER
                and 0 <= quality <= 100
                and last_ms <= time_ms <= MAX_TIMESTAMP_MS
                and hex_match(pdq)
            ):
                frames.append(Frame(number, quality, pdq, time_ms))
                last_number, last_ms = number, time_ms
                continue
        frame = _check_frame(item, index, strict=True)
        if frame.number <= last_number:
            raise FrameListError(
                "frame numbers must be strictly increasing (sorted, no repeats)", index=index
            )
        raise FrameListError("timestamps must not decrease as frame numbers increase", index=index)
    # The validated list is made of exact lists, ints and ASCII strings: its compact JSON is the
    # canonical form, without building it again from the frames.
    canonical = orjson.dumps(document)
    return FrameList(tuple(frames), canonical, hashlib.sha256(canonical).hexdigest())


def normalise_frames(frames: Iterable[object], *, max_frames: int = MAX_FRAMES) -> FrameList:
    """Bring a frame list to canonical form, leniently: frames as 4-item arrays (as in
    ``parse_frames``, hex in either case) or ``Frame`` objects, in any order; sorts them by frame
    number and lowercases the hex. A repeated frame number, or timestamps that decrease as frame
    numbers increase, are refused (they cannot come from one video)."""
    checked = []
    for index, item in enumerate(frames):
        if index >= max_frames:
            raise FrameListError(f"at most {max_frames} frames here")
        if isinstance(item, Frame):
            item = item.to_document()
        checked.append(_check_frame(item, index, strict=False))
    _check_count(len(checked))
    checked.sort(key=lambda frame: frame.number)
    ordered = tuple(checked)
    _check_order(ordered)
    return _frame_list(ordered)


def canonical_frames_bytes(frames: Sequence[Frame]) -> bytes:
    """RFC 8785 bytes of the canonical array. Only integers and ASCII strings: JCS is compact
    JSON here, which orjson writes byte for byte (checked against rfc8785 by the tests)."""
    return orjson.dumps([[*frame] for frame in frames])


def frames_digest(frames: Sequence[Frame]) -> str:
    """The identity of a vPDQ signal: lowercase hex SHA-256 of its canonical bytes."""
    return hashlib.sha256(canonical_frames_bytes(frames)).hexdigest()


def seconds_to_ms(seconds: float) -> int:
    """Milliseconds from vPDQ's float seconds: ``seconds * 1000`` computed in IEEE-754 double,
    rounded to the nearest integer, halves up (as Go's ``math.Round``, Java's ``Math.round`` and
    JavaScript's ``Math.round`` do for non-negative numbers)."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        raise FrameListError("a timestamp must be a number of seconds")
    if not math.isfinite(seconds) or seconds < 0:
        raise FrameListError("a timestamp must be a finite, non-negative number of seconds")
    product = float(seconds) * 1000.0
    whole = math.floor(product)
    # ``product - whole`` is exact for doubles below 2**52, so halves are seen as halves.
    return int(whole) + (1 if product - whole >= 0.5 else 0)


def from_vpdq_features(features: Iterable[object]) -> FrameList:
    """The canonical frame list of the ``vpdq`` package's ``computeHash`` output (objects with
    ``frame_number``, ``quality``, ``hex`` and ``timestamp`` in float seconds)."""
    return normalise_frames(
        [
            [feature.frame_number, feature.quality, feature.hex, seconds_to_ms(feature.timestamp)]
            for feature in features
        ]
    )


def from_threatexchange(text: str) -> FrameList:
    """Read python-threatexchange's string form of a vPDQ signal: a JSON array of strings
    ``"pdq_hex,quality,timestamp_seconds"`` in frame order. That form has no frame numbers: the
    position in the array becomes the frame number (0, 1, 2...). Its timestamps carry three
    significant digits (``1.23e+02``), so times past 9.99 s are approximate: the result is a
    different signal (another digest) from the canonical form of the same video's vPDQ output,
    and matches it frame for frame, but with coarser timestamps."""
    try:
        items = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise FrameListError("python-threatexchange form: not JSON") from exc
    if not isinstance(items, list):
        raise FrameListError("python-threatexchange form: must be a JSON array of strings")
    frames = []
    for index, item in enumerate(items):
        parts = item.split(",") if isinstance(item, str) else []
        if len(parts) != 3:
            raise FrameListError('each item is "pdq_hex,quality,timestamp"', index=index)
        pdq, quality_text, time_text = parts
        try:
            quality = int(quality_text)
            seconds = float(time_text)
        except ValueError as exc:
            raise FrameListError("quality or timestamp is not a number", index=index) from exc
        frames.append([index, quality, pdq, seconds_to_ms(seconds)])
    return normalise_frames(frames)


def to_threatexchange(frames: FrameList | Sequence[Frame]) -> str:
    """python-threatexchange's string form (the inverse of ``from_threatexchange`` up to the
    loss it documents): frame numbers dropped, timestamps as float seconds to three significant
    digits."""
    if isinstance(frames, FrameList):
        frames = frames.frames
    return json.dumps(
        [
            f"{frame.pdq},{frame.quality},{frame.timestamp_ms / 1000:{THREATEXCHANGE_TIMESTAMP_FORMAT}}"
            for frame in frames
        ]
    )
