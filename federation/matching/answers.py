"""The matched entries as members see them, and the PDQ matches built from them (docs/matching.md).

An entry is rendered once (the sync rendering's state, labels, contributing organisations and
quality) as JSON bytes **without the closing brace**, ``{"signal":{…},…,"quality":90``, kept
beside its quality: ``(open JSON, quality)``. The match store keeps these (``store.py``): a pdq
entry's in the index's arena beside its row (``kept.KeptSpans``), the others as bytes and a tuple
of atoms, which Python's cycle collector does not walk. A match is then that entry's bytes with
``,"distance":d}`` appended: the match API's answer is laid out as bytes by a compiled copy of
the spans (``layout``), with no Python object per match (``pdq_answer_document``,
``pdq_match_documents``, ``json_document``). ``pdq_match_lists`` builds the same matches as
dicts, for the callers that read them (``match_signals``).
"""

import operator
from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import orjson

from federation.contributions.models import SHARED_STATES, Entry
from federation.matching.index import MAX_THRESHOLD
from federation.matching.kept import KEPT_NUMBER_NONE, KeptSpans
from federation.sync.rendering import ROW_FIELDS, render_entries

_RENDERED_KEYS = ("state", "labels", "contributors", "quality")

# A kept rendering: the entry's JSON without its closing brace, and its quality (None: none).
Rendering = tuple[bytes, int | None]


def render_matched_documents(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], Rendering]:
    """The shared entries among these ``(signal type, value)``, as members see them, each as
    ``(open JSON, quality)`` (above)."""
    wanted: dict[str, set[str]] = {}
    for signal_type, value in pairs:
        wanted.setdefault(signal_type, set()).add(value)
    rows = []
    for signal_type, values in wanted.items():
        if values:
            rows.extend(
                Entry.objects.filter(
                    signal_type=signal_type, value__in=values, state__in=SHARED_STATES
                ).values_list(*ROW_FIELDS)
            )
    rendered = {}
    for document in render_entries(rows):
        item = orjson.loads(document)
        entry = {"signal": item["signal"], **{key: item[key] for key in _RENDERED_KEYS}}
        rendered[(item["signal"]["type"], item["signal"]["value"])] = (
            orjson.dumps(entry)[:-1],
            item["quality"],
        )
    return rendered


def entry_dict(rendering: Rendering) -> dict:
    """A kept rendering as a new dict: ``{"signal", "state", "labels", "contributors",
    "quality"}``."""
    return orjson.loads(rendering[0] + b"}")


def render_matched_entries(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """``render_matched_documents`` as dicts."""
    return {pair: entry_dict(r) for pair, r in render_matched_documents(pairs).items()}


# {"distance": d} for every distance, merged into an entry's dict to make a match
_DISTANCES = np.empty(MAX_THRESHOLD + 1, dtype=object)
_DISTANCES[:] = [{"distance": d} for d in range(MAX_THRESHOLD + 1)]


def pdq_match_lists(
    spans: KeptSpans, bounds, which, distances, quality_min, *, complete: bool = False
) -> Iterator[list[dict]]:
    """The pdq signals' matches as dicts, one list per signal in turn: result ``k`` of the
    batch is the entry of distinct row ``which[k]`` (its rendering a span of ``spans``, not
    present when it left the shared set after the index last caught up) at ``distances[k]``;
    signal ``i`` has results ``bounds[i]`` to ``bounds[i + 1]``. Each match is a new dict
    (``entry | {"distance": d}``), made by one ``map``. ``complete``: every row is present."""
    bounds, which, distances = _passing_spans(
        spans, bounds, which, distances, quality_min, complete
    )
    entries = np.empty(len(spans.present), dtype=object)
    entries[:] = [None if r is None else entry_dict(r) for r in spans.items()]
    flat = list(map(operator.or_, entries[which].tolist(), _DISTANCES[distances].tolist()))
    for start, end in pairwise(bounds.tolist()):
        yield flat[start:end]


class JsonPieces(list):
    """A JSON value as a list of bytes pieces, to be joined into the document as they are
    (``json_document``)."""


def pdq_match_documents(
    spans: KeptSpans, bounds, which, distances, quality_min, *, complete: bool = False
) -> Iterator[tuple[JsonPieces, int]]:
    """``pdq_match_lists``'s matches as one JSON array per signal (``JsonPieces``), with its
    number of matches, from the renderings as spans of bytes (``store.rendered_spans``): every
    array laid out at once by a compiled copy (``layout.lay_out_matches``), no Python object per
    match."""
    bounds, which, distances = _passing_spans(
        spans, bounds, which, distances, quality_min, complete
    )
    n = len(bounds) - 1
    body, array_at = _lay_out([b""] * (n + 1), spans, bounds, which, distances)
    at = array_at.tolist()
    for q, count in enumerate(np.diff(bounds).tolist()):
        yield JsonPieces([body[at[q] : at[q + 1]]]), count


def pdq_answer_document(
    head: bytes,
    signals: list[bytes],
    spans: KeptSpans,
    bounds,
    which,
    distances,
    quality_min,
    *,
    complete: bool = False,
) -> tuple[bytes, np.ndarray]:
    """A whole answer whose signals are all pdq (no video frames asked for), and each signal's
    number of matches: ``head`` (the document up to its results' ``[``), then per signal
    ``{"signal":…,"matches":[…]}`` (``signals``: each signal's JSON), the matches as
    ``pdq_match_documents`` makes them, from the renderings as spans of bytes. The text between
    the arrays is given to the compiled layout as its prefixes: the document is written once,
    into one buffer, with no Python object per match nor per signal's matches."""
    bounds, which, distances = _passing_spans(
        spans, bounds, which, distances, quality_min, complete
    )
    prefixes = [
        b'%s{"signal":%s,"matches":' % (b"}," if position else head, signal)
        for position, signal in enumerate(signals)
    ]
    prefixes.append(b"}]}" if signals else head + b"]}")
    body, _ = _lay_out(prefixes, spans, bounds, which, distances)
    return body, np.diff(bounds)


def _passing_spans(spans: KeptSpans, bounds, which, distances, quality_min, complete):
    """The results whose entry is present (still shared) and passes the quality floor: the
    arrays narrowed only when one is dropped (``complete``: the caller knows every row is
    present)."""
    keep = None
    if quality_min is not None:
        keep = spans.present & (spans.number != KEPT_NUMBER_NONE) & (spans.number >= quality_min)
    elif not complete:
        keep = spans.present
    if keep is not None and not keep.all():
        kept = keep[which]
        which, distances = which[kept], distances[kept]
        bounds = np.concatenate(([0], np.cumsum(kept)))[bounds]
    return bounds, which, distances


def _lay_out(prefixes: list[bytes], spans: KeptSpans, bounds, which, distances):
    """``layout.lay_out_matches`` into a buffer of its size: the bytes, and where each array
    starts. The compiled layout checks no index, so the shapes it relies on are checked here,
    before it writes: a prefix per signal and one to close, and a span for every row named."""
    if len(prefixes) != len(bounds) or len(which) != len(distances) or bounds[-1] != len(which):
        raise ValueError(
            f"{len(prefixes)} prefixes, {len(bounds) - 1} signals, {len(which)} matches and "
            f"{len(distances)} distances do not make one answer"
        )
    if len(which) and not 0 <= which.min() <= which.max() < len(spans.size):
        raise ValueError("a match names a row with no span")
    layout = _layout()
    prefix_starts = np.zeros(len(prefixes) + 1, dtype=np.int64)
    np.cumsum(
        np.fromiter(map(len, prefixes), dtype=np.int64, count=len(prefixes)),
        out=prefix_starts[1:],
    )
    joined = np.frombuffer(b"".join(prefixes), dtype=np.uint8)
    out = np.empty(
        layout.matches_size(prefix_starts, bounds, which, spans.size, distances), dtype=np.uint8
    )
    array_at = np.empty(len(bounds), dtype=np.int64)
    written = layout.lay_out_matches(
        out,
        joined,
        prefix_starts,
        bounds,
        which,
        spans.start,
        spans.size,
        spans.buffer,
        spans.fresh,
        distances,
        array_at,
    )
    if written != len(out):
        raise RuntimeError(f"the answer's layout wrote {written} bytes of {len(out)}")
    return out.tobytes(), array_at


def warm_up_layout() -> None:
    """Load the compiled layout now (from numba's cache, or compiling it), as
    ``PdqIndex.warm_up`` does the search, so that the first answer does not pay for it."""
    nothing = np.zeros(0, dtype=np.int64)
    pdq_answer_document(
        b"{", [b"{}"], KeptSpans.empty(), np.zeros(2, dtype=np.int64), nothing,
        np.zeros(0, dtype=np.int16), None, complete=True,
    )  # fmt: skip


def _layout():
    """The compiled layout, imported on first use (numba: ``index._kernels``)."""
    from federation.matching import layout

    return layout


def json_document(value: dict) -> bytes:
    """``value`` as JSON bytes, as ``orjson.dumps`` writes it, where a ``JsonPieces`` found in a
    dict of ``value["results"]`` stands for the JSON its pieces make: one ``join`` in all."""
    results = value["results"]
    head = orjson.dumps({k: v for k, v in value.items() if k != "results"})
    parts = [head[:-1] + b',"results":[' if len(head) > 2 else b'{"results":[']
    for position, result in enumerate(results):
        if position:
            parts.append(b",")
        if not any(isinstance(v, JsonPieces) for v in result.values()):
            parts.append(orjson.dumps(result))
            continue
        opening = b"{"
        for key, item in result.items():
            parts.append(opening + orjson.dumps(key) + b":")
            opening = b","
            if isinstance(item, JsonPieces):
                parts.extend(item)
            else:
                parts.append(orjson.dumps(item))
        parts.append(b"}")
    parts.append(b"]}")
    return b"".join(parts)
