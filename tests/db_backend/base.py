"""PostgreSQL for the test suite (settings/test.py): Django's backend, except that the flush
between transactional tests runs with the superuser bypass of tests/support/tampering.py.

Django empties the tables after each transactional test with one ``TRUNCATE``, which the
append-only tables refuse (federation/migrations/0015_h3_truncate_guards.py). The test role is a
superuser, so the flush does what docs/transparency.md says a superuser can: switch ordinary
triggers off for the session, truncate, and switch them back on. Nothing else changes.
"""

from django.db.backends.postgresql import base, operations

from tests.support.tampering import BYPASS, RESTORE


class DatabaseOperations(operations.DatabaseOperations):
    def execute_sql_flush(self, sql_list):
        with self.connection.cursor() as cursor:
            cursor.execute(BYPASS)
        try:
            super().execute_sql_flush(sql_list)
        finally:
            with self.connection.cursor() as cursor:
                cursor.execute(RESTORE)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
