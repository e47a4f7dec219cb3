"""The CPU of a PostgreSQL backend, for in-process benchmarks (a local server, Linux)."""

from pathlib import Path

from django.db import connection


def backend_pid() -> int:
    """The process id of this connection's PostgreSQL backend."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    return pid


def backend_seconds(pid: int | None = None) -> float:
    """CPU seconds so far of the backend ``pid`` (by default this connection's, one statement to
    ask), from ``/proc/<pid>/schedstat``: nanoseconds, where ``stat``'s clock ticks are 10 ms (5 µs
    per item of a 2,000-item run)."""
    path = Path(f"/proc/{backend_pid() if pid is None else pid}/schedstat")
    return int(path.read_text().split()[0]) / 1e9
