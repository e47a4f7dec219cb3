"""The matched entries as members see them, and the PDQ matches built from them (docs/matching.md).

An entry is rendered once (the sync rendering's state, labels, contributing organisations and
quality) as JSON bytes **without the closing brace**, ``{"signal":{…},…,"quality":90``, kept
beside its quality: ``(open JSON, quality)``. The match store keeps these (``store.py``): bytes
and a tuple of atoms, which Python's cycle collector does not walk. A match is then that entry's
bytes with ``,"distance":d}`` appended, joined per query: the match API's answer is built as
bytes, with no Python object per match (``pdq_match_documents``, ``json_document``).
``pdq_match_lists`` builds the same matches as dicts, for the callers that read them
(``match_signals``).
"""

import operator
from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import orjson

from federation.contributions.models import SHARED_STATES, Entry
from federation.matching.index import MAX_THRESHOLD
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


def _passing(rendered: list, bounds, which, distances, quality_min, complete):
    """The results whose entry is still shared (not None) and passes the quality floor: the
    arrays narrowed, with one Python step per distinct entry, only when one may be dropped
    (``complete``: the caller knows that no entry is None)."""
    keep = (
        [
            rendering is not None
            and (quality_min is None or (rendering[1] is not None and rendering[1] >= quality_min))
            for rendering in rendered
        ]
        if quality_min is not None or (not complete and rendered.count(None))
        else None
    )
    if keep is not None and not all(keep):
        kept = np.asarray(keep, dtype=bool)[which]
        which, distances = which[kept], distances[kept]
        bounds = np.concatenate(([0], np.cumsum(kept)))[bounds]
    return bounds, which, distances


# {"distance": d} for every distance, merged into an entry's dict to make a match
_DISTANCES = np.empty(MAX_THRESHOLD + 1, dtype=object)
_DISTANCES[:] = [{"distance": d} for d in range(MAX_THRESHOLD + 1)]
# ,"distance":d}, for every distance: appended to an entry's open JSON to make a match
_DISTANCE_ENDS = np.empty(MAX_THRESHOLD + 1, dtype=object)
_DISTANCE_ENDS[:] = [b',"distance":%d},' % d for d in range(MAX_THRESHOLD + 1)]


def pdq_match_lists(
    rendered: list, bounds, which, distances, quality_min, *, complete: bool = False
) -> Iterator[list[dict]]:
    """The pdq signals' matches as dicts, one list per signal in turn: result ``k`` of the
    batch is the entry ``rendered[which[k]]`` (a kept rendering, or None when it left the shared
    set after the index last caught up) at ``distances[k]``; signal ``i`` has results
    ``bounds[i]`` to ``bounds[i + 1]``. Each match is a new dict (``entry | {"distance": d}``),
    made by one ``map``. ``complete``: no rendering is None (saves a pass over them)."""
    bounds, which, distances = _passing(rendered, bounds, which, distances, quality_min, complete)
    entries = np.empty(len(rendered), dtype=object)
    entries[:] = [None if r is None else entry_dict(r) for r in rendered]
    flat = list(map(operator.or_, entries[which].tolist(), _DISTANCES[distances].tolist()))
    for start, end in pairwise(bounds.tolist()):
        yield flat[start:end]


class JsonPieces(list):
    """A JSON value as a list of bytes pieces, to be joined into the document as they are
    (``json_document``)."""


def pdq_match_documents(
    rendered: list, bounds, which, distances, quality_min, *, complete: bool = False
) -> Iterator[tuple[JsonPieces, int]]:
    """``pdq_match_lists``'s matches as one JSON array per signal, in pieces
    (``JsonPieces``), with its number of matches. Each match is two pieces: its entry's open
    JSON, then ``,"distance":d},`` (``,"distance":d}]`` for a signal's last match, whose first
    piece is ``[`` and the entry's). numpy lays the pieces of every match side by side: no
    Python object per match, and the answer is one ``join`` (``json_document``)."""
    bounds, which, distances = _passing(rendered, bounds, which, distances, quality_min, complete)
    if not complete and rendered.count(None):
        rendered = [r or (b"", None) for r in rendered]
    opened = np.empty(len(rendered), dtype=object)
    opened[:] = list(map(operator.itemgetter(0), rendered))
    pieces = np.empty(2 * len(which), dtype=object)
    pieces[0::2] = opened[which]
    pieces[1::2] = _DISTANCE_ENDS[distances]
    starts, ends = bounds[:-1], bounds[1:]
    firsts, lasts = starts[ends > starts], ends[ends > starts] - 1
    pieces[2 * firsts] = [b"[" + entry for entry in opened[which[firsts]].tolist()]
    pieces[2 * lasts + 1] = _DISTANCE_LAST[distances[lasts]]
    flat = pieces.tolist()
    for start, end in pairwise(bounds.tolist()):
        yield (JsonPieces(flat[2 * start : 2 * end]) if end > start else _EMPTY), end - start


_EMPTY = JsonPieces([b"[]"])
# ,"distance":d}] for every distance: a signal's last match, which closes its array
_DISTANCE_LAST = np.empty(MAX_THRESHOLD + 1, dtype=object)
_DISTANCE_LAST[:] = [b',"distance":%d}]' % d for d in range(MAX_THRESHOLD + 1)]


def pdq_answer_document(
    head: bytes,
    signals: list[bytes],
    rendered: list,
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
    ``pdq_match_documents`` makes them. Every piece of the document goes to its place in one
    numpy array (a signal's opening, then two pieces per match), which is joined once: no list
    per signal, no pass per signal over its matches."""
    bounds, which, distances = _passing(rendered, bounds, which, distances, quality_min, complete)
    if not complete and rendered.count(None):
        rendered = [r or (b"", None) for r in rendered]
    opened = np.fromiter(map(operator.itemgetter(0), rendered), dtype=object, count=len(rendered))
    counts = np.diff(bounds)
    starts = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(1 + 2 * counts, out=starts[1:])  # signal i's opening is piece starts[i]
    pieces = np.empty(starts[-1] + 1, dtype=object)
    # match k of signal q: pieces starts[q] + 1 + 2 (k - bounds[q]) and the one after
    slots = np.repeat(starts[:-1] - 2 * bounds[:-1] + 1, counts) + 2 * np.arange(len(which))
    pieces[slots] = opened[which]
    ends = _DISTANCE_ENDS[distances]
    found = counts > 0
    ends[bounds[1:][found] - 1] = _DISTANCE_LAST[distances[bounds[1:][found] - 1]]
    pieces[slots + 1] = ends
    openings = [
        b'%s{"signal":%s,"matches":%s'
        % (b"}," if position else head, signal, b"[" if count else b"[]")
        for position, (signal, count) in enumerate(zip(signals, counts.tolist(), strict=True))
    ]
    pieces[starts[:-1]] = np.fromiter(openings, dtype=object, count=len(openings))
    pieces[-1] = b"}]}" if len(signals) else head + b"]}"
    return b"".join(pieces.tolist()), counts


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
