"""How a round's claimed outbox rows become batches (docs/federation.md, "Delivery"): the rows
as claimed (``ClaimedRow``), split into batches the peer may apply in any order (an entry's or
a key's rows together, in order), each within the receiver's body limit."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from federation.propagation.models import OutboxItem


@dataclass(slots=True)
class ClaimedRow:
    """An outbox row claimed for a round: the columns sending reads and writes, read as plain
    values (a round claims up to a few thousand rows; model instances cost more than the rest
    of the claim). ``state``, ``digest``, ``delivered_at`` and ``last_error`` are set as answers
    come in and written by ``_write_rows`` and its kin."""

    id: int
    kind: str
    contribution_id: int | None
    entry_id: int | None
    signing_key_id: int | None
    path: list
    attempts: int
    next_attempt_at: datetime | None  # read by the portable claim only (PostgreSQL's: None)
    claimed_until: datetime | None
    state: str = OutboxItem.State.PENDING
    digest: str = ""
    delivered_at: datetime | None = None
    last_error: str = ""

    @property
    def pk(self) -> int:
        return self.id


CLAIMED_COLUMNS = (
    "id", "kind", "contribution_id", "entry_id", "signing_key_id", "path", "attempts",
    "next_attempt_at", "claimed_until",
)  # fmt: skip


def partition(
    keyed: list[tuple[int, object]], *, parts: int, size: int
) -> tuple[list[list[int]], list[int]]:
    """Split ``(row, group)`` pairs, in row order, into at most ``parts`` batches of at most
    ``size`` rows that may be applied in any order: all the rows of a group go to one batch, in
    row order. Batches are filled one after another; a row whose group's batch is full, and
    every row after it, are left over (``(batches, left_over)``), so that nothing overtakes a
    row it may depend on."""
    batches: list[list[int]] = []
    home: dict[object, int] = {}
    for position, (row, group) in enumerate(keyed):
        target = home.get(group)
        if target is None:
            if not batches or len(batches[-1]) >= size:
                if len(batches) == parts:
                    return batches, [r for r, _g in keyed[position:]]
                batches.append([])
            target = home[group] = len(batches) - 1
        elif len(batches[target]) >= size:
            return batches, [r for r, _g in keyed[position:]]
        batches[target].append(row)
    return batches, []


def row_group(row: ClaimedRow) -> tuple[str, int]:
    """What a row depends on: an entry's items (its adds, retracts and state changes) arrive in
    row order, and so do a key's; items of two groups need not."""
    if row.entry_id is not None:
        return ("entry", row.entry_id)
    if row.signing_key_id is not None:
        return ("key", row.signing_key_id)
    return ("row", row.pk)


# Room left in a batch body for its envelope and signature (a few hundred bytes, with margin).
BATCH_ENVELOPE_ALLOWANCE = 16 * 1024


def within_body_budget(items: list[tuple], canonical: dict[int, bytes]) -> list[tuple]:
    """The longest prefix of built ``(pk, item, digest)`` whose batch fits the receiver's body
    limit (``FEDERATION_MAX_BODY_BYTES``), and at least one item (``canonical``: each row's item
    bytes, as sent). Only vpdq items, which carry
    their frame list (up to about 1.8 MB, docs/video.md), come near it: the rows left out wait
    for the next round, in order (an entry's rows are all in this batch)."""
    budget = settings.FEDERATION_MAX_BODY_BYTES - BATCH_ENVELOPE_ALLOWANCE
    total = 0
    for count, (pk, _item, _digest) in enumerate(items):
        total += len(canonical[pk]) + 1
        if total > budget and count:
            return items[:count]
    return items
