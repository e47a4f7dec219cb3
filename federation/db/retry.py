"""Running a write step again after it lost a race to a concurrent writer.

Bulk writers read what is stored, decide, then insert; a concurrent transaction may store the
same unique row between the read and the insert (a unique violation), or lock rows against
them (a deadlock, a serialisation failure). Their transaction then rolls back whole, so the
step can be run again from the start: it now sees the other writer's rows.
"""

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from django.db import IntegrityError, OperationalError, transaction

logger = logging.getLogger(__name__)

T = TypeVar("T")

# PostgreSQL SQLSTATEs worth a retry: unique_violation, deadlock_detected, serialization_failure.
_RETRYABLE_SQLSTATES = frozenset({"23505", "40P01", "40001"})


def is_lost_race(exc: Exception) -> bool:
    """Whether a database error is a lost race (rather than a bug or a broken connection)."""
    return getattr(exc.__cause__, "sqlstate", None) in _RETRYABLE_SQLSTATES


def atomic_retrying_lost_races(
    write: Callable[[], T], *, reset: Callable[[], None], what: str, attempts: int = 3
) -> T:
    """Run ``write`` in one transaction, at most ``attempts`` times: after a lost race (logged as
    ``what`` at INFO) ``reset`` forgets what the failed attempt decided, and ``write`` runs
    again. Any other error, or a race lost ``attempts`` times, is raised."""
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                return write()
        except (IntegrityError, OperationalError) as exc:
            if attempt == attempts or not is_lost_race(exc):
                raise
            logger.info("%s raced a concurrent writer (attempt %d)", what, attempt)
            reset()
    raise AssertionError("unreachable")  # the last attempt returns or raises


class Replayable(Generic[T]):
    """An iterable read once from its source and kept, so that a write step run again after a
    lost race goes over what it already took (a bulk ingest's chunks already verified) before
    it takes the next from the source."""

    def __init__(self, source: Iterable[T]) -> None:
        self._source = iter(source)
        self._seen: list[T] = []

    def __iter__(self) -> Iterator[T]:
        yield from self._seen
        for item in self._source:
            self._seen.append(item)
            yield item
