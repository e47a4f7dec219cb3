"""What the PDQ index keeps beside its rows (the match store's renderings) and the compiled layout
of an answer from them (``kept.Arena``, ``kept.KeptSpans``, ``answers.pdq_answer_document``):
bytes once handed to a reader are never written again, whatever is kept, updated, merged or
forgotten after it took them, and the answer laid out from kept and fresh spans is byte for byte
the JSON of its matches."""

import numpy as np
import orjson
import pytest

from federation.matching import kept as kept_module
from federation.matching.answers import (
    json_document,
    pdq_answer_document,
    pdq_match_documents,
)
from federation.matching.index import PdqIndex, words_hex
from federation.matching.kept import KEPT_SIZE_MAX, KeptSpans


def built(n: int, seed: int = 5) -> PdqIndex:
    hashes = np.random.default_rng(seed).integers(0, 2**64, size=(n, 4), dtype=np.uint64)
    index = PdqIndex()
    index.build(hashes, np.zeros(n, dtype=np.int16), np.ones(n, dtype=np.uint8))
    return index


def rendering(row: int, size: int, round_: int = 0) -> bytes:
    """Distinct bytes of ``size`` for a row and a round (what a kept rendering stands for)."""
    text = f"{row}:{round_}:".encode()
    return (text * (size // len(text) + 1))[:size]


def read(spans: KeptSpans) -> list[tuple[bytes, int | None] | None]:
    return spans.items()


class WriterBetween:
    """A view whose ``kept`` is read only after ``write`` has run: a reader of
    ``PdqIndex.kept_spans`` that took the arena's buffer, then lost the processor to a writer."""

    def __init__(self, view, write) -> None:
        self.arena, self._view, self._write = view.arena, view, write

    @property
    def kept(self):
        self._write()
        return self._view.kept


def test_a_reader_never_takes_bytes_placed_after_its_buffer_for_its_own():
    index = built(400)
    view = index._view
    first = np.arange(0, 100)
    assert index.keep(view, first, [(rendering(r, 3000), r % 101) for r in first.tolist()])
    buffer = view.arena.buffer
    later = np.arange(100, 400)

    def keep_later():  # 300 more of 3,000 bytes: past the arena's first MiB, so it grows
        assert index.keep(view, later, [(rendering(r, 3000), None) for r in later.tolist()])

    rows = np.arange(0, 400)
    spans = index.kept_spans(WriterBetween(view, keep_later), rows)
    assert spans.buffer is buffer and view.arena.buffer is not buffer
    # the bytes in its buffer read as they were; the rows kept into the grown copy read as not
    # kept (not as whatever its older buffer holds there)
    assert read(spans) == [(rendering(r, 3000), r % 101) for r in range(100)] + [None] * 300
    # a reader taking them now finds all of them
    now = index.kept_spans(index._view, rows)
    assert read(now) == [(rendering(r, 3000), r % 101 if r < 100 else None) for r in range(400)]


def test_an_update_or_removal_drops_what_was_kept_and_a_merge_carries_the_rest():
    index = built(50)
    view = index._view
    rows = np.arange(50)
    assert index.keep(view, rows, [(rendering(r, 40), 90) for r in range(50)])
    updated, removed = words_hex(view.hashes[3]), words_hex(view.hashes[4])
    index.upsert(updated, state="disputed", quality=10)
    assert index.remove(removed)
    added = index._view
    index.upsert("ab" * 32, state="vetted", quality=None)
    assert index._view.kept is added.kept  # an add publishes a view on the same arrays
    index._merge(index._view)  # a compaction: new arrays, what is kept copied across
    merged = index._view
    values = [words_hex(h) for h in view.hashes[:50]]
    positions = {words_hex(merged.hashes[r]): r for r in range(merged.n_rows)}
    after = read(index.kept_spans(merged, np.array([positions[v] for v in values if v != removed])))
    expected = [(rendering(r, 40), 90) for r in range(50) if r != 4]
    expected[3] = None  # updated: its rendering is stale
    assert after == expected


def test_forgetting_starts_afresh_and_leaves_readers_their_bytes():
    index = built(20)
    view = index._view
    rows = np.arange(20)
    assert index.keep(view, rows, [(rendering(r, 100), None) for r in range(20)])
    taken = index.kept_spans(view, rows)
    index.forget_kept()
    # a search that started before (its rows numbered alike) keeps into the new arena
    assert index.keep(view, rows[:5], [(rendering(r, 100, 1), 7) for r in range(5)])
    current = index._view
    assert read(taken) == [(rendering(r, 100), None) for r in range(20)]
    assert read(index.kept_spans(current, rows)) == [
        (rendering(r, 100, 1), 7) if r < 5 else None for r in range(20)
    ]


def test_nothing_is_kept_for_rows_numbered_before_a_merge():
    index = built(10)
    view = index._view
    index._merge(view)
    assert not index.keep(view, np.arange(3), [(b"late", 1)] * 3)
    assert read(index.kept_spans(index._view, np.arange(10))) == [None] * 10


def test_what_does_not_fit_is_not_kept():
    index = built(4)
    view = index._view
    kept = [
        (b"x" * (KEPT_SIZE_MAX + 1), 1),
        (b"quality out of range", 255),
        (b"fits", 254),
        (b"", None),
    ]
    assert index.keep(view, np.arange(4), kept)
    assert read(index.kept_spans(view, np.arange(4))) == [None, None, (b"fits", 254), (b"", None)]


def test_the_arena_refuses_offsets_past_what_a_row_can_say(monkeypatch):
    monkeypatch.setattr(kept_module, "KEPT_OFFSET_MAX", 10)
    arena = kept_module.Arena()
    arena.append([(b"0123456789", None)])
    with pytest.raises(OverflowError):
        arena.append([(b"x", None)])


# --- the layout ------------------------------------------------------------------------------


def entry(row: int, quality: int | None) -> dict:
    return {
        "signal": {"type": "pdq", "value": f"{row:064x}"},
        "state": "vetted",
        "labels": ["violent-extremism"] * (row % 3),
        "contributors": [f"org-{row}"],
        "quality": quality,
    }


@pytest.fixture
def batch():
    """Spans of 60 rows (40 kept in an index's arena, 15 rendered for the request, 5 absent)
    and a batch of 25 signals, some with no match, distances 0-63."""
    rng = np.random.default_rng(8)
    index = built(60)
    view = index._view
    qualities = [None if r % 7 == 0 else int(rng.integers(0, 101)) for r in range(60)]
    opened = [orjson.dumps(entry(r, qualities[r]))[:-1] for r in range(60)]
    kept_rows = np.arange(40)
    assert index.keep(view, kept_rows, [(opened[r], qualities[r]) for r in range(40)])
    spans = index.kept_spans(view, np.arange(60))
    fresh = [(opened[r], qualities[r]) if r < 55 else None for r in range(40, 60)]
    spans = spans.with_fresh(np.arange(40, 60), fresh)
    counts = [0 if q % 6 == 0 else int(rng.integers(1, 9)) for q in range(25)]
    bounds = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    which = rng.integers(0, 60, size=int(bounds[-1])).astype(np.int64)
    distances = rng.integers(0, 64, size=len(which)).astype(np.int16)
    signals = [{"type": "pdq", "value": f"{q:064x}"} for q in range(25)]
    return spans, qualities, bounds, which, distances, signals


def expected_matches(qualities, bounds, which, distances, quality_min) -> list[list[dict]]:
    out = []
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        matches = []
        for row, distance in zip(which[lo:hi].tolist(), distances[lo:hi].tolist(), strict=True):
            quality = qualities[row]
            if row >= 55 or (
                quality_min is not None and (quality is None or quality < quality_min)
            ):
                continue
            matches.append({**entry(row, quality), "distance": distance})
        out.append(matches)
    return out


@pytest.mark.parametrize("quality_min", [None, 0, 50])
def test_the_answer_laid_out_from_spans_is_the_json_of_its_matches(batch, quality_min):
    spans, qualities, bounds, which, distances, signals = batch
    head = orjson.dumps({"threshold": 63, "quality_min": quality_min})[:-1] + b',"results":['
    body, counts = pdq_answer_document(
        head,
        [orjson.dumps(s) for s in signals],
        spans,
        bounds,
        which,
        distances,
        quality_min,
    )
    matches = expected_matches(qualities, bounds, which, distances, quality_min)
    expected = {
        "threshold": 63,
        "quality_min": quality_min,
        "results": [{"signal": s, "matches": m} for s, m in zip(signals, matches, strict=True)],
    }
    assert body == orjson.dumps(expected)  # byte for byte, as orjson writes it
    assert counts.tolist() == [len(m) for m in matches]


def test_an_answer_without_signals_is_an_empty_list():
    body, counts = pdq_answer_document(
        b'{"threshold":31,"results":[',
        [],
        KeptSpans.empty(),
        np.zeros(1, dtype=np.int64),
        np.zeros(0, dtype=np.int64),
        np.zeros(0, dtype=np.int16),
        None,
    )
    assert (orjson.loads(body), counts.tolist()) == ({"threshold": 31, "results": []}, [])


def test_each_signals_matches_laid_out_apart_are_the_same_json(batch):
    spans, qualities, bounds, which, distances, signals = batch
    documents = list(pdq_match_documents(spans, bounds, which, distances, 40))
    matches = expected_matches(qualities, bounds, which, distances, 40)
    assert [count for _, count in documents] == [len(m) for m in matches]
    results = [
        {"signal": s, "matches": pieces} for s, (pieces, _) in zip(signals, documents, strict=True)
    ]
    expected = [{"signal": s, "matches": m} for s, m in zip(signals, matches, strict=True)]
    assert json_document({"results": results}) == orjson.dumps({"results": expected})


@pytest.mark.parametrize(
    "change",
    ["more signals than bounds", "fewer signals than bounds", "a row with no span", "bounds short"],
)
def test_a_layout_whose_shapes_disagree_is_refused_before_it_writes(batch, change):
    spans, _qualities, bounds, which, distances, signals = batch
    documents = [orjson.dumps(s) for s in signals]
    if change == "more signals than bounds":
        documents.append(documents[0])
    elif change == "fewer signals than bounds":
        documents = documents[:-2]
    elif change == "a row with no span":
        which = which.copy()
        which[-1] = len(spans.size)
    else:
        bounds = bounds.copy()
        bounds[-1] -= 1
    # The compiled layout checks no index: without the check it wrote past its buffer. (With
    # ``complete`` no filter indexes the spans by row first.)
    with pytest.raises(ValueError):
        pdq_answer_document(
            b'{"results":[', documents, spans, bounds, which, distances, None, complete=True
        )
