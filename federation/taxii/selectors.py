"""Reading what TAXII serves: the collections, and pages of STIX object versions in
``(date_added, id)`` order (docs/taxii.md)."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import BooleanField, Exists, F, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL

from federation.contributions.models import Contribution, SignalType
from federation.db.plans import bounded_plan
from federation.taxii import stix
from federation.taxii.models import StixObjectVersion
from federation.vetting.models import Incident

Kind = StixObjectVersion.Kind
ALL_COLLECTION = stix.collection_id("all")


@dataclass(frozen=True)
class Collection:
    id: str
    title: str
    description: str
    signal_type: str | None = None
    incident_id: uuid.UUID | None = None


def collections_list() -> list[Collection]:
    """All shared entries; one collection per signal type; one per incident, active or ended."""
    found = [
        Collection(
            id=ALL_COLLECTION,
            title="Shared set",
            description="Every hash in the shared set (vetted or disputed), and its history.",
        )
    ]
    for signal_type, title in SignalType.choices:
        found.append(
            Collection(
                id=stix.collection_id(f"signal-type:{signal_type}"),
                title=f"Shared set: {title}",
                description=f"The {title} hashes of the shared set.",
                signal_type=signal_type,
            )
        )
    for incident in Incident.objects.order_by("started_at", "id"):
        ended = f", ended {stix.stix_time(incident.ended_at)}" if incident.ended_at else ""
        found.append(
            Collection(
                id=str(incident.id),
                title=f"Incident: {incident.name}",
                description=f"Hashes contributed for this incident (declared "
                f"{stix.stix_time(incident.started_at)}{ended}).",
                incident_id=incident.id,
            )
        )
    return found


def collection_get(*, collection_id: str) -> Collection | None:
    return next((c for c in collections_list() if c.id == collection_id), None)


@dataclass(frozen=True)
class ObjectFilter:
    """What a request asks for: ``versions`` is ``"last"``, ``"first"``, ``"all"`` or a set of
    ``modified`` timestamps (any of them may be combined, per TAXII's ``match[version]``)."""

    ids: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    versions: frozenset[str] = frozenset({"last"})
    timestamps: frozenset[datetime] = frozenset()
    spec_versions: frozenset[str] = frozenset()
    added_after: datetime | None = None
    after: tuple[datetime, int] | None = None  # a ``next`` position


@dataclass(frozen=True)
class ObjectRow:
    id: int
    stix_id: str
    document: str
    added_us: int  # date_added, in microseconds since the epoch
    modified_us: int

    @property
    def date_added(self) -> datetime:
        return _EPOCH + self.added_us * _MICROSECOND

    @property
    def modified(self) -> datetime:
        return _EPOCH + self.modified_us * _MICROSECOND


# Timestamps read as integers: Django's timestamptz loader is Python, and loading two per row
# was half of a page's time.
_MICROSECONDS = "(extract(epoch FROM {}) * 1000000)::bigint"
_TABLE = StixObjectVersion._meta.db_table
_AFTER = f"({_TABLE}.date_added, {_TABLE}.id) > (%s, %s)"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class ObjectPage:
    rows: list[ObjectRow]
    more: bool


def _in_collection(collection: Collection) -> QuerySet:
    versions = StixObjectVersion.objects.filter(date_added__isnull=False)
    if collection.signal_type:
        versions = versions.filter(Q(kind=Kind.IDENTITY) | Q(signal_type=collection.signal_type))
    if collection.incident_id:
        tagged = Contribution.objects.filter(
            entry_id=OuterRef("entry_id"),
            action=Contribution.Action.ADD,
            incident_id=collection.incident_id,
        )
        versions = versions.filter(Q(kind=Kind.IDENTITY) | Q(Exists(tagged)))
    return versions


def objects_page(*, collection: Collection, wanted: ObjectFilter, limit: int) -> ObjectPage:
    """Up to ``limit`` versions in ``collection`` that ``wanted`` selects, in ``(date_added,
    id)`` order, strictly after ``wanted.added_after`` and after ``wanted.after``."""
    versions = _in_collection(collection)
    if wanted.spec_versions and stix.SPEC_VERSION not in wanted.spec_versions:
        return ObjectPage(rows=[], more=False)
    if wanted.ids:
        versions = versions.filter(stix_id__in=wanted.ids)
    if wanted.types:
        versions = versions.filter(kind__in=wanted.types)
    chosen = Q()
    if "all" not in wanted.versions:
        if "last" in wanted.versions:
            chosen |= Q(is_latest=True)
        if "first" in wanted.versions:
            chosen |= Q(modified=F("created"))
        if wanted.timestamps:
            chosen |= Q(modified__in=wanted.timestamps)
        versions = versions.filter(chosen)
    if wanted.added_after is not None:
        versions = versions.filter(date_added__gt=wanted.added_after)
    if wanted.after is not None:
        moment, pk = wanted.after
        # A row comparison, which PostgreSQL turns into a range scan of the (date_added, id)
        # index; the equivalent OR would be a filter over everything before the position.
        # (A raw parameter is not adapted by the field: SQLite stores timestamps as text.)
        stored = connection.ops.adapt_datetimefield_value(moment)
        versions = versions.filter(
            RawSQL(_AFTER, (stored, pk), output_field=BooleanField()),  # noqa: S611 (fixed)
            date_added__gte=moment,
        )
    if connection.vendor == "postgresql":
        versions = versions.annotate(
            added_us=RawSQL(_MICROSECONDS.format("date_added"), ()),  # noqa: S611 (fixed)
            modified_us=RawSQL(_MICROSECONDS.format("modified"), ()),  # noqa: S611 (fixed)
        )
        columns = ("id", "stix_id", "document", "added_us", "modified_us")
        # A page in index order (``bounded_plan``'s ``by_index``): with the statistics of a tiny
        # table, a filter (``added_after``, ``match[type]``) made PostgreSQL read every version
        # and sort them for each page.
        with bounded_plan(using=versions.db, by_index=True):
            rows = [
                ObjectRow(*row)
                for row in versions.order_by("date_added", "id").values_list(*columns)[: limit + 1]
            ]
    else:
        rows = [
            ObjectRow(pk, stix_id, document, _micros(added), _micros(modified))
            for pk, stix_id, document, added, modified in versions.order_by(
                "date_added", "id"
            ).values_list("id", "stix_id", "document", "date_added", "modified")[: limit + 1]
        ]
    return ObjectPage(rows=rows[:limit], more=len(rows) > limit)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def object_exists(*, collection: Collection, stix_id: str) -> bool:
    return _in_collection(collection).filter(stix_id=stix_id).exists()
