"""The pull feed a peer reads for anti-entropy: ``GET /api/v1/federation/feed?after=&limit=``
(docs/federation.md, "Sending").

A page is a hub-signed ``concordat.batch`` addressed to the asking peer, with ``feed`` =
``{after, next, more}``, over the sync change stream (``EntryChange`` positions, the same stream
members sync from): for each entry changed after ``after``, the items this hub would push to that
peer now, by the same rules as the outbox (``outbox.shareable_with``) and built by the same code
(``items.items_build``): its adds (and, for withdrawn ones, their retracts, after them), or, for
an entry rejected after a dispute, an ``entry`` item. ``after`` 0 reads from the start; an
``after`` below the stream's compaction horizon is refused with 410 ``stale_cursor`` (the puller
starts again from 0). A page holds at most ``limit`` changes and 500 items.
"""

import uuid

import orjson
from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.views import APIView

from federation.contributions.models import Contribution, Entry
from federation.errors import Gone, InvalidInput
from federation.hubkey import hub_private_key
from federation.propagation.authentication import (
    IsActivePeer,
    PeerAuthentication,
    PeerRateThrottle,
    peer_of_request,
)
from federation.propagation.items import RowRef, items_build
from federation.propagation.models import OutboxItem, Receipt
from federation.propagation.outbox import shareable_with
from federation.propagation.serializers import SignedBatchSerializer
from federation.propagation.wire import MAX_BATCH_ITEMS, batch_document, sign_document
from federation.sync.models import EntryChange
from federation.sync.selectors import stream_state
from members.models import Peer

State = Entry.State


def feed_page(*, peer: Peer, after: int, limit: int) -> dict:
    """The signed page (``{"batch", "signature"}``) of what ``peer`` is owed after ``after``."""
    state = stream_state()
    changes = list(
        EntryChange.objects.filter(position__gt=after)
        .order_by("position")
        .values_list("position", "entry_id")[: limit + 1]
    )
    more = len(changes) > limit
    changes = changes[:limit]
    # Checked after reading, as the member delta API does: a compaction that committed before
    # the read raised the horizon before this check.
    if 0 < after < stream_state().compacted_through:
        raise Gone(
            "This cursor is older than the stream's retention of removals; pull again from 0.",
            code="stale_cursor",
        )
    last = {entry_id: position for position, entry_id in changes}  # each entry at its last change
    ordered = sorted(last.items(), key=lambda pair: pair[1])
    refs_by_entry = _refs(peer, [entry_id for entry_id, _ in ordered])
    refs: list[RowRef] = []
    position = after
    for entry_id, entry_position in ordered:
        entry_refs = refs_by_entry.get(entry_id, [])
        if refs and len(refs) + len(entry_refs) > MAX_BATCH_ITEMS:
            more = True
            break
        refs.extend(entry_refs[:MAX_BATCH_ITEMS])
        position = entry_position
    else:
        if changes:
            position = changes[-1][0]
        if not more:
            position = max(position, state.last_position)
    now = timezone.now()
    built = items_build(refs, peer_hub=peer.hub_id, now=now, push=False)
    document = batch_document(
        sender=settings.HUB_ID,
        receiver=peer.hub_id,
        batch_id=uuid.uuid4(),
        sent_at=now,
        items=[item for _ref, item, _digest in built.items],
        feed={"after": after, "next": position, "more": more},
    )
    signed = sign_document(hub_private_key(), document)
    return {"batch": document, "signature": signed.as_wire()[1]}


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
        if state not in (State.VETTED, State.DISPUTED, State.RETRACTED):
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


def _int(value: str | None, *, name: str, default: int, maximum: int | None = None) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0 or (maximum is not None and not 1 <= number <= maximum):
        bound = f"1 to {maximum}" if maximum is not None else "0 or more"
        raise InvalidInput(f"{name} must be an integer, {bound}.", details={"field": name})
    return number


class FederationFeedView(APIView):
    """A peer's pull feed: a hub-signed batch of what it is owed after a stream position."""

    authentication_classes = [PeerAuthentication]
    permission_classes = [IsActivePeer]
    throttle_classes = [PeerRateThrottle]
    error_codes = {400: ["invalid"], 403: ["peer_suspended"], 410: ["stale_cursor"]}

    @extend_schema(
        operation_id="federation_feed",
        parameters=[
            OpenApiParameter(
                "after",
                {"type": "integer", "minimum": 0},
                description="The feed.next of your last page; 0 (or none) to start.",
            ),
            OpenApiParameter(
                "limit",
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": settings.FEDERATION_FEED_PAGE_SIZE_MAX,
                },
                description=f"Changes per page: default {settings.FEDERATION_FEED_PAGE_SIZE}, "
                f"at most {settings.FEDERATION_FEED_PAGE_SIZE_MAX} (and at most "
                f"{MAX_BATCH_ITEMS} items).",
            ),
        ],
        responses={200: SignedBatchSerializer},
    )
    def get(self, request):
        params = request.query_params
        after = _int(params.get("after"), name="after", default=0)
        limit = _int(
            params.get("limit"),
            name="limit",
            default=settings.FEDERATION_FEED_PAGE_SIZE,
            maximum=settings.FEDERATION_FEED_PAGE_SIZE_MAX,
        )
        page = feed_page(peer=peer_of_request(request), after=after, limit=limit)
        return HttpResponse(orjson.dumps(page), content_type="application/json")
