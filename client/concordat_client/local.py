"""The local SQLite copy of the shared set (``sync``), its exact offline PDQ and video indexes,
and the submission journal that makes ``submit`` resumable.

The copy is the table ``entries(type, value, state, document)``: ``document`` is the entry's
change object as the hub sent it (docs/sync.md), so anything may read the file with SQL and
``json_extract``; and ``video_frames(value, frames)``, the canonical frame list of each ``vpdq``
entry as the hub serves it (``GET /api/v1/sync/frames``), fetched once per value.
"""

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy

from concordat_client import frames as framelist
from concordat_client.hub import Hub, HubError

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    type TEXT NOT NULL, value TEXT NOT NULL, state TEXT NOT NULL, document TEXT NOT NULL,
    PRIMARY KEY (type, value));
CREATE TABLE IF NOT EXISTS sync_state (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS video_frames (value TEXT PRIMARY KEY, frames TEXT NOT NULL);
"""


dumps = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode

# A page of changes, as the JSON text of an array (?1) at a path (?2), applied by SQLite's JSON
# functions (json_each: the array's items in order; json_extract: a field of one).
_UPSERT = """
INSERT OR REPLACE INTO entries
SELECT json_extract(value, '$.signal.type'), json_extract(value, '$.signal.value'),
       json_extract(value, '$.state'), value
FROM json_each(?1, ?2) WHERE json_extract(value, '$.op') = 'upsert'
"""
# Removals look each entry up by its key (a join from the page's items), not a scan of the table.
_REMOVE = """
DELETE FROM entries WHERE rowid IN (
    SELECT entries.rowid FROM json_each(?1, ?2) AS item JOIN entries
    ON entries.type = json_extract(item.value, '$.signal.type')
    AND entries.value = json_extract(item.value, '$.signal.value')
    WHERE json_extract(item.value, '$.op') = 'remove')
"""
_REMOVE_FRAMES = """
DELETE FROM video_frames WHERE value IN (
    SELECT json_extract(value, '$.signal.value') FROM json_each(?1, ?2)
    WHERE json_extract(value, '$.op') = 'remove'
    AND json_extract(value, '$.signal.type') = 'vpdq')
"""
_CURSOR = "INSERT OR REPLACE INTO sync_state VALUES ('cursor', ?)"


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
        """Apply a page of changes (a delta page's, or export lines) and store ``cursor`` with
        them, in one transaction."""
        changes = list(changes)
        self.apply_array(dumps(changes), cursor=cursor)
        return len(changes)

    def apply_lines(self, lines: list[bytes], *, cursor: str | None) -> int:
        """As ``apply``, the changes being export lines (one JSON object each)."""
        self.apply_array("[" + b",".join(lines).decode() + "]", cursor=cursor)
        return len(lines)

    def apply_delta_page(self, text: str) -> tuple[int, bool]:
        """Apply a page of ``GET /api/v1/sync/changes`` given as its JSON text, and its ``next``
        cursor, in one transaction; returns its count of changes and its ``more``."""
        try:
            cursor, more, count = self.db.execute(
                "SELECT json_extract(?1, '$.next'), json_extract(?1, '$.more'), "
                "json_array_length(?1, '$.changes')",
                (text,),
            ).fetchone()
        except sqlite3.OperationalError as exc:
            raise HubError(0, "bad_page", f"the hub sent a page that is not JSON ({exc})") from exc
        self.apply_array(text, path="$.changes", cursor=cursor)
        return count, bool(more)

    def apply_array(self, text: str, *, path: str = "$", cursor: str | None) -> None:
        """As ``apply``, the changes given as the JSON text of an array (at ``path`` in
        ``text``): SQLite reads each change's fields with its JSON functions, so no change
        passes through Python objects (docs/client.md, "How fast")."""
        try:
            with self.db:
                # A page holds at most one change per entry, so the two kinds commute.
                self.db.execute(_UPSERT, (text, path))
                if '"remove"' in text:  # the export has none; most delta pages neither
                    self.db.execute(_REMOVE_FRAMES, (text, path))
                    self.db.execute(_REMOVE, (text, path))
                if cursor is not None:
                    self.db.execute(_CURSOR, (cursor,))
        except sqlite3.OperationalError as exc:
            if "JSON" not in str(exc):
                raise
            raise HubError(
                0, "bad_page", f"the hub sent changes that are not JSON ({exc})"
            ) from exc

    def replace_from_export(self, hub: Hub, progress: Callable[[int], None]) -> int:
        """Load the export into a fresh table; commit only once its end line arrived."""
        total = 0
        batch: list[bytes] = []
        end: dict | None = None
        with self.db:
            self.db.execute("DELETE FROM entries")
            self.db.execute("DELETE FROM sync_state")
        for text in hub.export_lines():
            if b'"end"' in text:  # the end line; or an entry with "end" in it
                line = json.loads(text)
                if line.get("op") == "end":
                    end = line
                    break
            if text.strip():
                batch.append(text)
            if len(batch) >= 10000:
                total += self.apply_lines(batch, cursor=None)
                progress(total)
                batch = []
        if end is None:
            raise HubError(0, "export_cut_short", "the export ended without its end line")
        total += self.apply_lines(batch, cursor=end["cursor"])
        with self.db:  # a frame list is kept for a value still shared: it never changes
            self.db.execute(
                "DELETE FROM video_frames WHERE value NOT IN "
                "(SELECT value FROM entries WHERE type = 'vpdq')"
            )
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
                page = hub.changes_text(self.cursor(), limit=limit)
            except HubError as exc:
                if exc.code != "stale_cursor":
                    raise
                applied += self.replace_from_export(hub, progress)
                continue
            count, more = self.apply_delta_page(page)
            applied += count
            progress(applied)
            if not more:
                self.fetch_video_frames(hub)
                # The write-ahead log back into the file, and emptied: its pages are the
                # database's until then (WAL with synchronous=NORMAL, docs/client.md).
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return applied

    def fetch_video_frames(self, hub: Hub) -> int:
        """Fetch the frame list of every held vpdq entry that has none yet, 100 values a
        request, each checked against its value (the SHA-256 of its canonical bytes) and stored
        in its own transaction, so an interrupted run resumes where it stopped. Values the hub
        no longer shares (``unknown``) are left: the next page removes them. Returns the lists
        stored."""
        stored = 0
        skipped: set[str] = set()
        while True:
            missing = [
                value
                for (value,) in self.db.execute(
                    "SELECT value FROM entries WHERE type = 'vpdq' AND value NOT IN "
                    "(SELECT value FROM video_frames) ORDER BY value"
                )
                if value not in skipped
            ][:100]
            if not missing:
                return stored
            answer = hub.video_frames(missing)
            rows = []
            for item in answer["lists"]:
                text = framelist.canonical_bytes(item["frames"])
                if hashlib.sha256(text).hexdigest() != item["value"]:
                    raise HubError(0, "bad_frames", f"the frame list of {item['value']} does "
                                   "not hash to its value")  # fmt: skip
                rows.append((item["value"], text.decode()))
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO video_frames VALUES (?,?)", rows)
            stored += len(rows)
            skipped.update(answer.get("unknown", []))
            if not rows and not answer.get("unknown"):
                raise HubError(0, "no_frames", "the hub served none of the frame lists asked")

    def video_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM video_frames").fetchone()[0]

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM entries").fetchone()[0]

    def lookup(self, signal_type: str, value: str) -> dict | None:
        row = self.db.execute(
            "SELECT document FROM entries WHERE type = ? AND value = ?", (signal_type, value)
        ).fetchone()
        return json.loads(row[0]) if row else None  # TEXT, or the export's BLOB line

    def video_index(self) -> "VideoIndex":
        rows = self.db.execute(
            "SELECT e.value, e.document, f.frames FROM entries e JOIN video_frames f "
            "ON f.value = e.value WHERE e.type = 'vpdq' ORDER BY e.value"
        ).fetchall()
        return VideoIndex([(json.loads(doc), json.loads(frames)) for _, doc, frames in rows])

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


def distance_rows(matrix: numpy.ndarray, query: bytes) -> numpy.ndarray:
    """Hamming distances of one 32-byte hash to every row of an (n, 32) uint8 matrix."""
    xor = numpy.bitwise_xor(matrix, numpy.frombuffer(query, dtype=numpy.uint8))
    return _POPCOUNT[xor].sum(axis=1, dtype=numpy.int32)


class DistinctFrames:
    """A frame list reduced as the hub reduces it (docs/video.md, "The rules"): one frame per
    distinct PDQ hash, in first-occurrence order, its quality the best among the frames with
    that hash, its timestamp the first's."""

    def __init__(self, frames: list[list[Any]]) -> None:
        first: dict[str, int] = {}
        self.hashes: list[str] = []
        self.quality: list[int] = []
        self.timestamp_ms: list[int] = []
        for _, quality, pdq, ms in frames:
            at = first.get(pdq)
            if at is None:
                first[pdq] = len(self.hashes)
                self.hashes.append(pdq)
                self.quality.append(quality)
                self.timestamp_ms.append(ms)
            elif quality > self.quality[at]:
                self.quality[at] = quality

    def kept(self, quality_min: int) -> list[int]:
        """Positions of the distinct frames of quality ``>= quality_min``."""
        return [i for i, quality in enumerate(self.quality) if quality >= quality_min]


class VideoIndex:
    """Exact offline video matching with the hub's rules: every kept query frame against every
    kept frame of every shared video (numpy popcount; nothing approximate), so the matches,
    percentages, counts and pairs are the hub's on the same data."""

    PAIRS = 10  # best frame pairs per matched video, as the hub reports

    def __init__(self, videos: list[tuple[dict, list[list[Any]]]]) -> None:
        self.documents = [document for document, _ in videos]
        self.videos = [DistinctFrames(frames) for _, frames in videos]
        self._cache: dict[int, tuple] = {}

    def _kept(self, quality_min: int) -> tuple:
        """Every video's kept distinct frames in one matrix, with each row's video and
        timestamp, and each video's kept count."""
        if quality_min not in self._cache:
            hashes, owner, times, totals = [], [], [], []
            for slot, video in enumerate(self.videos):
                kept = video.kept(quality_min)
                totals.append(len(kept))
                for i in kept:
                    hashes.append(video.hashes[i])
                    owner.append(slot)
                    times.append(video.timestamp_ms[i])
            matrix = numpy.frombuffer(bytes.fromhex("".join(hashes)), dtype=numpy.uint8).reshape(
                -1, 32
            )
            self._cache[quality_min] = (matrix, owner, times, totals)
        return self._cache[quality_min]

    def search(
        self,
        frames: list[list[Any]],
        *,
        threshold: int = 31,
        quality_min: int = 50,
        query_min: int = 80,
        compared_min: int = 0,
    ) -> list[dict]:
        """The shared videos a query frame list matches, best first (query %, compared %,
        value), each ``{**document fields, "distance", "query_percent", …, "pairs"}``."""
        query = DistinctFrames(frames)
        kept = query.kept(quality_min)
        matrix, owner, times, totals = self._kept(quality_min)
        if not kept or not len(matrix):
            return []
        nearest: dict[int, dict[int, tuple[int, int]]] = {}  # video -> query frame -> (d, ms)
        shared: dict[int, set[int]] = {}  # video -> matched rows
        for q, position in enumerate(kept):
            distances = distance_rows(matrix, bytes.fromhex(query.hashes[position]))
            for row in numpy.nonzero(distances <= threshold)[0].tolist():
                slot, d, ms = owner[row], int(distances[row]), times[row]
                shared.setdefault(slot, set()).add(row)
                best = nearest.setdefault(slot, {})
                if q not in best or (d, ms) < best[q]:
                    best[q] = (d, ms)
        found = []
        for slot, best in nearest.items():
            matched_query, matched_shared = len(best), len(shared[slot])
            if matched_query * 100 < query_min * len(kept):
                continue
            if matched_shared * 100 < compared_min * totals[slot]:
                continue
            pairs = sorted(
                (
                    {"query_ms": query.timestamp_ms[kept[q]], "shared_ms": ms, "distance": d}
                    for q, (d, ms) in best.items()
                ),
                key=lambda p: (p["distance"], p["query_ms"], p["shared_ms"]),
            )[: self.PAIRS]
            document = self.documents[slot]
            query_percent = matched_query * 100 / len(kept)
            compared_percent = matched_shared * 100 / totals[slot]
            found.append(
                (
                    (-query_percent, -compared_percent, document["signal"]["value"]),
                    {
                        **entry_fields(document),
                        "distance": pairs[0]["distance"],
                        "query_percent": round(query_percent, 2),
                        "compared_percent": round(compared_percent, 2),
                        "query_frames": len(kept),
                        "matched_frames": matched_query,
                        "shared_frames": totals[slot],
                        "matched_shared_frames": matched_shared,
                        "pairs": pairs,
                    },
                )
            )
        return [match for _, match in sorted(found, key=lambda item: item[0])]


def entry_fields(document: dict) -> dict:
    """An entry as the hub renders it in match answers, from its stored change object."""
    return {
        "signal": document["signal"], "state": document["state"], "labels": document["labels"],
        "contributors": document["contributors"], "quality": document.get("quality"),
    }  # fmt: skip


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
