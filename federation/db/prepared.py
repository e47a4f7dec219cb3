"""A hot statement prepared once per PostgreSQL session (``PREPARE``, then ``EXECUTE``).

PostgreSQL parses and plans a statement sent as text every time; a prepared one is planned
for its first five executions and then, when its generic plan costs no more than those, never
again. For a statement whose planning costs more than its execution (a single-signal match
request's check and audit event: planning its three sub-selects was about half of its
server's CPU) that is most of the statement's cost. The statement is sent through the
connection's own cursor (Django's, so statement counts, ``execute_wrapper`` and the query log
see it), its parameters bound on the client as for any other statement.

A prepared statement belongs to the session: it outlives a rollback of the transaction that
prepared it, and goes with the connection. Nothing in the hub discards a session's prepared
statements (no pooler resets sessions); a new session prepares it on its first use.
Other databases (SQLite, for the demo) run the statement as it is.
"""

import re
import weakref
from collections.abc import Sequence

from django.db.backends.utils import CursorWrapper

_PLACEHOLDER = re.compile(r"%s")
# By name, the psycopg connections (sessions) that hold the statement, whichever thread or
# instance prepared it (an instance per thread's connection may be made for one statement); a
# closed connection leaves its set with its session.
_SESSIONS: dict[str, "weakref.WeakSet"] = {}


class SessionStatement:
    """``sql`` (one statement, its parameters written ``%s``, no other percent sign) prepared
    under ``name`` in each PostgreSQL session that runs it. Instances of one name are one
    statement: they must have the same ``sql``."""

    def __init__(self, name: str, sql: str) -> None:
        if "%" in _PLACEHOLDER.sub("", sql):
            raise ValueError("a session statement's only percent signs are its placeholders")
        self.name = name
        self.sql = sql
        self.count = len(_PLACEHOLDER.findall(sql))
        numbers = iter(range(1, self.count + 1))
        self.prepare = f"PREPARE {name} AS {_PLACEHOLDER.sub(lambda _: f'${next(numbers)}', sql)}"
        self.execute_sql = f"EXECUTE {name} ({', '.join(['%s'] * self.count)})"
        self._sessions = _SESSIONS.setdefault(name, weakref.WeakSet())

    def execute(self, cursor: CursorWrapper, params: Sequence) -> None:
        """Run the statement with ``params`` on ``cursor`` (a Django cursor); its rows are then
        read from the cursor as usual."""
        if len(params) != self.count:
            raise ValueError(f"{self.name} takes {self.count} parameters, not {len(params)}")
        connection = cursor.db
        if connection.vendor != "postgresql":
            cursor.execute(self.sql, params)
            return
        session = connection.connection
        if session not in self._sessions:
            cursor.execute(self.prepare)
            self._sessions.add(session)
        cursor.execute(self.execute_sql, params)
