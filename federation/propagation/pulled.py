"""What a peer has pulled from this hub's feed (``federation.propagation.feed``): how far it has
read (``PeerLink.peer_pulled_through``, which makes the dead letters it has pulled past moot,
``federation.propagation.selectors``)."""

from datetime import datetime

from django.db.models import F, Value
from django.db.models.functions import Greatest

from federation.propagation.models import PeerLink
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
