"""What a peer has pulled from this hub's feed (``federation.propagation.feed``): how far it has
read (``PeerLink.peer_pulled_through``, which makes the dead letters it has pulled past moot,
``federation.propagation.selectors``), and which items it was offered (``PulledItem``, which the
entry's page lists)."""

from collections.abc import Iterable
from datetime import datetime

from django.db import connection
from django.db.models import F, Value
from django.db.models.functions import Greatest

from federation.propagation.items import RowRef
from federation.propagation.models import PeerLink, PulledItem
from federation.transparency.models import AuditEvent
from members.models import Peer


def feed_pull_record(*, peer: Peer, after: int, stream_end: int, now: datetime) -> None:
    """A page from ``after`` was served to ``peer``: it holds everything up to ``after`` (a
    puller advances its cursor only once it has stored the page that ended there). Never past
    ``stream_end`` (a cursor beyond the stream names positions not given yet) and never back
    (a puller restarting from 0 still received the pages it stored before)."""
    held = max(0, min(after, stream_end))
    updated = PeerLink.objects.filter(peer=peer).update(
        peer_pulled_through=Greatest(F("peer_pulled_through"), Value(held)), peer_pulled_at=now
    )
    if not updated:
        PeerLink.objects.get_or_create(
            peer=peer, defaults={"peer_pulled_through": held, "peer_pulled_at": now}
        )


def pulled_items_record(
    *,
    peer: Peer,
    event: AuditEvent,
    offered: Iterable[tuple[RowRef, str]],
    entry_of: dict[int, int],
    now: datetime,
) -> None:
    """A page offered ``peer`` these items (each ref with its digest; ``entry_of``: the entry of
    each contribution ref, by ref id), recorded by ``event``: one row per item the peer had not
    been offered before (one statement), in the event's transaction."""
    rows = [
        (
            ref.kind,
            ref.entry_id or entry_of.get(ref.id),
            ref.contribution_id,
            ref.signing_key_id,
            digest,
        )
        for ref, digest in offered
    ]
    if not rows:
        return
    if connection.vendor != "postgresql":
        PulledItem.objects.bulk_create(
            [
                PulledItem(
                    peer=peer, kind=kind, entry_id=entry_id, contribution_id=contribution_id,
                    signing_key_id=key_id, event=event, digest=digest, pulled_at=now,
                )
                for kind, entry_id, contribution_id, key_id, digest in rows
            ],
            batch_size=500,
            ignore_conflicts=True,
        )  # fmt: skip
        return
    # One INSERT of the page's rows as arrays, without a model instance per row (the ORM's
    # bulk_create spent more of a page's Python than building its items). An item offered
    # before (a unique index per kind) is skipped.
    kinds, entries, contributions, keys, digests = (
        list(column) for column in zip(*rows, strict=True)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO federation_pulleditem (peer_id, event_id, pulled_at, kind, entry_id, "
            "contribution_id, signing_key_id, digest) "
            "SELECT %s, %s, %s, v.kind, v.entry_id, v.contribution_id, v.signing_key_id, v.digest "
            "FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::text[]) "
            "AS v(kind, entry_id, contribution_id, signing_key_id, digest) "
            "ON CONFLICT DO NOTHING",
            [peer.pk, event.pk, now, kinds, entries, contributions, keys, digests],
        )
