"""Receiving, phase 2: each item of a batch alone, touching no table but to read keys and labels.

Rejected items get a per-item result (``ITEM_CODES``, in the order docs/federation.md
"Receiving" lists them) and the others go on: the path (no loop, within the hop limit, the
sender last, every hub known), one attestation per hub of the path signed by that hub's pinned
key and naming the item's signal, the contribution's origin and scope, the key section (the home
hub's binding under its pinned key, naming the same member and key as the member's own
registration, whose bytes it hashes and whose self-signature verifies), then the contribution
through ``check_contributions``'s checks (``check_parsed_contributions``: parsed once, by the
checks above) under ``TimeRule.relay`` with a key provider built from those verified key
sections (and the revocations already held for them). ``ReceivedBatch`` carries a batch through
the phases.
"""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings

from federation.contributions.checks import (
    BoundKey,
    CheckContext,
    TimeRule,
    Verified,
    check_parsed_contributions,
    claim_evidence,
)
from federation.contributions.models import Contribution, Label
from federation.contributions.rejections import rejection_record
from federation.propagation import wire
from federation.propagation.attestation_roots import RootedAttestation
from federation.signature_checks import SignatureChecks
from federation.signing import (
    MalformedContribution,
    MalformedKeyRegistration,
    ParsedContribution,
    decode_signature,
    parse_contribution,
    parse_key_registration,
    verify_key_registration,
)
from federation.transparency.audit import AuditRecord
from members.actors import Actor
from members.models import Peer, SigningKey

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


@dataclass(slots=True)
class ReceivedItemResult:
    """What became of one item of a received batch (the answer's per-item result)."""

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


@dataclass(slots=True)
class KeySection:
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
class ContributionItem:
    """A contribution item whose path, attestations and key section passed; ``verified`` once
    its signature has too."""

    item: wire.ParsedItem
    parsed: ParsedContribution
    signature: bytes
    key: KeySection
    verified: Verified | None = None


@dataclass(slots=True)
class EntryItem:
    """An entry item (a state attested by the path's last hub) whose attestations passed."""

    item: wire.ParsedItem
    signal_type: str
    value: str
    state: str


@dataclass(slots=True)
class KeyItem:
    """A key item (a binding travelling alone, a revocation) whose key section passed."""

    item: wire.ParsedItem
    key: KeySection


class ItemRejected(Exception):
    """An item fails a check: ``code`` is one of ``ITEM_CODES``; ``evidence`` is the claim it
    carried, if any (audited as on local ingest)."""

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
class ReceivedBatch:
    """One batch being received: what the envelope gave, each phase's findings, the results."""

    peer: Peer
    actor: Actor
    via: str
    parsed: wire.ParsedBatch
    now: datetime
    hubs: dict[str, Peer]
    verifiers: dict[str, Ed25519PublicKey | None] = field(default_factory=dict)
    held_keys: dict[str, SigningKey] = field(default_factory=dict)
    sections: dict[str, KeySection] = field(default_factory=dict)
    results: list[ReceivedItemResult | None] = field(default_factory=list)
    contributions: list[ContributionItem] = field(default_factory=list)
    entries: list[EntryItem] = field(default_factory=list)
    keys: list[KeyItem] = field(default_factory=list)
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
        self.results[item.index] = ReceivedItemResult(
            item.index, item.digest, status, code, message
        )


def _verify_attestations(batch: ReceivedBatch) -> set[tuple[int, int]]:
    """(item index, position) of every attestation whose signature verifies under the pinned key
    of the path hub at its position: all verified at once on the signature pool, while the
    per-item checks below only read the outcome (in their documented order). An attestation
    under a root (``attestation_roots``) is valid when the root its proof leads to is one whose
    signature verifies: each distinct root is verified once."""
    checks = SignatureChecks()
    order: list[tuple[int, int] | tuple[bytes, bytes]] = []
    rooted: list[tuple[tuple[int, int], tuple[bytes, bytes]]] = []
    roots: set[tuple[bytes, bytes]] = set()
    for item in batch.parsed.items:
        # strict=False: a wrong number of attestations is the per-item check's to report.
        for position, (attestation, hub) in enumerate(
            zip(item.attestations, item.path, strict=False)
        ):
            verifier = batch.verifier(hub)
            if verifier is None or attestation.document["hub"] != hub:
                continue
            if type(attestation) is not RootedAttestation:
                checks.add(verifier, attestation.signature, attestation.canonical)
                order.append((item.index, position))
                continue
            root = attestation.root()
            if root is None:  # the proof cannot be one for its place: it leads nowhere
                continue
            key = (root, attestation.root_signature)
            rooted.append(((item.index, position), key))
            if key not in roots:
                roots.add(key)
                checks.add(verifier, attestation.root_signature, root)
                order.append(key)
    valid = {key for key, ok in zip(order, checks.results(), strict=True) if ok}
    return (valid - roots) | {position for position, root in rooted if root in valid}


def check_items(batch: ReceivedBatch) -> None:
    """Check every parsed item of ``batch``; sort the passing ones into its contributions,
    entries and keys, and give each rejected one its result."""
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
                    raise ItemRejected(
                        "wrong_origin", "a key item starts at the key's home hub (path[0])"
                    )
                batch.keys.append(KeyItem(item, key))
        except ItemRejected as exc:
            reject_item(batch, item, exc)
    _check_signatures(batch)


def reject_item(batch: ReceivedBatch, item: wire.ParsedItem, exc: ItemRejected) -> None:
    """Record ``item``'s rejection; a contribution that carried a verifiable claim is evidence
    (as on local ingest, docs/api.md "What is audited"): kept whatever hub relayed it."""
    batch.set(item, REJECTED, exc.code, exc.message)
    if exc.evidence is not None:
        batch.rejection_events.append(
            rejection_record(
                actor=batch.actor,
                organisation=_claimed_member(item),
                index=item.index,
                code=exc.code,
                message=exc.message,
                field=None,
                evidence=exc.evidence,
            )
        )


def _claimed_member(item: wire.ParsedItem) -> str:
    member = (item.contribution or {}).get("contribution", {}).get("member")
    return member[:64] if isinstance(member, str) else ""


def _check_path(batch: ReceivedBatch, item: wire.ParsedItem) -> None:
    path = item.path
    if settings.HUB_ID in path:
        raise ItemRejected("loop", "this hub is already on the item's path")
    if len(path) > settings.FEDERATION_HOP_LIMIT:
        raise ItemRejected(
            "hop_limit",
            f"the path has {len(path)} hubs; the limit is {settings.FEDERATION_HOP_LIMIT}",
        )
    if path[-1] != batch.peer.hub_id:
        raise ItemRejected("wrong_path", "the path must end with the sending hub")
    for hub in path:
        known = batch.hubs.get(hub)
        if known is None:
            raise ItemRejected("unknown_hub", f"hub {hub!r} is not known to this hub")
        if not known.is_active:
            raise ItemRejected("unknown_hub", f"hub {hub!r} is suspended on this hub")


def _check_attestations(batch: ReceivedBatch, item: wire.ParsedItem) -> tuple[str, str]:
    """The signal every attestation names (type, lowercase value); one per hub of the path."""
    if len(item.attestations) != len(item.path):
        raise ItemRejected(
            "bad_attestation",
            f"{len(item.attestations)} attestations for a path of {len(item.path)} hubs",
        )
    signals = set()
    for position, (attestation, hub) in enumerate(zip(item.attestations, item.path, strict=True)):
        if attestation.document["hub"] != hub:
            raise ItemRejected(
                "bad_attestation", f"attestation {position} is not by path hub {hub!r}"
            )
        if (item.index, position) not in batch.attestations_valid:
            raise ItemRejected(
                "bad_attestation",
                f"attestation {position} is not signed by the pinned key of {hub!r}"
                " (alone, or under a root its proof leads to)",
            )
        signal = attestation.document["signal"]
        signals.add((signal["type"], signal["value"].lower()))
    if len(signals) != 1:
        raise ItemRejected("bad_attestation", "the attestations name different signals")
    return signals.pop()


def _check_contribution_item(batch: ReceivedBatch, item: wire.ParsedItem) -> ContributionItem:
    pair = item.contribution
    try:
        parsed = parse_contribution(pair["contribution"])
        signature = decode_signature(pair["signature"])
    except MalformedContribution as exc:
        raise ItemRejected("invalid", f"contribution.{exc.field}: {exc.message}") from None
    try:
        if parsed.hub != item.path[0]:
            raise ItemRejected(
                "wrong_origin", "the contribution's hub must be the first hub of the path"
            )
        if parsed.action == Contribution.Action.ADD:
            if parsed.scope == "hub":
                raise ItemRejected("out_of_scope", "an add with scope hub never leaves its hub")
            if parsed.scope == "peers" and len(item.path) > 1:
                raise ItemRejected("out_of_scope", "an add with scope peers travels one hop only")
        signal = _check_attestations(batch, item)
        if signal != (parsed.signal_type, parsed.value):
            raise ItemRejected(
                "bad_attestation", "the attestations name another signal than the contribution"
            )
        key = _check_key_section(batch, item)
        if (key.hub, key.member, key.key_id) != (parsed.hub, parsed.member, parsed.key_id):
            raise ItemRejected(
                "unbound_key",
                "the key binding does not name the contribution's hub, member and key",
            )
    except ItemRejected as exc:
        exc.evidence = claim_evidence(parsed, signature)  # only a rejected claim is kept
        raise
    return ContributionItem(item, parsed, signature, key)


def _check_entry_item(batch: ReceivedBatch, item: wire.ParsedItem) -> EntryItem:
    signal_type, value = _check_attestations(batch, item)
    return EntryItem(item, signal_type, value, item.attestations[-1].document["state"])


def _check_key_section(batch: ReceivedBatch, item: wire.ParsedItem) -> KeySection:
    registration_pair, binding, cache_key = item.registration, item.binding, item.key_digest
    # The parser sets all three for an item with a key section.
    assert registration_pair is not None and binding is not None and cache_key is not None
    document = binding.document
    # Items of one member usually carry the same key section: verified once per batch.
    known = batch.sections.get(cache_key)
    if known is not None:
        return known
    home = document["hub"]
    if home not in batch.hubs or not batch.hubs[home].is_active:
        raise ItemRejected("unknown_hub", f"the key's home hub {home!r} is not known to this hub")
    verifier = batch.verifier(home)
    if verifier is None or not binding.verify(verifier):
        raise ItemRejected(
            "unbound_key", f"the key binding is not signed by the pinned key of {home!r}"
        )
    try:
        registration = parse_key_registration(registration_pair["registration"])
        registration_signature = decode_signature(registration_pair["signature"])
    except (MalformedKeyRegistration, MalformedContribution) as exc:
        raise ItemRejected("invalid_registration", f"key.{exc.field}: {exc.message}") from None
    if (registration.hub, registration.member, registration.key_id) != (
        home,
        document["member"],
        document["key_id"],
    ) or registration.derived_key_id != registration.key_id:
        raise ItemRejected(
            "unbound_key", "the binding and the registration name different hubs, members or keys"
        )
    if hashlib.sha256(registration.canonical).hexdigest() != document["registration_sha256"]:
        raise ItemRejected(
            "unbound_key", "registration_sha256 is not the SHA-256 of the registration's bytes"
        )
    if not verify_key_registration(registration, registration_signature):
        raise ItemRejected(
            "invalid_registration", "the registration's self-signature does not verify"
        )
    key_id = registration.key_id
    held = batch.held_keys.get(key_id)
    if held is not None and (
        (held.organisation.hub, held.organisation.slug) != (home, registration.member)
        or held.public_key_bytes != registration.public_key
    ):
        raise ItemRejected("key_conflict", f"key {key_id} is held here for another member")
    for other in batch.sections.values():
        if other.key_id == key_id and (other.hub, other.member, other.public_key) != (
            home,
            registration.member,
            registration.public_key,
        ):
            raise ItemRejected("key_conflict", f"key {key_id} is bound to two members")
    section = KeySection(
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


def revoked_at(batch: ReceivedBatch, key_id: str) -> datetime | None:
    """A revocation is final: the earliest ``revoked_at`` of any binding held or received."""
    times = [s.revoked_at for s in batch.sections.values() if s.key_id == key_id and s.revoked_at]
    held = batch.held_keys.get(key_id)
    if held is not None and held.revoked_at is not None:
        times.append(held.revoked_at)
    return min(times) if times else None


class _RelayKeys:
    """The key provider of a relayed batch: the keys of the verified key sections, as of the
    bindings held and received (a revoked key is not active from ``revoked_at``)."""

    def __init__(self, batch: ReceivedBatch) -> None:
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
                revoked_at=revoked_at(batch, section.key_id),
            )
            self._keys[name] = BoundKey(key, Ed25519PublicKey.from_public_bytes(section.public_key))

    def key_for(self, hub: str, member: str, key_id: str) -> BoundKey | None:
        return self._keys.get((hub, member, key_id))


def _check_signatures(batch: ReceivedBatch) -> None:
    """The contributions themselves, through the same checks as local ingest (relay rule)."""
    if not batch.contributions:
        return
    keys = _RelayKeys(batch)
    labels = dict(Label.objects.filter(active=True).values_list("slug", "id"))
    by_origin: dict[str, list[ContributionItem]] = {}
    for entry in batch.contributions:
        by_origin.setdefault(entry.parsed.hub, []).append(entry)
    passed: list[ContributionItem] = []
    for origin, entries in by_origin.items():
        context = CheckContext(
            origin_hub=origin,
            member=None,
            keys=keys,
            time=TimeRule.relay(now=batch.now),
            labels=labels,
            incidents=_Anything,
        )
        outcome = check_parsed_contributions(
            items=[(e.parsed, e.signature) for e in entries], context=context
        )
        for verified in outcome.verified:
            entry = entries[verified.index]
            entry.verified = verified
            passed.append(entry)
        for rejection in outcome.rejections:
            entry = entries[rejection.index]
            reject_item(
                batch,
                entry.item,
                ItemRejected(
                    rejection.code,
                    rejection.message,
                    rejection.evidence if rejection.claim else None,
                ),
            )
    batch.contributions = sorted(passed, key=lambda e: e.item.index)
    batch.label_ids = labels
