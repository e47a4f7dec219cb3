"""Recording changes in the stream: the one writer of change rows, called by ``federation.downstream``.

``sync_changes_record`` runs in the caller's transaction, after the caller changed the entries.
It writes one change row per entry that members may see now (vetted, disputed), or that they may
have seen before (it already has a change row): that is how a retraction or a rejection after a
dispute reaches them as a removal, while an entry that was never shared stays unknown to them.
The rows have no position yet; the sequencer gives them one after commit (``sequencer.py``).

One transaction writes at most one row per entry. The delta API renders an entry as it stands
when read, and a transaction's rows become visible (and sequenced) together, so a second row
would only deliver the same change twice, as a retract did (its withdrawn add, then the entry's
move to retracted). A later call for an entry this transaction has already recorded replaces
that row with its own.
"""

from collections.abc import Iterable
from datetime import datetime

from django.db import connections, router, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from federation.contributions.models import SHARED_STATES, Entry
from federation.enqueue import TaskName, nudge
from federation.sync.models import EntryChange


def sync_changes_record(
    *, entry_ids: Iterable[int], reason: str, now: datetime | None = None, shared: bool = False
) -> int:
    """Record a change of ``entry_ids`` in the current transaction, with at most two statements
    whatever their number; returns how many rows were written. ``reason`` says what changed
    (``vetted``, ``disputed``, ``rejected``, ``retracted``, ``contributed``, ``labels``).
    ``shared``: the caller has just moved every one of the entries into a state members see,
    under the row locks its transaction holds, so each gets its row without a look at it."""
    ids = sorted({int(pk) for pk in entry_ids})
    if not ids:
        return 0
    now = now or timezone.now()
    alias = router.db_for_write(EntryChange)
    earlier = _recorded_in_this_transaction(alias, ids)
    written = _insert(alias, ids, reason, now, shared=shared)
    # This transaction's earlier rows of these entries are replaced by the rows just written,
    # which come later in the stream (and were written because those exist). Only unsequenced
    # rows: a sequencer inside this same transaction (tests) may have numbered one, and a row a
    # reader may have passed is never touched.
    if earlier:
        EntryChange.objects.using(alias).filter(pk__in=earlier, position__isnull=True).delete()
    if written:
        transaction.on_commit(_Recorded(written), using=alias)
    return len(written)


def _insert(
    alias: str, ids: list[int], reason: str, now: datetime, *, shared: bool
) -> dict[int, int]:
    """Insert the rows of the entries in ``ids`` that members see or have seen (all of them when
    ``shared``); returns the change row's id of each, by entry id."""
    connection = connections[alias]
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(EntryChange._meta.db_table)
        entries = connection.ops.quote_name(Entry._meta.db_table)
        if shared:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {table} (entry_id, reason, recorded_at) "  # noqa: S608 (quoted name)
                    "SELECT id, %s, %s FROM unnest(%s::bigint[]) AS id "
                    "ORDER BY id RETURNING entry_id, id",
                    [reason, now, ids],
                )
                return dict(cursor.fetchall())
        # "Has a change row" is a scalar subquery with LIMIT 1, one probe of the (entry,
        # position) index per entry: written as EXISTS under the OR, the planner may hash the
        # whole change table instead (it did for a 500-entry batch among 10,000 rows, 10 ms where
        # the probes take under 1), and that scan grows with the table.
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (entry_id, reason, recorded_at) "  # noqa: S608 (quoted names)
                f"SELECT e.id, %s, %s FROM {entries} AS e "
                "WHERE e.id = ANY(%s::bigint[]) AND (e.state = ANY(%s::text[]) "
                f"OR (SELECT 1 FROM {table} AS c WHERE c.entry_id = e.id LIMIT 1) IS NOT NULL) "
                "ORDER BY e.id RETURNING entry_id, id",
                [reason, now, ids, list(SHARED_STATES)],
            )
            return dict(cursor.fetchall())
    shown = Entry.objects.using(alias).filter(
        Q(state__in=SHARED_STATES)
        | Exists(EntryChange.objects.using(alias).filter(entry_id=OuterRef("pk"))),
        pk__in=ids,
    )
    rows = [
        EntryChange(entry_id=pk, reason=reason, recorded_at=now)
        for pk in shown.order_by("pk").values_list("pk", flat=True)
    ]
    EntryChange.objects.using(alias).bulk_create(rows, batch_size=2000)
    return {row.entry_id: row.pk for row in rows}


class _Recorded:
    """The on-commit nudge of one call, holding the change rows it wrote (entry id: row id).

    Django keeps a transaction's on-commit callbacks until it commits, and drops those of a
    savepoint that is rolled back, together with its rows: the callbacks still pending are
    therefore exactly the calls whose rows this transaction still holds."""

    def __init__(self, rows: dict[int, int]) -> None:
        self.rows = rows

    def __call__(self) -> None:
        nudge(TaskName.SYNC_SEQUENCE_CHANGES)


def _recorded_in_this_transaction(alias: str, ids: list[int]) -> list[int]:
    """The change rows of the entries ``ids`` that this transaction has written and still holds.
    Each call's rows are matched by a set intersection, not gone through one by one: a bulk
    ingest calls this once or twice per chunk, over the rows of every chunk before."""
    connection = connections[alias]
    if not connection.in_atomic_block:
        return []  # autocommit: every earlier call has committed already
    wanted = set(ids)
    return [
        callback.rows[entry_id]
        for _savepoints, callback, *_robust in connection.run_on_commit
        if isinstance(callback, _Recorded)
        for entry_id in wanted & callback.rows.keys()
    ]
