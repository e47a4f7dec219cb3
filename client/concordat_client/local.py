"""The local SQLite copy of the shared set (``sync``), its exact offline PDQ index, and the
submission journal that makes ``submit`` resumable.

The copy is one table, ``entries(type, value, state, document)``: ``document`` is the entry's
change object as the hub sent it (docs/sync.md), so anything may read the file with SQL and
``json_extract``.
"""

import json
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy

from concordat_client.hub import Hub, HubError

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    type TEXT NOT NULL, value TEXT NOT NULL, state TEXT NOT NULL, document TEXT NOT NULL,
    PRIMARY KEY (type, value));
CREATE TABLE IF NOT EXISTS sync_state (name TEXT PRIMARY KEY, value TEXT);
"""


dumps = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


class SharedSet:
    """One hub's shared set in a SQLite file. Every page and its cursor are written in one
    transaction, so an interrupted sync resumes from the last committed cursor."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.executescript(SCHEMA)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")

    def cursor(self) -> str | None:
        row = self.db.execute("SELECT value FROM sync_state WHERE name = 'cursor'").fetchone()
        return row[0] if row else None

    def apply(self, changes: Iterable[dict[str, Any]], *, cursor: str | None) -> int:
        """Apply a page of changes (a delta page, or export lines) and store ``cursor`` with them."""
        return self.apply_lines(((change, None) for change in changes), cursor=cursor)

    def apply_lines(
        self, changes: Iterable[tuple[dict[str, Any], str | bytes | None]], *, cursor: str | None
    ) -> int:
        """As ``apply``, each change with its JSON text as received when there is one (stored as
        it is, which spares encoding it again)."""
        upserts, removals = [], []
        count = 0
        for change, text in changes:
            count += 1
            signal = change["signal"]
            if change["op"] == "upsert":
                document = dumps(change) if text is None else text
                upserts.append((signal["type"], signal["value"], change["state"], document))
            elif change["op"] == "remove":
                removals.append((signal["type"], signal["value"]))
        with self.db:
            # In order: a page holds at most one change per entry, so the two kinds commute.
            self.db.executemany("INSERT OR REPLACE INTO entries VALUES (?,?,?,?)", upserts)
            self.db.executemany("DELETE FROM entries WHERE type = ? AND value = ?", removals)
            if cursor is not None:
                self.db.execute("INSERT OR REPLACE INTO sync_state VALUES ('cursor', ?)", (cursor,))
        return count

    def replace_from_export(self, hub: Hub, progress: Callable[[int], None]) -> int:
        """Load the export into a fresh table; commit only once its end line arrived."""
        total = 0
        batch: list[tuple[dict, bytes]] = []
        end: dict | None = None
        with self.db:
            self.db.execute("DELETE FROM entries")
            self.db.execute("DELETE FROM sync_state")
        for text in hub.export_lines():
            line = json.loads(text)
            if line.get("op") == "end":
                end = line
                break
            batch.append((line, text.rstrip(b"\n")))
            if len(batch) >= 10000:
                total += self.apply_lines(batch, cursor=None)
                progress(total)
                batch = []
        if end is None:
            raise HubError(0, "export_cut_short", "the export ended without its end line")
        total += self.apply_lines(batch, cursor=end["cursor"])
        progress(total)
        return total

    def sync(self, hub: Hub, *, progress: Callable[[int], None], limit: int = 10000) -> int:
        """Export if there is no cursor (or the hub says the cursor is stale), then follow the
        delta cursor until ``more`` is false. Returns the changes applied."""
        applied = 0
        if self.cursor() is None:
            applied += self.replace_from_export(hub, progress)
        while True:
            try:
                page = hub.changes(self.cursor(), limit=limit)
            except HubError as exc:
                if exc.code != "stale_cursor":
                    raise
                applied += self.replace_from_export(hub, progress)
                continue
            applied += self.apply(page["changes"], cursor=page["next"])
            progress(applied)
            if not page["more"]:
                return applied

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM entries").fetchone()[0]

    def lookup(self, signal_type: str, value: str) -> dict | None:
        row = self.db.execute(
            "SELECT document FROM entries WHERE type = ? AND value = ?", (signal_type, value)
        ).fetchone()
        return json.loads(row[0]) if row else None  # TEXT, or the export's BLOB line

    def pdq_index(self) -> "PDQIndex":
        rows = self.db.execute("SELECT value, document FROM entries WHERE type = 'pdq'").fetchall()
        return PDQIndex([value for value, _ in rows], [json.loads(doc) for _, doc in rows])


_POPCOUNT = numpy.array([bin(n).count("1") for n in range(256)], dtype=numpy.uint8)


class PDQIndex:
    """Exact PDQ search: every hash's Hamming distance to the query, in numpy (a linear scan over
    32-byte rows; no approximation, so the results are the hub's on the same data)."""

    def __init__(self, values: list[str], documents: list[dict]) -> None:
        self.documents = documents
        self.matrix = numpy.frombuffer(
            b"".join(bytes.fromhex(v) for v in values), dtype=numpy.uint8
        ).reshape(-1, 32)

    def search(self, value: str, threshold: int) -> list[tuple[int, dict]]:
        if not self.documents:
            return []
        query = numpy.frombuffer(bytes.fromhex(value), dtype=numpy.uint8)
        distances = _POPCOUNT[numpy.bitwise_xor(self.matrix, query)].sum(axis=1, dtype=numpy.int32)
        hits = numpy.nonzero(distances <= threshold)[0]
        found = [(int(distances[i]), self.documents[i]) for i in hits]
        return sorted(found, key=lambda hit: (hit[0], hit[1]["signal"]["value"]))


JOURNAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    position INTEGER PRIMARY KEY, uuid TEXT NOT NULL, created_at TEXT NOT NULL,
    record TEXT NOT NULL, status TEXT, answer TEXT);
"""


class Journal:
    """What a ``submit`` run is sending: each item's UUID and time are written before anything is
    sent, so a rerun signs the same bytes for the items that have no answer yet (the hub answers
    a resend ``duplicate``) and skips those that have one."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.executescript(JOURNAL_SCHEMA)

    def plan(
        self, records: list[dict], new_uuid: Callable[[], str], now: Callable[[], str]
    ) -> None:
        known = self.db.execute("SELECT count(*) FROM items").fetchone()[0]
        if known:
            if known != len(records):
                raise ValueError(
                    f"the journal holds {known} items, the input {len(records)}: "
                    "the input changed since the run began (use another --journal)"
                )
            return
        stamp = now()
        with self.db:
            self.db.executemany(
                "INSERT INTO items (position, uuid, created_at, record) VALUES (?,?,?,?)",
                [
                    (i, new_uuid(), stamp, json.dumps(r, sort_keys=True))
                    for i, r in enumerate(records)
                ],
            )

    def pending(self) -> list[tuple[int, str, str, dict]]:
        rows = self.db.execute(
            "SELECT position, uuid, created_at, record FROM items WHERE status IS NULL ORDER BY position"
        )
        return [(p, u, c, json.loads(r)) for p, u, c, r in rows]

    def answer(self, results: list[tuple[int, str, dict]]) -> None:
        with self.db:
            self.db.executemany(
                "UPDATE items SET status = ?, answer = ? WHERE position = ?",
                [(status, json.dumps(answer), position) for position, status, answer in results],
            )

    def summary(self) -> dict[str, int]:
        rows = self.db.execute("SELECT coalesce(status, 'unsent'), count(*) FROM items GROUP BY 1")
        return dict(rows.fetchall())

    def refused(self) -> list[tuple[int, dict, dict]]:
        rows = self.db.execute(
            "SELECT position, record, answer FROM items WHERE status = 'rejected' ORDER BY position"
        )
        return [(p, json.loads(r), json.loads(a)) for p, r, a in rows]
