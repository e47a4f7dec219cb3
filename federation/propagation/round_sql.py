"""The statements of a delivery round on PostgreSQL, each one round trip whatever the number of
rows (docs/federation.md, "Delivery"); SQLite (the demo) takes the ORM's path beside each caller.

- ``claim_round``: the claim (the lane's oldest rows, skip-locked, up to the first in flight,
  leased and their attempt counted) as one ``UPDATE … RETURNING``, not a read and an update by
  a list of the ids read.
- ``delivered_round``: the rows of a batch marked delivered, the batch's ``federation.sent``
  event (``audit_insert_sql``) and the link's ``last_push_at``, in one statement.
"""

from datetime import datetime

from django.db import connection

from federation.db.lookups import bigint_array
from federation.propagation.models import OutboxItem, PeerLink
from federation.transparency.audit import AuditRecord, audit_insert_sql

_OUTBOX = OutboxItem._meta.db_table
_LINK = PeerLink._meta.db_table


# The lane's oldest pending rows (skip-locked; not those of the round this drain has in flight,
# ``skip``: the drain claims its next round while one is out), the head's due time and the first row still in
# flight (a worker that died holding it: the lane waits for its lease); the rows before that
# one are leased and their attempt counted, if the head is due. ``= ANY(ARRAY(…))`` keeps the
# update on the primary key's index (a join on the ids may hash the whole table).
_CLAIM = f"""
WITH head AS MATERIALIZED (
    SELECT id, next_attempt_at, claimed_until FROM {_OUTBOX}
    WHERE peer_id = %(peer)s AND lane = %(lane)s AND state = %(pending)s
    AND NOT (id = ANY(%(skip)s::bigint[]))
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
UPDATE {_OUTBOX} AS o SET claimed_until = %(lease)s, attempts = o.attempts + 1
WHERE o.id = ANY(ARRAY(
    SELECT id FROM head
    WHERE (SELECT next_attempt_at FROM head ORDER BY id LIMIT 1) <= %(now)s
    AND id < COALESCE((SELECT min(id) FROM head WHERE claimed_until > %(now)s), 9223372036854775807)
))
RETURNING o.id, o.kind, o.contribution_id, o.entry_id, o.signing_key_id, o.path, o.attempts
"""  # noqa: S608 (table names from the models)


def claim_round(
    *,
    peer_id: int,
    lane: str,
    limit: int,
    now: datetime,
    lease: datetime,
    skip: list[int] | tuple[int, ...] = (),
) -> list[tuple]:
    """The claimed rows' columns (``batching.CLAIMED_COLUMNS`` up to ``attempts``, counted
    with this claim; ``path`` as JSON text), in id order; empty if nothing is due. ``skip``:
    the rows of the round the caller's drain has in flight, passed over as if already sent."""
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM,
            {
                "peer": peer_id, "lane": lane, "pending": OutboxItem.State.PENDING,
                "limit": limit, "now": now, "lease": lease, "skip": bigint_array(skip),
            },
        )  # fmt: skip
        rows = cursor.fetchall()
    rows.sort()
    return rows


def delivered_round(
    *, peer_id: int, ids: list[int], digests: list[str], now: datetime, event: AuditRecord
) -> bool:
    """Mark rows delivered (each with its item's digest: lowercase hex, nothing to quote in an
    array literal), write ``event`` and the link's ``last_push_at`` in one statement, in the
    caller's transaction; False if the peer has no link row yet (the caller writes it). The
    caller asks for the event's sequencing (``audit_inserted``) when its drain ends."""
    insert, insert_params = audit_insert_sql(event, occurred_at=now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH delivered AS (UPDATE {_OUTBOX} AS o SET state = %s, delivered_at = %s,"  # noqa: S608
            " claimed_until = NULL, last_error = '', digest = v.digest"
            " FROM unnest(%s::bigint[], %s::text[]) AS v(id, digest)"
            " WHERE o.id = ANY(ARRAY(SELECT unnest(%s::bigint[]))) AND o.id = v.id),"
            f" event AS ({insert}),"
            f" link AS (UPDATE {_LINK} SET last_push_at = %s WHERE peer_id = %s RETURNING 1)"
            " SELECT (SELECT count(*) FROM link)",
            [
                OutboxItem.State.DELIVERED, now, bigint_array(ids), "{" + ",".join(digests) + "}",
                bigint_array(ids),
                *insert_params, now, peer_id,
            ],
        )  # fmt: skip
        (linked,) = cursor.fetchone()
    return linked == 1
