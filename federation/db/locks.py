"""PostgreSQL advisory locks: one holder at a time of a background job (a sequencer, a drain, a
pull, a table refresh), across every process of the hub.

Two lifetimes: a *transaction* lock (``xact_lock``, ``xact_try_lock``) ends with the transaction
that took it; a *session* lock (``session_lock``, ``session_try_lock`` / ``session_unlock``) is
held by the connection until released, so a killed worker's lock goes with its connection (and
``settings.celery`` releases any left after a task). ``try`` variants return at once with
whether they got it; the others wait.

On any other database (SQLite, for the demo) nothing is taken and the ``try`` variants answer
True: SQLite has one writer at a time anyway, and the demo runs one solo worker per hub.

A key is an integer (bigint), a pair of integers (int4, int4: a namespace and an id) or a text,
locked as its ``hashtext``. Each caller names its own key beside it; keys must not collide.
"""

from django.db import DEFAULT_DB_ALIAS, connections

LockKey = int | tuple[int, int] | str


def xact_lock(key: LockKey, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Wait for the lock ``key``, held until the current transaction ends."""
    _execute(using, "pg_advisory_xact_lock", key)


def xact_lock_shared(key: LockKey, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Wait for the lock ``key`` in shared mode (held with other shared holders, never with the
    one ``xact_lock`` holder) until the current transaction ends."""
    _execute(using, "pg_advisory_xact_lock_shared", key)


def xact_try_lock(key: LockKey, *, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Take the lock ``key`` until the current transaction ends, if no one holds it."""
    return _execute(using, "pg_try_advisory_xact_lock", key)


def session_try_lock(key: LockKey, *, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Take the lock ``key`` for this connection, if no one holds it; release it with
    ``session_unlock``."""
    return _execute(using, "pg_try_advisory_lock", key)


def session_unlock(key: LockKey, *, using: str = DEFAULT_DB_ALIAS) -> None:
    _execute(using, "pg_advisory_unlock", key)


class session_lock:
    """``with session_lock(key) as held:`` a session lock taken if free, released on exit."""

    def __init__(self, key: LockKey, *, using: str = DEFAULT_DB_ALIAS) -> None:
        self.key, self.using, self.held = key, using, False

    def __enter__(self) -> bool:
        self.held = session_try_lock(self.key, using=self.using)
        return self.held

    def __exit__(self, *exc_info) -> None:
        if self.held:
            session_unlock(self.key, using=self.using)


def _execute(using: str, function: str, key: LockKey) -> bool:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return True
    if isinstance(key, str):
        arguments, params = "hashtext(%s)", [key]
    elif isinstance(key, tuple):
        arguments, params = "%s, %s", list(key)
    else:
        arguments, params = "%s", [key]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}({arguments})", params)
        return bool(cursor.fetchone()[0])
