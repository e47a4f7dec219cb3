"""Editing the append-only tables as an insider with superuser rights would.

PostgreSQL triggers refuse UPDATE and DELETE of audit events, Merkle nodes, checkpoints and
contributions (federation/migrations/0006_append_only_triggers.py). A superuser can still switch
ordinary triggers off for a session with ``SET session_replication_role = replica``; tests that
simulate tampering do exactly that, and the transparency verifier is what must catch the result
(docs/transparency.md, "Append-only in the database").
"""

import contextlib
from collections.abc import Iterator

from django.db import connections

BYPASS = "SET session_replication_role = replica"
RESTORE = "SET session_replication_role = origin"


@contextlib.contextmanager
def as_superuser_bypassing_triggers(using: str = "default") -> Iterator[None]:
    connection = connections[using]
    if connection.vendor != "postgresql":  # SQLite has no such triggers
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(BYPASS)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(RESTORE)
