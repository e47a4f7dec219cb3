"""Seeding a live hub's database with many vetted PDQ entries at once, for the benchmarks that
read the shared set (sync, matching): COPY straight into the tables, as if each entry had been
added by acme and vetted, with its contribution row and its change-stream row."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg

BENCH_CANONICAL = '{"kind":"concordat.contribution","bench":true}'


def copy_rows(connection, table: str, columns: list[str], rows) -> None:
    with connection.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def seed_vetted_pdq_entries(
    hub, values: Sequence[str], *, label: str | None = None, analyze: bool = True
) -> None:
    """One vetted entry per PDQ value (acme's add, quality 90), tagged ``label`` when given;
    ``analyze`` false leaves the tables without statistics, as after a bulk load with autovacuum
    off."""
    with psycopg.connect(hub.database_url) as connection:
        copy_vetted_pdq_entries(
            connection, values, origin_hub=hub.hub_id, label=label, analyze=analyze
        )


def copy_vetted_pdq_entries(
    connection,
    values: Sequence[str],
    *,
    origin_hub: str,
    label: str | None = None,
    analyze: bool = True,
    change_rows: bool = True,
) -> None:
    """``seed_vetted_pdq_entries`` on an open psycopg connection (a live hub's, or the test
    database's own, inside the test's transaction); the database holds no entries yet.
    ``change_rows`` false writes no change-stream rows (a reader that loads from the entries, as
    the match store does, needs none; unsequenced rows would stand for a lagging sequencer)."""
    ((organisation,),) = connection.execute(
        "SELECT id FROM members_organisation WHERE slug = 'acme'"
    ).fetchall()
    ((key,),) = connection.execute(
        "SELECT id FROM members_signingkey WHERE organisation_id = %s", [organisation]
    ).fetchall()
    now = datetime.now(UTC)
    copy_rows(
        connection,
        "federation_entry",
        ["signal_type", "value", "state", "review_round", "created_at", "updated_at",
         "state_changed_at"],
        (("pdq", value, "vetted", 1, now, now, now) for value in values),
    )  # fmt: skip
    ids = [row[0] for row in connection.execute("SELECT id FROM federation_entry ORDER BY id")]
    labels = "[]"
    if label is not None:
        ((label_id,),) = connection.execute(
            "SELECT id FROM federation_label WHERE slug = %s", [label]
        ).fetchall()
        copy_rows(
            connection,
            "federation_entrylabel",
            ["entry_id", "label_id"],
            ((i, label_id) for i in ids),
        )
        labels = f'["{label}"]'
    copy_rows(
        connection,
        "federation_contribution",
        ["uuid", "organisation_id", "signing_key_id", "entry_id", "action", "labels", "scope",
         "quality", "created_at", "received_at", "canonical", "content_hash", "signature",
         "status", "origin_hub"],
        ((uuid.uuid4(), organisation, key, i, "add", labels, "federation", 90,
          now, now, BENCH_CANONICAL, "0" * 64, b"\0" * 64, "active", origin_hub)
         for i in ids),
    )  # fmt: skip
    if change_rows:
        copy_rows(
            connection,
            "federation_entrychange",
            ["entry_id", "reason", "recorded_at"],
            ((i, "vetted", now) for i in ids),
        )
    if analyze:
        connection.execute("ANALYZE")
