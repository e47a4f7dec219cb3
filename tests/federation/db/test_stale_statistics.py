"""Statements that write a batch of rows by their ids find each row by its key, a sync page reads
a page's rows through indexes, and a lookup of entries by value alone (the API's filter, a
retract, the reports' search) probes the entries' index, whatever the tables' statistics say: also statistics taken
while a table was tiny (an ANALYZE at install, before a bulk load), under which PostgreSQL hashed
a batch's ids against a sequential scan of the whole table (or, for the sequencer's leaves,
compared every pair of a batch's rows; for a sync page, every entry against every change).

Each test loads a few thousand rows, makes the table's statistics those of a five-row table (in
the test's transaction, which puts them back), runs the real statement, and reads the table's
scans in this transaction from ``pg_stat_xact_user_tables``. The rows are narrow, as unrendered
versions and outbox rows are, so that a sequential scan of them looks cheap to the planner."""

from datetime import UTC, datetime

import pytest
from django.db import connection

from federation.contributions.models import Entry
from federation.propagation import round_sql
from federation.propagation.models import OutboxItem
from federation.reports.selectors import contributions_search
from federation.sync.models import EntryChange, SyncState
from federation.sync.stream import changes_after
from federation.taxii import versions
from federation.taxii.models import StixObjectVersion
from federation.taxii.selectors import ALL_COLLECTION, ObjectFilter, collection_get, objects_page
from federation.transparency.actions import Action, ObjectType
from federation.transparency.audit import AuditRecord
from members.actors import Actor
from tests.support.sending import make_peer

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner"),
]

ROWS = 4000


def _tiny_statistics(model) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE pg_class SET reltuples = 5, relpages = 1 WHERE oid = %s::regclass",
            [model._meta.db_table],
        )


def _scans(model) -> tuple[int, int]:
    """(sequential, index) scans of ``model``'s table so far in this transaction."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT seq_scan, COALESCE(idx_scan, 0) FROM pg_stat_xact_user_tables "
            "WHERE relid = %s::regclass",
            [model._meta.db_table],
        )
        return cursor.fetchone()


def _by_key_since(model, before: tuple[int, int]) -> bool:
    """Whether ``model``'s table was read through an index, and never sequentially, since
    ``before`` (its ``_scans``)."""
    sequential, index = _scans(model)
    return sequential == before[0] and index > before[1]


def _seed_entries(count: int) -> None:
    """``count`` vetted PDQ entries, their values the hex of 1 to ``count``, 64 digits."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Entry._meta.db_table} (signal_type, value, state, review_round, "  # noqa: S608
            "created_at, updated_at, state_changed_at) "
            "SELECT 'pdq', lpad(to_hex(g), 64, '0'), 'vetted', 0, now(), now(), now() "
            "FROM generate_series(1, %s) g",
            [count],
        )


def test_rendered_versions_are_written_by_key():
    at = datetime(2026, 12, 7, tzinfo=UTC)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {StixObjectVersion._meta.db_table} (kind, signal_type, state, "  # noqa: S608
            "changed_at, stix_id, generation, revoked, created_by, document, is_latest) "
            "SELECT 'indicator', 'pdq', 'vetted', %s, '', 0, false, '', '', false "
            "FROM generate_series(1, %s)",
            [at, 10 * ROWS],  # not yet rendered: narrow rows, so as many as pages matter
        )
    rows = list(StixObjectVersion.objects.order_by("-pk")[:100])
    for row in rows:
        row.stix_id, row.document, row.date_added = f"indicator--{row.pk}", "{}", at
    _tiny_statistics(StixObjectVersion)
    before = _scans(StixObjectVersion)

    versions._write_rendered(rows)

    assert _by_key_since(StixObjectVersion, before)
    written = StixObjectVersion.objects.filter(pk__in=[row.pk for row in rows])
    assert sorted(written.values_list("stix_id", flat=True)) == sorted(
        f"indicator--{row.pk}" for row in rows
    )


def test_a_delivered_round_marks_its_rows_by_key(acme_submitter):
    peer = make_peer("bravo.hub")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {OutboxItem._meta.db_table} (peer_id, kind, signing_key_id, path, lane, "  # noqa: S608
            "state, attempts, next_attempt_at, last_error, digest, created_at) "
            "SELECT %s, 'key', %s, '[]', 'normal', 'pending', 0, now(), '', '', now() "
            "FROM generate_series(1, %s)",
            [peer.pk, acme_submitter.signing_key.pk, ROWS],
        )
    ids = sorted(OutboxItem.objects.order_by("-pk").values_list("pk", flat=True)[:100])
    _tiny_statistics(OutboxItem)
    before = _scans(OutboxItem)

    round_sql.delivered_round(
        peer_id=peer.pk,
        ids=ids,
        digests=["ab" * 32] * len(ids),
        now=datetime.now(UTC),
        event=AuditRecord(
            action=Action.FEDERATION_SENT,
            actor=Actor.system("test"),
            object_type=ObjectType.PEER,
            object_id=peer.hub_id,
            data={"items": len(ids)},
        ),
    )

    assert _by_key_since(OutboxItem, before)
    delivered = OutboxItem.objects.filter(state=OutboxItem.State.DELIVERED)
    assert sorted(delivered.values_list("pk", flat=True)) == ids


def test_a_sync_page_reads_its_changes_and_entries_by_index():
    _seed_entries(5 * ROWS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {EntryChange._meta.db_table} (entry_id, reason, recorded_at, position) "  # noqa: S608
            f"SELECT id, 'vetted', now(), row_number() OVER (ORDER BY id) FROM {Entry._meta.db_table}"
        )
    SyncState.objects.update_or_create(pk=1, defaults={"last_position": 5 * ROWS})
    for model in (Entry, EntryChange):
        _tiny_statistics(model)
    before = {model: _scans(model) for model in (Entry, EntryChange)}

    page = changes_after(after=ROWS, limit=500)

    assert len(page.items) == 500 and page.more
    assert all(_by_key_since(model, scans) for model, scans in before.items())


def test_entries_by_value_alone_are_found_by_index(globex_reviewer):
    # Entries are indexed by (signal_type, value): a lookup by value alone probes it per type.
    # (Written ``value = …`` alone, it read every entry, with these statistics or with none.)
    _seed_entries(5 * ROWS)
    _tiny_statistics(Entry)
    before = _scans(Entry)

    response = globex_reviewer.client.get("/api/v1/entries/", {"value": f"{ROWS:064x}"})

    assert [entry["value"] for entry in response.json()["results"]] == [f"{ROWS:064x}"]
    assert _by_key_since(Entry, before)


def test_a_retract_finds_its_entry_by_index(acme_submitter):
    signal = {"type": "pdq", "value": f"{7 * ROWS:064x}"}
    assert acme_submitter.submit(signal=signal).status_code == 201
    _seed_entries(5 * ROWS)
    _tiny_statistics(Entry)
    before = _scans(Entry)

    retract = acme_submitter.signed(action="retract", labels=[], signal=signal)
    response = acme_submitter.client.post(
        "/api/v1/contributions/bulk/", {"items": [retract]}, format="json"
    )

    assert response.json()["created"] == 1, response.json()
    assert _by_key_since(Entry, before)
    assert Entry.objects.get(value=signal["value"]).state == Entry.State.RETRACTED


def test_the_reports_search_by_value_finds_its_entry_by_index(acme_submitter):
    value = f"{9 * ROWS:064x}"
    assert acme_submitter.submit(signal={"type": "pdq", "value": value}).status_code == 201
    _seed_entries(5 * ROWS)
    _tiny_statistics(Entry)
    before = _scans(Entry)

    found = list(contributions_search(value=value.upper(), member=None))

    assert [c.entry.value for c in found] == [value]
    assert _by_key_since(Entry, before)


@pytest.mark.parametrize(
    "wanted",
    [
        ObjectFilter(added_after=datetime(2026, 1, 1, tzinfo=UTC)),
        ObjectFilter(types=frozenset({"indicator"})),
    ],
    ids=["added_after", "match[type]"],
)
def test_a_taxii_page_reads_the_versions_in_index_order(wanted):
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {StixObjectVersion._meta.db_table} (kind, signal_type, state, "  # noqa: S608
            "changed_at, date_added, stix_id, created, modified, generation, revoked, "
            "created_by, document, is_latest) "
            "SELECT 'indicator', 'pdq', 'vetted', now(), now() + g * interval '1 microsecond', "
            "'indicator--' || g, now(), now(), 0, false, '', '{}', true "
            "FROM generate_series(1, %s) g",
            [10 * ROWS],
        )
    _tiny_statistics(StixObjectVersion)
    before = _scans(StixObjectVersion)

    page = objects_page(
        collection=collection_get(collection_id=ALL_COLLECTION), wanted=wanted, limit=100
    )

    assert [row.stix_id for row in page.rows] == [f"indicator--{g}" for g in range(1, 101)]
    assert _by_key_since(StixObjectVersion, before)
