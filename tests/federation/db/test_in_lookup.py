"""``__in`` with a list on PostgreSQL (federation/db/lookups.py): one array parameter, the same rows
as Django's ``IN``; subqueries and other field types keep ``IN``."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from federation.contributions.models import Entry, EntryLabel
from federation.vetting.models import Incident

pytestmark = pytest.mark.django_db


def _entries(n: int) -> list[Entry]:
    return [
        Entry.objects.create(signal_type="md5", value=uuid.uuid4().hex, state=state)
        for state in ["pending", "vetted", "disputed"] * n
    ]


def _sql(queryset) -> str:
    with CaptureQueriesContext(connection) as captured:
        list(queryset)
    return captured.captured_queries[-1]["sql"]


def test_a_list_is_one_array_parameter_whatever_its_length():
    entries = _entries(400)  # 1,200 ids
    ids = [e.pk for e in entries]

    assert set(Entry.objects.filter(pk__in=ids[::2]).values_list("pk", flat=True)) == set(ids[::2])
    assert set(Entry.objects.exclude(pk__in=ids[1:]).values_list("pk", flat=True)) == {ids[0]}
    assert "= ANY(" in _sql(Entry.objects.filter(pk__in=ids))


def test_text_uuid_and_foreign_key_values_and_none_and_empty():
    entries = _entries(2)
    assert {e.state for e in Entry.objects.filter(state__in=["vetted", "disputed", None])} == {
        "vetted",
        "disputed",
    }
    assert Entry.objects.filter(value__in=[entries[0].value]).get() == entries[0]
    assert not Entry.objects.filter(pk__in=[]).exists()
    assert not Entry.objects.filter(pk__in=[None]).exists()
    incident = Incident.objects.create(name="Incident")
    assert Incident.objects.filter(pk__in=[incident.pk, uuid.uuid4()]).get() == incident
    assert "= ANY(" in _sql(Incident.objects.filter(pk__in=[incident.pk]))


def test_a_subquery_keeps_in():
    _entries(1)
    vetted = Entry.objects.filter(state="vetted").values("pk")
    sql = _sql(Entry.objects.filter(pk__in=vetted))
    assert " IN (SELECT" in sql and "ANY(" not in sql
    assert Entry.objects.filter(pk__in=vetted).get().state == "vetted"


def test_a_foreign_keys_list_is_one_array_parameter_too():
    from federation.contributions.models import EntryLabel, Label

    entries = _entries(2)
    label = Label.objects.create(slug="in-lookup", name="In lookup")
    for entry in entries[:3]:
        EntryLabel.objects.create(entry=entry, label=label)
    by_instance = EntryLabel.objects.filter(entry__in=entries[1:])
    by_id = EntryLabel.objects.filter(entry_id__in=[e.pk for e in entries[1:]])
    for queryset in (by_instance, by_id):
        assert sorted(queryset.values_list("entry_id", flat=True)) == [
            entries[1].pk,
            entries[2].pk,
        ]
        assert "= ANY(" in _sql(queryset)
    assert not EntryLabel.objects.filter(entry__in=[]).exists()


def _literal(queryset) -> bool:
    """Whether the statement filters by one ``%s::bigint[]`` parameter sent as a text literal."""
    sql, params = queryset.query.sql_with_params()
    return "= ANY(%s::bigint[])" in sql and any(
        isinstance(p, str) and p.startswith("{") for p in params
    )


def test_plain_integers_go_as_one_bigint_literal_and_anything_else_is_prepared():
    entries = _entries(2)
    ids = [e.pk for e in entries]
    assert _literal(Entry.objects.filter(pk__in=ids))
    assert set(Entry.objects.filter(pk__in=set(ids[:2])).values_list("pk", flat=True)) == set(
        ids[:2]
    )
    # Values that need preparing are prepared first (then sent the same way): the same rows.
    assert not _literal(Entry.objects.filter(state__in=["vetted"]))
    assert Entry.objects.filter(pk__in=[str(ids[0]), ids[1]]).count() == 2
    assert Entry.objects.filter(pk__in=[ids[0], None]).get() == entries[0]
    # Beyond a bigint: no rows, not an error.
    assert not Entry.objects.filter(pk__in=[2**64, ids[0] + 10**6]).exists()
    assert not Entry.objects.filter(pk__in=()).exists()
    # A foreign key's plain integers too.
    assert _literal(EntryLabel.objects.filter(entry_id__in=ids))
    assert _literal(EntryLabel.objects.filter(entry__in=ids))
