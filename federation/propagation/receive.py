"""Receiving a batch from a peer hub: every check of docs/federation.md ("Receiving"), then storage.

``batch_receive`` is used by the push endpoint (``POST /api/v1/federation/batches``) and by the
pull client (``federation.propagation.pull``) alike, so both paths apply exactly the same checks.

1. **The envelope** (the whole batch is refused, ``BatchRefused``, audited
   ``federation.batch_refused``): the peer is active; the body is a well-formed batch of at most
   500 items; ``from`` is the authenticated peer; ``to`` is this hub; the batch signature verifies
   under the peer's pinned key; ``feed`` (if any) is well-formed and, for a pull, continues from
   the cursor asked for.
2. **Each item alone**, touching no table (rejected items get a per-item result; the others go
   on): the path (no loop, within the hop limit, the sender last, every hub known), one
   attestation per hub of the path signed by that hub's pinned key and naming the item's
   signal, the contribution's origin and scope, the key section (the home hub's binding under
   its pinned key, naming the same member and key as the member's own registration, whose bytes
   it hashes and whose self-signature verifies), then the contribution through
   ``check_contributions`` under ``TimeRule.relay`` with a key provider built from those
   verified key sections (and the revocations already held for them).
3. **Storage**, in one transaction per batch: foreign members' mirrors, their keys and bindings
   (``key.received``, ``key.revoked``), the contributions through ``contributions_store`` (once
   however many peers send them), a ``Receipt`` per (contribution, peer), the inbound policy
   (``trust``: the sender's vetting is applied here; ``review``: the entry waits for local
   reviewers), entry items (a dispute and its outcome) under ``trust``, and one
   ``federation.received`` event naming every item by digest.
"""

import base64
import dataclasses
import hashlib
import logging
import uuid as uuid_module
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from federation.contributions.checks import (
    BoundKey,
    CheckContext,
    CheckOutcome,
    TimeRule,
    Verified,
    check_contributions,
    claim_evidence,
)
from federation.contributions.models import Contribution, Entry, Label
from federation.contributions.services import CREATED, contributions_store
from federation.contributions.services import DUPLICATE as STORE_DUPLICATE
from federation.db.bulk_insert import copy_rows
from federation.errors import ConcordatError
from federation.lifecycle import entries_transition
from federation.monitoring.counters import batch_refused_counted, received_counted
from federation.propagation import wire
from federation.propagation.models import KeyBinding, PeerLink, Receipt
from federation.propagation.outbox import outbox_record_keys
from federation.signing import (
    MalformedContribution,
    MalformedKeyRegistration,
    ParsedContribution,
    SignatureChecks,
    decode_signature,
    parse_contribution,
    parse_key_registration,
    verify_key_registration,
)
from federation.transparency.actions import Action, Key, ObjectType, PolicyRule
from federation.transparency.audit import AuditRecord, audit_record, audit_record_many
from federation.vetting.models import Incident
from members.actors import Actor
from members.mirrors import organisation_mirror
from members.models import Peer, SigningKey

logger = logging.getLogger(__name__)

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"

# Per-item rejection codes (docs/federation.md, "Receiving", lists them with their order).
ITEM_CODES = {
    "invalid": "The item is not well-formed (details in the message).",
    "loop": "This hub is already on the item's path.",
    "hop_limit": "The path is longer than this hub's hop limit.",
    "wrong_path": "The path does not end with the sending hub.",
    "unknown_hub": "A hub on the path (or the key's home hub) is not a peer of this hub, or is "
    "suspended here.",
    "bad_attestation": "Not one attestation per hub of the path, in order, each signed by that "
    "hub's pinned key and naming the item's signal.",
    "wrong_origin": "The contribution's hub is not the first hub of the path.",
    "out_of_scope": "An add whose signed scope does not allow it here (hub, or peers beyond one "
    "hop).",
    "unbound_key": "The key binding is not signed by the member's home hub, or does not name the "
    "contribution's member and key, or does not hash the registration.",
    "invalid_registration": "The member's key registration is malformed or its self-signature "
    "does not verify.",
    "key_conflict": "This key id is held here for another member or another public key.",
}

_SCOPE_WIDTH = {"hub": 0, "peers": 1, "federation": 2}
_WRITE_ATTEMPTS = 3
_RETRYABLE_SQLSTATES = frozenset({"23505", "40P01", "40001"})
_EVIDENCE_TEXT = 200


class BatchRefused(ConcordatError):
    """The whole batch is refused (nothing in it is applied); audited ``federation.batch_refused``."""

    def __init__(self, message: str, *, code: str, status: int, details: Any = None) -> None:
        super().__init__(message, code=code, details=details)
        self.status = status


@dataclass(slots=True)
class ItemResult:
    index: int
    digest: str | None
    status: str
    code: str | None = None
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"index": self.index, "digest": self.digest, "status": self.status}
        if self.code is not None:
            result["code"] = self.code
            result["message"] = self.message
        return result


@dataclass
class BatchResult:
    """What ``batch_receive`` answers: one result per item, in batch order."""

    batch_id: uuid_module.UUID
    results: list[ItemResult]
    feed: dict[str, Any] | None = None

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)

    def as_response(self) -> dict[str, Any]:
        return {
            "batch": str(self.batch_id),
            "accepted": self.count(ACCEPTED),
            "duplicates": self.count(DUPLICATE),
            "rejected": self.count(REJECTED),
            "results": [result.as_dict() for result in self.results],
        }


# --- Checked items ------------------------------------------------------------------------------


@dataclass(slots=True)
class _KeySection:
    """A key section whose binding and registration verified."""

    hub: str
    member: str
    key_id: str
    public_key: bytes
    not_before: datetime
    revoked_at: datetime | None
    issued_at: datetime
    binding: wire.SignedObject
    registration: bytes
    registration_signature: bytes


@dataclass(slots=True)
class _Contribution:
    item: wire.ParsedItem
    parsed: ParsedContribution
    signature: bytes
    key: _KeySection
    verified: Verified | None = None


@dataclass(slots=True)
class _EntryItem:
    item: wire.ParsedItem
    signal_type: str
    value: str
    state: str


@dataclass(slots=True)
class _KeyItem:
    item: wire.ParsedItem
    key: _KeySection


class _ItemRejected(Exception):
    def __init__(self, code: str, message: str, evidence: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.evidence = evidence


class _Anything:
    """Every incident id is acceptable on a relayed contribution: incidents are declared at their
    origin hub, and an unknown one is mirrored here (never auto-vetting) when stored."""

    def __contains__(self, item: object) -> bool:
        return True


@dataclass
class _Batch:
    peer: Peer
    actor: Actor
    via: str
    parsed: wire.ParsedBatch
    now: datetime
    hubs: dict[str, Peer]
    verifiers: dict[str, Ed25519PublicKey | None] = field(default_factory=dict)
    held_keys: dict[str, SigningKey] = field(default_factory=dict)
    sections: dict[str, _KeySection] = field(default_factory=dict)
    results: list[ItemResult | None] = field(default_factory=list)
    contributions: list[_Contribution] = field(default_factory=list)
    entries: list[_EntryItem] = field(default_factory=list)
    keys: list[_KeyItem] = field(default_factory=list)
    rejection_events: list[AuditRecord] = field(default_factory=list)
    label_ids: dict[str, int] = field(default_factory=dict)
    attestations_valid: set[tuple[int, int]] = field(default_factory=set)
    stored_keys: dict[str, SigningKey] = field(default_factory=dict)
    stored_bindings: set[tuple[str, datetime]] = field(default_factory=set)

    def verifier(self, hub: str) -> Ed25519PublicKey | None:
        if hub not in self.verifiers:
            peer = self.hubs.get(hub)
            try:
                key = Ed25519PublicKey.from_public_bytes(peer.public_key_bytes) if peer else None
            except ValueError:
                key = None
            self.verifiers[hub] = key
        return self.verifiers[hub]

    def set(self, item: wire.ParsedItem, status: str, code=None, message=None) -> None:
        self.results[item.index] = ItemResult(item.index, item.digest, status, code, message)


# --- The service --------------------------------------------------------------------------------


def batch_receive(
    *,
    peer: Peer,
    body: object,
    via: str,
    evidence: Mapping[str, Any] | None = None,
    feed_after: int | None = None,
) -> BatchResult:
    """Check and apply a batch ``body`` (the parsed JSON) sent by ``peer``, by push or pull.

    Raises ``BatchRefused`` (after auditing ``federation.batch_refused``) when the batch as a
    whole is refused; otherwise returns one result per item. ``feed_after`` (the pull client):
    the cursor asked for, which the batch's ``feed.after`` must equal."""
    if via not in Receipt.Via.values:
        raise ValueError(f"via must be one of {Receipt.Via.values}")
    actor = Actor.peer(peer.hub_id, peer.name)
    try:
        parsed = _check_envelope(peer, body, feed_after)
    except BatchRefused as exc:
        batch_refused_record(
            actor=actor,
            claimed_hub=peer.hub_id,
            batch_id=_readable_batch_id(body),
            code=exc.code,
            message=exc.message,
            request_evidence=evidence,
        )
        batch_refused_counted(peer=peer.hub_id, via=via, code=exc.code)
        raise
    now = timezone.now()
    batch = _Batch(
        peer=peer,
        actor=actor,
        via=via,
        parsed=parsed,
        now=now,
        hubs=_known_hubs(parsed),
        results=[None] * (len(parsed.items) + len(parsed.problems)),
    )
    for problem in parsed.problems:
        batch.results[problem.index] = ItemResult(
            problem.index,
            problem.digest,
            REJECTED,
            "invalid",
            f"{problem.field}: {problem.message}",
        )
    _check_items(batch)
    for attempt in range(1, _WRITE_ATTEMPTS + 1):
        saved = list(batch.results)
        try:
            with transaction.atomic():
                _store(batch)
            break
        except (IntegrityError, OperationalError) as exc:
            # A concurrent batch (from another peer) stored the same key, receipt or
            # contribution first; this one rolled back entirely: run the storage again.
            if attempt == _WRITE_ATTEMPTS or not _is_lost_race(exc):
                raise
            logger.info("federation batch raced a concurrent writer (attempt %d)", attempt)
            batch.results = saved
    assert all(result is not None for result in batch.results)
    received_counted(peer=peer.hub_id, via=via, results=batch.results)
    return BatchResult(parsed.batch_id, batch.results, parsed.feed)  # type: ignore[arg-type]


def batch_refused_record(
    *,
    actor: Actor,
    claimed_hub: str,
    batch_id: str | None,
    code: str,
    message: str,
    request_evidence: Mapping[str, Any] | None,
) -> None:
    """The one ``federation.batch_refused`` event of a batch refused as a whole (also written by
    the push endpoint for a refused credential, when no peer is authenticated)."""
    with transaction.atomic():
        audit_record(
            AuditRecord(
                action=Action.FEDERATION_BATCH_REFUSED,
                actor=actor,
                organisation="",
                object_type=ObjectType.PEER,
                object_id=claimed_hub[:_EVIDENCE_TEXT],
                data={
                    Key.PEER: claimed_hub[:_EVIDENCE_TEXT],
                    Key.BATCH: batch_id,
                    Key.CODE: code,
                    Key.MESSAGE: message[:300],
                    Key.REQUEST: dict(request_evidence) if request_evidence else None,
                },
            )
        )


def claimed_sender(body: object) -> str:
    """``batch.from`` of a body if it reads as a hub id (evidence for a refused request), or ``""``."""
    document = body.get("batch") if isinstance(body, dict) else None
    sender = document.get("from") if isinstance(document, dict) else None
    if isinstance(sender, str) and wire._HUB_ID.fullmatch(sender):
        return sender
    return ""


def _readable_batch_id(body: object) -> str | None:
    document = body.get("batch") if isinstance(body, dict) else None
    raw = document.get("id") if isinstance(document, dict) else None
    if not isinstance(raw, str):
        return None
    try:
        return str(uuid_module.UUID(raw)) if len(raw) == 36 else None
    except ValueError:
        return None


# --- 1. The envelope ----------------------------------------------------------------------------


def _check_envelope(peer: Peer, body: object, feed_after: int | None) -> wire.ParsedBatch:
    if not peer.is_active:
        raise BatchRefused(
            "This peer is suspended on this hub; nothing it sends is accepted.",
            code="peer_suspended",
            status=403,
        )
    document = body.get("batch") if isinstance(body, dict) else None
    items = document.get("items") if isinstance(document, dict) else None
    if isinstance(items, list) and len(items) > wire.MAX_BATCH_ITEMS:
        raise BatchRefused(
            f"At most {wire.MAX_BATCH_ITEMS} items per batch.",
            code="too_many_items",
            status=400,
            details={"limit": wire.MAX_BATCH_ITEMS, "received": len(items)},
        )
    try:
        parsed = wire.parse_batch(body)
    except wire.MalformedWireObject as exc:
        raise BatchRefused(
            f"{exc.field}: {exc.message}", code="invalid", status=400, details={"field": exc.field}
        ) from None
    if parsed.sender != peer.hub_id:
        raise BatchRefused(
            f"batch.from must be your hub id {peer.hub_id!r}.", code="wrong_sender", status=403
        )
    if parsed.receiver != settings.HUB_ID:
        raise BatchRefused(
            f"batch.to must be this hub's id {settings.HUB_ID!r}.",
            code="wrong_receiver",
            status=400,
        )
    try:
        pinned = Ed25519PublicKey.from_public_bytes(peer.public_key_bytes)
    except ValueError:
        pinned = None
    if pinned is None or not parsed.envelope.verify(pinned):
        raise BatchRefused(
            "The batch signature does not verify under your pinned hub key.",
            code="bad_batch_signature",
            status=403,
        )
    feed = parsed.feed
    if feed is not None and (
        feed.keys() != {"after", "next", "more"}
        or type(feed["after"]) is not int
        or type(feed["next"]) is not int
        or type(feed["more"]) is not bool
        or not 0 <= feed["after"] <= feed["next"] <= 2**63 - 1
    ):
        raise BatchRefused(
            "batch.feed must be {after, next, more}: integers 0 <= after <= next, a boolean.",
            code="invalid",
            status=400,
            details={"field": "batch.feed"},
        )
    if feed_after is not None and (feed is None or feed["after"] != feed_after):
        raise BatchRefused(
            f"The feed page does not continue from the cursor asked for ({feed_after}).",
            code="feed_mismatch",
            status=400,
        )
    return parsed


def _known_hubs(parsed: wire.ParsedBatch) -> dict[str, Peer]:
    names: set[str] = set()
    for item in parsed.items:
        names.update(item.path)
        if item.binding is not None:
            names.add(item.binding.document["hub"])
    return {peer.hub_id: peer for peer in Peer.objects.filter(hub_id__in=names)}


# --- 2. Each item alone -------------------------------------------------------------------------


def _verify_attestations(batch: _Batch) -> set[tuple[int, int]]:
    """(item index, position) of every attestation whose signature verifies under the pinned key
    of the path hub at its position: all verified at once on the signature pool, while the
    per-item checks below only read the outcome (in their documented order)."""
    checks = SignatureChecks()
    order: list[tuple[int, int]] = []
    for item in batch.parsed.items:
        # strict=False: a wrong number of attestations is the per-item check's to report.
        for position, (attestation, hub) in enumerate(
            zip(item.attestations, item.path, strict=False)
        ):
            verifier = batch.verifier(hub)
            if verifier is not None and attestation.document["hub"] == hub:
                checks.add(verifier, attestation.signature, attestation.canonical)
                order.append((item.index, position))
    return {key for key, valid in zip(order, checks.results(), strict=True) if valid}


def _check_items(batch: _Batch) -> None:
    key_ids = {item.binding.document["key_id"] for item in batch.parsed.items if item.binding}
    batch.held_keys = {
        key.key_id: key
        for key in SigningKey.objects.filter(key_id__in=key_ids).select_related("organisation")
    }
    batch.attestations_valid = _verify_attestations(batch)
    for item in batch.parsed.items:
        try:
            _check_path(batch, item)
            if item.type == wire.ITEM_CONTRIBUTION:
                batch.contributions.append(_check_contribution_item(batch, item))
            elif item.type == wire.ITEM_ENTRY:
                batch.entries.append(_check_entry_item(batch, item))
            else:
                key = _check_key_section(batch, item)
                if key.hub != item.path[0]:
                    raise _ItemRejected(
                        "wrong_origin", "a key item starts at the key's home hub (path[0])"
                    )
                batch.keys.append(_KeyItem(item, key))
        except _ItemRejected as exc:
            _reject(batch, item, exc)
    _check_signatures(batch)


def _reject(batch: _Batch, item: wire.ParsedItem, exc: _ItemRejected) -> None:
    batch.set(item, REJECTED, exc.code, exc.message)
    if exc.evidence is not None:
        # A rejected contribution that carried a verifiable claim is evidence (as on local
        # ingest, docs/api.md "What is audited"): kept whatever hub relayed it.
        batch.rejection_events.append(
            AuditRecord(
                action=Action.CONTRIBUTION_REJECTED,
                actor=batch.actor,
                organisation=_claimed_member(item),
                object_type=ObjectType.CONTRIBUTION,
                object_id=exc.evidence.get(Key.UUID) or "",
                data={
                    Key.CODE: exc.code,
                    Key.MESSAGE: exc.message,
                    Key.FIELD: None,
                    Key.INDEX: item.index,
                    **exc.evidence,
                },
            )
        )


def _claimed_member(item: wire.ParsedItem) -> str:
    member = (item.contribution or {}).get("contribution", {}).get("member")
    return member[:64] if isinstance(member, str) else ""


def _check_path(batch: _Batch, item: wire.ParsedItem) -> None:
    path = item.path
    if settings.HUB_ID in path:
        raise _ItemRejected("loop", "this hub is already on the item's path")
    if len(path) > settings.FEDERATION_HOP_LIMIT:
        raise _ItemRejected(
            "hop_limit",
            f"the path has {len(path)} hubs; the limit is {settings.FEDERATION_HOP_LIMIT}",
        )
    if path[-1] != batch.peer.hub_id:
        raise _ItemRejected("wrong_path", "the path must end with the sending hub")
    for hub in path:
        known = batch.hubs.get(hub)
        if known is None:
            raise _ItemRejected("unknown_hub", f"hub {hub!r} is not known to this hub")
        if not known.is_active:
            raise _ItemRejected("unknown_hub", f"hub {hub!r} is suspended on this hub")


def _check_attestations(batch: _Batch, item: wire.ParsedItem) -> tuple[str, str]:
    """The signal every attestation names (type, lowercase value); one per hub of the path."""
    if len(item.attestations) != len(item.path):
        raise _ItemRejected(
            "bad_attestation",
            f"{len(item.attestations)} attestations for a path of {len(item.path)} hubs",
        )
    signals = set()
    for position, (attestation, hub) in enumerate(zip(item.attestations, item.path, strict=True)):
        if attestation.document["hub"] != hub:
            raise _ItemRejected(
                "bad_attestation", f"attestation {position} is not by path hub {hub!r}"
            )
        if (item.index, position) not in batch.attestations_valid:
            raise _ItemRejected(
                "bad_attestation",
                f"attestation {position} is not signed by the pinned key of {hub!r}",
            )
        signal = attestation.document["signal"]
        signals.add((signal["type"], signal["value"].lower()))
    if len(signals) != 1:
        raise _ItemRejected("bad_attestation", "the attestations name different signals")
    return signals.pop()


def _check_contribution_item(batch: _Batch, item: wire.ParsedItem) -> _Contribution:
    pair = item.contribution
    try:
        parsed = parse_contribution(pair["contribution"])
        signature = decode_signature(pair["signature"])
    except MalformedContribution as exc:
        raise _ItemRejected("invalid", f"contribution.{exc.field}: {exc.message}") from None
    evidence = claim_evidence(parsed, signature)
    try:
        if parsed.hub != item.path[0]:
            raise _ItemRejected(
                "wrong_origin", "the contribution's hub must be the first hub of the path"
            )
        if parsed.action == Contribution.Action.ADD:
            if parsed.scope == "hub":
                raise _ItemRejected("out_of_scope", "an add with scope hub never leaves its hub")
            if parsed.scope == "peers" and len(item.path) > 1:
                raise _ItemRejected("out_of_scope", "an add with scope peers travels one hop only")
        signal = _check_attestations(batch, item)
        if signal != (parsed.signal_type, parsed.value):
            raise _ItemRejected(
                "bad_attestation", "the attestations name another signal than the contribution"
            )
        key = _check_key_section(batch, item)
        if (key.hub, key.member, key.key_id) != (parsed.hub, parsed.member, parsed.key_id):
            raise _ItemRejected(
                "unbound_key",
                "the key binding does not name the contribution's hub, member and key",
            )
    except _ItemRejected as exc:
        exc.evidence = evidence
        raise
    return _Contribution(item, parsed, signature, key)


def _check_entry_item(batch: _Batch, item: wire.ParsedItem) -> _EntryItem:
    signal_type, value = _check_attestations(batch, item)
    return _EntryItem(item, signal_type, value, item.attestations[-1].document["state"])


def _check_key_section(batch: _Batch, item: wire.ParsedItem) -> _KeySection:
    registration_pair, binding = item.registration, item.binding
    assert registration_pair is not None and binding is not None  # the parser requires them
    document = binding.document
    # Items of one member usually carry the same key section: verified once per batch.
    cache_key = wire.item_digest(item.raw["key"])
    known = batch.sections.get(cache_key)
    if known is not None:
        return known
    home = document["hub"]
    if home not in batch.hubs or not batch.hubs[home].is_active:
        raise _ItemRejected("unknown_hub", f"the key's home hub {home!r} is not known to this hub")
    verifier = batch.verifier(home)
    if verifier is None or not binding.verify(verifier):
        raise _ItemRejected(
            "unbound_key", f"the key binding is not signed by the pinned key of {home!r}"
        )
    try:
        registration = parse_key_registration(registration_pair["registration"])
        registration_signature = decode_signature(registration_pair["signature"])
    except (MalformedKeyRegistration, MalformedContribution) as exc:
        raise _ItemRejected("invalid_registration", f"key.{exc.field}: {exc.message}") from None
    if (registration.hub, registration.member, registration.key_id) != (
        home,
        document["member"],
        document["key_id"],
    ) or registration.derived_key_id != registration.key_id:
        raise _ItemRejected(
            "unbound_key", "the binding and the registration name different hubs, members or keys"
        )
    if hashlib.sha256(registration.canonical).hexdigest() != document["registration_sha256"]:
        raise _ItemRejected(
            "unbound_key", "registration_sha256 is not the SHA-256 of the registration's bytes"
        )
    if not verify_key_registration(registration, registration_signature):
        raise _ItemRejected(
            "invalid_registration", "the registration's self-signature does not verify"
        )
    key_id = registration.key_id
    held = batch.held_keys.get(key_id)
    if held is not None and (
        (held.organisation.hub, held.organisation.slug) != (home, registration.member)
        or held.public_key_bytes != registration.public_key
    ):
        raise _ItemRejected("key_conflict", f"key {key_id} is held here for another member")
    for other in batch.sections.values():
        if other.key_id == key_id and (other.hub, other.member, other.public_key) != (
            home,
            registration.member,
            registration.public_key,
        ):
            raise _ItemRejected("key_conflict", f"key {key_id} is bound to two members")
    section = _KeySection(
        hub=home,
        member=registration.member,
        key_id=key_id,
        public_key=registration.public_key,
        not_before=datetime.fromisoformat(document["not_before"]),
        revoked_at=(
            datetime.fromisoformat(document["revoked_at"]) if document["revoked_at"] else None
        ),
        issued_at=datetime.fromisoformat(document["issued_at"]),
        binding=binding,
        registration=registration.canonical,
        registration_signature=registration_signature,
    )
    batch.sections[cache_key] = section
    return section


def _revoked_at(batch: _Batch, key_id: str) -> datetime | None:
    """A revocation is final: the earliest ``revoked_at`` of any binding held or received."""
    times = [s.revoked_at for s in batch.sections.values() if s.key_id == key_id and s.revoked_at]
    held = batch.held_keys.get(key_id)
    if held is not None and held.revoked_at is not None:
        times.append(held.revoked_at)
    return min(times) if times else None


class _RelayKeys:
    """The key provider of a relayed batch: the keys of the verified key sections, as of the
    bindings held and received (a revoked key is not active from ``revoked_at``)."""

    def __init__(self, batch: _Batch) -> None:
        self._keys: dict[tuple[str, str, str], BoundKey] = {}
        for entry in batch.contributions:
            section = entry.key
            name = (section.hub, section.member, section.key_id)
            if name in self._keys:
                continue
            held = batch.held_keys.get(section.key_id)
            key = SigningKey(
                key_id=section.key_id,
                public_key=section.public_key,
                not_before=held.not_before if held is not None else section.not_before,
                revoked_at=_revoked_at(batch, section.key_id),
            )
            self._keys[name] = BoundKey(key, Ed25519PublicKey.from_public_bytes(section.public_key))

    def key_for(self, hub: str, member: str, key_id: str) -> BoundKey | None:
        return self._keys.get((hub, member, key_id))


def _check_signatures(batch: _Batch) -> None:
    """The contributions themselves, through the same checks as local ingest (relay rule)."""
    if not batch.contributions:
        return
    keys = _RelayKeys(batch)
    labels = dict(Label.objects.filter(active=True).values_list("slug", "id"))
    by_origin: dict[str, list[_Contribution]] = {}
    for entry in batch.contributions:
        by_origin.setdefault(entry.parsed.hub, []).append(entry)
    passed: list[_Contribution] = []
    for origin, entries in by_origin.items():
        context = CheckContext(
            origin_hub=origin,
            member=None,
            keys=keys,
            time=TimeRule.relay(now=batch.now),
            labels=labels,
            incidents=_Anything,
        )
        outcome = check_contributions(items=[e.item.contribution for e in entries], context=context)
        for verified in outcome.verified:
            entry = entries[verified.index]
            entry.verified = verified
            passed.append(entry)
        for rejection in outcome.rejections:
            entry = entries[rejection.index]
            _reject(
                batch,
                entry.item,
                _ItemRejected(
                    rejection.code,
                    rejection.message,
                    rejection.evidence if rejection.claim else None,
                ),
            )
    batch.contributions = sorted(passed, key=lambda e: e.item.index)
    batch.label_ids = labels


# --- 3. Storage ---------------------------------------------------------------------------------


def _is_lost_race(exc: Exception) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _store(batch: _Batch) -> None:
    audit_record_many(batch.rejection_events)
    batch.stored_keys = {}
    batch.stored_bindings = set()
    for key_item in batch.keys:
        _key, changed = _store_key(batch, key_item.key, path=key_item.item.path)
        batch.set(key_item.item, ACCEPTED if changed else DUPLICATE)
    if batch.contributions:
        _store_contributions(batch)
    for entry_item in batch.entries:
        _apply_entry_item(batch, entry_item)
    results = [r for r in batch.results if r is not None]
    audit_record(
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
    )
    PeerLink.objects.filter(peer=batch.peer).update(last_received_at=batch.now)


def _store_key(
    batch: _Batch, section: _KeySection, *, path: tuple[str, ...]
) -> tuple[SigningKey, bool]:
    """The mirror's key with this binding; ``changed`` when anything new was recorded. A
    revocation of a held key travels on (the outbox's key items, to every peer that was sent a
    contribution signed by the key, never to a hub of ``path``)."""
    stored = batch.stored_keys
    changed = False
    key = stored.get(section.key_id)
    if key is not None and (section.key_id, section.issued_at) in batch.stored_bindings:
        return key, False
    if key is None:
        # Read without a lock. Locking the key's row (and its mirror's) until the batch commits
        # made every concurrent batch with an item signed by the same key wait for this one, and
        # one member signs most of a backlog: parallel batches were applied one after another,
        # and an incident item waited behind them. Two batches creating the same new key race on
        # its unique key_id; the loser rolls back and runs again (``_WRITE_ATTEMPTS``).
        key = SigningKey.objects.filter(key_id=section.key_id).first()
        if key is None:
            mirror = organisation_mirror(
                hub=section.hub, slug=section.member, name=section.member, actor=batch.actor
            )
            key = SigningKey.objects.create(
                organisation=mirror,
                key_id=section.key_id,
                public_key=section.public_key,
                label=f"bound by {section.hub}"[:100],
                not_before=section.not_before,
                revoked_at=_revoked_at(batch, section.key_id),
                revoke_reason=f"revoked by its home hub {section.hub}"[:500]
                if section.revoked_at
                else "",
                registration=section.registration.decode(),
                registration_signature=section.registration_signature,
            )
            _audit_key_received(batch, section)
            changed = True
        stored[section.key_id] = key
    batch.stored_bindings.add((section.key_id, section.issued_at))
    _, created = KeyBinding.objects.get_or_create(
        signing_key=key,
        issued_at=section.issued_at,
        defaults={
            "canonical": section.binding.canonical.decode(),
            "signature": section.binding.signature,
            "received_from": batch.peer.hub_id,
            "created_at": batch.now,
        },
    )
    if created and not changed:
        changed = True
        _audit_key_received(batch, section)
    if section.revoked_at is not None and (
        key.revoked_at is None or section.revoked_at < key.revoked_at
    ):
        # Revocations of one key are applied one at a time: lock it, then look again.
        key = SigningKey.objects.select_for_update().get(pk=key.pk)
        stored[section.key_id] = key
    if section.revoked_at is not None and (
        key.revoked_at is None or section.revoked_at < key.revoked_at
    ):
        key.revoked_at = section.revoked_at
        key.revoke_reason = f"revoked by its home hub {section.hub}"[:500]
        key.save(update_fields=["revoked_at", "revoke_reason"])
        audit_record(
            AuditRecord(
                action=Action.KEY_REVOKED,
                actor=batch.actor,
                organisation=section.member,
                object_type=ObjectType.SIGNING_KEY,
                object_id=key.key_id,
                data={
                    Key.KEY_ID: key.key_id,
                    Key.REASON: key.revoke_reason,
                    Key.EFFECTIVE_AT: section.revoked_at.isoformat(),
                },
            )
        )
        outbox_record_keys(signing_key_ids=[key.pk], path=path)
        changed = True
    return key, changed


def _audit_key_received(batch: _Batch, section: _KeySection) -> None:
    audit_record(
        AuditRecord(
            action=Action.KEY_RECEIVED,
            actor=batch.actor,
            organisation=section.member,
            object_type=ObjectType.SIGNING_KEY,
            object_id=section.key_id,
            data={
                Key.HUB: section.hub,
                Key.MEMBER: section.member,
                Key.KEY_ID: section.key_id,
                Key.BINDING: section.binding.canonical.decode(),
                Key.BINDING_SIGNATURE: base64.b64encode(section.binding.signature).decode(),
                # What proves a foreign member's signature from this log alone: the home hub's
                # pinned key that verified the binding, and the member's signed registration.
                Key.HUB_PUBLIC_KEY: base64.b64encode(
                    batch.hubs[section.hub].public_key_bytes
                ).decode(),
                Key.PUBLIC_KEY: base64.b64encode(section.public_key).decode(),
                Key.REGISTRATION: section.registration.decode(),
                Key.REGISTRATION_SIGNATURE: base64.b64encode(
                    section.registration_signature
                ).decode(),
                Key.PEER: batch.peer.hub_id,
            },
        )
    )


def _store_contributions(batch: _Batch) -> None:

    _mirror_incidents(batch)
    by_member: dict[tuple[str, str], list[_Contribution]] = {}
    for entry in batch.contributions:
        by_member.setdefault((entry.parsed.hub, entry.parsed.member), []).append(entry)
    stored: list[tuple[_Contribution, str, int]] = []  # (item, store status, entry id)
    for (_hub, _member), entries in by_member.items():
        keys = [_store_key(batch, entry.key, path=entry.item.path)[0] for entry in entries]
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
        )
        for entry, result in zip(entries, results, strict=True):
            if result.status == CREATED or result.status == STORE_DUPLICATE:
                stored.append((entry, result.status, result.entry_id))
            else:
                error = result.error or {}
                batch.set(entry.item, REJECTED, error.get("code"), error.get("message"))
    _record_receipts(batch, stored, created_status=CREATED)


def _mirror_incidents(batch: _Batch) -> None:
    """Incidents named by relayed contributions and unknown here: mirrored (never auto-vetting,
    the hub's own quorum) so that the contributions keep their incident and its lane."""
    wanted = {e.parsed.incident: e.parsed.hub for e in batch.contributions if e.parsed.incident}
    if not wanted:
        return
    known = set(Incident.objects.filter(pk__in=list(wanted)).values_list("pk", flat=True))
    for incident_id, hub in sorted(wanted.items(), key=lambda pair: str(pair[0])):
        if incident_id in known:
            continue
        name = f"Incident {incident_id} of hub {hub}"[:200]
        description = f"Declared at hub {hub}; mirrored here when its contributions arrived."
        incident, created = Incident.objects.get_or_create(
            pk=incident_id,
            defaults={
                "name": name,
                "description": description,
                "started_at": batch.now,
                "auto_vet": False,
            },
        )
        if created:
            audit_record(
                AuditRecord(
                    action=Action.INCIDENT_DECLARED,
                    actor=batch.actor,
                    organisation="",
                    object_type=ObjectType.INCIDENT,
                    object_id=str(incident.pk),
                    data={
                        Key.NAME: name,
                        Key.DESCRIPTION: description,
                        Key.STARTED_AT: batch.now.isoformat(),
                        Key.AUTO_VET: False,
                        Key.QUORUM: None,
                    },
                )
            )


def _record_receipts(
    batch: _Batch, stored: list[tuple[_Contribution, str, int]], *, created_status: str
) -> None:
    peer_hub = batch.peer.hub_id
    ids = dict(
        Contribution.objects.filter(
            uuid__in=[entry.parsed.uuid for entry, _, _ in stored]
        ).values_list("uuid", "pk")
    )
    existing = set(
        Receipt.objects.filter(
            contribution_id__in=list(ids.values()), peer_hub=peer_hub
        ).values_list("contribution_id", flat=True)
    )
    scopes = _receipt_scopes(batch, stored, ids)
    receipts: list[tuple] = []
    to_vet: set[int] = set()
    for entry, status, entry_id in stored:
        contribution_id = ids[entry.parsed.uuid]
        if contribution_id in existing:
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
        batch.set(entry.item, ACCEPTED if status == created_status else DUPLICATE)
        if (
            entry.parsed.action == Contribution.Action.ADD
            and entry.item.attestations[-1].document["state"] == Entry.State.VETTED
        ):
            to_vet.add(entry_id)
    copy_rows(Receipt, _RECEIPT_COLUMNS, receipts)
    if to_vet and batch.peer.inbound_policy == Peer.InboundPolicy.TRUST:
        entries_transition(
            entry_ids=to_vet,
            to=Entry.State.VETTED,
            only_from=[Entry.State.PENDING],
            actor=batch.actor,
            reason=f"vetted by trusted peer {peer_hub}",
            data={Key.POLICY: {Key.RULE: PolicyRule.TRUSTED_PEER, Key.PEER: peer_hub}},
            now=batch.now,
        )


_RECEIPT_COLUMNS = [
    "contribution_id", "peer_hub", "via", "path", "attestations", "sent_to", "effective_scope",
    "batch_id", "digest", "received_at",
]  # fmt: skip


def _receipt_scopes(
    batch: _Batch, stored: list[tuple[_Contribution, str, int]], ids: dict
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


def _apply_entry_item(batch: _Batch, item: _EntryItem) -> None:
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
