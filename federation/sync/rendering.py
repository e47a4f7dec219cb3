"""How members see an entry (docs/sync.md, "What you see"): an upsert document for an entry of
the shared set, a removal for one that left it, rendered as the entry stands when read.

Two renderings give the same documents: PostgreSQL builds them for a page of rows in one
statement (``sql_documents``, used by the change stream); ``render_entries`` builds them in
Python from ``ROW_FIELDS`` rows (SQLite for the demo, the export's ORM road, and matching).
``entry_summary`` and ``utc_timestamp`` are shared with the export's own hot loop.
"""

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC

import orjson
from django.db import connections, router

from federation.contributions.models import (
    SHARED_STATES,
    SHARED_STATES_SQL,
    Contribution,
    EntryLabel,
)
from federation.db.plans import bounded_plan
from federation.sync.models import EntryChange

# The entry columns every rendering reads, in this order; ``render_entries`` takes rows of the
# entry's id then these (``ROW_FIELDS``).
ENTRY_FIELDS = ("signal_type", "value", "state", "created_at", "updated_at", "state_changed_at")
ROW_FIELDS = ("id", *ENTRY_FIELDS)


# --- Rendering on PostgreSQL: the documents are built by the database ---------------------------
#
# One statement per page: the page's rows (a CTE), then each entry's labels and add contributions
# by index lookups (LATERAL), whose cost is linear in the page whatever the planner's
# estimates. Python only joins the ready JSON texts.

_TIME = """to_char(({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
_DOCUMENT_SQL = """
WITH page AS MATERIALIZED ({page})
SELECT e.sort_key, e.id,
    CASE WHEN e.state IN {shared} THEN {upsert} ELSE json_build_object(
        'op', 'remove',
        'signal', json_build_object('type', e.signal_type, 'value', e.value),
        'reason', e.state,
        'last_changed', {last_changed}
    ) END::text
FROM page AS e
LEFT JOIN LATERAL (
    SELECT json_agg(l.slug ORDER BY l.slug COLLATE "C") AS slugs
    FROM federation_entrylabel el JOIN federation_label l ON l.id = el.label_id
    WHERE el.entry_id = e.id
) AS labels ON true
LEFT JOIN LATERAL (
    SELECT {adds}
    FROM federation_contribution c JOIN members_organisation o ON o.id = c.organisation_id
    WHERE c.entry_id = e.id AND c.action = 'add'
) AS adds ON true
ORDER BY e.sort_key
"""
# An upsert document, from ``e`` (the entry), ``labels.slugs`` and ``adds`` (its aggregates).
# Its keys come in the order of ``_documents`` and the export's (json, not jsonb, which would
# sort them): the contributors are gathered as distinct [hub, member] pairs, then written as
# {"member", "hub"} objects by hub, then member, in code point order, as Python sorts them.
_UPSERT_SQL = """json_build_object(
        'op', 'upsert',
        'signal', json_build_object('type', e.signal_type, 'value', e.value),
        'state', e.state,
        'labels', COALESCE(labels.slugs, '[]'::json),
        'contributors', COALESCE((
            SELECT json_agg(json_build_object('member', p->>1, 'hub', p->>0)
                            ORDER BY (p->>0) COLLATE "C", (p->>1) COLLATE "C")
            FROM jsonb_array_elements(adds.contributors) AS p
        ), '[]'::json),
        'incidents', COALESCE(to_json(adds.incidents), '[]'::json),
        'quality', adds.quality,
        'first_seen', {first_seen},
        'last_changed', {last_changed}
    )"""
_ADDS_AGGREGATES = """jsonb_agg(DISTINCT jsonb_build_array(c.origin_hub, o.slug))
               FILTER (WHERE c.status = 'active') AS contributors,
           max(c.quality) FILTER (WHERE c.status = 'active') AS quality,
           array_agg(DISTINCT c.incident_id::text) FILTER (WHERE c.incident_id IS NOT NULL)
               AS incidents"""
# What a page query selects (``e`` being federation_entry), after its sort key.
PAGE_COLUMNS = (
    "e.id, e.signal_type, e.value, e.state, e.created_at, e.updated_at, e.state_changed_at"
)
_UPSERT_SQL = _UPSERT_SQL.replace("{first_seen}", _TIME.format("e.created_at"))
_UPSERT_SQL = _UPSERT_SQL.replace(
    "{last_changed}", _TIME.format("GREATEST(e.updated_at, e.state_changed_at)")
)
_DOCUMENT_SQL = (
    _DOCUMENT_SQL.replace("{upsert}", _UPSERT_SQL)
    .replace("{shared}", SHARED_STATES_SQL)
    .replace("{adds}", _ADDS_AGGREGATES)
    .replace("{last_changed}", _TIME.format("GREATEST(e.updated_at, e.state_changed_at)"))
)


# The page statement runs under ``bounded_plan`` (``federation.db.plans``): its cost estimate is
# far above the JIT thresholds whenever the tables have no statistics (the LATERAL aggregates are
# then guessed at hundreds of rows each), and PostgreSQL spent about 0.9 s compiling it on every
# call, even for an empty page. It is a keyset scan of at most one page plus index lookups per
# row, so neither JIT nor parallel workers can pay off; with both off it runs the same plan, in
# milliseconds, with statistics or without (docs/sync.md, "How fast"). Nor can a sequential scan
# or a hash or merge join (``by_index``): with statistics taken while the tables were tiny,
# PostgreSQL hashed every entry against every change row for each page.


def sql_documents(page_sql: str, params: list) -> list[tuple[int, int, bytes]]:
    alias = router.db_for_read(EntryChange)
    connection = connections[alias]
    with bounded_plan(using=alias, by_index=True), connection.cursor() as cursor:
        cursor.execute(_DOCUMENT_SQL.replace("{page}", page_sql), params)
        return [(key, pk, document.encode()) for key, pk, document in cursor.fetchall()]


# --- Rendering elsewhere (SQLite, for the demo): the same documents from the ORM ----------------


def utc_timestamp(moment) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stamp(moment):
    """``moment`` for orjson (``OPT_UTC_Z``), which writes a UTC time as the documented
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` itself, fast, unless its fraction is zero (it would leave the
    fraction out) or it is in another zone: those are formatted here."""
    if moment.microsecond and moment.tzinfo is UTC:
        return moment
    return utc_timestamp(moment)


def render_entries(rows: list[tuple]) -> list[bytes]:
    """JSON documents for ``(entry_id, *ENTRY_FIELDS)`` rows: an upsert for an entry members
    see, a removal otherwise (the portable twin of ``_DOCUMENT_SQL``)."""
    details = _details([row[0] for row in rows if row[3] in SHARED_STATES])
    return [orjson.dumps(item, option=orjson.OPT_UTC_Z) for item in _documents(rows, details)]


def _documents(rows: list[tuple], details: dict[int, tuple]) -> Iterator[dict]:
    for entry_id, signal_type, value, state, created_at, updated_at, state_changed_at in rows:
        signal = {"type": signal_type, "value": value}
        last_changed = _stamp(max(updated_at, state_changed_at))
        if state not in SHARED_STATES:
            yield {"op": "remove", "signal": signal, "reason": state, "last_changed": last_changed}
            continue
        labels, contributors, incidents, quality = details.get(entry_id, _NO_DETAILS)
        yield {
            "op": "upsert",
            "signal": signal,
            "state": state,
            "labels": labels,
            "contributors": contributors,
            "incidents": incidents,
            "quality": quality,
            "first_seen": _stamp(created_at),
            "last_changed": last_changed,
        }


_NO_DETAILS = ([], [], [], None)


def _details(entry_ids: list[int]) -> dict[int, tuple]:
    if not entry_ids:
        return {}
    labels: dict[int, list[str]] = defaultdict(list)
    for entry_id, slug in (
        EntryLabel.objects.filter(entry_id__in=entry_ids)
        .order_by()
        .values_list("entry_id", "label__slug")
    ):
        labels[entry_id].append(slug)
    adds: dict[int, list[tuple]] = defaultdict(list)
    for entry_id, *add in (
        Contribution.objects.filter(entry_id__in=entry_ids, action=Contribution.Action.ADD)
        .order_by()
        .values_list(
            "entry_id", "organisation__slug", "origin_hub", "status", "quality", "incident"
        )
    ):
        adds[entry_id].append(add)
    return {
        entry_id: entry_summary(labels.get(entry_id, ()), adds.get(entry_id, ()))
        for entry_id in entry_ids
    }


def entry_summary(labels, adds) -> tuple:
    """(labels, contributors, incidents, quality) of an entry from its label slugs and its add
    contributions as ``(member, hub, status, quality, incident_id)``: labels sorted; the active
    contributors once each, by hub then member (code point order, as ``_UPSERT_SQL`` sorts
    them); every incident, sorted; the best quality of an active one."""
    contributors: set[tuple[str, str]] = set()
    incidents: set[str] = set()
    quality = None
    for member, hub, status, value, incident_id in adds:
        if incident_id is not None:
            incidents.add(str(incident_id))
        if status != ACTIVE:
            continue
        contributors.add((hub, member))
        if value is not None and (quality is None or value > quality):
            quality = value
    return (
        sorted(labels),
        [{"member": member, "hub": hub} for hub, member in sorted(contributors)],
        sorted(incidents),
        quality,
    )


ACTIVE = Contribution.Status.ACTIVE.value
