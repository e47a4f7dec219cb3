"""Everything that follows a change of entries, in the transaction of that change.

The only caller of the writers of the member change stream (``federation.sync.changes``), the
federation outbox (``federation.propagation.outbox``) and TAXII's STIX versions
(``federation.taxii.versions``). Services call one function here per kind of fact, after they
made the change and in the same transaction, so that what members, peers and TAXII clients are
owed commits or rolls back with it (docs/architecture.md, "Downstream of a change"):

- ``entries_transitioned``: entries moved state (``federation.lifecycle``, the one mover);
- ``adds_stored`` and ``adds_settled``: a request's adds were written, then its policy and its
  retracts applied (``federation.contributions.storage``);
- ``retracts_stored``: retracts withdrew adds (``federation.contributions.storage``);
- ``entries_relabelled``: a label the entries carry changed its slug (``federation.vetting``);
- ``key_revoked``: a signing key was revoked, here or at its home hub (``members.services``,
  ``federation.receiving.bindings``).

Each writer is bulk (a fixed number of statements whatever the number of entries) and nudges its
consumer (the sync sequencer, the outbox drain) only after commit.
"""

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from federation.contributions.models import SHARED_STATES
from federation.propagation.outbox import (
    outbox_record_adds,
    outbox_record_keys,
    outbox_record_retracts,
    outbox_record_transitions,
    peers_read_once,
)
from federation.sync.changes import sync_changes_record
from federation.taxii.versions import stix_versions_record


def request_writes() -> AbstractContextManager[None]:
    """The block of one request's writes (``federation.contributions.storage``'s write step,
    chunk after chunk): the outbox reads once that the hub has no linked peer, rather than in
    each chunk's statements."""
    return peers_read_once()


def entries_transitioned(transitions: Sequence, *, now: datetime) -> None:
    """Entries moved state (``federation.lifecycle.Transition``s, all to one state, which is the
    change's reason): a change row per entry that enters, changes in or leaves the shared set;
    the outbox rows the move owes (an entry vetted from review sends its active adds; a dispute,
    its outcome and a vetting after one send an entry item to the peers that hold the entry); and
    TAXII's new version of each entry's indicator, when the move changes it."""
    if not transitions:
        return
    to_state = transitions[0].to_state
    sync_changes_record(
        entry_ids=[t.entry_id for t in transitions],
        reason=to_state,
        now=now,
        shared=to_state in SHARED_STATES,  # moved there under the mover's locks
    )
    outbox_record_transitions(transitions)
    stix_versions_record(transitions=transitions, now=now)


def adds_stored(*, entry_ids: Iterable[int], now: datetime) -> None:
    """Adds were written to ``entry_ids``, before the request's policy and retracts run (a move
    they cause then replaces this change row with its own)."""
    sync_changes_record(entry_ids=entry_ids, reason="contributed", now=now)


def adds_settled(*, uuids: Iterable) -> None:
    """A request's adds (by UUID) after its policy and retracts ran: those still active whose
    entry is shared go to the peers now. An entry the policy just vetted has sent its adds
    already (``entries_transitioned``), and the outbox never writes a row twice."""
    outbox_record_adds(uuids=uuids)


def retracts_stored(
    *, entry_ids: Iterable[int], contribution_ids: Iterable[int], now: datetime
) -> None:
    """Retracts (``contribution_ids``) withdrew adds of ``entry_ids``: a change row per entry,
    and the retract to every peer the withdrawn adds were sent to."""
    sync_changes_record(entry_ids=entry_ids, reason="contributed", now=now)
    outbox_record_retracts(contribution_ids=contribution_ids)


def entries_relabelled(*, entry_ids: Iterable[int]) -> None:
    """A label carried by ``entry_ids`` changed its slug: members see the entries again."""
    sync_changes_record(entry_ids=entry_ids, reason="labels")


def key_revoked(*, signing_key_id: int, path: Sequence[str] = ()) -> None:
    """A signing key was revoked: a key item to every peer that was sent a contribution signed by
    it, except the hubs of ``path`` (the path a foreign revocation arrived with)."""
    outbox_record_keys(signing_key_ids=[signing_key_id], path=path)
