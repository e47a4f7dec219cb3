"""CPU time of a federation's processes over a stretch of a benchmark, by hub and process kind.

Read from ``/proc`` (Linux only): each hub's gunicorn, Celery and incident-worker process groups
(``processes.spawn`` starts each in a session of its own) and the PostgreSQL backends connected
to its database (``pg_stat_activity``). A sampling thread notes every process's CPU time every
``interval`` seconds, so a process that exits during the stretch (a backend whose connection
closed, a recycled pool child) counts up to its last sample. Used by the federation benchmark to
account the CPU per delivered entry (docs/federation.md, "Measured").
"""

import os
import threading
import time
from pathlib import Path

import psycopg

from tests.support.harness import PG_ADMIN_URL

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(process group, CPU seconds of the process itself) or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[2]), (int(fields[11]) + int(fields[12])) / _TICK


class CpuAccount(threading.Thread):
    """``with CpuAccount(hubs) as account: ...``; then ``account.seconds()``:
    ``{(hub name, kind): CPU seconds}``, kind one of web, worker, incident, postgres."""

    def __init__(self, hubs, *, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.hubs = hubs
        self.interval = interval
        self.stop = threading.Event()
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.owner: dict[int, tuple[str, str]] = {}
        self.started_at = self.stopped_at = 0.0

    def _groups(self) -> dict[int, tuple[str, str]]:
        groups = {}
        for hub in self.hubs:
            for kind, process in (
                ("web", hub.web), ("worker", hub.worker), ("incident", hub.incident_worker),
            ):  # fmt: skip
                if process is not None:
                    groups[process.pid] = (hub.name, kind)
        return groups

    def _sample(self, connection, *, baseline: bool) -> None:
        owners: dict[int, tuple[str, str]] = {}
        databases = {hub.database: hub.name for hub in self.hubs}
        for pid, database in connection.execute(
            "SELECT pid, datname FROM pg_stat_activity WHERE datname = ANY(%s)",
            (list(databases),),
        ):
            owners[pid] = (databases[database], "postgres")
        groups = self._groups()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            stat = _stat(pid)
            if stat is None:
                continue
            group, seconds = stat
            owner = owners.get(pid) or groups.get(group) or self.owner.get(pid)
            if owner is None:
                continue
            self.owner[pid] = owner
            if pid not in self.first:
                self.first[pid] = seconds if baseline else 0.0
            self.last[pid] = seconds

    def run(self) -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
            self._sample(connection, baseline=True)
            self.started_at = time.monotonic()
            self._ready.set()
            while not self.stop.wait(self.interval):
                self._sample(connection, baseline=False)
            self._sample(connection, baseline=False)
            self.stopped_at = time.monotonic()

    def __enter__(self) -> "CpuAccount":
        self._ready = threading.Event()
        self.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join(10)

    def seconds(self) -> dict[tuple[str, str], float]:
        totals: dict[tuple[str, str], float] = {}
        for pid, owner in self.owner.items():
            totals[owner] = totals.get(owner, 0.0) + self.last[pid] - self.first[pid]
        return totals

    def table(self, delivered: int) -> str:
        """Lines of ``hub kind: CPU s, µs per delivered entry``, and the total."""
        totals = self.seconds()
        lines = []
        for (hub, kind), seconds in sorted(totals.items()):
            lines.append(
                f"  {hub} {kind:<9} {seconds:6.1f} s  {seconds * 1e6 / delivered:6.0f} µs/entry"
            )
        whole = sum(totals.values())
        wall = self.stopped_at - self.started_at
        lines.append(
            f"  all hubs    {whole:6.1f} s  {whole * 1e6 / delivered:6.0f} µs/entry over "
            f"{wall:.1f} s wall ({whole / wall:.2f} cores busy)"
        )
        return "\n".join(lines)
