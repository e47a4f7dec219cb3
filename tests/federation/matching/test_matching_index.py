"""The PDQ index is exact: on uniform, skewed (bits 70/30) and clustered data, with planted
near-duplicates at every distance 0-32 from the queries (flips placed at random, or spread one
per byte), its result sets equal brute force's at thresholds 0, 16, 31, 32 (and any other
threshold hypothesis picks). Updates (add, remove, re-add) under concurrent searches."""

import threading
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.matching import index as index_module
from federation.matching import kernels
from federation.matching.index import PdqIndex, brute_force, pdq_words, words_hex


def dataset(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "uniform":
        return rng.integers(0, 2**64, size=(n, 4), dtype=np.uint64, endpoint=False)
    if kind == "skewed":
        bits = (rng.random((n, 256)) < 0.7).astype(np.uint8)
        return np.packbits(bits, axis=1).view(">u8").astype(np.uint64)
    # clustered: a few centres, each member a few bits from its centre
    centres = rng.integers(0, 2**64, size=(max(n // 200, 1), 4), dtype=np.uint64)
    rows = centres[rng.integers(0, len(centres), size=n)]
    return np.array([flip(row, rng.choice(256, size=rng.integers(0, 12), replace=False))
                     for row in rows], dtype=np.uint64).reshape(n, 4)  # fmt: skip


def flip(words: np.ndarray, bits) -> np.ndarray:
    out = words.copy()
    for bit in bits:
        out[int(bit) // 64] ^= np.uint64(1) << np.uint64(int(bit) % 64)
    return out


def planted(query: np.ndarray, distance: int, spread: bool, rng) -> np.ndarray:
    if spread:  # one flip per byte, in `distance` distinct bytes: the worst case for chunks
        byte_ids = rng.choice(32, size=distance, replace=False)
        bits = [b * 8 + int(rng.integers(0, 8)) for b in byte_ids]
    else:
        bits = rng.choice(256, size=distance, replace=False)
    return flip(query, bits)


def results_of(index: PdqIndex, queries, threshold) -> list[set[tuple[int, int]]]:
    qi, rows, dist, _view = index.search_words(queries, threshold=threshold)
    got = [set() for _ in range(len(queries))]
    for q, row, d in zip(qi.tolist(), rows.tolist(), dist.tolist(), strict=True):
        assert (row, d) not in got[q], "a row reported twice"
        got[q].add((row, d))
    return got


def build(hashes: np.ndarray) -> PdqIndex:
    index = PdqIndex()
    n = len(hashes)
    index.build(hashes, np.zeros(n, dtype=np.int16), np.ones(n, dtype=np.uint8))
    return index


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["uniform", "skewed", "clustered"]),
    seed=st.integers(0, 2**32 - 1),
    spread=st.booleans(),
    extra_threshold=st.integers(0, 63),
)
def test_pdq_results_equal_brute_force_with_planted_near_duplicates(
    kind, seed, spread, extra_threshold
):
    rng = np.random.default_rng(seed)
    background = dataset(kind, 4000, rng)
    queries = dataset(kind, 6, rng)
    plants = [planted(q, d, spread, rng) for q in queries for d in range(33)]
    hashes = np.concatenate([background, np.array(plants, dtype=np.uint64)])
    hashes = np.unique(hashes, axis=0)
    index = build(hashes)

    for threshold in (0, 16, 31, 32, extra_threshold):
        assert results_of(index, queries, threshold) == brute_force(hashes, queries, threshold)
    # every planted row within the threshold is found (the oracle agrees with the plan)
    found = results_of(index, queries, 32)
    for q in range(len(queries)):
        assert {d for _, d in found[q]} >= set(range(33))


@pytest.mark.parametrize("kind", ["uniform", "clustered"])
def test_rows_whose_distance_lies_in_one_half_or_one_quarter_are_exact(kind):
    """The prefilter drops a row once its other half alone exceeds what the lower chunks of its
    own half leave of the threshold, and drops a second-half row a first-half chunk claims:
    rows with every flip in one half or one quarter sit on those edges."""
    rng = np.random.default_rng(11)
    queries = dataset(kind, 5, rng)
    plants = []
    for q in queries:
        for d in range(12, 41):
            plants.append(flip(q, rng.choice(128, size=d, replace=False) + 128 * (d % 2)))
            quarter = 64 * int(rng.integers(0, 4))
            plants.append(flip(q, rng.choice(64, size=d, replace=False) + quarter))
    hashes = np.unique(np.concatenate([dataset(kind, 3000, rng), np.array(plants)]), axis=0)
    index = build(hashes)
    for threshold in (12, 16, 24, 31, 32, 40):
        assert results_of(index, queries, threshold) == brute_force(hashes, queries, threshold)


def test_an_overfull_bucket_is_bypassed_and_still_exact():
    """3,000 rows share chunks 0-7 (the low 128 bits are zero): those buckets are skipped by the
    radius choice, the other chunks carry the bound, and nothing is missed."""
    rng = np.random.default_rng(7)
    heavy = rng.integers(0, 2**64, size=(3000, 4), dtype=np.uint64)
    heavy[:, 0] = 0
    heavy[:, 1] = 0
    queries = heavy[:5].copy()
    plants = [planted(q, d, True, rng) for q in queries for d in range(0, 33, 3)]
    hashes = np.unique(np.concatenate([heavy, np.array(plants, dtype=np.uint64)]), axis=0)
    index = build(hashes)
    for threshold in (0, 16, 31, 32, 63):
        assert results_of(index, queries, threshold) == brute_force(hashes, queries, threshold)


def test_an_empty_index_matches_nothing():
    index = PdqIndex()
    queries = dataset("uniform", 3, np.random.default_rng(1))
    assert results_of(index, queries, 31) == [set(), set(), set()]


def test_quality_floor_filters_rows():
    rng = np.random.default_rng(3)
    hashes = dataset("uniform", 10, rng)
    index = PdqIndex()
    index.build(hashes, np.array([10 * i for i in range(9)] + [-1], dtype=np.int16),
                np.ones(10, dtype=np.uint8))  # fmt: skip
    values = [words_hex(h) for h in hashes]
    assert {m.value for m in index.search(values, threshold=0, quality_min=50)} == set(values[5:9])
    assert len(index.search(values, threshold=0)) == 10


def test_threshold_is_bounded():
    with pytest.raises(ValueError):
        PdqIndex().search_words(np.zeros((1, 4), dtype=np.uint64), threshold=64)


def test_hex_round_trip():
    value = "f8f0" + "0" * 56 + "abcd"
    assert words_hex(pdq_words([value])[0]) == value


def live_oracle(index: PdqIndex, queries, threshold) -> list[set[str]]:
    view = index._view
    rows = np.flatnonzero(view.alive[: view.n_rows])
    hashes = view.hashes[rows]
    return [{words_hex(hashes[r]) for r, _ in found}
            for found in brute_force(hashes, queries, threshold)]  # fmt: skip


# A merge thread that dies (as one did when a remove changed ``alive`` under its scan) fails this.
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_add_remove_and_re_add_under_concurrent_searches(monkeypatch):
    """Writers add, remove and re-add (crossing several delta merges) while readers search:
    every search sees each stable row, never a row that was never added, and at the end the
    index equals brute force over the live rows."""
    monkeypatch.setattr(index_module, "DELTA_MAX", 64)
    rng = np.random.default_rng(11)
    base = dataset("uniform", 2000, rng)
    queries = dataset("uniform", 4, rng)
    stable = np.array([planted(q, d, True, rng) for q in queries for d in (0, 5, 17, 31)])
    churn = np.array([planted(q, d, False, rng) for q in queries for d in range(1, 32)])
    index = build(np.unique(np.concatenate([base, stable]), axis=0))
    stable_hex = {words_hex(h) for h in stable}
    churn_hex = [words_hex(h) for h in churn]
    allowed = {words_hex(h) for h in np.concatenate([base, stable])} | set(churn_hex)
    query_hex = [words_hex(q) for q in queries]
    stop = threading.Event()
    failures: list[str] = []

    def reader():
        while not stop.is_set():
            seen = {m.value for m in index.search(query_hex, threshold=31)}
            if not stable_hex <= seen:
                failures.append(f"missed {stable_hex - seen}")
            if not seen <= allowed:
                failures.append(f"unknown {seen - allowed}")

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        for round_ in range(4):
            for value in churn_hex:
                index.upsert(value, state="vetted", quality=None)
            for value in churn_hex[round_::2]:
                assert index.remove(value)
            for value in churn_hex[round_::4]:  # re-vetted
                index.upsert(value, state="disputed", quality=80)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    index.wait_for_merge()
    assert failures == []
    assert index._generation > 1  # background merges ran (and were published) meanwhile
    for threshold in (0, 16, 31, 32):
        got = [set() for _ in queries]
        for m in index.search(query_hex, threshold=threshold):
            got[m.query].add(m.value)
        assert got == live_oracle(index, queries, threshold)


def test_upsert_updates_state_and_quality_in_place():
    index = PdqIndex()
    value = "ab" * 32
    index.upsert(value, state="vetted", quality=None)
    index.upsert(value, state="disputed", quality=70)
    (match,) = index.search([value], threshold=0)
    assert (match.state, match.quality, len(index)) == ("disputed", 70, 1)
    assert index.remove(value) and not index.remove(value)
    assert index.search([value], threshold=31) == []


def test_a_background_merge_keeps_the_changes_made_while_it_ran():
    """The merge snapshots the rows, builds the new buckets outside the lock, then carries over
    what changed meanwhile: a removal, a quality update, an add."""
    rng = np.random.default_rng(21)
    index = build(dataset("uniform", 500, rng))
    delta = [words_hex(h) for h in dataset("uniform", 20, rng)]
    for value in delta:
        index.upsert(value, state="vetted", quality=10)
    snapshot, generation = index._view, index._generation

    removed, updated = delta[0], delta[1]
    base_removed = words_hex(snapshot.hashes[3])
    assert index.remove(removed) and index.remove(base_removed)
    index.upsert(updated, state="disputed", quality=99)
    added = words_hex(dataset("uniform", 1, rng)[0])
    index.upsert(added, state="vetted", quality=None)

    index._merge_in_background(snapshot, generation)

    view = index._view
    assert view.n_base == 518 and view.n_rows == 519  # 520 rows, 2 dead at the snapshot
    values = [removed, updated, base_removed, added]
    found = {m.value: m for m in index.search(values, threshold=0)}
    assert set(found) == {updated, added}
    assert (found[updated].state, found[updated].quality) == ("disputed", 99)
    assert len(index) == 519
    queries = dataset("uniform", 5, rng)
    for threshold in (0, 31, 63):
        got = [set() for _ in queries]
        for m in index.search([words_hex(q) for q in queries], threshold=threshold):
            got[m.query].add(m.value)
        assert got == live_oracle(index, queries, threshold)


def test_a_merge_outdated_by_a_rebuild_is_dropped():
    rng = np.random.default_rng(22)
    index = build(dataset("uniform", 50, rng))
    snapshot, generation = index._view, index._generation
    fresh = dataset("uniform", 10, rng)
    index.build(fresh, np.zeros(10, dtype=np.int16), np.ones(10, dtype=np.uint8))
    index._merge_in_background(snapshot, generation)
    assert index._view.n_rows == 10


def _sorted_of(index: PdqIndex, queries, threshold) -> list[list[tuple[str, int]]]:
    found = index.search_sorted(queries, threshold=threshold)
    values = found.values()
    results = [(values[w], d) for w, d in zip(found.which, found.distances.tolist(), strict=True)]
    return [results[a:b] for a, b in pairwise(found.bounds.tolist())]


def _brute_force_sorted(hashes, queries, threshold) -> list[list[tuple[str, int]]]:
    """Per query, (value, distance) within the threshold, by distance then value."""
    return [
        sorted(((words_hex(hashes[r]), d) for r, d in found), key=lambda m: m[::-1])
        for found in brute_force(hashes, queries, threshold)
    ]


def test_sorted_results_are_by_distance_then_value_for_base_and_added_rows():
    """The answer's order from the ranks kept beside the rows, from the ranks of the distinct
    rows found when some were added since the CSR was built, and after a merge ranks them all.
    Members of a cluster share their first word with their centre, so the order past it is
    tested too."""
    rng = np.random.default_rng(5)
    centres = rng.integers(0, 2**64, size=(20, 4), dtype=np.uint64)
    members = np.array(
        [flip(c, 64 + rng.choice(192, size=int(rng.integers(1, 5)), replace=False))
         for c in centres for _ in range(30)]
    )  # fmt: skip
    hashes = np.unique(np.concatenate([centres, members]), axis=0)
    hashes = hashes[rng.permutation(len(hashes))]
    base, added = hashes[:400], hashes[400:]
    queries = np.concatenate([centres[:8], [flip(c, [3, 70, 200]) for c in centres[8:12]]])
    index = build(base)

    assert _sorted_of(index, queries, 10) == _brute_force_sorted(base, queries, 10)
    for words in added:
        index.upsert_words(words, state="vetted", quality=None)
    assert _sorted_of(index, queries, 10) == _brute_force_sorted(hashes, queries, 10)
    index._merge(index._view)
    assert _sorted_of(index, queries, 10) == _brute_force_sorted(hashes, queries, 10)


@pytest.mark.parametrize(("queries_taken", "marked"), [(1, False), (20, True)])
def test_sorted_results_whether_few_or_many_rows_were_found(queries_taken, marked):
    """``kernels.answer_order`` lists the distinct rows found by a sort when they are few beside
    the index (one query) and by marking them when they are many (twenty queries into clusters):
    both in row order, each result naming its row's place among them, in the answer's order,
    whether a distance holds a few results (sorted by insertion) or many (by numpy)."""
    rng = np.random.default_rng(41)
    centres = rng.integers(0, 2**64, size=(20, 4), dtype=np.uint64)
    members = np.array(
        [flip(c, rng.choice(256, size=int(rng.integers(1, 6)), replace=False))
         for c in centres for _ in range(40)]
    )  # fmt: skip
    # the first centre's neighbours at exactly two bits: more at one distance than are sorted
    # by insertion
    twos = np.array([flip(centres[0], rng.choice(256, size=2, replace=False)) for _ in range(80)])
    noise = dataset("uniform", 6_000, rng)
    hashes = np.unique(np.concatenate([centres, members, twos, noise]), axis=0)
    hashes = hashes[rng.permutation(len(hashes))]
    index = build(hashes)
    queries = centres[:queries_taken]

    found = index.search_sorted(queries, threshold=8)
    assert np.all(np.diff(found.rows) > 0)  # distinct, in row order
    assert sorted(set(found.which.tolist())) == list(range(len(found.rows)))
    assert _sorted_of(index, queries, 8) == _brute_force_sorted(hashes, queries, 8)
    assert (len(found.which) >= index._view.n_rows * kernels.MARKED_DISTINCT) == marked
    first = found.distances[found.bounds[0] : found.bounds[1]]
    assert np.count_nonzero(first == 2) > kernels.INSERTION_MAX


def test_an_index_without_answers_searches_alike_in_15_bytes_a_row_less():
    """The video frame index (``for_answers=False``) holds no kept bytes and no ranks: the same
    adds, updates, removals and merges (the synchronous one when the arrays fill, and the
    background one) leave it searching as an index with them does."""
    rng = np.random.default_rng(23)
    indexes = {True: PdqIndex(), False: PdqIndex(for_answers=False)}
    base = dataset("uniform", 600, rng)
    added = [words_hex(h) for h in dataset("uniform", 700, rng)]  # past 1,024 rows: a merge
    for index in indexes.values():
        index.build(base, np.zeros(600, dtype=np.int16), np.ones(600, dtype=np.uint8))
        for value in added:
            index.upsert(value, state="vetted", quality=50)
        index.remove(added[0])
        index.remove(words_hex(base[1]))
        index.upsert(added[1], state="disputed", quality=90)
        index._merge_in_background(index._view, index._generation)
        index.upsert(words_hex(dataset("uniform", 1, rng)[0]), state="vetted", quality=None)
    with_answers, without = indexes[True], indexes[False]
    assert with_answers._view.n_base == without._view.n_base == 1298  # merged: 1,300 less 2
    queries = np.concatenate([base[:5], pdq_words(added[:5]), dataset("uniform", 5, rng)])
    for threshold in (0, 31, 63):
        assert results_of(without, queries, threshold) == results_of(
            with_answers, queries, threshold
        )
        values = [words_hex(q) for q in queries]
        assert without.search(values, threshold=threshold) == with_answers.search(
            values, threshold=threshold
        )
    capacity = len(without._view.hashes)
    assert capacity == len(with_answers._view.hashes)
    assert with_answers.memory_bytes() - without.memory_bytes() == capacity * (8 + 4)
    with pytest.raises(TypeError, match="without ranks"):
        without.search_sorted(queries, threshold=31)
    with pytest.raises(TypeError, match="without kept bytes"):
        without.keep(without._view, np.array([0]), [(b"x", None)])
