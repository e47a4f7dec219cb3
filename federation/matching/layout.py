"""The compiled layout of a batch's pdq matches as JSON bytes (numba, ``nogil``; docs/matching.md,
"Step 9"). Imported on first use, as ``kernels`` is (``answers._layout``).

A match is its entry's kept rendering (``{"signal":…,"quality":90``, without its closing brace:
``answers``) followed by ``,"distance":d}``; a signal's matches are a JSON array of them. The
renderings are spans of bytes (``kept.KeptSpans``): of the index's arena, or of the bytes
rendered for this request. Each array goes after a prefix of the caller's (the document's text
between arrays), and the last prefix closes the document: what the caller would join, written
into one buffer by copies of the spans, with no Python object per match.
"""

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# ,"distance": then the distance's digits, } and , (or ] after a signal's last match)
_DISTANCE = np.frombuffer(b',"distance":', dtype=np.uint8).copy()
_COMMA, _OPEN, _CLOSE, _BRACE, _ZERO = ord(","), ord("["), ord("]"), ord("}"), ord("0")


@intrinsic
def _copy(typingctx, out, at, source, start, size):
    """``out[at:at + size] = source[start:start + size]`` as one ``memcpy`` (LLVM's intrinsic):
    numba's loop for a slice assignment copies a byte at a time. Both arrays are C-contiguous
    ``uint8`` and the caller has checked the bounds."""
    sig = types.void(out, at, source, start, size)

    def codegen(context, builder, signature, args):
        target = context.make_array(signature.args[0])(context, builder, args[0]).data
        origin = context.make_array(signature.args[2])(context, builder, args[2]).data
        cgutils.raw_memcpy(
            builder,
            builder.gep(target, [args[1]]),
            builder.gep(origin, [args[3]]),
            args[4],
            context.get_constant(types.intp, 1),
        )
        return context.get_dummy_value()

    return sig, codegen


@njit(nogil=True, cache=True)
def matches_size(prefix_starts, bounds, which, size, distances):
    """The bytes ``lay_out_matches`` writes: the prefixes, then per signal ``[]`` or ``[`` and
    per match its rendering, ``,"distance":``, the digits, ``}`` and ``,`` or ``]``."""
    total = prefix_starts[-1]
    n_signals = bounds.shape[0] - 1
    for q in range(n_signals):
        if bounds[q] == bounds[q + 1]:
            total += 2
        else:
            total += 1
    for k in range(which.shape[0]):
        total += size[which[k]] + 15 + (1 if distances[k] >= 10 else 0)
    return total


@njit(nogil=True, cache=True)
def lay_out_matches(
    out, prefixes, prefix_starts, bounds, which, start, size, kept, fresh, distances, array_at
):
    """Write into ``out`` (``matches_size`` bytes): for each signal ``q``, prefix ``q``, then
    its matches' array (``which[bounds[q]:bounds[q + 1]]``, positions of rows whose rendering is
    ``kept[start:start + size]``, or ``fresh[-start - 1:][:size]`` for a negative start, with
    ``distances``); then the last prefix. ``array_at[q]`` gets where signal ``q``'s array starts,
    after its prefix (``array_at[n]``: the end). Returns the bytes written."""
    n_signals = bounds.shape[0] - 1
    at = 0
    for q in range(n_signals + 1):
        piece = prefix_starts[q + 1] - prefix_starts[q]
        _copy(out, at, prefixes, prefix_starts[q], piece)
        at += piece
        array_at[q] = at
        if q == n_signals:
            break
        out[at] = _OPEN
        at += 1
        lo, hi = bounds[q], bounds[q + 1]
        if lo == hi:
            out[at] = _CLOSE
            at += 1
        for k in range(lo, hi):
            row = which[k]
            begin, length = start[row], size[row]
            if begin >= 0:
                _copy(out, at, kept, begin, length)
            else:
                _copy(out, at, fresh, -begin - 1, length)
            at += length
            _copy(out, at, _DISTANCE, 0, _DISTANCE.shape[0])
            at += _DISTANCE.shape[0]
            d = distances[k]
            if d >= 10:
                out[at] = _ZERO + d // 10
                at += 1
            out[at] = _ZERO + d % 10
            out[at + 1] = _BRACE
            out[at + 2] = _CLOSE if k == hi - 1 else _COMMA
            at += 3
    return at
