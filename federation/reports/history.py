"""The full history of one entry as an auditor reads it: its contributions (each signature checked
again against the stored key, and each stored field checked against the signed bytes), vetting
decisions (their policy in words), feedback, where it was sent and where it came from (each with
the log leaf of its ``federation.sent`` or ``federation.received`` event), and the log events
about it in leaf order, each with the way to its inclusion proof."""

import hashlib
import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from federation.contributions.models import Contribution, Entry
from federation.propagation.selectors import EntryTrail, entry_trail
from federation.reports import selectors
from federation.signing import MalformedContribution, parse_contribution, verify_signature
from federation.transparency.models import AuditEvent, Checkpoint
from federation.vetting.models import Decision, Feedback
from federation.vetting.wording import policy_lines

INCLUSION_PROOF_PATH = "/api/v1/log/proof/inclusion"


@dataclass(frozen=True)
class FieldMismatch:
    """A stored field that says something other than the signed bytes."""

    field: str
    stored: str
    signed: str


@dataclass(frozen=True)
class CheckedContribution:
    contribution: Contribution
    signature_valid: bool
    mismatches: list[FieldMismatch] = field(default_factory=list)

    @property
    def fields_match(self) -> bool:
        return not self.mismatches

    @property
    def mismatched_fields(self) -> str:
        return ", ".join(m.field for m in self.mismatches)


@dataclass(frozen=True)
class RecordedDecision:
    decision: Decision

    @property
    def policy_json(self) -> str:
        return json.dumps(self.decision.policy, sort_keys=True)

    @property
    def policy_lines(self) -> list[str]:
        return policy_lines(self.decision.policy)


@dataclass(frozen=True)
class LoggedEvent:
    """An audit event and where it stands in the log."""

    event: AuditEvent
    proof_url: str | None

    @property
    def data_json(self) -> str:
        return json.dumps(self.event.data, sort_keys=True)

    @property
    def status(self) -> str:
        if self.event.leaf_index is None:
            return "not yet sequenced"
        if self.proof_url is None:
            return "sequenced; awaiting a checkpoint"
        return "in the log"


@dataclass(frozen=True)
class EntryHistory:
    entry: Entry
    labels: list[str]
    contributions: list[CheckedContribution]
    decisions: list[RecordedDecision]
    feedback: list[Feedback]
    events: list[LoggedEvent]
    checkpoint: Checkpoint | None
    federation: EntryTrail | None = None

    @property
    def sent(self) -> list["FederationStep"]:
        """Each outbox row of the entry: to which peer, what, and how it stands."""
        trail = self.federation
        return [
            FederationStep.of(row.peer.hub_id, row, row.sent_event, self.checkpoint)
            for row in (trail.deliveries if trail else [])
        ]

    @property
    def pulled(self) -> list["FederationStep"]:
        """Each item of the entry a peer pulled from this hub's feed (its first pull)."""
        trail = self.federation
        return [
            FederationStep.of(p.peer.hub_id, p, p.event, self.checkpoint)
            for p in (trail.pulls if trail else [])
        ]

    @property
    def received(self) -> list["FederationStep"]:
        trail = self.federation
        return [
            FederationStep.of(r.peer_hub, r, r.received_event, self.checkpoint)
            for r in (trail.receipts if trail else [])
        ]

    @property
    def state_reason(self) -> list[str]:
        """Why the entry is in its state, from the event that moved it there."""
        trail = self.federation
        return policy_lines(trail.state_policy) if trail else []


@dataclass(frozen=True)
class FederationStep:
    """One item of the entry sent to a peer (an outbox row) or arrived from one (a receipt),
    with the log leaf of the event that records it."""

    peer: str
    row: object
    recorded: bool  # its event was found in the log
    leaf_index: int | None
    proof_url: str | None

    @classmethod
    def of(cls, peer, row, event, checkpoint) -> "FederationStep":
        leaf = event.leaf_index if event else None
        return cls(
            peer,
            row,
            event is not None,
            leaf,
            inclusion_proof_url(leaf_index=leaf, checkpoint=checkpoint),
        )

    @property
    def status(self) -> str:
        if not self.recorded:
            return "—"
        if self.leaf_index is None:
            return "not yet sequenced"
        return f"leaf {self.leaf_index}" + ("" if self.proof_url else " (awaiting a checkpoint)")

    @property
    def item(self) -> str:
        contribution = getattr(self.row, "contribution", None)
        if contribution is not None:
            return f"{contribution.action} {contribution.uuid}"
        return "entry state" if getattr(self.row, "kind", "") == "entry" else "key"


def inclusion_proof_url(*, leaf_index: int | None, checkpoint: Checkpoint | None) -> str | None:
    """The log API's inclusion proof of a leaf against the latest checkpoint, once it covers it."""
    if leaf_index is None or checkpoint is None or leaf_index >= checkpoint.tree_size:
        return None
    query = urlencode({"index": leaf_index, "tree_size": checkpoint.tree_size})
    return f"{INCLUSION_PROOF_PATH}?{query}"


def signature_holds(contribution: Contribution) -> bool:
    """Whether the stored signature verifies over the stored bytes with the stored key."""
    try:
        public_key = Ed25519PublicKey.from_public_bytes(contribution.signing_key.public_key_bytes)
    except ValueError:  # a malformed stored key verifies nothing
        return False
    return verify_signature(
        public_key, bytes(contribution.signature), contribution.canonical.encode()
    )


def _shown(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return str(value)


def stored_field_mismatches(contribution: Contribution) -> list[FieldMismatch]:
    """Each stored field that the reports and the API read, compared with what the member signed.

    The signature covers only ``canonical``; every other column is a copy the hub made when it
    stored the contribution, and a copy can be changed (by SQL, a bad migration) without touching
    the signature. The signed bytes are parsed again with the hub's own parser, so values compare
    in the same normalised form the hub stored them in."""
    raw = contribution.canonical.encode()
    try:
        signed = parse_contribution(json.loads(raw))
    except (ValueError, MalformedContribution) as error:  # JSON or structure broken
        return [FieldMismatch("canonical", "stored bytes", f"not a contribution ({error})")]
    entry = contribution.entry
    incident = contribution.incident_id
    pairs = [
        ("uuid", str(contribution.uuid), str(signed.uuid)),
        ("member", contribution.organisation.slug, signed.member),
        ("key_id", contribution.signing_key.key_id, signed.key_id),
        ("action", contribution.action, signed.action),
        ("signal type", entry.signal_type, signed.signal_type),
        ("signal value", entry.value, signed.value),
        ("labels", list(contribution.labels), list(signed.labels)),
        ("scope", contribution.scope, signed.scope),
        ("quality", contribution.quality, signed.quality),
        (
            "incident",
            None if incident is None else str(incident),
            signed.incident and str(signed.incident),
        ),
        ("created_at", contribution.created_at, signed.created_at),
        ("origin hub", contribution.origin_hub, signed.hub),
        ("content_hash", contribution.content_hash, hashlib.sha256(raw).hexdigest()),
    ]
    return [
        FieldMismatch(name, _shown(stored), _shown(signed_value))
        for name, stored, signed_value in pairs
        if stored != signed_value
    ]


def entry_history(*, entry_id: int) -> EntryHistory:
    """Raises ``Entry.DoesNotExist`` for an unknown entry."""
    entry = selectors.entry_for_history(entry_id=entry_id)
    contributions = list(entry.contributions.all())
    checkpoint = selectors.latest_checkpoint()
    logged = [
        LoggedEvent(
            event=event,
            proof_url=inclusion_proof_url(leaf_index=event.leaf_index, checkpoint=checkpoint),
        )
        for event in selectors.audit_events_for_entry(
            entry=entry, contribution_uuids=[str(c.uuid) for c in contributions]
        )
    ]
    return EntryHistory(
        entry=entry,
        labels=sorted(label.slug for label in entry.labels.all()),
        contributions=[
            CheckedContribution(
                contribution=c,
                signature_valid=signature_holds(c),
                mismatches=stored_field_mismatches(c),
            )
            for c in contributions
        ],
        decisions=[RecordedDecision(decision=d) for d in entry.decisions.all()],
        feedback=list(entry.feedback.all()),
        events=logged,
        checkpoint=checkpoint,
        federation=entry_trail(entry=entry),
    )
