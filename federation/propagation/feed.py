"""The pull feed a peer reads for anti-entropy:
``GET /api/v1/federation/feed?after=&horizon=&limit=`` (docs/federation.md, "Sending").

A page is a hub-signed ``concordat.batch`` addressed to the asking peer, with ``feed`` =
``{after, next, more}``, over the sync change stream (``EntryChange`` positions, the same stream
members sync from): for each entry changed after ``after``, the items this hub would push to that
peer now, by the same rules as the outbox (``outbox.shareable_with``) and built by the same code
(``items.ItemsBuilder``): its adds (and, for withdrawn ones, their retracts, after them), or, for
an entry rejected after a dispute, an ``entry`` item; and for each key binding in the stream (a
key's first binding, a revocation: ``KeyBinding.position``), a ``key`` item with the key's
binding in force, to a peer that was sent, or is owed, a contribution signed by the key (so a
revocation whose push was lost still arrives). ``after`` 0 reads from the start, and the page
answers the stream's compaction horizon of that moment in the ``Concordat-Feed-Horizon`` header:
the removals compaction had dropped up to there were of entries whose every change was gone, so
a puller that began then never held them. It sends that ``horizon`` back with its next cursors
(a page from ``after`` > 0 answers the ``horizon`` it was asked with), and is refused with 410
``stale_cursor`` (the puller starts again from 0) only when compaction has dropped a removal
above both ``after`` and ``horizon``; a puller that sends no horizon is refused below the
compaction horizon, as before. The header is outside the signed page, whose format is unchanged.
A page holds at most ``limit`` changes and 500 items. A page that offers
items is recorded as ``federation.sent`` (``via`` ``pull``, the items' digests), as a push's
delivered items are, so that the two hubs' logs reconcile item by item. Every page served
records the peer's pull position (its ``after``: ``federation.propagation.pulled``).
"""

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Length
from django.utils import timezone

from federation.contributions.models import SHARED_STATES, Contribution, Entry
from federation.errors import Gone
from federation.hubkey import hub_private_key
from federation.propagation.batching import BATCH_ENVELOPE_ALLOWANCE
from federation.propagation.bindings import newest_bindings
from federation.propagation.items import ItemsBuilder, RowRef
from federation.propagation.models import KeyBinding, OutboxItem, Receipt
from federation.propagation.outbox import shareable_with
from federation.propagation.pulled import feed_pull_record, pulled_items_record
from federation.propagation.wire import (
    MAX_BATCH_ITEMS,
    batch_canonical,
    batch_document,
    sign_canonical,
)
from federation.sync.models import EntryChange
from federation.sync.stream import stream_state
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from federation.video.models import VideoFrames
from members.actors import Actor
from members.models import Peer, SigningKey

State = Entry.State
HORIZON_HEADER = "Concordat-Feed-Horizon"
_ENTRY, _KEY = "entry", "key"
_SHARED_CHUNK = 500  # adds of a key read at a time, to find one the peer is owed


@dataclass(frozen=True)
class FeedPage:
    """A signed page (``{"batch", "signature"}``, its JSON bytes as answered) and the compaction
    horizon the puller sends back with its next cursor (``Concordat-Feed-Horizon``)."""

    body: bytes
    horizon: int


def feed_page(
    *, peer: Peer, after: int, limit: int, horizon: int = 0, roots: bool = False
) -> FeedPage:
    """What ``peer`` is owed after ``after``, for a puller whose reading began when compaction
    had dropped removals up to ``horizon`` (0: unknown; from ``after`` 0: now). ``roots``: the
    page's attestations by this hub go under one signed root (``attestation_roots``), for a
    puller that asked for them."""
    # Read before the page: every removal compaction had dropped up to ``compacted_through`` is
    # gone from what the page's reads see, so a puller reading from 0 never held those entries.
    state = stream_state()
    if after == 0:
        horizon = state.compacted_through
    # The stream's positions name entry changes and key bindings: the first ``limit`` of both,
    # read in two statements. Only up to the position read before them: everything up to it
    # had committed, so both see all of it, and a position the sequencer gives in between (seen
    # by the second read but not the first) cannot make the page skip one of the first table.
    window = {"position__gt": after, "position__lte": state.last_position}
    changes = [
        (position, _ENTRY, entry_id)
        for position, entry_id in EntryChange.objects.filter(**window)
        .order_by("position")
        .values_list("position", "entry_id")[: limit + 1]
    ]
    changes += [
        (position, _KEY, key_id)
        for position, key_id in KeyBinding.objects.filter(**window)
        .order_by("position")
        .values_list("position", "signing_key_id")[: limit + 1]
    ]
    changes.sort()
    more = len(changes) > limit
    changes = changes[:limit]
    # Checked after reading, as the member delta API does: a compaction that committed before
    # the read raised the horizon before this check. Stale only if a removal the puller may have
    # needed was dropped: one above both its position and the horizon it began under.
    if after > 0 and stream_state().compacted_through > max(after, horizon):
        raise Gone(
            "This cursor is older than the stream's retention of removals; pull again from 0.",
            code="stale_cursor",
        )
    # Asking from ``after`` says the peer stored everything up to it: recorded (moot dead letters).
    feed_pull_record(peer=peer, after=after, stream_end=state.last_position, now=timezone.now())
    # Each entry, and each key, at its last change.
    last = {(kind, target): position for position, kind, target in changes}
    ordered = sorted(last.items(), key=lambda pair: pair[1])
    refs_by_target = {
        (_ENTRY, entry_id): entry_refs
        for entry_id, entry_refs in _refs(
            peer, [target for kind, target in last if kind == _ENTRY]
        ).items()
    }
    refs_by_target.update(
        ((_KEY, key_id), key_refs)
        for key_id, key_refs in _key_refs(
            peer,
            [target for kind, target in last if kind == _KEY],
            first_id=sum(map(len, refs_by_target.values())) + 1,
        ).items()
    )
    refs: list[RowRef] = []
    position = after
    # A page also fits the puller's body limit: each add of a vpdq entry carries its frame list.
    frames_bytes = _frames_bytes([target for kind, target in last if kind == _ENTRY])
    budget = settings.FEDERATION_MAX_BODY_BYTES - BATCH_ENVELOPE_ALLOWANCE
    size = 0
    for target, target_position in ordered:
        target_refs = refs_by_target.get(target, [])
        cost = len(target_refs) * (
            _ITEM_ALLOWANCE + frames_bytes.get(target[1], 0) * (target[0] == _ENTRY)
        )
        if refs and (len(refs) + len(target_refs) > MAX_BATCH_ITEMS or size + cost > budget):
            more = True
            break
        refs.extend(target_refs[:MAX_BATCH_ITEMS])
        size += cost
        position = target_position
    else:
        if changes:
            position = changes[-1][0]
        if not more:
            position = max(position, state.last_position)
    now = timezone.now()
    # The items as their RFC 8785 bytes, spliced into the page's (as a push's are): the page is
    # neither built as dicts nor walked again to be written and signed.
    built = ItemsBuilder(
        refs, peer_hub=peer.hub_id, now=now, push=False, documents=False, roots=roots
    ).build(refs)
    batch_id = uuid.uuid4()
    document = batch_document(
        sender=settings.HUB_ID,
        receiver=peer.hub_id,
        batch_id=batch_id,
        sent_at=now,
        items=[],
        feed={"after": after, "next": position, "more": more},
    )
    canonical = batch_canonical(document, [built.canonical[ref_id] for ref_id, _, _ in built.items])
    signature = sign_canonical(hub_private_key(), document, canonical).as_wire()[1]
    if built.items:
        # What this page offers the peer, as a push's delivered items are recorded: the peer's
        # federation.received names the same digests, so reconcile-hubs pairs the two.
        by_id = {ref.id: ref for ref in refs}
        entry_of = {
            ref.id: target[1]
            for target, target_refs in refs_by_target.items()
            if target[0] == _ENTRY
            for ref in target_refs
        }
        with transaction.atomic():
            event = audit_record(
                AuditRecord(
                    action=Action.FEDERATION_SENT,
                    actor=Actor.peer(peer.hub_id, peer.name),
                    object_type=ObjectType.PEER,
                    object_id=peer.hub_id,
                    data={
                        Key.PEER: peer.hub_id,
                        Key.BATCH: str(batch_id),
                        Key.VIA: Receipt.Via.PULL.value,
                        Key.ITEMS: [digest for _ref, _item, digest in built.items],
                    },
                )
            )
            pulled_items_record(
                peer=peer,
                event=event,
                offered=[(by_id[ref_id], digest) for ref_id, _item, digest in built.items],
                entry_of=entry_of,
                now=now,
            )
    body = b'{"batch":' + canonical + b',"signature":"' + signature.encode() + b'"}'
    return FeedPage(body=body, horizon=horizon)


# An item's bytes besides a frame list: the contribution, its key section, attestations, path.
_ITEM_ALLOWANCE = 8 * 1024


def _frames_bytes(entry_ids: list[int]) -> dict[int, int]:
    """The length of each vpdq entry's canonical frame list, by entry id (others: absent)."""
    return dict(
        VideoFrames.objects.filter(entry_id__in=entry_ids)
        .annotate(size=Length("canonical"))
        .values_list("entry_id", "size")
    )


def _refs(peer: Peer, entry_ids: list[int]) -> dict[int, list[RowRef]]:
    """Per entry, the items owed to ``peer`` as they stand: a few queries for the whole page."""
    if not entry_ids:
        return {}
    entries = dict(Entry.objects.filter(pk__in=entry_ids).values_list("pk", "state").order_by())
    adds = list(
        Contribution.objects.filter(entry_id__in=entry_ids, action=Contribution.Action.ADD)
        .order_by("entry_id", "pk")
        .values("pk", "entry_id", "scope", "origin_hub", "labels", "status", "withdrawn_by_id",
                "entry__signal_type")
    )  # fmt: skip
    # The path only: an arrival's ``sent_to`` stops a push, never a pull (the safety net).
    on_path: dict[int, set[str]] = {}
    for contribution_id, peer_hub, path in Receipt.objects.filter(
        contribution_id__in=[a["pk"] for a in adds]
    ).values_list("contribution_id", "peer_hub", "path"):
        on_path.setdefault(contribution_id, set()).update([peer_hub, *path])
    refs: dict[int, list[RowRef]] = {}
    serial = 0

    def ref(kind, contribution_id=None, entry_id=None) -> RowRef:
        nonlocal serial
        serial += 1
        return RowRef(serial, kind, contribution_id, entry_id, None, [])

    retracts: dict[int, list[RowRef]] = {}
    for add in adds:
        state = entries[add["entry_id"]]
        if state not in (*SHARED_STATES, State.RETRACTED):
            continue
        if not shareable_with(
            peer,
            scope=add["scope"],
            origin_hub=add["origin_hub"],
            labels=add["labels"],
            signal_type=add["entry__signal_type"],
            on_path=on_path.get(add["pk"], ()),
        ):
            continue
        refs.setdefault(add["entry_id"], []).append(ref(OutboxItem.Kind.CONTRIBUTION, add["pk"]))
        if add["withdrawn_by_id"]:
            retracts.setdefault(add["entry_id"], []).append(
                ref(OutboxItem.Kind.CONTRIBUTION, add["withdrawn_by_id"])
            )
    for entry_id, entry_retracts in retracts.items():
        seen: set[int] = set()
        refs[entry_id].extend(
            r
            for r in entry_retracts
            if not (r.contribution_id in seen or seen.add(r.contribution_id))
        )
    for entry_id, state in entries.items():
        if state == State.REJECTED:
            refs.setdefault(entry_id, []).append(ref(OutboxItem.Kind.ENTRY, entry_id=entry_id))
    return refs


# The page's ``feed.after`` is signed JSON (RFC 8785): an integer beyond 2^53 - 1 has no exact
# representation there, so a cursor beyond it is bad input, not a page that cannot be signed.
MAX_CURSOR = 2**53 - 1


def _key_refs(peer: Peer, key_ids: list[int], *, first_id: int) -> dict[int, list[RowRef]]:
    """Per key, a key item (its binding in force) if ``peer`` is owed it: the peer is not the
    key's home hub nor the hub its binding came from, and it was sent (or is owed now, by the
    feed's rules) a contribution signed by the key. A foreign key's item goes with the path
    ``[home hub]`` (the hubs between are not kept with the binding)."""
    if not key_ids:
        return {}
    bindings = newest_bindings(key_ids)
    # Keys the peer was sent a contribution of (an outbox row, not refused): one query.
    sent = set(
        OutboxItem.objects.filter(
            peer=peer,
            kind=OutboxItem.Kind.CONTRIBUTION,
            contribution__signing_key_id__in=list(bindings),
        )
        .exclude(state=OutboxItem.State.REFUSED)
        .values_list("contribution__signing_key_id", flat=True)
        .distinct()
    )
    refs: dict[int, list[RowRef]] = {}
    keys = SigningKey.objects.filter(pk__in=bindings).select_related("organisation").order_by("pk")
    for key in keys:
        home = key.organisation.hub
        if peer.hub_id in (home, bindings[key.pk].received_from):
            continue
        if key.pk not in sent and not _owed(peer, key.pk):
            continue
        path = [] if home == settings.HUB_ID else [home]
        refs[key.pk] = [RowRef(first_id + len(refs), OutboxItem.Kind.KEY, None, None, key.pk, path)]
    return refs


def _owed(peer: Peer, key_pk: int) -> bool:
    """Whether the feed owes ``peer`` a contribution signed by the key now (an add in a shared
    entry that it may receive): a peer linked after the entries were shared has no outbox row
    for them, and learnt the key from the feed."""
    adds = (
        Contribution.objects.filter(
            signing_key_id=key_pk,
            action=Contribution.Action.ADD,
            entry__state__in=(*SHARED_STATES, State.RETRACTED),
        )
        .order_by("pk")
        .values_list("pk", "scope", "origin_hub", "labels", "entry__signal_type")
    )
    chunk: list[tuple] = []  # read a chunk at a time: most keys are owed on their first add
    for add in adds.iterator(chunk_size=_SHARED_CHUNK):
        chunk.append(add)
        if len(chunk) == _SHARED_CHUNK:
            if _any_shareable(peer, chunk):
                return True
            chunk = []
    return bool(chunk) and _any_shareable(peer, chunk)


def _any_shareable(peer: Peer, adds: list[tuple]) -> bool:
    on_path: dict[int, set[str]] = {}
    for contribution_id, peer_hub, path in Receipt.objects.filter(
        contribution_id__in=[add[0] for add in adds]
    ).values_list("contribution_id", "peer_hub", "path"):
        on_path.setdefault(contribution_id, set()).update([peer_hub, *path])
    return any(
        shareable_with(
            peer,
            scope=scope,
            origin_hub=origin_hub,
            labels=labels,
            signal_type=signal_type,
            on_path=on_path.get(pk, ()),
        )
        for pk, scope, origin_hub, labels, signal_type in adds
    )
