"""Receiving, phase 3: storing what passed the checks, in one transaction per batch.

Foreign members' mirrors, their keys and bindings (``federation.receiving.bindings``), the incidents named
and unknown here (mirrored), the contributions through ``contributions_store`` (once however
many peers send them), a ``Receipt`` per (contribution, peer), the inbound policy (``trust``:
the sender's vetting is applied here; ``review``: the entry waits for local reviewers), entry
items (a dispute and its outcome) under ``trust``, and one ``federation.received`` event naming
every item by digest.
"""

import dataclasses
from collections import Counter
from collections.abc import Mapping

from django.db import connection

from federation.contributions.checks import CheckOutcome, Verified
from federation.contributions.entry_rows import NEW_ENTRY_ROUND
from federation.contributions.models import Contribution, Entry
from federation.contributions.storage import CREATED, contributions_store
from federation.contributions.storage import DUPLICATE as STORE_DUPLICATE
from federation.db.bulk_insert import copy_rows, packed_uuids, uuid_array_sql
from federation.lifecycle import entries_transition
from federation.propagation.models import PeerLink, Receipt
from federation.propagation.outbox import linked_peer_hubs, vetting_owes_nothing
from federation.receiving.bindings import received_key_store
from federation.receiving.items import (
    ACCEPTED,
    DUPLICATE,
    REJECTED,
    ContributionItem,
    EntryItem,
    ReceivedBatch,
)
from federation.transparency.actions import Action, Key, ObjectType, PolicyRule
from federation.transparency.audit import AuditRecord, audit_record_many
from federation.vetting.services import incidents_mirror
from members.models import Peer

_SCOPE_WIDTH = {"hub": 0, "peers": 1, "federation": 2}


def batch_store(batch: ReceivedBatch) -> None:
    """Store what passed the checks of ``batch`` and record its results, in the caller's
    transaction (which the caller runs again after a lost race: this starts afresh)."""
    audit_record_many(batch.rejection_events)
    batch.stored_keys = {}
    batch.stored_bindings = set()
    for key_item in batch.keys:
        _key, changed = received_key_store(batch, key_item.key, path=key_item.item.path)
        batch.set(key_item.item, ACCEPTED if changed else DUPLICATE)
    if batch.contributions:
        _store_contributions(batch)
    for entry_item in batch.entries:
        _apply_entry_item(batch, entry_item)
    results = [r for r in batch.results if r is not None]
    # Written as the batch's other events are (COPY, its data by orjson): one ORM insert of
    # its 500 digests took about 1 ms of Python.
    audit_record_many(
        [
            AuditRecord(
                action=Action.FEDERATION_RECEIVED,
                actor=batch.actor,
                organisation="",
                object_type=ObjectType.PEER,
                object_id=batch.peer.hub_id,
                data={
                    Key.PEER: batch.peer.hub_id,
                    Key.BATCH: str(batch.parsed.batch_id),
                    Key.VIA: batch.via,
                    Key.ACCEPTED: [r.digest for r in results if r.status == ACCEPTED],
                    Key.DUPLICATES: [r.digest for r in results if r.status == DUPLICATE],
                    Key.REJECTED: [
                        {Key.ITEM: r.digest, Key.CODE: r.code, Key.MESSAGE: r.message}
                        for r in results
                        if r.status == REJECTED
                    ],
                },
            )
        ]
    )
    PeerLink.objects.filter(peer=batch.peer).update(last_received_at=batch.now)


def _store_contributions(batch: ReceivedBatch) -> None:
    # Incidents are declared at their origin hub: one unknown here is mirrored (never
    # auto-vetting) so that the contributions keep their incident and its lane.
    incidents_mirror(
        origins={e.parsed.incident: e.parsed.hub for e in batch.contributions if e.parsed.incident},
        actor=batch.actor,
        now=batch.now,
    )
    by_member: dict[tuple[str, str], list[ContributionItem]] = {}
    for entry in batch.contributions:
        by_member.setdefault((entry.parsed.hub, entry.parsed.member), []).append(entry)
    stored: list[tuple[ContributionItem, str, int]] = []  # (item, store status, entry id)
    arriving = _arriving_vetted(batch)
    # Entries stored vetted, whose move is recorded below: each with its one add's id.
    inserted_vetted: dict[int, int] = {}
    for (_hub, _member), entries in by_member.items():
        keys = [received_key_store(batch, entry.key, path=entry.item.path)[0] for entry in entries]
        organisation = keys[0].organisation
        # The contributions are the foreign member's: stored for its mirror, by the peer hub.
        actor = dataclasses.replace(batch.actor, organisation=organisation)
        verified = [
            Verified(position, entry.parsed, entry.signature, key)
            for position, (entry, key) in enumerate(zip(entries, keys, strict=True))
        ]
        results = contributions_store(
            actor=actor,
            outcome=CheckOutcome(verified, []),
            item_count=len(verified),
            label_ids=batch.label_ids,
            now=batch.now,
            # A set: the storage asks it of each add (a list made that quadratic, 1-2 ms a batch).
            vetted_on_arrival={i for i, e in enumerate(entries) if e.item.index in arriving},
        )
        for entry, result in zip(entries, results, strict=True):
            if result.entry_inserted_vetted:
                inserted_vetted[result.entry_id] = result.contribution_id
            if result.status == CREATED or result.status == STORE_DUPLICATE:
                stored.append((entry, result.status, result.entry_id))
            else:
                error = result.error or {}
                batch.set(entry.item, REJECTED, error.get("code"), error.get("message"))
    _record_receipts(batch, stored, created_status=CREATED, inserted_vetted=inserted_vetted)


def _vetted_by_sender(entry: ContributionItem) -> bool:
    """An add the peer attests vetted: under ``trust``, this hub vets its entry too."""
    return (
        entry.parsed.action == Contribution.Action.ADD
        and entry.item.attestations[-1].document["state"] == Entry.State.VETTED
    )


def _arriving_vetted(batch: ReceivedBatch) -> set[int]:
    """The index of each item whose new entry may be stored vetted (``contributions_store``'s
    ``vetted_on_arrival``): a trusted peer's vetted adds, each the batch's only item of its
    signal, so that nothing else in this transaction sees the entry before its move is recorded
    (``_record_receipts``)."""
    if batch.peer.inbound_policy != Peer.InboundPolicy.TRUST:
        return set()
    signals = Counter((e.parsed.signal_type, e.parsed.value) for e in batch.contributions)
    return {
        entry.item.index
        for entry in batch.contributions
        if _vetted_by_sender(entry) and signals[(entry.parsed.signal_type, entry.parsed.value)] == 1
    }


def _record_receipts(
    batch: ReceivedBatch,
    stored: list[tuple[ContributionItem, str, int]],
    *,
    created_status: str,
    inserted_vetted: Mapping[int, int],
) -> None:
    peer_hub = batch.peer.hub_id
    # The add stored onto an entry this batch inserted vetted is new: its id came back from the
    # storage, no receipt of it is held, and its entry's move is recorded from pending. The
    # others are looked up (4-5 µs of PostgreSQL per item).
    new = {
        entry.parsed.uuid: (inserted_vetted[entry_id], Entry.State.PENDING, False)
        for entry, _, entry_id in stored
        if entry_id in inserted_vetted
    }
    found = _stored_for_receipts(
        [entry.parsed.uuid for entry, _, _ in stored if entry.parsed.uuid not in new], peer_hub
    )
    found.update(new)
    ids = {uuid: contribution_id for uuid, (contribution_id, _, _) in found.items()}
    scopes = _receipt_scopes(batch, stored, ids)
    receipts: list[tuple] = []
    existing: set[int] = set()
    to_vet: set[int] = set()
    # The states of the entries this batch's adds were written to: ``contributions_store``
    # upserted them, so this transaction holds their row locks (``entries_transition``'s
    # ``locked_states``) and the move needs no second lock-and-read.
    locked: dict[int, str] = {}
    for entry, status, entry_id in stored:
        contribution_id, state, received = found[entry.parsed.uuid]
        if received or contribution_id in existing:
            batch.set(entry.item, DUPLICATE)  # redelivered: acknowledged, nothing changes
            continue
        existing.add(contribution_id)
        receipts.append(
            (
                contribution_id,
                peer_hub,
                batch.via,
                list(entry.item.path),
                entry.item.raw["attestations"],
                list(entry.item.sent_to),
                scopes[contribution_id],
                batch.parsed.batch_id,
                entry.item.digest,
                batch.now,
            )
        )
        created = status == created_status
        batch.set(entry.item, ACCEPTED if created else DUPLICATE)
        if _vetted_by_sender(entry):
            to_vet.add(entry_id)
            if created:
                locked[entry_id] = state
    copy_rows(Receipt, _RECEIPT_COLUMNS, receipts)
    # An entry stored vetted (``contributions_store``'s ``vetted_on_arrival``) is moved from
    # pending here, as the others are, without an UPDATE (``entries_transition``'s ``inserted``).
    assert inserted_vetted.keys() <= locked.keys(), "an entry stored vetted must be moved here"
    locked.update(dict.fromkeys(inserted_vetted, Entry.State.PENDING))
    if to_vet and batch.peer.inbound_policy == Peer.InboundPolicy.TRUST:
        reason = f"vetted by trusted peer {peer_hub}"
        data = {Key.POLICY: {Key.RULE: PolicyRule.TRUSTED_PEER, Key.PEER: peer_hub}}
        # The entries of adds stored before (a second peer's receipt) are locked and read there.
        with vetting_owes_nothing(_owing_no_peer(stored, inserted_vetted)):
            for entry_ids, locked_states in ((set(locked), locked), (to_vet - set(locked), None)):
                if entry_ids:
                    entries_transition(
                        entry_ids=entry_ids,
                        to=Entry.State.VETTED,
                        only_from=[Entry.State.PENDING],
                        locked_states=locked_states,
                        inserted=dict.fromkeys(inserted_vetted, NEW_ENTRY_ROUND)
                        if locked_states
                        else None,
                        actor=batch.actor,
                        reason=reason,
                        data=data,
                        now=batch.now,
                    )


def _owing_no_peer(
    stored: list[tuple[ContributionItem, str, int]], inserted: Mapping[int, int]
) -> set[int]:
    """The entries inserted vetted by this batch whose vetting owes no peer anything: each has one
    add, this batch's (its signal alone in the batch, and no other transaction sees the entry
    before this one commits), and the receipt just written names every linked peer on its path or
    in its ``sent_to`` (a triangle's every entry: the outbox statement found nothing for them,
    about 8 µs of PostgreSQL each)."""
    if not inserted:
        return set()
    linked = linked_peer_hubs()
    return {
        entry_id
        for entry, _status, entry_id in stored
        if entry_id in inserted and linked <= {*entry.item.path, *entry.item.sent_to}
    }


def _stored_for_receipts(uuids: list, peer_hub: str) -> dict:
    """``{uuid: (contribution id, its entry's state, whether peer_hub's receipt of it is held)}``
    of the stored contributions ``uuids``: one statement on PostgreSQL (the UUIDs one packed
    parameter), the ORM elsewhere."""
    if not uuids:
        return {}
    if connection.vendor != "postgresql":
        rows = list(
            Contribution.objects.filter(uuid__in=uuids).values_list("uuid", "pk", "entry__state")
        )
        held = set(
            Receipt.objects.filter(
                contribution_id__in=[pk for _, pk, _ in rows], peer_hub=peer_hub
            ).values_list("contribution_id", flat=True)
        )
        return {uuid: (pk, state, pk in held) for uuid, pk, state in rows}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.uuid, c.id, e.state, EXISTS (SELECT 1 FROM federation_receipt r "  # noqa: S608
            "WHERE r.contribution_id = c.id AND r.peer_hub = %s) "
            "FROM federation_contribution c JOIN federation_entry e ON e.id = c.entry_id "
            f"WHERE c.uuid = ANY({uuid_array_sql()})",  # (fixed SQL)
            [peer_hub, packed_uuids(uuids)],
        )
        return {uuid: (pk, state, held) for uuid, pk, state, held in cursor.fetchall()}


_RECEIPT_COLUMNS = [
    "contribution_id", "peer_hub", "via", "path", "attestations", "sent_to", "effective_scope",
    "batch_id", "digest", "received_at",
]  # fmt: skip


def _receipt_scopes(
    batch: ReceivedBatch, stored: list[tuple[ContributionItem, str, int]], ids: dict
) -> dict[int, str]:
    """The effective scope here: an add's signed ``peers`` arrives as ``hub``; ``federation``
    stays. A retract travels as far as the adds it withdrew (docs/signing.md §9): the widest of
    their receipts' scopes here."""
    scopes: dict[int, str] = {}
    retract_ids = [
        ids[entry.parsed.uuid]
        for entry, _, _ in stored
        if entry.parsed.action == Contribution.Action.RETRACT
    ]
    withdrawn: dict[int, list[str]] = {}
    if retract_ids:
        for retract_id, scope in Receipt.objects.filter(
            contribution__withdrawn_by_id__in=retract_ids
        ).values_list("contribution__withdrawn_by_id", "effective_scope"):
            withdrawn.setdefault(retract_id, []).append(scope)
    for entry, _, _ in stored:
        contribution_id = ids[entry.parsed.uuid]
        own = "hub" if entry.parsed.scope in ("hub", "peers") else entry.parsed.scope
        if entry.parsed.action == Contribution.Action.RETRACT and withdrawn.get(contribution_id):
            own = max(withdrawn[contribution_id], key=_SCOPE_WIDTH.__getitem__)
        scopes[contribution_id] = own
    return scopes


# The moves an entry item asks for, from the entry's state here to the attested state.
_ENTRY_ROUTES: dict[tuple[str, str], tuple[str, ...]] = {
    (Entry.State.VETTED, Entry.State.DISPUTED): (Entry.State.DISPUTED,),
    (Entry.State.VETTED, Entry.State.REJECTED): (Entry.State.DISPUTED, Entry.State.REJECTED),
    (Entry.State.DISPUTED, Entry.State.REJECTED): (Entry.State.REJECTED,),
    (Entry.State.DISPUTED, Entry.State.VETTED): (Entry.State.VETTED,),
    (Entry.State.PENDING, Entry.State.VETTED): (Entry.State.VETTED,),
    (Entry.State.PENDING, Entry.State.REJECTED): (Entry.State.REJECTED,),
}


def _apply_entry_item(batch: ReceivedBatch, item: EntryItem) -> None:
    """An entry's new state from a ``trust`` peer is applied here when the entry exists and the
    move is allowed; under ``review`` (or when nothing applies) it is recorded only (in
    ``federation.received``)."""
    entry = (
        Entry.objects.select_for_update()
        .filter(signal_type=item.signal_type, value=item.value)
        .first()
    )
    if entry is not None and entry.state == item.state:
        batch.set(item.item, DUPLICATE)
        return
    batch.set(item.item, ACCEPTED)
    if entry is None or batch.peer.inbound_policy != Peer.InboundPolicy.TRUST:
        return
    attestation = item.item.attestations[-1].document
    data = {
        Key.POLICY: {Key.RULE: PolicyRule.TRUSTED_PEER, Key.PEER: batch.peer.hub_id},
        Key.ATTESTATION: {
            Key.HUB: attestation["hub"],
            Key.TO: attestation["state"],
            Key.EFFECTIVE_AT: attestation["decided_at"],
        },
    }
    for step in _ENTRY_ROUTES.get((entry.state, item.state), ()):
        entries_transition(
            entry_ids=[entry.pk],
            to=step,
            actor=batch.actor,
            reason=f"{attestation['state']} at peer {attestation['hub']}",
            data=data,
            now=batch.now,
        )
