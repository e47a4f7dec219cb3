"""The delta sync API: upserts with the entry as it stands, removals, ordering by cursor,
collapsing, filters, visibility, cursor tampering, staleness after compaction."""

from datetime import timedelta

import orjson
import pytest
from django.core import signing
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from federation.contributions.models import Entry
from federation.sync.cursors import cursor_for, cursor_of
from federation.sync.models import EntryChange, SyncState
from federation.sync.sequencer import sync_changes_compact, sync_sequence_pending
from federation.vetting.services import incident_declare
from members.actors import Actor
from tests.support.parties import random_hex
from tests.support.sync import apply, pull, pull_all, shared_set_in_database
from tests.support.vetting import (
    approve,
    feedback,
    reviewer_of,
    set_policy,
    state_of,
    submit_entry,
)


def retract(party, entry):
    return party.submit(
        action="retract", labels=[], signal={"type": entry.signal_type, "value": entry.value}
    )


@pytest.fixture
def trusted_acme(acme, acme_submitter):
    acme.trusted = True
    acme.save()
    return acme_submitter


def signal_of(entry):
    return {"type": entry.signal_type, "value": entry.value}


def test_a_vetted_entry_is_an_upsert_with_its_current_state(trusted_acme, globex_reviewer):
    entry = submit_entry(
        trusted_acme,
        labels=["attack-footage"],
        signal={"type": "pdq", "value": random_hex(64), "quality": 90},
    )

    page = pull(globex_reviewer)

    (change,) = page["changes"]
    assert change["op"] == "upsert"
    assert change["signal"] == signal_of(entry)
    assert change["state"] == "vetted"
    assert change["labels"] == ["attack-footage"]
    assert change["contributors"] == [{"member": "acme", "hub": "hub.test.concordat"}]
    assert change["quality"] == 90
    assert change["incidents"] == []
    assert change["first_seen"].endswith("Z") and change["last_changed"].endswith("Z")
    assert page["more"] is False


def test_an_entry_enters_the_stream_only_when_vetted(acme_submitter, globex_reviewer):
    entry = submit_entry(acme_submitter)
    assert pull(globex_reviewer)["changes"] == []

    approve(globex_reviewer, entry)

    assert [c["signal"] for c in pull(globex_reviewer)["changes"]] == [signal_of(entry)]


def test_a_pending_entry_is_never_seen_even_when_retracted(acme_submitter, globex_reviewer):
    entry = submit_entry(acme_submitter)
    retract(acme_submitter, entry)

    assert state_of(entry) == Entry.State.RETRACTED
    assert pull(globex_reviewer)["changes"] == []
    assert pull(acme_submitter)["changes"] == []
    assert not EntryChange.objects.exists()


def test_a_retraction_shows_as_a_removal(trusted_acme, globex_reviewer):
    entry = submit_entry(trusted_acme)
    first = pull(globex_reviewer)

    retract(trusted_acme, entry)
    page = pull(globex_reviewer, after=first["next"])

    (change,) = page["changes"]
    assert change["op"] == "remove"
    assert change["signal"] == signal_of(entry)
    assert change["reason"] == "retracted"


def test_one_retract_is_one_change_and_its_removal_comes_once(trusted_acme, globex_reviewer):
    entry = submit_entry(trusted_acme)
    cursor = pull(globex_reviewer)["next"]

    retract(trusted_acme, entry)

    unsequenced = EntryChange.objects.filter(entry=entry, position__isnull=True)
    assert list(unsequenced.values_list("reason", flat=True)) == ["retracted"]
    changes = []
    while True:  # one change a page: two rows would come as two pages
        page = pull(globex_reviewer, after=cursor, limit=1)
        changes += page["changes"]
        cursor = page["next"]
        if not page["more"]:
            break
    assert [(c["op"], c["signal"]) for c in changes] == [("remove", signal_of(entry))]


def test_a_disputed_entry_shows_its_new_state_and_leaves_when_rejected(
    trusted_acme, globex_reviewer, consortium_admin
):
    set_policy(dispute_threshold=1)
    entry = submit_entry(trusted_acme)
    cursor = pull(globex_reviewer)["next"]

    assert feedback(globex_reviewer, entry, "false_positive").status_code == 200
    page = pull(globex_reviewer, after=cursor)
    assert [(c["op"], c["state"]) for c in page["changes"]] == [("upsert", "disputed")]

    response = consortium_admin.client.post(
        f"/api/v1/entries/{entry.pk}/resolve/",
        {"outcome": "reject", "reason": "not what it claims"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    page = pull(globex_reviewer, after=page["next"])
    assert [(c["op"], c["reason"]) for c in page["changes"]] == [("remove", "rejected")]


def test_a_second_contributor_changes_the_entry(trusted_acme, globex_submitter, globex_reviewer):
    entry = submit_entry(trusted_acme, labels=["attack-footage"])
    cursor = pull(globex_reviewer)["next"]

    response = globex_submitter.submit(signal=signal_of(entry), labels=["glorification"])
    assert response.status_code == 201, response.json()

    (change,) = pull(globex_reviewer, after=cursor)["changes"]
    assert change["labels"] == ["attack-footage", "glorification"]
    assert change["contributors"] == [
        {"member": "acme", "hub": "hub.test.concordat"},
        {"member": "globex", "hub": "hub.test.concordat"},
    ]


def test_pages_follow_the_cursor_in_order_without_repeats(trusted_acme, globex_reviewer):
    entries = [submit_entry(trusted_acme) for _ in range(5)]

    seen, cursor, pages = [], None, 0
    while True:
        page = pull(globex_reviewer, after=cursor, limit=2)
        seen += [c["signal"] for c in page["changes"]]
        cursor, pages = page["next"], pages + 1
        if not page["more"]:
            break

    assert seen == [signal_of(e) for e in entries]
    assert pages == 3
    assert pull(globex_reviewer, after=cursor)["changes"] == []


def test_changes_of_one_entry_in_a_page_collapse_to_the_last(trusted_acme, globex_reviewer):
    entry = submit_entry(trusted_acme)
    other = submit_entry(trusted_acme)
    retract(trusted_acme, entry)

    changes = pull(globex_reviewer)["changes"]

    assert [(c["signal"], c["op"]) for c in changes] == [
        (signal_of(other), "upsert"),
        (signal_of(entry), "remove"),
    ]


def test_filters_by_signal_type_label_and_incident(trusted_acme, globex_reviewer, consortium_admin):
    incident = incident_declare(name="CIP", actor=Actor.system("test"))
    md5 = submit_entry(trusted_acme, signal={"type": "md5", "value": random_hex(32)})
    labelled = submit_entry(trusted_acme, labels=["glorification"])
    tagged = submit_entry(trusted_acme, incident=str(incident.pk))

    def signals(**params):
        return [c["signal"] for c in pull(globex_reviewer, **params)["changes"]]

    assert signals(signal_type="md5") == [signal_of(md5)]
    assert signals(label="glorification") == [signal_of(labelled)]
    assert signals(incident=str(incident.pk)) == [signal_of(tagged)]
    (tagged_change,) = pull(globex_reviewer, incident=str(incident.pk))["changes"]
    assert tagged_change["incidents"] == [str(incident.pk)]


def test_a_removal_passes_every_filter(trusted_acme, globex_reviewer):
    entry = submit_entry(trusted_acme, labels=["glorification"])
    cursor = pull(globex_reviewer, label="glorification")["next"]
    retract(trusted_acme, entry)

    changes = pull(globex_reviewer, after=cursor, label="glorification")["changes"]

    assert [(c["op"], c["signal"]) for c in changes] == [("remove", signal_of(entry))]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"signal_type": "sha1"}, "invalid"),
        ({"label": "no-such-label"}, "unknown_label"),
        ({"incident": "not-a-uuid"}, "invalid"),
        ({"limit": "0"}, "invalid"),
        ({"limit": "10001"}, "invalid"),
        ({"limit": "\uff11"}, "invalid"),  # a full-width digit one
    ],
)
def test_bad_filters_and_page_sizes_are_refused(globex_reviewer, params, code):
    response = globex_reviewer.client.get("/api/v1/sync/changes", params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_the_stream_needs_a_member_with_read(anonymous, auditor, globex_reviewer):
    assert anonymous.get("/api/v1/sync/changes").status_code == 401
    assert anonymous.get("/api/v1/sync/export").status_code == 401
    assert auditor.client.get("/api/v1/sync/changes").status_code == 403
    assert auditor.client.get("/api/v1/sync/export").status_code == 403
    assert globex_reviewer.client.get("/api/v1/sync/changes").status_code == 200


SALT = "concordat.sync.cursor.v1"


@pytest.mark.parametrize(
    "make_cursor",
    [
        lambda: "garbage",
        lambda: "MQ:forgedsignature",
        lambda: signing.Signer(salt="another.salt").sign_object(1),
        lambda: signing.Signer(key="another hub's secret", salt=SALT).sign_object(1),
        lambda: signing.dumps(1, salt=SALT),  # the right key, but not a cursor's format
        lambda: signing.Signer(salt=SALT).sign_object(-5),
        lambda: signing.Signer(salt=SALT).sign_object("7"),
        lambda: signing.Signer(salt=SALT).sign_object(True),
        lambda: "x" * 5000,
        lambda: "é:ü",
        lambda: signing.Signer(salt=SALT).sign_object([7, 7]),  # a horizon not above it
        lambda: signing.Signer(salt=SALT).sign_object([7, 3]),
        lambda: signing.Signer(salt=SALT).sign_object([-1, 3]),
        lambda: signing.Signer(salt=SALT).sign_object([1, 3, 5]),
        lambda: signing.Signer(salt=SALT).sign_object([1, True]),
    ],
    ids=[
        "garbage", "forged-signature", "other-salt", "other-key", "timestamped", "negative",
        "string", "boolean", "too-long", "non-ascii", "horizon-at-position",
        "horizon-below-position", "negative-with-horizon", "three-numbers", "boolean-horizon",
    ],
)  # fmt: skip
def test_a_forged_or_malformed_cursor_is_a_clear_400(globex_reviewer, make_cursor):
    response = globex_reviewer.client.get("/api/v1/sync/changes", {"after": make_cursor()})

    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "invalid_cursor"
    assert "changes" not in body


def test_a_cursor_that_is_not_utf8_is_a_clear_400(globex_reviewer):
    response = globex_reviewer.client.get("/api/v1/sync/changes?after=%ED%A0%80%FF")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


def test_a_tampered_cursor_is_refused(trusted_acme, globex_reviewer):
    submit_entry(trusted_acme)
    cursor = pull(globex_reviewer)["next"]
    assert signing.Signer(salt=SALT).unsign_object(cursor) == 1
    _, signature = cursor.rsplit(":", 1)
    forged = signing.b64_encode(b"0").decode() + ":" + signature

    response = globex_reviewer.client.get("/api/v1/sync/changes", {"after": forged})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


def test_a_cursor_behind_compacted_removals_is_stale(trusted_acme, globex_reviewer):
    entry = submit_entry(trusted_acme)
    kept = submit_entry(trusted_acme)
    old_cursor = pull(globex_reviewer)["next"]
    retract(trusted_acme, entry)
    sync_sequence_pending()
    EntryChange.objects.filter(entry=entry).update(recorded_at=timezone.now() - timedelta(days=91))

    result = sync_changes_compact()

    assert result.removals == 1
    response = globex_reviewer.client.get("/api/v1/sync/changes", {"after": old_cursor})
    assert response.status_code == 410
    error = response.json()["error"]
    assert error["code"] == "stale_cursor"
    assert error["details"] == {"export": "/api/v1/sync/export"}
    # A reader starting afresh is never stale, and sees what is still shared.
    fresh = pull(globex_reviewer)
    assert [c["signal"] for c in fresh["changes"]] == [signal_of(kept)]


def _drop_the_removal_of(entry):
    """Age ``entry``'s changes past the retention and compact: its removal is dropped."""
    sync_sequence_pending()
    EntryChange.objects.filter(entry=entry).update(recorded_at=timezone.now() - timedelta(days=91))
    assert sync_changes_compact().removals == 1


def test_a_first_sync_from_the_start_follows_every_page_after_a_compaction(
    trusted_acme, globex_reviewer
):
    """The dropped removal lies above the first pages' cursors, but a reader who began after
    the compaction never held its entry: every page answers, and the copy is the shared set."""
    kept = [submit_entry(trusted_acme) for _ in range(3)]
    gone = submit_entry(trusted_acme)
    sync_sequence_pending()
    retract(trusted_acme, gone)
    _drop_the_removal_of(gone)
    assert SyncState.objects.get().compacted_through > 1

    copy, cursor, pages = {}, None, 0
    while True:
        page = pull(globex_reviewer, after=cursor, limit=1)  # asserts 200
        apply(copy, page["changes"])
        cursor, pages = page["next"], pages + 1
        if not page["more"]:
            break

    assert pages >= 3
    assert copy == shared_set_in_database()
    assert set(copy) == {(e.signal_type, e.value) for e in kept}
    # Once past the horizon, the cursor is a plain position again.
    assert cursor == cursor_for(cursor_of(cursor).position)


def test_a_first_sync_is_stale_when_a_later_compaction_drops_a_removal_it_may_need(
    trusted_acme, globex_reviewer
):
    first, second = submit_entry(trusted_acme), submit_entry(trusted_acme)
    early = submit_entry(trusted_acme)
    sync_sequence_pending()
    retract(trusted_acme, early)
    _drop_the_removal_of(early)
    page = pull(globex_reviewer, limit=1)  # holds first, from a cursor below the horizon
    assert [c["signal"] for c in page["changes"]] == [signal_of(first)]
    assert cursor_of(page["next"]).horizon > cursor_of(page["next"]).position

    retract(trusted_acme, second)  # the reader may hold second: its removal is owed to them
    _drop_the_removal_of(second)

    response = globex_reviewer.client.get(
        "/api/v1/sync/changes", {"after": page["next"], "limit": 1}
    )
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "stale_cursor"


def test_removals_stay_within_the_retention(trusted_acme, globex_reviewer):
    entry = submit_entry(trusted_acme)
    old_cursor = pull(globex_reviewer)["next"]
    retract(trusted_acme, entry)
    sync_sequence_pending()
    EntryChange.objects.filter(entry=entry).update(recorded_at=timezone.now() - timedelta(days=89))

    result = sync_changes_compact()

    assert result.removals == 0
    (change,) = pull(globex_reviewer, after=old_cursor)["changes"]
    assert change["op"] == "remove"


def test_compaction_drops_superseded_changes_and_keeps_the_stream_equal(
    trusted_acme, globex_submitter, globex_reviewer
):
    set_policy(dispute_threshold=1)
    entries = [submit_entry(trusted_acme) for _ in range(3)]
    for entry in entries[:2]:
        globex_submitter.submit(signal=signal_of(entry), labels=["glorification"])
    feedback(reviewer_of("initech"), entries[0], "disagree")
    sync_sequence_pending()
    before = EntryChange.objects.count()

    result = sync_changes_compact()

    assert result.superseded == before - 3
    assert EntryChange.objects.count() == 3
    assert pull_all(globex_reviewer)[0] == shared_set_in_database()


def test_the_next_cursor_of_an_empty_page_is_valid(globex_reviewer):
    page = pull(globex_reviewer)

    assert page == {"changes": [], "next": page["next"], "more": False}
    assert pull(globex_reviewer, after=page["next"])["changes"] == []
    assert page["next"] == cursor_for(0)


def test_the_database_and_the_portable_renderings_agree(
    trusted_acme, globex_submitter, globex_reviewer
):
    """PostgreSQL builds the documents in SQL; SQLite (the demo) builds them in Python."""
    from federation.sync import stream

    incident = incident_declare(name="CIP", actor=Actor.system("test"))
    kept = submit_entry(
        trusted_acme,
        incident=str(incident.pk),
        signal={"type": "pdq", "value": random_hex(64), "quality": 70},
    )
    globex_submitter.submit(signal=signal_of(kept), labels=["glorification"])
    retract(trusted_acme, submit_entry(trusted_acme))
    submit_entry(trusted_acme, signal={"type": "md5", "value": random_hex(32)})
    sync_sequence_pending()

    for filters in (
        {},
        {"signal_type": "md5"},
        {"label": "glorification"},
        {"incident": str(incident.pk)},
    ):
        args = (0, 100, filters.get("signal_type"), filters.get("label"), filters.get("incident"))
        in_sql = stream._sql_changes(*args)
        portable = stream._portable_changes(*args)
        assert [(k, pk, orjson.loads(d)) for k, pk, d in in_sql] == [
            (k, pk, orjson.loads(d)) for k, pk, d in portable
        ]
        assert in_sql


# --- Plans: a reader at the head reads no page; the page statement is never JIT-compiled -------


def test_a_reader_at_the_head_costs_one_query_and_no_page(trusted_acme, globex_reviewer):
    from federation.sync.stream import changes_after

    submit_entry(trusted_acme)
    head = pull(globex_reviewer)["next"]

    with CaptureQueriesContext(connection) as queries:
        page = changes_after(after=cursor_of(head).position, limit=10)

    assert (page.items, page.more, page.position) == ([], False, cursor_of(head).position)
    (query,) = queries.captured_queries
    assert "federation_entrychange" not in query["sql"]


# Every cost made to cross the JIT and parallel thresholds, and sequential scans priced out, as a
# database without statistics (a bulk load, autovacuum off) plans a large table.
_AS_WITHOUT_STATISTICS = (
    "SELECT set_config('jit_above_cost', '0', true), "
    "set_config('parallel_setup_cost', '0', true), "
    "set_config('parallel_tuple_cost', '0', true), "
    "set_config('min_parallel_index_scan_size', '0', true), "
    "set_config('min_parallel_table_scan_size', '0', true), "
    "set_config('enable_seqscan', 'off', true)"
)


def plans_of(prefix: str, call) -> list[str]:
    """The JSON plans of the statements ``call`` runs that start with ``prefix``, as planned
    under ``_AS_WITHOUT_STATISTICS``; also a statement that starts with it inside a query string
    of several (``bounded_query``: the plan settings, the read, the settings put back), explained
    in place, after the statements before it have run."""
    with connection.cursor() as cursor:
        cursor.execute(_AS_WITHOUT_STATISTICS)
    plans = []

    def explain(execute, sql, params, many, context):
        if sql.lstrip().startswith(prefix) or f"; {prefix}" in sql:
            raw = context["cursor"].cursor
            raw.execute(sql.replace(prefix, "EXPLAIN (FORMAT JSON) " + prefix, 1), params)
            while raw.description[0].name != "QUERY PLAN":
                raw.nextset()
            plans.append(orjson.dumps(raw.fetchone()[0]).decode())
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        call()
    return plans


def test_the_page_statement_runs_without_jit_or_parallel_workers(trusted_acme, globex_reviewer):
    """Whatever the planner's estimates (about 0.9 s of JIT per page without statistics)."""
    from federation.sync.stream import changes_after

    submit_entry(trusted_acme)
    sync_sequence_pending()

    (plan,) = plans_of("WITH page AS", lambda: changes_after(after=None, limit=10))

    assert '"JIT"' not in plan
    assert "Gather" not in plan and '"Parallel Aware":true' not in plan


def test_the_sequencer_reads_the_unsequenced_rows_by_a_plain_index_scan(trusted_acme):
    """Not a bitmap scan, which reads every entry of rows sequenced before until a vacuum (50 to
    90 ms a nudge at 200,000 rows), nor JIT or parallel workers."""
    submit_entry(trusted_acme)

    (plan,) = plans_of('UPDATE "federation_entrychange"', sync_sequence_pending)

    assert '"JIT"' not in plan
    assert "Gather" not in plan and '"Parallel Aware":true' not in plan
    assert "Bitmap" not in plan
    assert '"Index Name":"entrychange_unsequenced"' in plan


def test_the_match_index_reads_changes_since_its_position_by_index_scans(trusted_acme):
    """A match request's one statement (the stream's position and the changes the index has not
    applied yet): no JIT, no parallel workers (without statistics, a parallel sequential scan of
    the change table: about 70 ms at 200,000 rows), no bitmap scan: each part is an ordered
    index read with a limit, so its cost estimate stays small whatever the statistics."""
    from federation.matching.store import _stream_check

    submit_entry(trusted_acme)
    sync_sequence_pending()
    submit_entry(trusted_acme)

    (plan,) = plans_of("SELECT NULL, NULL", lambda: _stream_check(0))

    assert '"JIT"' not in plan
    assert "Gather" not in plan and '"Parallel Aware":true' not in plan
    assert "Bitmap" not in plan


def _small_request_check_plan(check: str, *, generic: bool = False) -> str:
    """The JSON plan of a small match request's statement (its check and its audit event),
    with ``check`` the way the statement tests for a change row past the store's position, on
    the change table as it stands, under the server's default costs: the plan for its values,
    or (``generic``) the plan of it prepared, for any values, which a session keeps after five
    executions."""
    from federation.db.prepared import SessionStatement
    from federation.matching import store
    from federation.transparency.audit import AuditRecord, audit_insert_sql

    sql = store._EVENT_IF_CURRENT_SQL
    if check != "as written":
        sql = sql.replace(
            "(SELECT position FROM {change} WHERE position > %s ORDER BY position LIMIT 1) IS NULL",
            check,
        )
        assert sql != store._EVENT_IF_CURRENT_SQL
    insert, values = audit_insert_sql(
        AuditRecord(action="match.requested", actor=Actor.system("test")),
        occurred_at=timezone.now(),
    )
    statement = sql.format(
        insert=insert, state=SyncState._meta.db_table, change=EntryChange._meta.db_table
    )
    params = [*values, 20000, 20000]
    with connection.cursor() as cursor:
        if generic:
            prepared = SessionStatement("test_small_request_check", statement)
            cursor.execute("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)")
            cursor.execute(prepared.prepare)
            cursor.execute("EXPLAIN (FORMAT JSON) " + prepared.execute_sql, params)
            plan = cursor.fetchone()[0]
            cursor.execute(f"DEALLOCATE {prepared.name}")
            cursor.execute("SELECT set_config('plan_cache_mode', 'auto', true)")
        else:
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, params)
            plan = cursor.fetchone()[0]
    return orjson.dumps(plan).decode()


@pytest.mark.parametrize("statistics", ["none", "of a tiny table"])
@pytest.mark.parametrize("generic", [False, True])
def test_a_small_match_requests_check_reads_an_index_whatever_the_statistics(
    trusted_acme, generic, statistics
):
    """It runs without ``bounded_query``'s settings: each of its tests reads one row of an index
    in order, so no plan of it (for its values, or prepared for any) scans the change table,
    crosses the JIT threshold or uses parallel workers, on a change table of 20,000 rows never
    analysed (what a hub has after a bulk load with autovacuum off), or last analysed at five
    rows. The same test written as ``EXISTS`` is planned as a sequential scan of that table."""
    entry = submit_entry(trusted_acme)
    table = EntryChange._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (entry_id, reason, recorded_at, position) "  # noqa: S608
            "SELECT %s, 'vetted', now(), g FROM generate_series(1, 20000) g",
            [entry.pk],
        )
        if statistics != "none":  # in the test's transaction, which puts them back
            cursor.execute(
                "UPDATE pg_class SET reltuples = 5, relpages = 1 WHERE oid = %s::regclass",
                [table],
            )

    plan = _small_request_check_plan("as written", generic=generic)

    reads = _change_table_reads(plan)
    assert [index for _, index in reads] == [
        "entrychange_unsequenced",
        "entrychange_position_unique",
    ]
    assert {node for node, _ in reads} <= {"Index Scan", "Index Only Scan"}
    assert "Bitmap" not in plan and '"JIT"' not in plan and "Gather" not in plan
    exists = "NOT EXISTS (SELECT 1 FROM {change} WHERE position > %s)"
    exists_plan = _small_request_check_plan(exists, generic=generic)
    assert ("Seq Scan", None) in _change_table_reads(exists_plan)


def _change_table_reads(plan: str) -> list[tuple[str, str | None]]:
    """(node type, index name) of each node of a JSON plan that reads the change table."""
    reads = []
    pending = [node["Plan"] for node in orjson.loads(plan)]
    while pending:
        node = pending.pop(0)
        if node.get("Relation Name") == EntryChange._meta.db_table:
            reads.append((node["Node Type"], node.get("Index Name")))
        pending.extend(node.get("Plans", []))
    return reads


def test_plan_settings_do_not_outlive_the_statements_they_are_for(trusted_acme):
    from federation.matching.store import _stream_check

    read = (
        "SELECT current_setting('jit'), current_setting('enable_bitmapscan'), "
        "current_setting('max_parallel_workers_per_gather')"
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('jit', 'on', true)")
        cursor.execute(read)
        before = cursor.fetchone()
        _stream_check(0)
        sync_sequence_pending()
        cursor.execute(read)
        assert cursor.fetchone() == before
        assert before[0] == "on"


def test_an_empty_page_over_the_api_is_two_plain_reads(trusted_acme, globex_reviewer):
    """A follower's usual request: its credential (one statement, prepared once per database
    session: tests/members/test_authentication.py) and the stream's state row (one plain
    statement); no page, no transaction."""
    submit_entry(trusted_acme)
    head = pull(globex_reviewer)["next"]

    with CaptureQueriesContext(connection) as queries:
        response = globex_reviewer.client.get("/api/v1/sync/changes", {"after": head})

    assert response.json() == {"changes": [], "next": head, "more": False}
    lookup, state = (query["sql"] for query in queries.captured_queries)
    if connection.vendor == "postgresql":
        assert lookup.startswith("EXECUTE concordat_credential_by_prefix (")
    else:
        assert "members_apicredential" in lookup and "ORDER BY" not in lookup
    assert "federation_syncstate" in state and "ORDER BY" not in state
