import pytest

from federation.propagation import delivery, round_sql
from tests.support.sending import Receiver


@pytest.fixture(params=["sql", "portable"])
def statements(request, monkeypatch):
    """The tests asking for it hold for both paths of a round's statements: PostgreSQL's
    (``round_sql``: the claim, and the delivered rows with their event, one statement each;
    lists of ids as array literals) and the ORM's that the embedded demo's SQLite takes (run
    here on PostgreSQL by making the modules see another database)."""
    if request.param == "portable":
        from django.db import connection

        class Elsewhere:
            vendor = "sqlite"

            def __getattr__(self, name):
                return getattr(connection, name)

        monkeypatch.setattr(delivery, "connection", Elsewhere())
        monkeypatch.setattr(round_sql, "connection", Elsewhere())
    return request.param


@pytest.fixture
def receiver():
    """A stand-alone peer answering batches on 127.0.0.1 (tests/support/sending.py)."""
    with Receiver() as server:
        yield server
