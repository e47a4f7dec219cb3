"""Reading federation's state: each peer's delivery and pull health, as the admin's peer list,
its index page and ``manage.py peer status`` show it (one selector, so all say the same); which
dead letters still matter; and where one entry went and came from (the admin's entry page and
the auditor's entry history), by push or by its feed."""

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    IntegerField,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from federation.contributions.models import Contribution, Entry
from federation.propagation.models import KeyBinding, OutboxItem, PeerLink, PulledItem, Receipt
from federation.propagation.posting import takes_roots
from federation.sync.models import EntryChange
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.models import AuditEvent
from members.models import Peer

# --- Dead letters that no longer matter -------------------------------------------------------
# A dead letter is moot when the data here shows that the peer holds the item anyway: it sent us
# the contribution itself (a receipt from it, by push or by its feed), the contribution is its own
# member's, or a later item of the same kind for the same entry or key was delivered to it (it
# holds a newer state, or the key's binding in force), or the peer has pulled our feed past it
# (below). Anything else, a key revocation above all, still matters and is counted as live.
#
# Pulled past: the feed serves an entry's items as they stand when a page is read, for each
# entry with a change in the page. The change row written in the outbox row's own transaction
# (recorded before it: ``federation.downstream`` records changes first) is numbered only after
# that commit, so a page covering it offered the item. A dead letter of an entry is moot when
# the peer's pull position (``PeerLink.peer_pulled_through``) is at or past every change of the
# entry, its latest included, and none is waiting for a number, unless the entry is back in
# review (the feed offers none of its items then). Every change counts, not only those up to the
# row's creation: a page read while the entry was pending (retracted and reopened, say) offered
# nothing, and only a page covering the entry's latest change served it as it stands now. A key item likewise,
# when every binding of the key (a revocation is one) is numbered at or below the position: a
# revocation the peer has not pulled keeps its dead letter live.

MOOT_SENT_HERE = "held: the peer sent it here"
MOOT_ITS_OWN = "held: its own member's contribution"
MOOT_SUPERSEDED = "held: a later item was delivered"
MOOT_PULLED = "held: the peer pulled our feed past it"


def _pulled_past(model, target: str) -> Exists:
    """The row's peer has pulled past its entry's (``EntryChange``) or key's (``KeyBinding``)
    stream positions, as set out above."""
    pulled = OuterRef("peer_pulled_through")
    mine = model.objects.filter(**{target: OuterRef(OuterRef(target))})
    not_yet = mine.filter(Q(position__isnull=True) | Q(position__gt=pulled))
    return Exists(
        PeerLink.objects.filter(peer_id=OuterRef("peer_id"))
        .filter(Exists(mine.filter(position__lte=pulled)))
        .exclude(Exists(not_yet))
    )


def _moot_reasons() -> list[tuple[Q, str]]:
    """(condition on an outbox row, why it is moot), in the order they are named."""
    row = OuterRef("pk")
    sent_here = Exists(
        Receipt.objects.filter(
            contribution_id=OuterRef("contribution_id"), peer_hub=OuterRef("peer__hub_id")
        )
    )
    its_own = Exists(
        Contribution.objects.filter(
            pk=OuterRef("contribution_id"), origin_hub=OuterRef("peer__hub_id")
        )
    )
    later = OutboxItem.objects.filter(
        peer_id=OuterRef("peer_id"), state=OutboxItem.State.DELIVERED, pk__gt=row
    )
    dead = Q(state=OutboxItem.State.DEAD)  # a refused item is refused again when pulled
    return [
        (Q(kind=OutboxItem.Kind.CONTRIBUTION) & Q(sent_here), MOOT_SENT_HERE),
        (Q(kind=OutboxItem.Kind.CONTRIBUTION) & Q(its_own), MOOT_ITS_OWN),
        (
            Q(kind=OutboxItem.Kind.ENTRY)
            & Q(Exists(later.filter(kind=OutboxItem.Kind.ENTRY, entry_id=OuterRef("entry_id")))),
            MOOT_SUPERSEDED,
        ),
        (
            Q(kind=OutboxItem.Kind.KEY)
            & Q(
                Exists(
                    later.filter(
                        kind=OutboxItem.Kind.KEY, signing_key_id=OuterRef("signing_key_id")
                    )
                )
            ),
            MOOT_SUPERSEDED,
        ),
        (
            dead
            & Q(kind__in=[OutboxItem.Kind.CONTRIBUTION, OutboxItem.Kind.ENTRY])
            & ~Q(entry__state=Entry.State.PENDING)  # back in review: the feed offers nothing
            & Q(_pulled_past(EntryChange, "entry_id")),
            MOOT_PULLED,
        ),
        (
            dead & Q(kind=OutboxItem.Kind.KEY) & Q(_pulled_past(KeyBinding, "signing_key_id")),
            MOOT_PULLED,
        ),
    ]


def with_moot_reason(queryset: QuerySet[OutboxItem]) -> QuerySet[OutboxItem]:
    """Outbox rows annotated ``moot_reason``: why a dead (or refused) row no longer matters, or
    None. Computed by the database in the rows' own query (no query per row)."""
    whens = [
        When(
            Q(state__in=[OutboxItem.State.DEAD, OutboxItem.State.REFUSED]) & condition,
            then=Value(text),
        )
        for condition, text in _moot_reasons()
    ]
    return queryset.annotate(moot_reason=Case(*whens, default=None, output_field=CharField()))


def live_dead_letters(queryset: QuerySet[OutboxItem] | None = None) -> QuerySet[OutboxItem]:
    """Dead letters that still matter (none of ``_moot_reasons`` holds)."""
    queryset = OutboxItem.objects.all() if queryset is None else queryset
    queryset = queryset.filter(state=OutboxItem.State.DEAD)
    for condition, _text in _moot_reasons():
        queryset = queryset.exclude(condition)
    return queryset


def moot_dead_letters(queryset: QuerySet[OutboxItem] | None = None) -> QuerySet[OutboxItem]:
    """Dead letters that no longer matter (one of ``_moot_reasons`` holds)."""
    queryset = OutboxItem.objects.all() if queryset is None else queryset
    moot = Q()
    for condition, _text in _moot_reasons():
        moot |= condition
    return queryset.filter(moot, state=OutboxItem.State.DEAD)


@contextmanager
def without_jit():
    """Run the reads inside without PostgreSQL's JIT compiler. The dead-letter conditions are
    correlated subqueries that PostgreSQL over-estimates (one probe each, costed as a scan), so a
    peer list over 100,000 outbox rows crossed ``jit_above_cost`` and spent about 4.9 s of its
    5.1 s compiling a query that runs in 0.3 s (measured, docs/operations.md). ``SET LOCAL``: the
    setting ends with this transaction."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")
        yield


# --- Each peer's health ---------------------------------------------------------------------


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
    # Added for operators (issue 27); the keys above keep their meaning.
    live_dead_letters: int = 0  # dead letters that still matter (not moot, see above)
    in_flight: int = 0  # rows claimed by a worker whose lease has not ended
    last_pull_error_at: datetime | None = None
    push_recovered_at: datetime | None = None  # a push succeeded after the last error (latest)
    pull_recovered_at: datetime | None = None  # a pull succeeded after the last pull error
    peer_pulled_through: int = 0  # how far the peer has pulled our feed (its stream position)
    peer_pulled_at: datetime | None = None  # when we last served it a page of our feed
    # Pushes put this hub's attestations under roots: the peer's last answer said it takes them
    # and FEDERATION_ATTESTATION_ROOTS is on (docs/federation.md, "Attestations under one root").
    attestation_roots: bool = False

    @property
    def pull_failing(self) -> bool:
        return bool(self.last_pull_error)

    @property
    def needs_attention(self) -> bool:
        """What the admin's index warns about: live dead letters, refused items, failing pulls."""
        return bool(self.live_dead_letters or self.refused or self.pull_failing)

    def as_json(self) -> dict:
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in asdict(self).items()
        }


def _count(state: str, **extra) -> Coalesce:
    return _count_of(OutboxItem.objects.filter(peer=OuterRef("pk"), state=state, **extra))


def _count_of(rows: QuerySet[OutboxItem]) -> Coalesce:
    counted = rows.order_by().values("peer").annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def peers_with_health(*, now: datetime | None = None):
    """Peers annotated with their outbox counts, in one query (by the outbox's partial indexes on
    undelivered rows, never by scanning delivered ones). ``health_of`` reads one of them."""
    now = now or timezone.now()
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
        health_in_flight=_count(OutboxItem.State.PENDING, claimed_until__gt=now),
        health_dead=_count(OutboxItem.State.DEAD),
        health_live_dead=_count_of(
            live_dead_letters(OutboxItem.objects.filter(peer=OuterRef("pk")))
        ),
        health_refused=_count(OutboxItem.State.REFUSED),
        health_oldest=Subquery(oldest),
    )


def _recovered(success: datetime | None, error_at: datetime | None) -> datetime | None:
    return success if success and error_at and success > error_at else None


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
        live_dead_letters=peer.health_live_dead,
        in_flight=peer.health_in_flight,
        last_pull_error_at=link.last_pull_error_at if link else None,
        push_recovered_at=_recovered(link.last_push_at, link.last_push_error_at) if link else None,
        pull_recovered_at=(
            _recovered(link.last_pull_at, link.last_pull_error_at)
            if link and not link.last_pull_error
            else None
        ),
        peer_pulled_through=link.peer_pulled_through if link else 0,
        peer_pulled_at=link.peer_pulled_at if link else None,
        attestation_roots=takes_roots(peer),
    )


def peers_health(*, peer_ids=None, now: datetime | None = None) -> list[PeerHealth]:
    """Every peer's health (what ``manage.py peer status`` prints and the admin lists)."""
    now = now or timezone.now()
    peers = peers_with_health(now=now)
    if peer_ids is not None:
        peers = peers.filter(pk__in=list(peer_ids))
    with without_jit():
        return [health_of(peer, now=now) for peer in peers.order_by("hub_id")]


# --- Where one entry went and where it came from -------------------------------------------------

# How long after a row's delivery (or a receipt's arrival) its log event may be written: the
# event is recorded in the same transaction, moments later; the margin only bounds the search.
_EVENT_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True)
class LoggedFederationEvent:
    """The ``federation.sent`` / ``federation.received`` event that names an item."""

    event_id: int
    leaf_index: int | None


@dataclass(frozen=True)
class EntryTrail:
    """An entry's federation: the outbox rows owed to peers (``moot_reason`` and ``in_flight``
    annotated; ``sent_event`` the log event of a delivered row's batch), the receipts of its
    contributions (``received_event`` likewise), and why it is in its state here."""

    deliveries: list[OutboxItem]
    receipts: list[Receipt]
    state_event: AuditEvent | None
    pulls: list[PulledItem] = field(default_factory=list)  # items peers pulled from our feed

    @property
    def state_policy(self) -> dict:
        return (self.state_event.data or {}).get(Key.POLICY) or {} if self.state_event else {}


def entry_trail(*, entry: Entry, now: datetime | None = None) -> EntryTrail:
    """Six queries whatever the numbers of peers and items."""
    now = now or timezone.now()
    deliveries = list(
        with_moot_reason(OutboxItem.objects.filter(entry_id=entry.pk))
        .select_related("peer", "contribution", "signing_key")
        .order_by("peer__hub_id", "pk")
    )
    for row in deliveries:
        row.in_flight = (
            row.state == OutboxItem.State.PENDING
            and row.claimed_until is not None
            and row.claimed_until > now
        )
    receipts = list(
        Receipt.objects.filter(contribution__entry_id=entry.pk)
        .select_related("contribution")
        .order_by("received_at", "pk")
    )
    _attach_events(
        deliveries,
        action=Action.FEDERATION_SENT,
        when=lambda r: r.delivered_at if r.state == OutboxItem.State.DELIVERED else None,
        peer=lambda r: r.peer.hub_id,
        names=lambda r, data: r.digest and r.digest in (data.get(Key.ITEMS) or ()),
        attribute="sent_event",
    )
    _attach_events(
        receipts,
        action=Action.FEDERATION_RECEIVED,
        when=lambda r: r.received_at,
        peer=lambda r: r.peer_hub,
        names=lambda r, data: (
            data.get(Key.BATCH) == str(r.batch_id)
            and r.digest in [*(data.get(Key.ACCEPTED) or ()), *(data.get(Key.DUPLICATES) or ())]
        ),
        attribute="received_event",
    )
    state_event = (
        AuditEvent.objects.filter(object_type=ObjectType.ENTRY, object_id=str(entry.pk))
        .filter(**{f"data__{Key.TO}": entry.state})
        .order_by("-pk")
        .first()
    )
    # Each row holds its page's event: no search of the log.
    pulls = list(
        PulledItem.objects.filter(entry_id=entry.pk)
        .select_related("peer", "contribution", "event")
        .order_by("peer__hub_id", "pulled_at", "pk")
    )
    return EntryTrail(
        deliveries=deliveries, receipts=receipts, state_event=state_event, pulls=pulls
    )


def _attach_events(rows, *, action, when, peer, names, attribute) -> None:
    """Set ``attribute`` on each row to the log event that names it (or None): one query for all
    rows, each by its peer and a short window after its time (the index on action and time)."""
    for row in rows:
        setattr(row, attribute, None)
    timed = [(row, when(row)) for row in rows if when(row) is not None]
    if not timed:
        return
    window = Q()
    for row, moment in timed:
        window |= Q(
            object_id=peer(row), occurred_at__gte=moment, occurred_at__lte=moment + _EVENT_WINDOW
        )
    events = list(
        AuditEvent.objects.filter(window, action=action, object_type=ObjectType.PEER)
        .order_by("pk")
        .values_list("pk", "leaf_index", "object_id", "occurred_at", "data")
    )
    for row, moment in timed:
        for pk, leaf_index, object_id, occurred_at, data in events:
            if object_id == peer(row) and occurred_at >= moment and names(row, data or {}):
                setattr(row, attribute, LoggedFederationEvent(pk, leaf_index))
                break
