"""The hub's gauges, read from PostgreSQL when Prometheus scrapes (docs/operations.md, "Metrics").

Every figure here is derived from the database, not counted in a process, so it is the same
whichever gunicorn worker answers the scrape and it includes what the Celery workers did. Each
group of figures runs in its own savepoint under a statement timeout
(``METRICS_STATEMENT_TIMEOUT_MS``): a slow or failing group is left out of that scrape and
``concordat_metrics_group_up{group}`` says so, instead of the scrape failing as a whole.

What each query costs is written beside it. None reads a table in full: they read small tables
(peers, links, witnesses, single-row states) or the partial indexes on the rows still waiting
(undelivered outbox rows, unsequenced audit events and stream changes), so their time grows with
a backlog, not with history.
"""

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from federation.matching.store import loaded_match_store
from federation.propagation.models import OutboxItem, PeerLink
from federation.sync.models import EntryChange, SyncState
from federation.transparency.log_selectors import log_status
from federation.transparency.models import Checkpoint, SequencerStatus, Witness, WitnessedLog
from members.models import Peer

logger = logging.getLogger(__name__)

LANES = (OutboxItem.Lane.NORMAL, OutboxItem.Lane.INCIDENT)


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


def _age(now: datetime, moment: datetime | None) -> float:
    return max((now - moment).total_seconds(), 0.0) if moment else 0.0


def _gauge(name: str, documentation: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"concordat_{name}", documentation, labels=list(labels))


# --- federation: per linked peer --------------------------------------------------------------


def federation_metrics(now: datetime) -> list[Metric]:
    """The outbox and the pull, per peer (label ``peer``: its hub id).

    Cost: the peers and their links (one row each); one aggregate over the undelivered outbox
    rows (pending, refused, dead), read through the partial index ``outbox_undelivered``, so
    proportional to those rows and never to the delivered history; one primary-key lookup per
    (peer, lane) for the oldest pending row's age (the lowest pending id is the oldest row)."""
    links = {
        link.peer_id: link
        for link in PeerLink.objects.all()  # one per linked peer
    }
    peers = list(Peer.objects.order_by("hub_id"))
    counts = (
        OutboxItem.objects.exclude(state=OutboxItem.State.DELIVERED)
        .values("peer_id", "lane", "state")
        .annotate(
            rows=Count("id"),
            first=Min("id"),
            in_flight=Count("id", filter=Q(claimed_until__gt=now)),
        )
        .order_by()
    )
    pending: dict[tuple[int, str], int] = {}
    first_pending: dict[tuple[int, str], int] = {}
    in_flight: dict[int, int] = {}
    by_state: dict[tuple[int, str], int] = {}
    for row in counts:
        peer_id, lane, state = row["peer_id"], row["lane"], row["state"]
        by_state[peer_id, state] = by_state.get((peer_id, state), 0) + row["rows"]
        if state == OutboxItem.State.PENDING:
            pending[peer_id, lane] = row["rows"]
            first_pending[peer_id, lane] = row["first"]
            in_flight[peer_id] = in_flight.get(peer_id, 0) + row["in_flight"]
    oldest = dict(
        OutboxItem.objects.filter(pk__in=list(first_pending.values())).values_list(
            "pk", "created_at"
        )
    )
    with_rows = {peer_id for peer_id, _state in by_state}

    active = _gauge("federation_peer_active", "1 if the peer is active, 0 if suspended.", ["peer"])
    depth = _gauge(
        "federation_outbox_pending",
        "Outbox rows waiting to be sent to the peer (in flight included).",
        ["peer", "lane"],
    )
    age = _gauge(
        "federation_outbox_oldest_pending_age_seconds",
        "How long the oldest row waiting for the peer has waited (0: none waits).",
        ["peer", "lane"],
    )
    leased = _gauge(
        "federation_outbox_in_flight",
        "Pending rows claimed by a worker whose lease has not run out.",
        ["peer"],
    )
    dead = _gauge("federation_outbox_dead_letters", "Dead letters for the peer.", ["peer"])
    refused = _gauge("federation_outbox_refused", "Items the peer refused.", ["peer"])
    push_ok = _gauge(
        "federation_push_last_success_timestamp_seconds",
        "When the peer last accepted a batch (absent: never).",
        ["peer"],
    )
    push_error = _gauge(
        "federation_push_last_error_timestamp_seconds",
        "When a push to the peer last failed (absent: never).",
        ["peer"],
    )
    push_failing = _gauge(
        "federation_push_failing",
        "1 if the last push to the peer failed (no accepted batch since the last failure).",
        ["peer"],
    )
    pull_ok = _gauge(
        "federation_pull_last_success_timestamp_seconds",
        "When a feed page was last pulled from the peer (absent: never).",
        ["peer"],
    )
    pull_lag = _gauge(
        "federation_pull_lag_seconds",
        "Seconds since a feed page was last pulled from the peer (absent: never pulled).",
        ["peer"],
    )
    pull_error = _gauge(
        "federation_pull_last_error_timestamp_seconds",
        "When a pull from the peer last failed (absent: never).",
        ["peer"],
    )
    pull_failing = _gauge(
        "federation_pull_failing", "1 if the last pull from the peer failed.", ["peer"]
    )
    received = _gauge(
        "federation_last_received_timestamp_seconds",
        "When an item from the peer was last stored here (absent: never).",
        ["peer"],
    )
    for peer in peers:
        if not peer.is_link and peer.pk not in with_rows:
            continue  # known by its key only: nothing is sent to it or pulled from it
        hub = peer.hub_id
        active.add_metric([hub], 1 if peer.is_active else 0)
        for lane in LANES:
            depth.add_metric([hub, lane], pending.get((peer.pk, lane), 0))
            first = first_pending.get((peer.pk, lane))
            age.add_metric([hub, lane], _age(now, oldest.get(first)) if first else 0.0)
        leased.add_metric([hub], in_flight.get(peer.pk, 0))
        dead.add_metric([hub], by_state.get((peer.pk, OutboxItem.State.DEAD), 0))
        refused.add_metric([hub], by_state.get((peer.pk, OutboxItem.State.REFUSED), 0))
        link = links.get(peer.pk)
        if link is None:
            push_failing.add_metric([hub], 0)
            pull_failing.add_metric([hub], 0)
            continue
        if link.last_push_at:
            push_ok.add_metric([hub], _seconds(link.last_push_at))
        if link.last_push_error_at:
            push_error.add_metric([hub], _seconds(link.last_push_error_at))
        failing = bool(link.last_push_error_at) and (
            link.last_push_at is None or link.last_push_error_at > link.last_push_at
        )
        push_failing.add_metric([hub], 1 if failing else 0)
        if link.last_pull_at:
            pull_ok.add_metric([hub], _seconds(link.last_pull_at))
            pull_lag.add_metric([hub], _age(now, link.last_pull_at))
        if link.last_pull_error_at:
            pull_error.add_metric([hub], _seconds(link.last_pull_error_at))
        # A successful page clears last_pull_error (federation.receiving.pull).
        pull_failing.add_metric([hub], 1 if link.last_pull_error else 0)
        if link.last_received_at:
            received.add_metric([hub], _seconds(link.last_received_at))
    return [
        active,
        depth,
        age,
        leased,
        dead,
        refused,
        push_ok,
        push_error,
        push_failing,
        pull_ok,
        pull_lag,
        pull_error,
        pull_failing,
        received,
    ]


# --- the audit log ------------------------------------------------------------------------------


def audit_log_metrics(now: datetime) -> list[Metric]:
    """The sequencer's lag and state (what ``/api/v1/log/status`` reports).

    Cost: the latest checkpoint (the unique index on ``tree_size``), the sequencer's one row, and
    one count and minimum over the unsequenced events (the partial index
    ``auditevent_unsequenced``: proportional to the events waiting, a few hundred at most while
    the sequencer keeps up)."""
    status = log_status(now=now)
    tree = _gauge("audit_log_tree_size", "Leaves in the latest signed checkpoint.")
    tree.add_metric([], status.tree_size)
    checkpoint = _gauge(
        "audit_log_checkpoint_timestamp_seconds",
        "When the latest checkpoint was signed (absent: none yet).",
    )
    if status.checkpoint_signed_at:
        checkpoint.add_metric([], _seconds(status.checkpoint_signed_at))
    waiting = _gauge("audit_log_unsequenced_events", "Committed events waiting for a leaf.")
    waiting.add_metric([], status.unsequenced_events)
    lag = _gauge(
        "audit_log_sequencer_lag_seconds",
        "How long the oldest event waiting for a leaf has waited (0: none waits).",
    )
    lag.add_metric([], status.oldest_unsequenced_age_seconds or 0.0)
    state = _gauge(
        "audit_log_sequencer_state",
        "The sequencer's state: 1 for the current one (ok, refused).",
        ["state"],
    )
    for value in SequencerStatus.State.values:
        state.add_metric([value], 1 if status.sequencer_state == value else 0)
    refusals = _gauge("audit_log_sequencer_refusals", "Refused sequencing runs since the last OK.")
    refusals.add_metric([], status.sequencer_refusals)
    stalled = _gauge(
        "audit_log_stalled",
        "1 if an event has waited longer than CONCORDAT_LOG_STALL_SECONDS for a leaf.",
    )
    stalled.add_metric([], 1 if status.stalled else 0)
    return [tree, checkpoint, waiting, lag, state, refusals, stalled]


# --- the member sync stream ------------------------------------------------------------------


def sync_metrics(now: datetime) -> list[Metric]:
    """The change stream's sequencer lag.

    Cost: the stream's one state row, and one count and minimum over the unsequenced changes
    (the partial index ``entrychange_unsequenced``: proportional to the changes waiting)."""
    state = SyncState.objects.filter(pk=1).first()
    waiting = EntryChange.objects.filter(position__isnull=True).aggregate(
        rows=Count("id"), oldest=Min("recorded_at")
    )
    position = _gauge("sync_stream_position", "The last position given in the change stream.")
    position.add_metric([], state.last_position if state else 0)
    compacted = _gauge(
        "sync_stream_compacted_through", "Cursors before this position are refused as stale."
    )
    compacted.add_metric([], state.compacted_through if state else 0)
    unsequenced = _gauge("sync_unsequenced_changes", "Committed changes waiting for a position.")
    unsequenced.add_metric([], waiting["rows"])
    lag = _gauge(
        "sync_stream_lag_seconds",
        "How long the oldest change waiting for a position has waited (0: none waits).",
    )
    lag.add_metric([], _age(now, waiting["oldest"]))
    return [position, compacted, unsequenced, lag]


# --- the match index (this process) ------------------------------------------------------------


def match_metrics(now: datetime) -> list[Metric]:
    """The match index of the process that answers the scrape (docs/matching.md: each process
    loads its own, on its first match request; scrape the matcher tier for these). A process
    that has not loaded one reports ``concordat_match_index_loaded 0`` and nothing else.

    Cost: the stream's state row, and one lookup by the unique index on ``position`` for the
    first change the index has not applied."""
    loaded = _gauge("match_index_loaded", "1 if this process holds a match index.")
    store = loaded_match_store()
    if store is None:
        loaded.add_metric([], 0)
        return [loaded]
    loaded.add_metric([], 1)
    status = store.status()
    signals = _gauge("match_index_signals", "Signals in this process's index.", ["signal_type"])
    signals.add_metric(["pdq"], status.pdq)
    signals.add_metric(["md5"], status.md5)
    signals.add_metric(["sha256"], status.sha256)
    memory = _gauge("match_index_memory_bytes", "Memory held by this process's PDQ index.")
    memory.add_metric([], status.memory_bytes)
    last = SyncState.objects.filter(pk=1).values_list("last_position", flat=True).first() or 0
    behind = _gauge(
        "match_index_positions_behind", "Stream positions the index has not applied yet."
    )
    behind.add_metric([], max(last - status.position, 0))
    first_missing = (
        EntryChange.objects.filter(position__gt=status.position)
        .order_by("position")
        .values_list("recorded_at", flat=True)
        .first()
    )
    staleness = _gauge(
        "match_index_staleness_seconds",
        "Age of the oldest stream change the index has not applied (0: up to date).",
    )
    staleness.add_metric([], _age(now, first_missing))
    return [loaded, signals, memory, behind, staleness]


# --- witnesses ----------------------------------------------------------------------------------


def witness_metrics(now: datetime) -> list[Metric]:
    """This hub's witnesses (cosignature age and how far behind each is) and the logs this hub
    witnesses (split views).

    Cost: the witnesses and the witnessed logs (a row each) and the latest checkpoint (the unique
    index on ``tree_size``)."""
    size = Checkpoint.objects.order_by("-tree_size").values_list("tree_size", flat=True).first()
    cosigned = _gauge(
        "witness_last_cosignature_timestamp_seconds",
        "When the witness last cosigned a checkpoint of this hub (absent: never).",
        ["witness"],
    )
    age = _gauge(
        "witness_cosignature_age_seconds",
        "Seconds since the witness last cosigned a checkpoint of this hub (absent: never).",
        ["witness"],
    )
    behind = _gauge(
        "witness_tree_size_behind",
        "Leaves between this hub's latest checkpoint and the last one the witness cosigned.",
        ["witness"],
    )
    failing = _gauge("witness_failing", "1 if the last request to the witness failed.", ["witness"])
    for witness in Witness.objects.filter(active=True).order_by("name"):
        if witness.last_cosigned_at:
            cosigned.add_metric([witness.name], _seconds(witness.last_cosigned_at))
            age.add_metric([witness.name], _age(now, witness.last_cosigned_at))
        behind.add_metric([witness.name], max((size or 0) - witness.tree_size, 0))
        failing.add_metric([witness.name], 1 if witness.last_error else 0)
    split = _gauge(
        "witnessed_log_split_view",
        "1 if this hub saw a split view of the log it witnesses and refuses to cosign it.",
        ["origin"],
    )
    for log in WitnessedLog.objects.order_by("origin"):
        split.add_metric([log.origin], 1 if log.state == WitnessedLog.State.SPLIT_VIEW else 0)
    return [cosigned, age, behind, failing, split]


GROUPS: dict[str, Callable[[datetime], list[Metric]]] = {
    "federation": federation_metrics,
    "audit_log": audit_log_metrics,
    "sync": sync_metrics,
    "match": match_metrics,
    "witness": witness_metrics,
}


class HubCollector(Collector):
    """Collects every group at scrape time, each bounded in time and isolated in a savepoint."""

    def describe(self) -> list[Metric]:
        return []  # collected at scrape time only, never when registered

    def collect(self) -> Iterable[Metric]:
        now = timezone.now()
        families: list[Metric] = []
        up = _gauge(
            "metrics_group_up",
            "1 if the group's figures were read in this scrape, 0 if its queries failed or "
            "ran out of time (the figures are then absent).",
            ["group"],
        )
        read: set[str] = set()
        try:
            with transaction.atomic(), _statement_timeout(settings.METRICS_STATEMENT_TIMEOUT_MS):
                for name, group in GROUPS.items():
                    try:
                        with transaction.atomic():
                            families.extend(group(now))
                    except DatabaseError:
                        logger.warning(
                            "metrics: the %s figures could not be read", name, exc_info=True
                        )
                    else:
                        read.add(name)
        except DatabaseError:  # no connection at all: the counters are still served
            logger.warning("metrics: the database does not answer", exc_info=True)
        for name in GROUPS:
            up.add_metric([name], 1 if name in read else 0)
        yield from families
        yield up


@contextlib.contextmanager
def _statement_timeout(milliseconds: int) -> Iterator[None]:
    """Every statement inside under ``milliseconds`` (PostgreSQL), and the previous bound back
    afterwards: the setting is transaction-local, so without the reset it would also bound what
    an enclosing transaction runs after the scrape."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('statement_timeout')")
        (previous,) = cursor.fetchone()
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(milliseconds)])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])
