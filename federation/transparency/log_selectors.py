"""Reading the log: checkpoints, entries, and RFC 9162 proofs served from the stored tree levels.

Every proof is a list of leaf-range hashes (federation/transparency/merkle.py); all the stored
nodes one proof needs are read with a single query, and nothing is recomputed from leaves.

(Not named ``selectors.py``: a ``selectors`` module here would shadow the standard library's
for any script run from this folder.)
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connections, router
from django.db.models import Count, Min
from django.utils import timezone

from federation.contributions.models import Contribution
from federation.errors import InvalidInput, NotFound
from federation.transparency import merkle
from federation.transparency.actions import Action
from federation.transparency.audit import event_document, event_leaf_bytes
from federation.transparency.models import AuditEvent, Checkpoint, MerkleNode, SequencerStatus

MAX_ENTRIES_PER_REQUEST = 1000


class NodeMissing(Exception):
    """A node the tree should hold is absent: the stored tree is damaged."""


def read_nodes(
    keys: set[merkle.NodeKey], *, using: str | None = None
) -> dict[merkle.NodeKey, bytes]:
    """The stored hashes of ``keys`` (``(level, index)`` pairs), in one query."""
    if not keys:
        return {}
    alias = using or router.db_for_read(MerkleNode)
    connection = connections[alias]
    table = connection.ops.quote_name(MerkleNode._meta.db_table)
    levels = [level for level, _ in keys]
    indexes = [index for _, index in keys]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT n.level, n.index, n.hash FROM {table} n "  # noqa: S608 (quoted table name)
                "JOIN unnest(%s::smallint[], %s::bigint[]) AS k(level, index) "
                "ON n.level = k.level AND n.index = k.index",
                [levels, indexes],
            )
        else:
            condition = " OR ".join(['(level = %s AND "index" = %s)'] * len(keys))
            cursor.execute(
                f'SELECT level, "index", hash FROM {table} WHERE {condition}',  # noqa: S608
                [value for key in keys for value in key],
            )
        found = {(level, index): bytes(digest) for level, index, digest in cursor.fetchall()}
    if len(found) != len(keys):
        missing = sorted(keys - found.keys())[:5]
        raise NodeMissing(f"stored Merkle nodes missing: {missing}")
    return found


def tree_hashes(ranges: list[merkle.Range]) -> list[bytes]:
    return merkle.proof_hashes(ranges, read_nodes)


def stored_tree_size() -> int:
    """Leaves in the stored tree (the sequencer keeps it equal to the latest checkpoint's size)."""
    last = MerkleNode.objects.filter(level=0).order_by("-index").values_list("index", flat=True)
    index = last.first()
    return 0 if index is None else index + 1


def latest_checkpoint() -> Checkpoint | None:
    return Checkpoint.objects.order_by("-tree_size").first()


def checkpoint_for(*, tree_size: int | None = None) -> Checkpoint:
    """The latest checkpoint, or the one signed at exactly ``tree_size``."""
    queryset = Checkpoint.objects.order_by("-tree_size")
    if tree_size is not None:
        queryset = queryset.filter(tree_size=tree_size)
    checkpoint = queryset.first()
    if checkpoint is None:
        if tree_size is None:
            raise NotFound("The hub has not signed a checkpoint yet.", code="no_checkpoint")
        raise NotFound(f"No checkpoint was signed at tree size {tree_size}.")
    return checkpoint


def _published_size() -> int:
    size = Checkpoint.objects.order_by("-tree_size").values_list("tree_size", flat=True).first()
    return size or 0


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    inclusion_path: list[bytes]


@dataclass(frozen=True)
class ConsistencyProof:
    tree_size_1: int
    tree_size_2: int
    consistency_path: list[bytes]


def inclusion_proof(
    *, leaf_index: int, tree_size: int | None = None, published_size: int | None = None
) -> InclusionProof:
    """RFC 9162 §2.1.3 inclusion proof of leaf ``leaf_index`` in the tree of ``tree_size`` leaves
    (default: the latest checkpoint's size). Sizes beyond the latest checkpoint are refused."""
    limit = _published_size() if published_size is None else published_size
    size = limit if tree_size is None else tree_size
    if not 0 < size <= limit:
        raise InvalidInput(
            f"tree_size must be between 1 and the latest checkpoint's size ({limit}).",
            code="bad_tree_size",
            details={"tree_size": size, "latest": limit},
        )
    if not 0 <= leaf_index < size:
        raise InvalidInput(
            "index must be a leaf of that tree (0 <= index < tree_size).",
            code="bad_leaf_index",
            details={"index": leaf_index, "tree_size": size},
        )
    path = tree_hashes(merkle.inclusion_ranges(leaf_index, size))
    return InclusionProof(leaf_index=leaf_index, tree_size=size, inclusion_path=path)


def consistency_proof(
    *, first: int, second: int | None = None, published_size: int | None = None
) -> ConsistencyProof:
    """RFC 9162 §2.1.4 proof that the tree of ``first`` leaves is a prefix of the tree of
    ``second`` (default: the latest checkpoint's size). ``first`` equal to 0 or to ``second`` has
    an empty proof."""
    limit = _published_size() if published_size is None else published_size
    size = limit if second is None else second
    if not 0 <= size <= limit:
        raise InvalidInput(
            f"second must be between 0 and the latest checkpoint's size ({limit}).",
            code="bad_tree_size",
            details={"second": size, "latest": limit},
        )
    if not 0 <= first <= size:
        raise InvalidInput(
            "first must be between 0 and second.",
            code="bad_tree_size",
            details={"first": first, "second": size},
        )
    path = tree_hashes(merkle.consistency_ranges(first, size))
    return ConsistencyProof(tree_size_1=first, tree_size_2=size, consistency_path=path)


@dataclass(frozen=True)
class LogEntry:
    leaf_index: int
    document: Mapping[str, Any]
    leaf_bytes: bytes
    leaf_hash: bytes


def log_entries(*, start: int, end: int) -> tuple[int, list[LogEntry]]:
    """Leaves ``[start, min(end, size))`` of the published tree, with their event documents and
    leaf bytes computed from the audit rows as they are now (a changed row shows up as leaf bytes
    that no longer hash to the committed leaf hash), and the committed leaf hashes."""
    size = _published_size()
    _check_range(start, end, size)
    end = min(end, size)
    events = AuditEvent.objects.filter(leaf_index__gte=start, leaf_index__lt=end).order_by(
        "leaf_index"
    )
    committed = dict(
        MerkleNode.objects.filter(level=0, index__gte=start, index__lt=end).values_list(
            "index", "hash"
        )
    )
    entries = [
        LogEntry(
            leaf_index=event.leaf_index,
            document=event_document(event),
            leaf_bytes=event_leaf_bytes(event),
            leaf_hash=bytes(committed[event.leaf_index]),
        )
        for event in events
    ]
    return size, entries


@dataclass(frozen=True)
class LogStatus:
    """How fresh the log is: the latest checkpoint, what waits to be sequenced, the sequencer's
    health. ``healthy`` is False when the sequencer refuses or events have waited longer than
    ``TRANSPARENCY_STALL_SECONDS``."""

    tree_size: int
    checkpoint_signed_at: datetime | None
    unsequenced_events: int
    oldest_unsequenced_at: datetime | None
    oldest_unsequenced_age_seconds: float | None
    sequencer_state: str
    sequencer_reason: str
    sequencer_since: datetime | None
    sequencer_refusals: int
    stall_seconds: int

    @property
    def stalled(self) -> bool:
        age = self.oldest_unsequenced_age_seconds
        return age is not None and age > self.stall_seconds

    @property
    def healthy(self) -> bool:
        return self.sequencer_state == SequencerStatus.State.OK and not self.stalled


def log_status(*, now: datetime | None = None) -> LogStatus:
    now = now or timezone.now()
    checkpoint = latest_checkpoint()
    # One pass over the unsequenced rows (the partial index "auditevent_unsequenced"): the
    # oldest by time, not by id, since ids are taken at insert and rows commit out of order.
    pending = AuditEvent.objects.filter(leaf_index__isnull=True).aggregate(
        count=Count("id"), oldest=Min("occurred_at")
    )
    oldest_time = pending["oldest"]
    status = SequencerStatus.objects.filter(pk=1).first()
    return LogStatus(
        tree_size=checkpoint.tree_size if checkpoint else 0,
        checkpoint_signed_at=checkpoint.created_at if checkpoint else None,
        unsequenced_events=pending["count"],
        oldest_unsequenced_at=oldest_time,
        oldest_unsequenced_age_seconds=(
            max(0.0, (now - oldest_time).total_seconds()) if oldest_time else None
        ),
        sequencer_state=status.state if status else SequencerStatus.State.OK,
        sequencer_reason=status.reason if status else "",
        sequencer_since=status.since if status else None,
        sequencer_refusals=status.refusals if status else 0,
        stall_seconds=settings.TRANSPARENCY_STALL_SECONDS,
    )


@dataclass(frozen=True)
class SignedContribution:
    """What an auditor needs to check one ``contribution.accepted`` leaf's member signature."""

    leaf_index: int
    uuid: str
    canonical: bytes | None  # None: no stored contribution has the leaf's uuid
    signature: bytes | None


def log_contributions(*, start: int, end: int) -> tuple[int, list[SignedContribution]]:
    """The stored signed bytes and signature of every ``contribution.accepted`` leaf in
    ``[start, min(end, size))`` of the published tree, bounded like ``log_entries``."""
    size = _published_size()
    _check_range(start, end, size)
    end = min(end, size)
    events = list(
        AuditEvent.objects.filter(
            leaf_index__gte=start, leaf_index__lt=end, action=Action.CONTRIBUTION_ACCEPTED
        )
        .order_by("leaf_index")
        .values_list("leaf_index", "object_id")
    )
    stored = {
        str(row_uuid): (canonical, signature)
        for row_uuid, canonical, signature in Contribution.objects.filter(
            uuid__in=[_as_uuid(object_id) for _, object_id in events if _as_uuid(object_id)]
        ).values_list("uuid", "canonical", "signature")
    }
    found = []
    for leaf_index, object_id in events:
        canonical, signature = stored.get(object_id, (None, None))
        found.append(
            SignedContribution(
                leaf_index=leaf_index,
                uuid=object_id,
                canonical=canonical.encode() if canonical is not None else None,
                signature=bytes(signature) if signature is not None else None,
            )
        )
    return size, found


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _check_range(start: int, end: int, size: int) -> None:
    if start < 0 or end <= start:
        raise InvalidInput(
            "Need 0 <= start < end.", code="bad_range", details={"start": start, "end": end}
        )
    if end - start > MAX_ENTRIES_PER_REQUEST:
        raise InvalidInput(
            f"At most {MAX_ENTRIES_PER_REQUEST} entries per request.",
            code="bad_range",
            details={"start": start, "end": end, "max": MAX_ENTRIES_PER_REQUEST},
        )
    if start >= size:
        raise InvalidInput(
            f"start must be below the latest checkpoint's size ({size}).",
            code="bad_range",
            details={"start": start, "tree_size": size},
        )
