"""What the PDQ index keeps beside its rows (``index.PdqIndex.keep``): for the match store, each
entry's rendering (its JSON without the closing brace) and its quality, as a byte string and a
small number (docs/matching.md, "Step 9").

The bytes are in an append-only ``Arena`` shared by the views of one generation of the index's
arrays, and each row has one int64 (the view's ``kept``): offset << 24 | size << 8 | number, or
``KEPT_NONE``, which a reader reads whole. Bytes once placed are never written again: a row
updated or removed points nowhere (``KEPT_NONE``), and a full arena is copied into a larger one
whose new bytes start past the old one's end. So a reader that took the arena's buffer, then read
a row's ``kept``, finds that row's bytes in its buffer whenever the offset and size lie inside it,
and otherwise treats the row as kept nowhere (``spans_of``): no lock is taken to read.
"""

from dataclasses import dataclass

import numpy as np

KEPT_NONE = -1
# A kept byte string is at most KEPT_SIZE_MAX bytes, its number 0 … KEPT_NUMBER_MAX or None
# (KEPT_NUMBER_NONE); what does not fit is not kept (the owner renders it again when asked).
KEPT_SIZE_MAX = (1 << 16) - 1
KEPT_NUMBER_MAX = 254
KEPT_NUMBER_NONE = 255
KEPT_OFFSET_MAX = (1 << 39) - 1
ARENA_MIN_BYTES = 1 << 20  # an arena's first buffer; each larger one is twice the last at least


def fitting(data: bytes, number: int | None) -> bool:
    """Whether a byte string and its number can be kept."""
    return len(data) <= KEPT_SIZE_MAX and (number is None or 0 <= number <= KEPT_NUMBER_MAX)


def spans_of(buffer: np.ndarray, packed: np.ndarray) -> "KeptSpans":
    """The spans these packed locations give in ``buffer``, taken before they were read: a row
    kept nowhere, or whose bytes lie past the buffer (kept after it grew), is not present, and
    is an empty span at 0, so that a layout given it by mistake copies nothing."""
    start = packed >> 24
    size = (packed >> 8) & KEPT_SIZE_MAX
    present = (packed != KEPT_NONE) & (start + size <= len(buffer))
    return KeptSpans(
        buffer,
        NO_BYTES,
        np.where(present, start, 0),
        np.where(present, size, 0),
        packed & 0xFF,
        present,
    )


def _numbers(kept) -> np.ndarray:
    return np.fromiter(
        (KEPT_NUMBER_NONE if number is None else number for _, number in kept),
        dtype=np.int64,
        count=len(kept),
    )


NO_BYTES = np.zeros(0, dtype=np.uint8)


class Arena:
    """Append-only bytes, shared by the views of one generation of arrays (module docstring).
    Appended to under the index's write lock; read without a lock."""

    def __init__(self) -> None:
        self.buffer = NO_BYTES  # until something is kept: an index may never keep anything
        self.fill = 0

    def append(self, kept: list[tuple[bytes, int | None]]) -> np.ndarray:
        """Place these byte strings one after another (each ``fitting``); returns each one's
        packed location with its number, for ``kept``."""
        data = np.frombuffer(b"".join(part for part, _ in kept), dtype=np.uint8)
        end = len(self.buffer)
        if self.fill + len(data) > end:
            # A larger copy, whose new bytes start past the old buffer's end: an offset handed
            # out from now on lies outside any buffer a reader took before.
            grown = np.empty(max(2 * end, end + len(data), ARENA_MIN_BYTES), dtype=np.uint8)
            grown[: self.fill] = self.buffer[: self.fill]
            self.buffer, self.fill = grown, end
        if self.fill + len(data) > KEPT_OFFSET_MAX:
            raise OverflowError("the kept bytes' arena is full")
        self.buffer[self.fill : self.fill + len(data)] = data
        size = np.fromiter((len(part) for part, _ in kept), dtype=np.int64, count=len(kept))
        start = self.fill + np.cumsum(size) - size
        self.fill += len(data)
        return (start << 24) | (size << 8) | _numbers(kept)


@dataclass(frozen=True)
class KeptSpans:
    """Byte strings and numbers kept for some rows, in their order, as a reader found them:
    row ``i``'s bytes are ``buffer[start[i]:start[i] + size[i]]``, or, where ``start[i]`` is
    negative, ``fresh[-start[i] - 1:][:size[i]]`` (rendered for this reader, not kept), and its
    number ``number[i]`` (``KEPT_NUMBER_NONE``: None); only where ``present[i]``."""

    buffer: np.ndarray  # uint8
    fresh: np.ndarray  # uint8
    start: np.ndarray  # int64
    size: np.ndarray  # int64
    number: np.ndarray  # int64
    present: np.ndarray  # bool

    @classmethod
    def empty(cls) -> "KeptSpans":
        nothing = np.zeros(0, dtype=np.int64)
        return cls(NO_BYTES, NO_BYTES, nothing, nothing, nothing, np.zeros(0, dtype=bool))

    def with_fresh(self, positions: np.ndarray, items: list[tuple[bytes, int | None] | None]):
        """These spans with the rows at ``positions`` (not present) given as ``items`` (None:
        absent still), placed in ``fresh``."""
        given = [item for item in items if item is not None]
        size = np.fromiter((len(data) for data, _ in given), dtype=np.int64, count=len(given))
        number = _numbers(given)
        where = positions[np.fromiter((i is not None for i in items), dtype=bool, count=len(items))]
        start, sizes, numbers, present = (
            self.start.copy(),
            self.size.copy(),
            self.number.copy(),
            self.present.copy(),
        )
        start[where] = -(len(self.fresh) + np.cumsum(size) - size) - 1
        sizes[where] = size
        numbers[where] = number
        present[where] = True
        fresh = np.concatenate((self.fresh, np.frombuffer(b"".join(d for d, _ in given), np.uint8)))
        return KeptSpans(self.buffer, fresh, start, sizes, numbers, present)

    def items(self) -> list[tuple[bytes, int | None] | None]:
        """Each row's ``(bytes, number)``, or None where not present: one Python object per
        row, for the callers that want them."""
        kept, fresh = memoryview(self.buffer), memoryview(self.fresh)
        return [
            None
            if not present
            else (
                (
                    kept[start : start + size]
                    if start >= 0
                    else fresh[-start - 1 : -start - 1 + size]
                ).tobytes(),
                None if number == KEPT_NUMBER_NONE else number,
            )
            for start, size, number, present in zip(
                self.start.tolist(),
                self.size.tolist(),
                self.number.tolist(),
                self.present.tolist(),
                strict=True,
            )
        ]
