"""An admin's retry of federation's outbox rows (docs/federation.md, "Delivery"): dead letters
and refused rows put back in their queue, and their lanes' drains asked for."""

from django.db import transaction
from django.utils import timezone

from federation.propagation.delivery import request_drain
from federation.propagation.models import OutboxItem
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record_many
from members.actors import Actor
from members.models import Peer


def outbox_retry(*, item_ids, actor: Actor) -> int:
    """Put dead letters and refused rows back in their queue (an admin's retry): pending, due now,
    attempts from zero. One ``federation.retried`` event per peer; returns how many."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            OutboxItem.objects.select_for_update()
            .filter(
                pk__in=list(item_ids), state__in=[OutboxItem.State.DEAD, OutboxItem.State.REFUSED]
            )
            .select_related("peer")
            .order_by("pk")
        )
        if not rows:
            return 0
        OutboxItem.objects.filter(pk__in=[r.pk for r in rows]).update(
            state=OutboxItem.State.PENDING,
            attempts=0,
            next_attempt_at=now,
            claimed_until=None,
        )
        by_peer: dict[Peer, list[int]] = {}
        for row in rows:
            by_peer.setdefault(row.peer, []).append(row.pk)
        audit_record_many(
            AuditRecord(
                action=Action.FEDERATION_RETRIED,
                actor=actor,
                organisation=actor.organisation_slug,
                object_type=ObjectType.PEER,
                object_id=peer.hub_id,
                data={Key.ITEMS: ids},
            )
            for peer, ids in by_peer.items()
        )
        pairs = sorted({(r.peer_id, r.lane) for r in rows})

        def nudge_drains():
            for peer_id, lane in pairs:
                request_drain(peer_id=peer_id, lane=lane)

        transaction.on_commit(nudge_drains)
    return len(rows)
