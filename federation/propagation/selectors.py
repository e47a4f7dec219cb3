"""Reading federation's state: each peer's delivery health, as the admin's peer list and
``manage.py peer status`` show it (one selector, so both say the same)."""

from dataclasses import asdict, dataclass
from datetime import datetime

from django.db.models import Count, IntegerField, Min, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from federation.propagation.models import OutboxItem
from members.models import Peer


@dataclass(frozen=True)
class PeerHealth:
    hub_id: str
    name: str
    url: str
    state: str
    inbound_policy: str
    outbox_depth: int  # rows waiting (pending, both lanes)
    incident_depth: int  # of which in the incident lane
    oldest_undelivered: datetime | None  # the oldest waiting row's creation
    lag_seconds: float | None  # how long that row has waited
    last_success: datetime | None  # the last batch the peer accepted
    last_error: str  # the last failed push ("" when none)
    last_error_at: datetime | None
    dead_letters: int
    refused: int  # items the peer refused (bad items; they are not retried)
    last_pull: datetime | None
    last_pull_error: str

    def as_json(self) -> dict:
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in asdict(self).items()
        }


def _count(state: str, **extra) -> Coalesce:
    rows = (
        OutboxItem.objects.filter(peer=OuterRef("pk"), state=state, **extra)
        .order_by()
        .values("peer")
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), Value(0))


def peers_with_health():
    """Peers annotated with their outbox counts, in one query (by the outbox's partial indexes on
    undelivered rows, never by scanning delivered ones). ``health_of`` reads one of them."""
    oldest = (
        OutboxItem.objects.filter(peer=OuterRef("pk"), state=OutboxItem.State.PENDING)
        .order_by()
        .values("peer")
        .annotate(at=Min("created_at"))
        .values("at")
    )
    return Peer.objects.select_related("link").annotate(
        health_depth=_count(OutboxItem.State.PENDING),
        health_incident_depth=_count(OutboxItem.State.PENDING, lane=OutboxItem.Lane.INCIDENT),
        health_dead=_count(OutboxItem.State.DEAD),
        health_refused=_count(OutboxItem.State.REFUSED),
        health_oldest=Subquery(oldest),
    )


def health_of(peer: Peer, *, now: datetime | None = None) -> PeerHealth:
    """The health of a peer from ``peers_with_health``."""
    now = now or timezone.now()
    link = getattr(peer, "link", None)
    oldest = peer.health_oldest
    return PeerHealth(
        hub_id=peer.hub_id,
        name=peer.name,
        url=peer.url,
        state=peer.state,
        inbound_policy=peer.inbound_policy,
        outbox_depth=peer.health_depth,
        incident_depth=peer.health_incident_depth,
        oldest_undelivered=oldest,
        lag_seconds=max((now - oldest).total_seconds(), 0.0) if oldest else None,
        last_success=link.last_push_at if link else None,
        last_error=link.last_push_error if link else "",
        last_error_at=link.last_push_error_at if link else None,
        dead_letters=peer.health_dead,
        refused=peer.health_refused,
        last_pull=link.last_pull_at if link else None,
        last_pull_error=link.last_pull_error if link else "",
    )


def peers_health(*, peer_ids=None, now: datetime | None = None) -> list[PeerHealth]:
    """Every peer's health (what ``manage.py peer status`` prints and the admin lists)."""
    now = now or timezone.now()
    peers = peers_with_health()
    if peer_ids is not None:
        peers = peers.filter(pk__in=list(peer_ids))
    return [health_of(peer, now=now) for peer in peers.order_by("hub_id")]
