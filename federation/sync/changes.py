"""Recording changes in the stream: the one entry point every writer of entries calls.

``sync_changes_record`` runs in the caller's transaction, after the caller changed the entries.
It writes one change row per entry that members may see now (vetted, disputed), or that they may
have seen before (it already has a change row): that is how a retraction or a rejection after a
dispute reaches them as a removal, while an entry that was never shared stays unknown to them.
The rows have no position yet; the sequencer gives them one after commit (``sequencer.py``).
"""

from collections.abc import Iterable
from datetime import datetime

from django.db import connections, router, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from federation.contributions.models import Entry
from federation.sync.models import EntryChange

# What members see of the shared set (docs/sync.md, "What you see").
VISIBLE_STATES = (Entry.State.VETTED, Entry.State.DISPUTED)


def sync_changes_record(
    *, entry_ids: Iterable[int], reason: str, now: datetime | None = None
) -> int:
    """Write the change rows for ``entry_ids`` in the current transaction, with one statement
    whatever their number; returns how many were written. ``reason`` says what changed
    (``vetted``, ``disputed``, ``rejected``, ``retracted``, ``contributed``, ``labels``)."""
    ids = sorted({int(pk) for pk in entry_ids})
    if not ids:
        return 0
    now = now or timezone.now()
    alias = router.db_for_write(EntryChange)
    connection = connections[alias]
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(EntryChange._meta.db_table)
        entries = connection.ops.quote_name(Entry._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (entry_id, reason, recorded_at) "  # noqa: S608 (quoted names)
                f"SELECT e.id, %s, %s FROM {entries} AS e "
                "WHERE e.id = ANY(%s::bigint[]) AND (e.state = ANY(%s::text[]) "
                f"OR EXISTS (SELECT 1 FROM {table} AS c WHERE c.entry_id = e.id)) ORDER BY e.id",
                [reason, now, ids, list(VISIBLE_STATES)],
            )
            written = cursor.rowcount
    else:
        shown = Entry.objects.using(alias).filter(
            Q(state__in=VISIBLE_STATES)
            | Exists(EntryChange.objects.using(alias).filter(entry_id=OuterRef("pk"))),
            pk__in=ids,
        )
        rows = [
            EntryChange(entry_id=pk, reason=reason, recorded_at=now)
            for pk in shown.order_by("pk").values_list("pk", flat=True)
        ]
        EntryChange.objects.using(alias).bulk_create(rows, batch_size=2000)
        written = len(rows)
    if written:
        transaction.on_commit(_nudge_sequencer, using=alias)
    return written


def _nudge_sequencer() -> None:
    from federation.sync.tasks import request_sync_sequencing

    request_sync_sequencing()
