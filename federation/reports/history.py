"""The full history of one entry as an auditor reads it: its contributions (each signature checked
again against the stored key), vetting decisions, feedback, and the log events about it, each
with the way to its inclusion proof."""

import json
from dataclasses import dataclass
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from federation.contributions.models import Contribution, Entry
from federation.reports import selectors
from federation.signing import verify_signature
from federation.transparency.models import AuditEvent, Checkpoint
from federation.vetting.models import Decision, Feedback

INCLUSION_PROOF_PATH = "/api/v1/log/proof/inclusion"


@dataclass(frozen=True)
class CheckedContribution:
    contribution: Contribution
    signature_valid: bool


@dataclass(frozen=True)
class RecordedDecision:
    decision: Decision

    @property
    def policy_json(self) -> str:
        return json.dumps(self.decision.policy, sort_keys=True)


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
            CheckedContribution(contribution=c, signature_valid=signature_holds(c))
            for c in contributions
        ],
        decisions=[RecordedDecision(decision=d) for d in entry.decisions.all()],
        feedback=list(entry.feedback.all()),
        events=logged,
        checkpoint=checkpoint,
    )
