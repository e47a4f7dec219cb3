"""The entries of a chunk's adds, one per signal: ``contributions_store``'s first write of each
chunk (``federation.contributions.storage``), inserted as new while the request's entries all
have been, upserted once one existed."""

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from federation.contributions.models import Entry
from federation.db.bulk_insert import copy_new_rows, upsert_rows

# The review round of an entry the ingest inserts.
NEW_ENTRY_ROUND = 1

_ENTRY_COLUMNS = [
    "signal_type", "value", "state", "review_round", "created_at", "updated_at", "state_changed_at",
]  # fmt: skip


class EntryRows(NamedTuple):
    ids: dict[tuple[str, str], int]  # by signal (type, value)
    states: dict[int, str]  # by id
    created: set[int]  # the ids of those inserted (none where the database does not say)
    as_new: bool  # whether they were all new (the next chunk's are then inserted as new too)


def entries_upsert(
    *, signals: Mapping[tuple[str, str], str], now: datetime, as_new: bool
) -> EntryRows:
    """One entry per signal of ``signals`` (signal: the state of its entry if new): insert the
    new ones, touch the existing; returns their ids, their states (read by the upsert, which holds
    their row locks from then on until this transaction ends) and the ids of those it inserted.
    ``as_new`` (the request's entries have all been new): the rows are first inserted as new,
    which costs PostgreSQL less than the upsert; if one exists already (an earlier request's, a
    concurrent one's just committed), nothing of that insert is kept and the upsert runs (and
    ``as_new`` comes back false, for the rest of the request)."""
    ordered = sorted(signals)
    rows = [(t, v, signals[(t, v)], NEW_ENTRY_ROUND, now, now, now) for t, v in ordered]
    if as_new:
        pks = copy_new_rows(Entry, _ENTRY_COLUMNS, rows, unique="entry_signal_unique")
        if pks is not None:
            # Inserted by this transaction, so nobody else can see, lock or change them.
            states = {pk: row[2] for pk, row in zip(pks, rows, strict=True)}
            return EntryRows(dict(zip(ordered, pks, strict=True)), states, set(pks), True)
    returned = upsert_rows(
        Entry,
        _ENTRY_COLUMNS,
        rows,
        unique=["signal_type", "value"],
        update=["updated_at"],
        returning=["state"],
        report_inserted=True,
    )
    return EntryRows(
        {(signal_type, value): pk for pk, signal_type, value, _, _ in returned},
        {pk: state for pk, _, _, state, _ in returned},
        {pk for pk, _, _, _, inserted in returned if inserted},
        False,
    )
