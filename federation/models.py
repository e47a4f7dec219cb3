"""Django finds the app's models here; each lives beside the capability that owns it."""

from federation.contributions.models import Contribution, Entry, EntryLabel, Label
from federation.live.models import LiveFrame, LiveSession
from federation.lookup.models import LookupKey, LookupState, LookupTag, LookupUsage
from federation.propagation.models import KeyBinding, OutboxItem, PeerLink, Receipt
from federation.sync.models import EntryChange, SyncState
from federation.taxii.models import StixObjectVersion
from federation.transparency.models import (
    AuditEvent,
    Checkpoint,
    Cosignature,
    MerkleNode,
    SequencerStatus,
    SplitViewEvidence,
    Witness,
    WitnessedLog,
)
from federation.vetting.models import Decision, Feedback, Incident, VettingPolicy
from federation.video.models import VideoFrames

__all__ = [
    "AuditEvent",
    "Checkpoint",
    "Contribution",
    "Cosignature",
    "Decision",
    "Entry",
    "EntryChange",
    "EntryLabel",
    "Feedback",
    "Incident",
    "KeyBinding",
    "Label",
    "LiveFrame",
    "LiveSession",
    "LookupKey",
    "LookupState",
    "LookupTag",
    "LookupUsage",
    "MerkleNode",
    "OutboxItem",
    "PeerLink",
    "Receipt",
    "SequencerStatus",
    "SplitViewEvidence",
    "StixObjectVersion",
    "SyncState",
    "VettingPolicy",
    "VideoFrames",
    "Witness",
    "WitnessedLog",
]
