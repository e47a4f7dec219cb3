"""``SessionStatement``: a statement prepared once per PostgreSQL session
(federation.db.prepared)."""

import pytest
from django.db import connection, connections, transaction

from federation.db.prepared import SessionStatement

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="PREPARE is PostgreSQL's (SQLite runs it as is)"
    ),
]


def _prepared(name: str) -> list[tuple[str, int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements WHERE name = %s",
            [name],
        )
        return cursor.fetchall()


def _run(statement: SessionStatement, params) -> list[tuple]:
    with connection.cursor() as cursor:
        statement.execute(cursor, params)
        return cursor.fetchall()


def test_it_is_prepared_on_its_first_use_in_a_session_and_executed_after(
    django_assert_num_queries,
):
    statement = SessionStatement("test_prepared_sum", "SELECT %s::int + %s::int")

    with django_assert_num_queries(2):  # PREPARE, EXECUTE
        assert _run(statement, [1, 2]) == [(3,)]
    with django_assert_num_queries(1):  # EXECUTE
        assert _run(statement, [40, 2]) == [(42,)]
    for values in ([5, 6], [7, 8], [9, 10], [11, 12]):
        _run(statement, values)

    (name, generic, custom), *_ = _prepared("test_prepared_sum")
    assert (name, custom) == ("test_prepared_sum", 5)
    assert generic == 1  # the sixth and later executions are not planned again


def test_a_rolled_back_transaction_keeps_the_session_s_statement(django_assert_num_queries):
    statement = SessionStatement("test_prepared_kept", "SELECT %s::text")
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        assert _run(statement, ["first"]) == [("first",)]
        raise ZeroDivisionError

    with django_assert_num_queries(1):  # EXECUTE: PREPARE is not undone by a rollback
        assert _run(statement, ["second"]) == [("second",)]


def test_a_new_session_prepares_it_again():
    statement = SessionStatement("test_prepared_again", "SELECT %s::text")
    assert _run(statement, ["one"]) == [("one",)]

    connections["default"].close()

    assert _run(statement, ["two"]) == [("two",)]
    assert len(_prepared("test_prepared_again")) == 1


def test_only_placeholders_may_hold_a_percent_sign_and_every_parameter_is_given():
    with pytest.raises(ValueError, match="percent"):
        SessionStatement("test_prepared_bad", "SELECT 'a%' LIKE %s")
    statement = SessionStatement("test_prepared_two", "SELECT %s::int, %s::int")
    with pytest.raises(ValueError, match="takes 2 parameters, not 1"), connection.cursor() as c:
        statement.execute(c, [1])


def test_instances_of_one_name_are_one_statement(django_assert_num_queries):
    """An instance per thread's connection may be made for one statement (the token's read):
    a session that holds it from one instance is not asked to prepare it again by another."""
    first = SessionStatement("test_prepared_shared", "SELECT %s::int")
    second = SessionStatement("test_prepared_shared", "SELECT %s::int")
    assert _run(first, [1]) == [(1,)]

    with django_assert_num_queries(1):  # EXECUTE
        assert _run(second, [2]) == [(2,)]
