"""STIX versions: written with each state change, numbered and rendered by one sequencer.

``stix_versions_record`` runs in the transaction of a state change (called by
``federation.downstream.entries_transitioned``, from the lifecycle) and writes one unrendered row per entry whose
STIX indicator gains a version: an entry that enters or changes within the shared set (vetted,
disputed), or leaves it (retracted, rejected: a revoked version).

``stix_versions_sequence`` takes the *committed* unrendered rows under an advisory lock and gives
each batch one ``date_added`` no earlier than any given before. A version can therefore never
appear behind a reader's ``(date_added, id)`` position after the reader has passed it, which is
what makes TAXII's ``added_after`` and ``next`` lose nothing (docs/taxii.md, "Paging"). The
TAXII views run it before they read, so a committed change is readable at once, without a
worker.
"""

import itertools
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

import psycopg
from django.db import connection, transaction
from django.utils import timezone

from federation.contributions.models import SHARED_STATES, Contribution, Entry, EntryLabel
from federation.db.bulk_insert import insert_alike
from federation.db.locks import xact_lock
from federation.taxii import stix
from federation.taxii.models import StixObjectVersion
from members.models import Organisation

Kind = StixObjectVersion.Kind
_REVOKING = (Entry.State.RETRACTED, Entry.State.REJECTED)
_LOCK = "TAXII"
# What rendering does not read of an entry (timestamps cost a Python loader each).
_ENTRY_UNUSED = ("created_at", "updated_at", "state_changed_at", "dispute_resolved_at")
_MILLISECOND = timedelta(milliseconds=1)
_MICROSECOND = timedelta(microseconds=1)


def stix_versions_record(*, transitions: Iterable, now: datetime) -> int:
    """Write an unrendered version row for each move (a ``federation.lifecycle.Transition``)
    that changes what TAXII serves, in the caller's transaction; returns how many."""
    versioned: dict[str, list[int]] = defaultdict(list)  # by the state moved to
    for t in transitions:
        if t.to_state in SHARED_STATES or (
            t.to_state in _REVOKING and t.from_state in SHARED_STATES
        ):
            versioned[t.to_state].append(t.entry_id)
    # One statement per state (a lifecycle move has one), its rows alike but for their entry:
    # an auto-vetted bulk ingest writes one per entry (bulk_create cost 80 us a row there).
    for state, entry_ids in versioned.items():
        insert_alike(
            StixObjectVersion,
            each={"entry_id": entry_ids},
            same={"kind": Kind.INDICATOR, "state": state, "changed_at": now, **_UNRENDERED},
        )
    return sum(map(len, versioned.values()))


# An unrendered version: the model's defaults, which rendering fills.
_UNRENDERED = {
    "organisation_id": None, "signal_type": "", "date_added": None, "stix_id": "",
    "created": None, "modified": None, "generation": 0, "revoked": False, "created_by": "",
    "document": "", "is_latest": False,
}  # fmt: skip


def stix_versions_pending() -> bool:
    return StixObjectVersion.objects.filter(date_added__isnull=True).exists()


def stix_versions_sequence(*, batch_size: int = 10_000, max_batches: int | None = None) -> int:
    """Number and render the committed unrendered versions, ``batch_size`` at a time (one
    transaction and one ``date_added`` each), all of them or at most ``max_batches`` batches;
    returns how many versions it rendered."""
    done = 0
    for _ in itertools.count() if max_batches is None else range(max_batches):
        with transaction.atomic():
            xact_lock(_LOCK)
            rendered, more = _sequence_batch(batch_size)
        done += rendered
        if not more:
            break
    return done


def _sequence_batch(batch_size: int) -> tuple[int, bool]:
    rows = list(
        StixObjectVersion.objects.filter(date_added__isnull=True)
        .order_by("id")
        .select_related("entry")
        .defer("document", *(f"entry__{name}" for name in _ENTRY_UNUSED))[: batch_size + 1]
    )
    more = len(rows) > batch_size
    rows = rows[:batch_size]
    if not rows:
        return 0, False
    last_added = (
        StixObjectVersion.objects.filter(date_added__isnull=False)
        .order_by("-date_added")
        .values_list("date_added", flat=True)
        .first()
    )
    date_added = timezone.now()
    if last_added is not None and date_added <= last_added:
        date_added = last_added + _MICROSECOND
    entry_ids = sorted({row.entry_id for row in rows})
    previous = _latest_versions(entry_ids)
    labels, creators, incidents = _entry_details(entry_ids)
    identities = _identities(creators, date_added)

    kept: list[StixObjectVersion] = []
    dropped: list[int] = []
    superseded: list[int] = []
    for row in rows:
        entry = row.entry
        before = previous.get(row.entry_id)
        if row.state in _REVOKING:
            if before is None or before.revoked:
                dropped.append(row.pk)  # nothing shared to revoke
                continue
            row.revoked = True
        if before is None or before.revoked:
            row.generation = before.generation + 1 if before is not None else 0
            row.stix_id = stix.indicator_id(
                signal_type=entry.signal_type, value=entry.value, generation=row.generation
            )
            row.created = row.modified = _to_millisecond(row.changed_at)
            creator = creators.get(row.entry_id)
            row.created_by = identities[creator].stix_id if creator is not None else ""
        else:
            # A new version of the same object: same id, creation and creator (STIX allows only
            # the creator to version an object), a strictly later ``modified``.
            row.generation, row.stix_id = before.generation, before.stix_id
            row.created, row.created_by = before.created, before.created_by
            row.modified = max(_to_millisecond(row.changed_at), before.modified + _MILLISECOND)
            superseded.append(before.pk)
        row.signal_type = entry.signal_type
        row.date_added = date_added
        row.is_latest = True
        row.document = stix.indicator_document(
            stix_id=row.stix_id,
            signal_type=entry.signal_type,
            value=entry.value,
            created=row.created,
            modified=row.modified,
            created_by=row.created_by,
            labels=labels.get(row.entry_id, []),
            incidents=sorted(incidents.get(row.entry_id, ())),
            # A revoked version keeps the dispute label of the version it revokes.
            disputed=row.state == Entry.State.DISPUTED
            or (row.revoked and before is not None and before.state == Entry.State.DISPUTED),
            revoked=row.revoked,
        ).decode()
        previous[row.entry_id] = row
        kept.append(row)
    if dropped:
        StixObjectVersion.objects.filter(pk__in=dropped).delete()
    if superseded:
        StixObjectVersion.objects.filter(pk__in=superseded).update(is_latest=False)
    # Versions of one entry within a batch: only the last is the newest.
    newest: dict[str, int] = {row.stix_id: row.pk for row in kept}
    for row in kept:
        row.is_latest = newest[row.stix_id] == row.pk
    _write_rendered(kept)
    return len(kept), more


_RENDERED = (
    "signal_type",
    "date_added",
    "stix_id",
    "created",
    "modified",
    "generation",
    "revoked",
    "created_by",
    "document",
    "is_latest",
)
_RENDERED_TYPES = (
    "text", "timestamptz", "text", "timestamptz", "timestamptz", "int", "bool", "text", "text",
    "bool",
)  # fmt: skip


def _write_rendered(rows: list[StixObjectVersion]) -> None:
    """Store the rendered fields of ``rows``: one ``UPDATE … FROM unnest(…)`` on PostgreSQL
    (Django's ``bulk_update`` builds a CASE per field and row, quadratic in the batch)."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        StixObjectVersion.objects.bulk_update(rows, _RENDERED, batch_size=500)
        return
    table = connection.ops.quote_name(StixObjectVersion._meta.db_table)
    assignments = ", ".join(f"{name} = u.{name}" for name in _RENDERED)
    arrays = ", ".join(f"%s::{kind}[]" for kind in ("bigint", *_RENDERED_TYPES))
    columns = ", ".join(("id", *_RENDERED))
    connection.ensure_connection()
    # A server-side binding cursor: Django's client-side binding quotes each array element in
    # Python, which cost more than the rest of the batch.
    # ``v.id = ANY(ARRAY(SELECT …))`` finds the rows by primary key whatever the statistics:
    # joined on ``v.id = u.id`` alone, with the table's statistics taken while it was small the
    # planner hashed the arrays against a sequential scan of every version (``lifecycle``'s
    # move of entries does the same).
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(
            f"WITH u ({columns}) AS (SELECT * FROM unnest({arrays})) "  # noqa: S608 (fixed names)
            f"UPDATE {table} AS v SET {assignments} FROM u "
            "WHERE v.id = ANY(ARRAY(SELECT id FROM u)) AND v.id = u.id",
            [
                [row.pk for row in rows],
                *([getattr(row, name) for row in rows] for name in _RENDERED),
            ],
        )


def _to_millisecond(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _latest_versions(entry_ids: list[int]) -> dict[int, StixObjectVersion]:
    latest: dict[int, StixObjectVersion] = {}
    for version in (
        StixObjectVersion.objects.filter(entry_id__in=entry_ids, date_added__isnull=False)
        .order_by("entry_id", "date_added", "id")
        .only(
            "id",
            "entry_id",
            "stix_id",
            "created",
            "modified",
            "generation",
            "revoked",
            "created_by",
            "state",
        )
    ):
        latest[version.entry_id] = version
    return latest


def _entry_details(entry_ids: list[int]):
    """Each entry's label slugs, its creator (the organisation of its first active add by
    reception, else of its first add) and the incidents its adds were tagged with."""
    labels: dict[int, list[str]] = defaultdict(list)
    for entry_id, slug in EntryLabel.objects.filter(entry_id__in=entry_ids).values_list(
        "entry_id", "label__slug"
    ):
        labels[entry_id].append(slug)
    creators: dict[int, int] = {}
    first_any: dict[int, int] = {}
    incidents: dict[int, set[str]] = defaultdict(set)
    rows = (
        Contribution.objects.filter(entry_id__in=entry_ids, action=Contribution.Action.ADD)
        .order_by("entry_id", "received_at", "id")
        .values_list("entry_id", "organisation_id", "status", "incident_id")
    )
    for entry_id, organisation_id, status, incident_id in rows:
        first_any.setdefault(entry_id, organisation_id)
        if status == Contribution.Status.ACTIVE:
            creators.setdefault(entry_id, organisation_id)
        if incident_id is not None:
            incidents[entry_id].add(str(incident_id))
    return labels, {**first_any, **creators}, incidents


def _identities(creators: dict[int, int], date_added: datetime):
    """The identity version of every creator the batch may name, written (sequenced in this
    batch) for those that have none yet; by organisation id."""
    wanted = set(creators.values())
    found = {
        version.organisation_id: version
        for version in StixObjectVersion.objects.filter(
            kind=Kind.IDENTITY, organisation_id__in=wanted
        ).only("id", "organisation_id", "stix_id")
    }
    missing = Organisation.objects.filter(pk__in=wanted - set(found)).order_by("pk")
    created = []
    for organisation in missing:
        stix_id = stix.identity_id(hub=organisation.hub, slug=organisation.slug)
        moment = _to_millisecond(date_added)
        created.append(
            StixObjectVersion(
                kind=Kind.IDENTITY,
                organisation=organisation,
                changed_at=date_added,
                date_added=date_added,
                stix_id=stix_id,
                created=moment,
                modified=moment,
                is_latest=True,
                document=stix.identity_document(
                    stix_id=stix_id,
                    name=organisation.name,
                    slug=organisation.slug,
                    hub=organisation.hub,
                    created=moment,
                ).decode(),
            )
        )
    StixObjectVersion.objects.bulk_create(created)
    return {**found, **{version.organisation_id: version for version in created}}
