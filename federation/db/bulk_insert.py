"""Writing thousands of rows at once, fast: PostgreSQL's COPY for the ingest hot path.

Django's ``bulk_create`` on PostgreSQL sends each column as an array parameter that psycopg
escapes element by element in Python, and needs a model instance per row; for a 10,000-item
submission that costs more than verifying the signatures. Here rows are plain tuples streamed with
COPY (escaped in C). Upserts COPY into a temporary table first, then insert from it with
``ON CONFLICT``. Rows that differ only in integers (``insert_alike``) go as one ``INSERT …
SELECT`` instead, their shared values sent once. Other databases (SQLite, for the demo) take the
``bulk_create`` road.
"""

import itertools
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from django.db import IntegrityError, connections, models, router, transaction
from psycopg.adapt import Dumper
from psycopg.postgres import types as postgres_types
from psycopg.pq import Format

from federation.db.lookups import bigint_array

Row = Sequence[Any]


def copy_rows(
    model: type[models.Model],
    attnames: Sequence[str],
    rows: Sequence[Row],
    *,
    reserve_pks: bool = False,
) -> list[int] | None:
    """Insert ``rows`` (values in ``attnames`` order) in the current transaction. With
    ``reserve_pks`` the primary keys are drawn from the table's sequence first and returned in
    row order."""
    if not rows:
        return [] if reserve_pks else None
    connection = _connection(model)
    if connection.vendor != "postgresql":
        objects = [model(**dict(zip(attnames, row, strict=True))) for row in rows]
        model.objects.bulk_create(objects, batch_size=2000)
        return [obj.pk for obj in objects] if reserve_pks else None
    meta = model._meta
    pks = None
    with connection.wrap_database_errors, connection.cursor() as cursor:
        if reserve_pks:
            # The sequence is looked up once (an initplan): as nextval's direct argument,
            # pg_get_serial_sequence ran for every row, 2 of the 2.3 µs each key cost.
            cursor.execute(
                "SELECT nextval((SELECT pg_get_serial_sequence(%s, %s)::regclass)) "
                "FROM generate_series(1, %s)",
                [meta.db_table, meta.pk.column, len(rows)],
            )
            pks = [pk for (pk,) in cursor.fetchall()]
            attnames = [meta.pk.attname, *attnames]
            rows = [(pk, *row) for pk, row in zip(pks, rows, strict=True)]
        _copy(cursor, connection, model, meta.db_table, attnames, rows)
    return pks


def copy_stream(model: type[models.Model], attnames: Sequence[str], rows: Iterable[Row]) -> int:
    """``copy_rows`` of rows made as they are written, such as a generator's: on PostgreSQL
    each is sent as soon as it is made (its COPY's buffer, 32 kB, at a time), so the server
    inserts the first rows while the caller's Python makes the rest, where a list is made whole
    before the server sees its first row. Returns how many rows were written; none starts no
    COPY."""
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return 0
    connection = _connection(model)
    if connection.vendor != "postgresql":
        listed = [first, *rows]
        copy_rows(model, attnames, listed)
        return len(listed)
    table = model._meta.db_table
    with connection.wrap_database_errors, connection.cursor() as cursor:
        return _copy(cursor, connection, model, table, attnames, itertools.chain((first,), rows))


def copy_new_rows(
    model: type[models.Model], attnames: Sequence[str], rows: Sequence[Row], *, unique: str
) -> list[int] | None:
    """``copy_rows`` of rows expected not to exist yet, with their primary keys drawn first and
    returned in row order; or None, with nothing written, if one of them does (a violation of
    the unique constraint named ``unique``, which a savepoint takes back) or the database is not
    PostgreSQL: the caller then upserts them. A plain insert costs PostgreSQL less than
    ``upsert_rows``' ``INSERT … ON CONFLICT`` (no speculative insertion, no staging table)."""
    if not rows:
        return []
    connection = _connection(model)
    if connection.vendor != "postgresql":
        return None
    try:
        with transaction.atomic(using=connection.alias):
            return copy_rows(model, attnames, rows, reserve_pks=True)
    except IntegrityError as exc:
        diag = getattr(exc.__cause__, "diag", None)
        if getattr(exc.__cause__, "sqlstate", None) == _UNIQUE_VIOLATION and (
            getattr(diag, "constraint_name", None) == unique
        ):
            return None
        raise


_UNIQUE_VIOLATION = "23505"


def upsert_rows(
    model: type[models.Model],
    attnames: Sequence[str],
    rows: Sequence[Row],
    *,
    unique: Sequence[str],
    update: Sequence[str] = (),
    returning: Sequence[str] = (),
    report_inserted: bool = False,
) -> list[tuple]:
    """Insert ``rows``; on a conflict over ``unique``, update ``update`` (or do nothing when empty).
    Returns ``(pk, *unique values, *returning values)`` for every row inserted or updated (the
    row as it stands after the statement, locked by this transaction; no ``pk`` for a model
    keyed by its columns, ``CompositePrimaryKey``); with ``report_inserted`` followed by whether
    this statement inserted the row (True) or found it (False), or None where the database does
    not say (SQLite)."""
    if not rows:
        return []
    connection = _connection(model)
    meta = model._meta
    pk_names = () if isinstance(meta.pk, models.CompositePrimaryKey) else (meta.pk.attname,)
    if connection.vendor != "postgresql":
        objects = [model(**dict(zip(attnames, row, strict=True))) for row in rows]
        model.objects.bulk_create(
            objects,
            batch_size=2000,
            update_conflicts=bool(update),
            ignore_conflicts=not update,
            unique_fields=list(unique) if update else None,
            update_fields=list(update) if update else None,
        )
        keys = {tuple(getattr(obj, name) for name in unique) for obj in objects}
        stored = model.objects.filter(**{f"{unique[-1]}__in": {key[-1] for key in keys}})
        inserted = (None,) if report_inserted else ()
        return [
            (
                *(getattr(obj, name) for name in pk_names),
                *values,
                *(getattr(obj, name) for name in returning),
                *inserted,
            )
            for obj in stored
            if (values := tuple(getattr(obj, name) for name in unique)) in keys
        ]
    quote = connection.ops.quote_name
    columns = [meta.get_field(name).column for name in attnames]
    column_list = ", ".join(quote(column) for column in columns)
    staging = quote(f"_staging_{uuid.uuid4().hex[:12]}")
    unique_columns = ", ".join(quote(meta.get_field(name).column) for name in unique)
    returned_columns = ", ".join(
        quote(meta.get_field(name).column) for name in (*pk_names, *unique, *returning)
    )
    if report_inserted:
        # A row this statement inserted has no xmax; one it updated carries this transaction's.
        returned_columns += ", (xmax = 0)"
    if update:
        action = "UPDATE SET " + ", ".join(
            f"{quote(meta.get_field(name).column)} = EXCLUDED.{quote(meta.get_field(name).column)}"
            for name in update
        )
    else:
        action = "NOTHING"
    with connection.wrap_database_errors, connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS "  # noqa: S608 (quoted identifiers)
            f"SELECT {column_list} FROM {quote(meta.db_table)} WITH NO DATA"
        )
        _copy(cursor, connection, model, staging, attnames, rows, db_table=False)
        # ORDER BY: concurrent upserts lock conflicting rows in one order and cannot deadlock.
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({column_list}) "  # noqa: S608
            f"SELECT {column_list} FROM {staging} ORDER BY {unique_columns} "
            f"ON CONFLICT ({unique_columns}) DO {action} "
            f"RETURNING {returned_columns}"
        )
        returned = cursor.fetchall()
        cursor.execute(f"DROP TABLE {staging}")
    return returned


def insert_alike(
    model: type[models.Model], *, each: Mapping[str, Sequence[int]], same: Mapping[str, Any]
) -> None:
    """Insert rows that differ only in integers, in the current transaction: one row per
    position of ``each``'s lists (attname: one integer per row, lists of one length), every
    other column ``same`` in all of them.

    On PostgreSQL one ``INSERT … SELECT … FROM unnest(…)``, the rows in the lists' order: each
    list one ``bigint[]`` literal, each shared value sent once. Against ``copy_rows`` that is
    one value parsed where COPY parses one per row (a ``jsonb`` policy or event data: 1.5 µs a
    row), and no Python per row. A text column may be in ``each``: it gets the integer's text
    (an assignment cast), as an audit event's object id of an entry is its id."""
    counts = {len(values) for values in each.values()}
    if len(counts) != 1:
        raise ValueError("insert_alike takes lists of one length, at least one")
    if not counts.pop():
        return
    connection = _connection(model)
    if connection.vendor != "postgresql":
        rows = zip(*each.values(), strict=True)
        model.objects.bulk_create(
            [model(**same, **dict(zip(each, row, strict=True))) for row in rows], batch_size=2000
        )
        return
    meta = model._meta
    quote = connection.ops.quote_name
    shared = [(meta.get_field(name), value) for name, value in same.items()]
    columns = ", ".join(quote(meta.get_field(name).column) for name in (*each, *same))
    unnested = ", ".join(["%s::bigint[]"] * len(each))
    aliases = [f"c{position}" for position in range(len(each))]
    selected = ", ".join(
        [f"m.{alias}" for alias in aliases]
        # The type without its length: an explicit cast to varchar(n) would cut a longer value
        # where an insert refuses it.
        + [f"%s::{_MODIFIER.sub('', field.db_type(connection))}" for field, _ in shared]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({columns}) "  # noqa: S608 (quoted names)
            f"SELECT {selected} FROM unnest({unnested}) WITH ORDINALITY "
            f"AS m({', '.join(aliases)}, n) ORDER BY m.n",
            [
                *(field.get_db_prep_save(value, connection) for field, value in shared),
                *(bigint_array(values) for values in each.values()),
            ],
        )


def packed_uuids(uuids: Iterable[uuid.UUID]) -> bytes:
    """UUIDs as one ``bytea`` parameter for ``uuid_array_sql``: their 16 bytes each, end to
    end. A list of thousands of UUIDs as an array parameter costs several µs each in Python
    (each made text, then quoted into the statement by psycopg's client-side binding); this
    costs a fraction of one."""
    return b"".join([u.bytes for u in uuids])


def uuid_array_sql(placeholder: str = "%s") -> str:
    """SQL of the ``uuid[]`` held by a ``packed_uuids`` parameter at ``placeholder``."""
    return (
        "ARRAY(SELECT encode(substring(p.b FROM i FOR 16), 'hex')::uuid "  # noqa: S608
        f"FROM (SELECT {placeholder}::bytea) AS p(b), generate_series(1, length(p.b), 16) AS i)"
    )


_ORJSON_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


class _JsonbBinaryDumper(Dumper):
    """A ``jsonb`` value in COPY's binary format (its version byte, then the JSON text): orjson's
    text (several times the standard library here, where the receipts' attestations and the
    audit events' data are most of a federation batch's COPY), or the standard library's
    ``json.dumps``, psycopg's default, for what orjson refuses (so that a value JSON cannot hold,
    such as a datetime, still fails as it did). ``jsonb`` keeps the value, not the text, so both
    store the same. One call per value rather than psycopg's three (its dumper, its ``dumps``
    hook, ours): an ingest writes two ``jsonb`` values per item."""

    format = Format.BINARY
    oid = postgres_types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        try:
            return b"\x01" + orjson.dumps(obj, option=_ORJSON_OPTIONS)
        except orjson.JSONEncodeError:
            return b"\x01" + json.dumps(obj).encode()


def _connection(model):
    return connections[router.db_for_write(model)]


def _copy(cursor, connection, model, table: str, attnames, rows, *, db_table: bool = True) -> int:
    """COPY ``rows`` into ``table`` in PostgreSQL's binary format: each value goes as its type's
    binary form (a UUID's 16 bytes, a timestamp's 8, a signature's bytes as they are), with no
    text to escape on our side nor to parse on the server's, which halves the Python time per row
    of a contribution against the text format (docs/architecture.md, "Ingest"). The types are
    the model fields' own, so a value of the wrong type fails here as an insert would. Returns
    how many rows were written."""
    columns, type_names = _copy_columns(connection, model, attnames)
    target = connection.ops.quote_name(table) if db_table else table
    raw = cursor.cursor
    # By type OID only: the values of this COPY's jsonb columns (set_types), nothing else.
    raw.adapters.register_dumper(None, _JsonbBinaryDumper)
    with raw.copy(f"COPY {target} ({columns}) FROM STDIN (FORMAT BINARY) {_ROW_BY_ROW}") as copy:
        types = raw.adapters.types
        copy.set_types([types[name].oid for name in type_names])
        write_row = copy.write_row
        count = 0
        for count, row in enumerate(rows, 1):  # noqa: B007 (the count is the last one)
            write_row(row)
    return count


# A condition every row meets (``random()`` is in [0, 1)) but volatile, so that the server
# inserts each row as it reads it (copyfrom.c's single-insert method) rather than buffering up to
# 1,000 for a multi-insert. In the binary format that buffer is bounded by its row count only (its
# byte bound counts the input's text lines, which binary input has none of), and each of its slots
# pins the table's row descriptor in the statement's resource owner, where adding and removing
# the same descriptor a thousand times is quadratic (PostgreSQL 15): a chunk's COPY of 1,000 rows
# spent about 0.4 µs a row on that bookkeeping alone. Row by row costs the server less for every
# table the ingest writes, WAL included (docs/architecture.md, "Database plumbing").
_ROW_BY_ROW = "WHERE random() >= 0"


# (connection alias, model, attnames): ``_copy_columns``'.
_COPY_COLUMNS: dict[tuple, tuple[str, tuple[str, ...]]] = {}


def _copy_columns(connection, model, attnames) -> tuple[str, tuple[str, ...]]:
    """The column list of a COPY of ``model``'s ``attnames``, and the name of each column's type
    (its ``db_type`` without a length: ``varchar(64)`` is ``varchar``), whose OID the COPY's
    cursor looks up. Worked out once per connection alias, model and columns: Django's
    ``db_type`` of each column, each COPY, was about a third of a small COPY's Python (a received
    batch makes six, a 1,000-item ingest chunk as many)."""
    key = (connection.alias, model, tuple(attnames))
    known = _COPY_COLUMNS.get(key)
    if known is None:
        quote = connection.ops.quote_name
        fields = [model._meta.get_field(name) for name in attnames]
        known = (
            ", ".join(quote(field.column) for field in fields),
            tuple(_MODIFIER.sub("", field.db_type(connection)) for field in fields),
        )
        _COPY_COLUMNS[key] = known
    return known


_MODIFIER = re.compile(r"\(.*\)")
