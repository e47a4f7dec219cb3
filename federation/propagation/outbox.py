"""Writing the outbox: one row per (peer, item) owed, in the transaction of the change that makes
the item shareable (docs/federation.md, "Sending"). Never by a signal: ``federation.downstream``
calls these, one per kind of change.

- ``outbox_record_transitions`` (entries moved): an entry vetted from review sends its active
  adds; an entry disputed, rejected after a dispute or vetted again after one sends an ``entry``
  item to every peer that was sent the entry.
- ``outbox_record_adds``: adds to entries already vetted or disputed.
- ``outbox_record_retracts``: a retract goes to every peer its withdrawn adds were sent to,
  whatever scope the retract names, in the lane of that add (so that it never overtakes it).
- ``outbox_record_keys`` (a key revoked here, or a foreign revocation received): a ``key`` item
  to every peer that was sent a contribution signed by the key.

The rules for contributions, all in the one statement: only to active linked peers (state
active, a URL); never to a hub on the item's path (the hubs of its receipts' paths and the hubs
it arrived from) nor to its origin, nor to a hub an arrival said it was also sent to (its
``sent_to``: the sender, or a hub before it, pushes it there itself); never a contribution
whose effective scope here is ``hub``: signed scope ``federation`` travels on, ``peers`` only
for this hub's own members' contributions (one hop); then each peer's outbound scopes, labels (the contribution's signed labels) and signal
types (empty: all); never twice to the same peer. Lane ``incident`` when the contribution names an
incident.

Each call is one ``INSERT … SELECT`` whatever the number of entries (none when there is nothing it
could write), and nudges the drain of each (peer, lane) it wrote to, after commit.
"""

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from federation.contributions.models import SHARED_STATES, SHARED_STATES_SQL, Contribution, Entry
from federation.db.bulk_insert import packed_uuids, uuid_array_sql
from federation.propagation.models import OutboxItem, Receipt
from members.models import Peer

State = Entry.State

# Moves of an entry that send an ``entry`` item to the peers that hold it.
ENTRY_ITEM_MOVES = frozenset(
    {
        (State.VETTED, State.DISPUTED),
        (State.DISPUTED, State.REJECTED),
        (State.DISPUTED, State.VETTED),
    }
)

_COLUMNS = (
    "peer_id, kind, contribution_id, entry_id, signing_key_id, path, lane, state, attempts, "
    "next_attempt_at, last_error, digest, created_at"
)
_LINKED = "p.state = 'active' AND p.url <> ''"

# The contributions of ``{where}`` (an alias ``c``, its entry ``e``) owed to every linked peer.
_CONTRIBUTIONS_SQL = """
SELECT p.id, 'contribution', c.id, c.entry_id, NULL::bigint,
    COALESCE((SELECT r.path FROM federation_receipt r WHERE r.contribution_id = c.id
              ORDER BY r.received_at, r.id LIMIT 1), '[]'::jsonb),
    CASE WHEN c.incident_id IS NULL THEN 'normal' ELSE 'incident' END
FROM federation_contribution c
JOIN federation_entry e ON e.id = c.entry_id
CROSS JOIN members_peer p
WHERE {where} AND c.action = 'add' AND c.status = 'active' AND {linked}
    AND (c.scope = 'federation' OR (c.scope = 'peers' AND c.origin_hub = %(hub)s))
    AND (p.outbound_scopes = '[]'::jsonb OR p.outbound_scopes ? c.scope)
    AND (p.outbound_signal_types = '[]'::jsonb OR p.outbound_signal_types ? e.signal_type)
    AND (p.outbound_labels = '[]'::jsonb
         OR p.outbound_labels ?| ARRAY(SELECT jsonb_array_elements_text(c.labels)))
    AND p.hub_id <> c.origin_hub
    AND NOT EXISTS (SELECT 1 FROM federation_receipt r WHERE r.contribution_id = c.id
                    AND (r.peer_hub = p.hub_id OR r.path ? p.hub_id OR r.sent_to ? p.hub_id))
    AND NOT EXISTS (SELECT 1 FROM federation_outboxitem o WHERE o.contribution_id = c.id
                    AND o.peer_id = p.id AND o.kind = 'contribution')
"""

# An ``entry`` item for the entries ``%(entry_items)s`` to every linked peer sent one of their
# contributions, in the incident lane if any of those went there.
_ENTRY_ITEMS_SQL = """
SELECT o.peer_id, 'entry', NULL::bigint, o.entry_id, NULL::bigint, '[]'::jsonb,
    CASE WHEN bool_or(o.lane = 'incident') THEN 'incident' ELSE 'normal' END
FROM federation_outboxitem o JOIN members_peer p ON p.id = o.peer_id
WHERE o.entry_id = ANY(%(entry_items)s::bigint[]) AND o.kind = 'contribution'
    AND o.state <> 'refused' AND {linked}
GROUP BY o.peer_id, o.entry_id
"""

# A retract for every linked peer its withdrawn adds were sent to, in the add's lane.
_RETRACTS_SQL = """
SELECT DISTINCT ON (o.peer_id, r.id) o.peer_id, 'contribution', r.id, r.entry_id, NULL::bigint,
    COALESCE((SELECT rc.path FROM federation_receipt rc WHERE rc.contribution_id = r.id
              ORDER BY rc.received_at, rc.id LIMIT 1), '[]'::jsonb),
    o.lane
FROM federation_contribution r
JOIN federation_contribution a ON a.withdrawn_by_id = r.id
JOIN federation_outboxitem o ON o.contribution_id = a.id AND o.kind = 'contribution'
JOIN members_peer p ON p.id = o.peer_id
WHERE r.id = ANY(%(retracts)s::bigint[]) AND o.state <> 'refused' AND {linked}
    AND NOT EXISTS (SELECT 1 FROM federation_outboxitem x WHERE x.contribution_id = r.id
                    AND x.peer_id = o.peer_id AND x.kind = 'contribution')
ORDER BY o.peer_id, r.id, o.lane
"""

# A key item for every linked peer sent a contribution signed by one of the keys, except the hubs
# the revocation came through.
_KEYS_SQL = """
SELECT DISTINCT o.peer_id, 'key', NULL::bigint, NULL::bigint, c.signing_key_id,
    %(path)s::jsonb, 'normal'
FROM federation_contribution c
JOIN federation_outboxitem o ON o.contribution_id = c.id AND o.kind = 'contribution'
JOIN members_peer p ON p.id = o.peer_id
WHERE c.signing_key_id = ANY(%(keys)s::bigint[]) AND o.state <> 'refused' AND {linked}
    AND NOT (p.hub_id = ANY(%(path_hubs)s::text[]))
"""


_CONTRIBUTIONS_SQL, _ENTRY_ITEMS_SQL, _RETRACTS_SQL, _KEYS_SQL = (
    sql.replace("{linked}", _LINKED)
    for sql in (_CONTRIBUTIONS_SQL, _ENTRY_ITEMS_SQL, _RETRACTS_SQL, _KEYS_SQL)
)


# A hub with no linked peer pays for none of it: the uncorrelated EXISTS is a one-time filter that
# PostgreSQL evaluates before scanning anything.
_GATED = (
    "(SELECT * FROM ({part}) AS owed_part WHERE EXISTS "
    "(SELECT 1 FROM members_peer p WHERE p.state = 'active' AND p.url <> ''))"
)


def shareable_with(
    peer: Peer,
    *,
    scope: str,
    origin_hub: str,
    labels: Iterable[str],
    signal_type: str,
    on_path: Iterable[str],
) -> bool:
    """The contribution rules above for one add and one peer, in Python (the pull feed and the
    portable writer; ``_CONTRIBUTIONS_SQL`` is the same in SQL). Linkedness is the caller's."""
    if not (scope == "federation" or (scope == "peers" and origin_hub == settings.HUB_ID)):
        return False
    if peer.hub_id == origin_hub or peer.hub_id in set(on_path):
        return False
    if peer.outbound_scopes and scope not in peer.outbound_scopes:
        return False
    if peer.outbound_signal_types and signal_type not in peer.outbound_signal_types:
        return False
    return not (peer.outbound_labels and not set(peer.outbound_labels) & set(labels))


def outbox_record_transitions(transitions: Sequence) -> int:
    """Rows for entries' moves (``federation.lifecycle.Transition``), in one statement (none for
    the entries of ``vetting_owes_nothing``)."""
    owes_nothing = _owes_nothing.get()
    vetted = [
        t.entry_id
        for t in transitions
        if t.to_state == State.VETTED
        and t.from_state == State.PENDING
        and t.entry_id not in owes_nothing
    ]
    entry_items = [
        t.entry_id for t in transitions if (t.from_state, t.to_state) in ENTRY_ITEM_MOVES
    ]
    if connection.vendor != "postgresql":
        return _portable.transitions(vetted, entry_items)
    parts, params = [], {}
    if vetted:
        parts.append(
            _CONTRIBUTIONS_SQL.replace("{where}", "c.entry_id = ANY(%(vetted)s::bigint[])")
        )
        params["vetted"] = vetted
    if entry_items:
        parts.append(_ENTRY_ITEMS_SQL)
        params["entry_items"] = entry_items
    return _insert(parts, params)


def outbox_record_adds(*, uuids: Iterable[uuid.UUID]) -> int:
    """Rows for adds (by UUID) whose entry is already shared (vetted or disputed)."""
    uuids = list(uuids)
    if not uuids:
        return 0
    if connection.vendor != "postgresql":
        return _portable.adds([str(u) for u in uuids])
    where = f"c.uuid = ANY({uuid_array_sql('%(uuids)s')}) AND e.state IN {SHARED_STATES_SQL}"
    return _insert([_CONTRIBUTIONS_SQL.replace("{where}", where)], {"uuids": packed_uuids(uuids)})


def outbox_record_retracts(*, contribution_ids: Iterable[int]) -> int:
    """Rows for retracts (by id): to every peer the adds they withdrew were sent to."""
    ids = sorted({int(pk) for pk in contribution_ids})
    if not ids:
        return 0
    if connection.vendor != "postgresql":
        return _portable.retracts(ids)
    return _insert([_RETRACTS_SQL], {"retracts": ids})


def outbox_record_keys(*, signing_key_ids: Iterable[int], path: Sequence[str] = ()) -> int:
    """Rows for key items (a revocation): ``path`` is the path the binding arrived with (empty
    for this hub's own members' keys); none of its hubs is sent it back."""
    ids = sorted({int(pk) for pk in signing_key_ids})
    if not ids:
        return 0
    if connection.vendor != "postgresql":
        return _portable.keys(ids, list(path))
    from psycopg.types.json import Jsonb

    params = {"keys": ids, "path": Jsonb(list(path)), "path_hubs": list(path)}
    return _insert([_KEYS_SQL], params)


# Within ``peers_read_once``: whether a statement of the block found no linked peer.
_no_linked_peer: ContextVar[list[bool] | None] = ContextVar("no_linked_peer", default=None)


@contextmanager
def peers_read_once() -> Iterator[None]:
    """Within the block (one request's writes: ``federation.downstream.request_writes``), once a
    statement has found no linked peer, the next are not sent: each would only be planned (about
    1 ms for a chunk's thousand entries) to find no peer again. A peer linked while the block
    runs gets none of the block's items, as it gets none of those its transaction wrote before
    it was linked."""
    token = _no_linked_peer.set([False])
    try:
        yield
    finally:
        _no_linked_peer.reset(token)


# Within ``vetting_owes_nothing``: the entries whose move to vetted is known to owe no peer.
_owes_nothing: ContextVar[frozenset[int]] = ContextVar("owes_nothing", default=frozenset())


def linked_peer_hubs() -> set[str]:
    """The hub ids of the linked peers (``_LINKED``): the only ones a row can be owed to. One
    plain statement: once per received batch, where the ORM's took about 1 ms of Python here."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT p.hub_id FROM members_peer p WHERE {_LINKED}")  # noqa: S608
        return {hub for (hub,) in cursor.fetchall()}


@contextmanager
def vetting_owes_nothing(entry_ids: Iterable[int]) -> Iterator[None]:
    """Within the block, moving ``entry_ids`` from pending to vetted writes no outbox row and sends
    no statement for them. For the caller that knows it: federation's receiving, for entries its
    batch inserted whose only add (this transaction's) has a receipt whose path, sender and
    ``sent_to`` name every hub of ``linked_peer_hubs`` (the statement would find every peer
    excluded, at about 8 µs of PostgreSQL per entry). A peer linked meanwhile gets none of them,
    as with ``peers_read_once``."""
    token = _owes_nothing.set(frozenset(entry_ids))
    try:
        yield
    finally:
        _owes_nothing.reset(token)


def _insert(parts: list[str], params: dict) -> int:
    if not parts:
        return 0
    none_linked = _no_linked_peer.get()
    if none_linked is not None and none_linked[0]:
        return 0
    now = timezone.now()
    params = {**params, "hub": settings.HUB_ID, "now": now}
    body = " UNION ALL ".join(_GATED.replace("{part}", part) for part in parts)
    # Fixed clauses only (every value is a parameter). A row of NULLs says the gate was shut.
    sql = (
        "WITH owed (peer_id, kind, contribution_id, entry_id, signing_key_id, path, lane) AS "  # noqa: S608
        f"({body}), written AS (INSERT INTO federation_outboxitem ({_COLUMNS}) "
        "SELECT peer_id, kind, contribution_id, entry_id, signing_key_id, path, lane, "
        "'pending', 0, %(now)s, '', '', %(now)s FROM owed "
        "ORDER BY peer_id, lane, entry_id, contribution_id RETURNING peer_id, lane) "
        "SELECT peer_id, lane, count(*) FROM written GROUP BY peer_id, lane "
        "UNION ALL SELECT NULL, NULL, 0 "
        f"WHERE NOT EXISTS (SELECT 1 FROM members_peer p WHERE {_LINKED})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    lanes = [row for row in rows if row[0] is not None]
    if none_linked is not None and len(rows) > len(lanes):
        none_linked[0] = True
    _nudge_on_commit({(peer_id, lane) for peer_id, lane, _count in lanes})
    return sum(count for _peer, _lane, count in lanes)


def _nudge_on_commit(pairs: set[tuple[int, str]]) -> None:
    if pairs:
        ordered = sorted(pairs)
        transaction.on_commit(lambda: _nudge(ordered))


def _nudge(pairs: list[tuple[int, str]]) -> None:
    from federation.propagation.delivery import request_drain

    for peer_id, lane in pairs:
        request_drain(peer_id=peer_id, lane=lane)


class _portable:
    """The same rules through the ORM, for the embedded demo's SQLite (a few queries per call)."""

    @staticmethod
    def _write(rows: list[OutboxItem]) -> int:
        OutboxItem.objects.bulk_create(rows, batch_size=500)
        _nudge_on_commit({(row.peer_id, row.lane) for row in rows})
        return len(rows)

    @staticmethod
    def _linked() -> list[Peer]:
        return list(Peer.objects.filter(state=Peer.State.ACTIVE).exclude(url=""))

    @classmethod
    def _contributions(cls, contributions) -> int:
        peers = cls._linked()
        found = list(
            contributions.filter(
                action=Contribution.Action.ADD, status=Contribution.Status.ACTIVE
            ).values(
                "pk",
                "entry_id",
                "scope",
                "origin_hub",
                "labels",
                "incident_id",
                "entry__signal_type",
            )
        )
        if not peers or not found:
            return 0
        ids = [c["pk"] for c in found]
        excluded: dict[int, set[str]] = {}  # path, arrival and sent_to hubs
        first_path: dict[int, list] = {}
        for contribution_id, peer_hub, path, sent_to in (
            Receipt.objects.filter(contribution_id__in=ids)
            .order_by("received_at", "pk")
            .values_list("contribution_id", "peer_hub", "path", "sent_to")
        ):
            excluded.setdefault(contribution_id, set()).update([peer_hub, *path, *sent_to])
            first_path.setdefault(contribution_id, list(path))
        sent = set(
            OutboxItem.objects.filter(
                contribution_id__in=ids, kind=OutboxItem.Kind.CONTRIBUTION
            ).values_list("contribution_id", "peer_id")
        )
        rows = []
        for c in found:
            for p in peers:
                if (c["pk"], p.pk) in sent or not shareable_with(
                    p,
                    scope=c["scope"],
                    origin_hub=c["origin_hub"],
                    labels=c["labels"],
                    signal_type=c["entry__signal_type"],
                    on_path=excluded.get(c["pk"], ()),
                ):
                    continue
                rows.append(
                    OutboxItem(
                        peer_id=p.pk,
                        kind=OutboxItem.Kind.CONTRIBUTION,
                        contribution_id=c["pk"],
                        entry_id=c["entry_id"],
                        path=first_path.get(c["pk"], []),
                        lane=OutboxItem.Lane.INCIDENT
                        if c["incident_id"]
                        else OutboxItem.Lane.NORMAL,
                    )
                )
        return cls._write(rows)

    @classmethod
    def transitions(cls, vetted: list[int], entry_items: list[int]) -> int:
        written = 0
        if vetted:
            written += cls._contributions(Contribution.objects.filter(entry_id__in=vetted))
        if entry_items:
            linked = {p.pk for p in cls._linked()}
            lanes: dict[tuple[int, int], bool] = {}
            for peer_id, entry_id, lane in (
                OutboxItem.objects.filter(
                    entry_id__in=entry_items, kind=OutboxItem.Kind.CONTRIBUTION
                )
                .exclude(state=OutboxItem.State.REFUSED)
                .values_list("peer_id", "entry_id", "lane")
            ):
                if peer_id in linked:
                    key = (peer_id, entry_id)
                    lanes[key] = lanes.get(key, False) or lane == OutboxItem.Lane.INCIDENT
            written += cls._write(
                [
                    OutboxItem(
                        peer_id=peer_id,
                        kind=OutboxItem.Kind.ENTRY,
                        entry_id=entry_id,
                        lane=OutboxItem.Lane.INCIDENT if incident else OutboxItem.Lane.NORMAL,
                    )
                    for (peer_id, entry_id), incident in sorted(lanes.items())
                ]
            )
        return written

    @classmethod
    def adds(cls, uuids: list[str]) -> int:
        return cls._contributions(
            Contribution.objects.filter(uuid__in=uuids, entry__state__in=SHARED_STATES)
        )

    @classmethod
    def retracts(cls, ids: list[int]) -> int:
        linked = {p.pk for p in cls._linked()}
        withdrawn = dict(
            Contribution.objects.filter(withdrawn_by_id__in=ids).values_list(
                "pk", "withdrawn_by_id"
            )
        )
        retracts = dict(Contribution.objects.filter(pk__in=ids).values_list("pk", "entry_id"))
        sent = set(
            OutboxItem.objects.filter(contribution_id__in=ids).values_list(
                "contribution_id", "peer_id"
            )
        )
        owed: dict[tuple[int, int], str] = {}
        for add_id, peer_id, lane in (
            OutboxItem.objects.filter(
                contribution_id__in=list(withdrawn), kind=OutboxItem.Kind.CONTRIBUTION
            )
            .exclude(state=OutboxItem.State.REFUSED)
            .order_by("lane")
            .values_list("contribution_id", "peer_id", "lane")
        ):
            key = (withdrawn[add_id], peer_id)
            if peer_id in linked and key not in sent:
                owed.setdefault(key, lane)
        return cls._write(
            [
                OutboxItem(
                    peer_id=peer_id,
                    kind=OutboxItem.Kind.CONTRIBUTION,
                    contribution_id=retract_id,
                    entry_id=retracts[retract_id],
                    lane=lane,
                )
                for (retract_id, peer_id), lane in sorted(owed.items())
            ]
        )

    @classmethod
    def keys(cls, ids: list[int], path: list[str]) -> int:
        linked = {p.pk: p.hub_id for p in cls._linked()}
        pairs = set(
            OutboxItem.objects.filter(
                contribution__signing_key_id__in=ids, kind=OutboxItem.Kind.CONTRIBUTION
            )
            .exclude(state=OutboxItem.State.REFUSED)
            .values_list("peer_id", "contribution__signing_key_id")
        )
        return cls._write(
            [
                OutboxItem(
                    peer_id=peer_id, kind=OutboxItem.Kind.KEY, signing_key_id=key_id, path=path
                )
                for peer_id, key_id in sorted(pairs)
                if peer_id in linked and linked[peer_id] not in path
            ]
        )
