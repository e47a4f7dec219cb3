"""Matching a caller's signals against the shared set (docs/matching.md).

``match_signals`` answers from this process's index (``store.py``), then renders the matched
entries from PostgreSQL as members see them (the sync rendering: state, labels, contributing
organisations, quality), so an entry that has just left the shared set is never reported even if
the index has not applied its removal yet. One audit event per request records the use of the
shared set in aggregate: counts by type, how many signals matched, how many matches.
"""

import re
from dataclasses import dataclass

import orjson
from django.conf import settings
from django.db import transaction

from federation.contributions.models import Entry
from federation.errors import InvalidInput
from federation.matching.index import HEX_LENGTHS, MAX_THRESHOLD
from federation.matching.store import match_store
from federation.sync.changes import VISIBLE_STATES
from federation.sync.selectors import render_entries
from federation.transparency.actions import Action, Key
from federation.transparency.audit import AuditRecord, audit_record
from members.actors import Actor

_HEX = re.compile(r"[0-9a-f]*")
QUALITY_MAX = 100


@dataclass(frozen=True)
class Signal:
    type: str
    value: str


def match_signal_parse(*, signal_type: object, value: object) -> Signal:
    """A signal with its value normalised (lowercase hex); ``InvalidInput`` (400
    ``invalid_signal``) for an unknown type, a wrong length or a non-hex value."""
    if not isinstance(signal_type, str) or signal_type not in HEX_LENGTHS:
        raise InvalidInput(
            f"type must be one of {', '.join(HEX_LENGTHS)}.",
            code="invalid_signal",
            details={"field": "type"},
        )
    if not isinstance(value, str):
        raise InvalidInput("value must be a hex string.", code="invalid_signal")
    normalised = value.strip().lower()
    length = HEX_LENGTHS[signal_type]
    if len(normalised) != length or not _HEX.fullmatch(normalised):
        raise InvalidInput(
            f"A {signal_type} value is {length} hex digits.",
            code="invalid_signal",
            details={"field": "value", "length": length},
        )
    return Signal(signal_type, normalised)


def match_parameters(*, threshold: object, quality_min: object) -> tuple[int, int | None]:
    if threshold is None:
        threshold = settings.MATCH_DEFAULT_THRESHOLD
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int)
        or not 0 <= threshold <= MAX_THRESHOLD
    ):
        raise InvalidInput(
            f"threshold must be an integer 0-{MAX_THRESHOLD}.",
            code="invalid_threshold",
            details={"min": 0, "max": MAX_THRESHOLD},
        )
    if quality_min is not None and (
        isinstance(quality_min, bool)
        or not isinstance(quality_min, int)
        or not 0 <= quality_min <= QUALITY_MAX
    ):
        raise InvalidInput(
            f"quality_min must be null or an integer 0-{QUALITY_MAX}.",
            code="invalid_quality",
            details={"min": 0, "max": QUALITY_MAX},
        )
    return threshold, quality_min


def match_signals(
    *,
    actor: Actor,
    signals: list[Signal],
    threshold: int,
    quality_min: int | None = None,
) -> list[dict]:
    """For each signal, in order: ``{"signal", "matches": [...]}``; each match is the entry as
    members see it plus its ``distance`` (0 for md5 and sha256)."""
    store = match_store()
    store.refresh()
    found: list[list[tuple[str, int]]] = [[] for _ in signals]  # (value, distance) per query
    pdq_positions = [i for i, s in enumerate(signals) if s.type == "pdq"]
    if pdq_positions:
        for match in store.pdq.search(
            [signals[i].value for i in pdq_positions],
            threshold=threshold,
            quality_min=quality_min,
        ):
            found[pdq_positions[match.query]].append((match.value, match.distance))
    for i, signal in enumerate(signals):
        if signal.type != "pdq" and store.exact[signal.type].get(signal.value) is not None:
            found[i].append((signal.value, 0))
    entries = _render(signals, found)
    results = []
    matched = total = 0
    for signal, hits in zip(signals, found, strict=True):
        matches = []
        for value, distance in sorted(hits, key=lambda hit: (hit[1], hit[0])):
            entry = entries.get((signal.type, value))
            if entry is None:
                continue  # left the shared set after the index last caught up
            if (
                signal.type == "pdq"
                and quality_min is not None
                and (entry["quality"] is None or entry["quality"] < quality_min)
            ):
                continue
            matches.append({**entry, "distance": distance})
        matched += bool(matches)
        total += len(matches)
        results.append({"signal": {"type": signal.type, "value": signal.value}, "matches": matches})
    _audit(actor, signals, threshold, quality_min, matched, total, results)
    return results


_RENDERED_KEYS = ("state", "labels", "contributors", "quality")
# What render_entries takes: the entry's id, then federation.sync.selectors._ENTRY_FIELDS.
_ROW_FIELDS = (
    "id",
    "signal_type",
    "value",
    "state",
    "created_at",
    "updated_at",
    "state_changed_at",
)


def _render(signals: list[Signal], found: list[list[tuple[str, int]]]) -> dict:
    wanted: dict[str, set[str]] = {}
    for signal, hits in zip(signals, found, strict=True):
        wanted.setdefault(signal.type, set()).update(value for value, _ in hits)
    rows = []
    for signal_type, values in wanted.items():
        if values:
            rows.extend(
                Entry.objects.filter(
                    signal_type=signal_type, value__in=values, state__in=VISIBLE_STATES
                ).values_list(*_ROW_FIELDS)
            )
    rendered = {}
    for document in render_entries(rows):
        item = orjson.loads(document)
        rendered[(item["signal"]["type"], item["signal"]["value"])] = {
            "signal": item["signal"],
            **{key: item[key] for key in _RENDERED_KEYS},
        }
    return rendered


def _audit(actor: Actor, signals, threshold, quality_min, matched, total, results) -> None:
    counts: dict[str, int] = {}
    for signal in signals:
        counts[signal.type] = counts.get(signal.type, 0) + 1
    data = {
        Key.SIGNALS: counts,
        Key.THRESHOLD: threshold,
        Key.QUALITY_MIN: quality_min,
        Key.MATCHED_SIGNALS: matched,
        Key.MATCHES: total,
    }
    if settings.MATCH_AUDIT_VALUES:
        data[Key.VALUES] = [
            {
                "type": r["signal"]["type"],
                "value": r["signal"]["value"],
                "matches": len(r["matches"]),
            }
            for r in results
        ]
    with transaction.atomic():
        audit_record(
            AuditRecord(
                action=Action.MATCH_REQUESTED,
                actor=actor,
                organisation=actor.organisation_slug,
                data=data,
            )
        )
