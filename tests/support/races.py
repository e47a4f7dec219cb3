"""Two ingests racing on one row: the first holds its insert uncommitted while the second
reaches the same row, then the first commits. For the tests of ``federation.db.retry`` through
the ingest (the loser's write runs again and answers a duplicate)."""

import threading

from django.db import connection, transaction

from federation.contributions.services import contributions_submit


def race_behind_an_uncommitted_insert(actor, *, first: list, second: list) -> dict:
    """Submit ``first`` in a transaction left open, then ``second`` from another thread, which
    must block on the first's uncommitted row (asserted); then commit the first and wait for
    both. Returns ``{"a": first's results, "b": second's results or the exception it raised}``."""
    inserted, release = threading.Event(), threading.Event()
    outcomes: dict = {}

    def writer_a() -> None:
        try:
            with transaction.atomic():
                outcomes["a"] = contributions_submit(actor=actor, items=first)
                inserted.set()
                release.wait(10)
        finally:
            connection.close()

    def writer_b() -> None:
        try:
            outcomes["b"] = contributions_submit(actor=actor, items=second)
        except Exception as exc:  # the callers assert there was none
            outcomes["b"] = exc
        finally:
            connection.close()

    a = threading.Thread(target=writer_a)
    a.start()
    assert inserted.wait(10)
    b = threading.Thread(target=writer_b)
    b.start()
    b.join(1.0)  # B is now blocked on A's uncommitted row
    assert b.is_alive()
    release.set()
    a.join()
    b.join()
    return outcomes


def submit_at_once(actor, batches: list[list]) -> list:
    """Submit each of ``batches`` from its own thread (and connection), all released at once.
    Returns each one's results, or the exception it raised, in the order of ``batches``."""
    barrier = threading.Barrier(len(batches))
    outcomes: list = [None] * len(batches)

    def run(slot: int) -> None:
        try:
            barrier.wait()
            outcomes[slot] = contributions_submit(actor=actor, items=batches[slot])
        except Exception as exc:  # the callers assert there were none
            outcomes[slot] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
