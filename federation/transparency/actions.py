"""The names of audit events and of the keys of their ``data`` payloads, in one place.

Every service that writes an audit event names its action and payload keys with these constants,
and reports read them from here; the strings themselves are part of the log's format
(docs/transparency.md), so a value here never changes once events carry it. The standalone
verifier (``client/concordat_client/verifier.py``) keeps its own copy on purpose: it must run
without the project installed.
"""

from typing import Final


class Action:
    """``AuditEvent.action`` values, grouped by what they are about."""

    # Contributions (ingest)
    CONTRIBUTION_ACCEPTED: Final = "contribution.accepted"
    # One per rejected item that carried a claim (docs/api.md, "What is audited")
    CONTRIBUTION_REJECTED: Final = "contribution.rejected"
    # One per request, for all its items too malformed to claim anything
    CONTRIBUTION_MALFORMED_ITEMS: Final = "contribution.malformed_items"
    # A contribution-write request refused as a whole
    CONTRIBUTION_REQUEST_REJECTED: Final = "contribution.request_rejected"

    # An entry's lifecycle (federation.lifecycle.TRANSITIONS names which one each move writes)
    ENTRY_VETTED: Final = "entry.vetted"
    ENTRY_REJECTED: Final = "entry.rejected"
    ENTRY_DISPUTED: Final = "entry.disputed"
    ENTRY_DISPUTE_RESOLVED: Final = "entry.dispute_resolved"
    ENTRY_RETRACTED: Final = "entry.retracted"
    ENTRY_REOPENED: Final = "entry.reopened"

    # Reviewers and members on an entry
    ENTRY_VOTED: Final = "entry.voted"
    FEEDBACK_GIVEN: Final = "feedback.given"

    # The hub's vetting configuration
    POLICY_CHANGED: Final = "policy.changed"
    INCIDENT_DECLARED: Final = "incident.declared"
    INCIDENT_CLOSED: Final = "incident.closed"
    LABEL_CREATED: Final = "label.created"
    LABEL_CHANGED: Final = "label.changed"

    # Members, their people, keys and credentials
    ORGANISATION_CREATED: Final = "organisation.created"
    ORGANISATION_CHANGED: Final = "organisation.changed"
    ORGANISATION_MIRRORED: Final = (
        "organisation.mirrored"  # a peer hub's member (members/mirrors.py)
    )
    USER_CREATED: Final = "user.created"
    USER_CHANGED: Final = "user.changed"
    ROLE_CHANGED: Final = "role.changed"
    KEY_REGISTERED: Final = "key.registered"
    KEY_REJECTED: Final = "key.rejected"  # a registration whose proof of possession failed
    KEY_REVOKED: Final = "key.revoked"
    CREDENTIAL_CREATED: Final = "credential.created"
    CREDENTIAL_REVOKED: Final = "credential.revoked"

    # Matching: one event per request, in aggregate (docs/matching.md)
    MATCH_REQUESTED: Final = "match.requested"
    # Live-stream sessions, in aggregate: never the frames (docs/video.md, "Live streams")
    LIVE_OPENED: Final = "live.opened"
    LIVE_ALERTED: Final = "live.alerted"  # a call that raised alerts on new shared videos
    LIVE_CLOSED: Final = "live.closed"  # closed by its member, or expired when idle

    # Federation (docs/federation.md): peers, and what travelled between hubs
    PEER_REGISTERED: Final = "peer.registered"
    PEER_CHANGED: Final = "peer.changed"  # state, URL, policies
    PEER_KEY_ROTATED: Final = "peer.key_rotated"
    PEER_CREDENTIAL_ISSUED: Final = "peer.credential_issued"  # inbound or outbound
    # One per batch delivered (sender) and per batch received (receiver); items by digest
    FEDERATION_SENT: Final = "federation.sent"
    FEDERATION_RECEIVED: Final = "federation.received"
    # A batch refused as a whole: unknown or suspended peer, bad batch signature, malformed
    FEDERATION_BATCH_REFUSED: Final = "federation.batch_refused"
    FEDERATION_DEAD_LETTERED: Final = "federation.dead_lettered"
    FEDERATION_RETRIED: Final = "federation.retried"  # an admin put dead letters back in the queue
    KEY_RECEIVED: Final = "key.received"  # a foreign member's key, bound by its home hub
    KEY_BOUND: Final = "key.bound"  # this hub signed a binding of its own member's key

    # Witnessing (docs/transparency.md, "Witnesses"): the logs this hub witnesses, the
    # witnesses of its own log, and what this hub, as a witness, cosigned or caught
    WITNESSED_LOG_ADDED: Final = "witnessed_log.added"
    WITNESSED_LOG_CHANGED: Final = "witnessed_log.changed"
    WITNESSED_LOG_RESUMED: Final = "witnessed_log.resumed"  # out of split view, by an operator
    WITNESS_ADDED: Final = "witness.added"
    WITNESS_CHANGED: Final = "witness.changed"
    CHECKPOINT_COSIGNED: Final = "checkpoint.cosigned"
    CHECKPOINT_SPLIT_VIEW: Final = "checkpoint.split_view"

    # The database role the hub runs as (manage.py hub_db_role; docs/transparency.md)
    DATABASE_ROLE_GRANTED: Final = "database_role.granted"
    # Private lookup (docs/private-lookup.md): the OPRF key's history, and usage in aggregate
    # (counts per credential per UTC day, never an element asked)
    LOOKUP_KEY_CREATED: Final = "lookup.key_created"
    LOOKUP_KEY_RETIRED: Final = "lookup.key_retired"
    LOOKUP_USAGE: Final = "lookup.usage"


def all_actions() -> frozenset[str]:
    """Every action value defined above (the catalogue in docs/transparency.md lists them all)."""
    return frozenset(
        value for name, value in vars(Action).items() if name.isupper() and isinstance(value, str)
    )


class ObjectType:
    """``AuditEvent.object_type`` values: what kind of thing ``object_id`` names."""

    CONTRIBUTION: Final = "contribution"
    REQUEST: Final = "request"  # an HTTP request body, named by its SHA-256
    ENTRY: Final = "entry"
    INCIDENT: Final = "incident"
    LABEL: Final = "label"
    VETTING_POLICY: Final = "vetting_policy"
    ORGANISATION: Final = "organisation"
    USER: Final = "user"
    SIGNING_KEY: Final = "signing_key"
    CREDENTIAL: Final = "credential"
    PEER: Final = "peer"  # a peer hub, by hub id
    WITNESSED_LOG: Final = "witnessed_log"  # named by its origin
    WITNESS: Final = "witness"  # named by its key name
    DATABASE_ROLE: Final = "database_role"  # a PostgreSQL role, by name
    LOOKUP_KEY: Final = "lookup_key"  # the hub's OPRF key, named by its key id
    LIVE_SESSION: Final = "live_session"  # named by its uuid


class Key:
    """Keys of ``AuditEvent.data`` shared by several actions."""

    # A change of state or of a record: the value before and after.
    FROM: Final = "from"
    TO: Final = "to"
    REASON: Final = "reason"
    # Contributions: the entry a contribution event is about, and the signed claim
    ENTRY_ID: Final = "entry_id"
    UUID: Final = "uuid"
    CONTENT_HASH: Final = "content_hash"
    SIGNATURE: Final = "signature"
    CANONICAL: Final = "canonical"
    ACTION: Final = "action"
    SIGNAL_TYPE: Final = "signal_type"
    VALUE: Final = "value"
    LABELS: Final = "labels"
    # Refusals (contribution.rejected, contribution.malformed_items, contribution.request_rejected,
    # key.rejected): what was wrong, where, and bounded evidence
    CODE: Final = "code"
    MESSAGE: Final = "message"
    FIELD: Final = "field"
    INDEX: Final = "index"
    EXISTING_CONTENT_HASH: Final = "existing_content_hash"
    COUNT: Final = "count"
    ITEMS: Final = "items"
    REASONS: Final = "reasons"
    INDEXES: Final = "indexes"
    SAMPLES: Final = "samples"
    REQUEST: Final = "request"
    # … and of a request's body (federation.api.parsers.body_evidence)
    PATH: Final = "path"
    SIZE: Final = "size"
    SHA256: Final = "sha256"
    HEAD: Final = "head"
    # Vetting
    POLICY: Final = "policy"
    # … and inside a policy snapshot (federation.vetting.policy.policy_snapshot)
    RULE: Final = "rule"
    AUTO_VET_TRUSTED: Final = "auto_vet_trusted"
    DISPUTE_THRESHOLD: Final = "dispute_threshold"
    EFFECTIVE_QUORUM: Final = "effective_quorum"
    # Matching (match.requested)
    SIGNALS: Final = "signals"  # signals asked, by type
    THRESHOLD: Final = "threshold"
    QUALITY_MIN: Final = "quality_min"
    MATCHED_SIGNALS: Final = "matched_signals"  # signals with at least one match
    MATCHES: Final = "matches"
    VALUES: Final = "values"  # only with MATCH_AUDIT_VALUES
    # … with vpdq signals or include_frames (docs/video.md), and live sessions
    VIDEO: Final = "video"  # the vpdq settings of a match request or live session
    FRAMES: Final = "frames"  # how many frames (never the frames themselves)
    ALERTS: Final = "alerts"  # shared videos that alerted, by value
    CALLS: Final = "calls"
    INCIDENT: Final = "incident"
    MEMBER: Final = "member"
    DECISION_ID: Final = "decision_id"
    VERDICT: Final = "verdict"
    REVIEW_ROUND: Final = "review_round"
    APPROVALS: Final = "approvals"
    REJECTIONS: Final = "rejections"
    OUTCOME: Final = "outcome"
    DISSENTING_ORGANISATIONS: Final = "dissenting_organisations"
    OPINION: Final = "opinion"
    PREVIOUS: Final = "previous"
    NOTE: Final = "note"
    # Incidents
    NAME: Final = "name"
    DESCRIPTION: Final = "description"
    STARTED_AT: Final = "started_at"
    ENDED_AT: Final = "ended_at"
    AUTO_VET: Final = "auto_vet"
    QUORUM: Final = "quorum"
    # Members
    USER: Final = "user"
    PASSWORD_CHANGED: Final = "password_changed"  # noqa: S105 (a key name, not a password)
    KEY_ID: Final = "key_id"
    PUBLIC_KEY: Final = "public_key"
    LABEL: Final = "label"
    NOT_BEFORE: Final = "not_before"
    EFFECTIVE_AT: Final = "effective_at"
    HOLDER: Final = "holder"
    SCOPES: Final = "scopes"
    EXPIRES_AT: Final = "expires_at"
    REGISTRATION: Final = "registration"
    REGISTRATION_SIGNATURE: Final = "registration_signature"
    # Mirrors of a peer hub's members
    HUB: Final = "hub"
    SLUG: Final = "slug"
    PREVIOUS_NAME: Final = "previous_name"
    # Federation (receiving side: federation.receiving.receive and .authentication)
    PEER: Final = "peer"
    BATCH: Final = "batch"
    VIA: Final = "via"
    # Witnessing
    ORIGIN: Final = "origin"
    VKEY: Final = "vkey"
    URL: Final = "url"
    ACTIVE: Final = "active"
    OLD_SIZE: Final = "old_size"
    TREE_SIZE: Final = "tree_size"
    ROOT_HASH: Final = "root_hash"
    TIMESTAMP: Final = "timestamp"
    COSIGNATURE: Final = "cosignature"
    CHECKPOINT: Final = "checkpoint"
    KIND: Final = "kind"
    EVIDENCE_ID: Final = "evidence_id"
    EVIDENCE: Final = "evidence"
    COSIGNED_NOTE: Final = "cosigned_note"
    SHOWN_NOTE: Final = "shown_note"
    ACCEPTED: Final = "accepted"
    DUPLICATES: Final = "duplicates"
    REJECTED: Final = "rejected"
    ITEM: Final = "item"
    DIRECTION: Final = "direction"
    PREFIX: Final = "prefix"
    BINDING: Final = "binding"
    BINDING_SIGNATURE: Final = "binding_signature"
    HUB_PUBLIC_KEY: Final = "hub_public_key"  # the home hub's key that verified a binding
    ATTESTATION: Final = "attestation"
    # Peers (peer.*) and what was sent to them (federation.sent, federation.dead_lettered,
    # federation.retried)
    HUB_ID: Final = "hub_id"  # URL: above
    STATE: Final = "state"
    INBOUND_POLICY: Final = "inbound_policy"
    OUTBOUND: Final = "outbound"
    OUTBOUND_SCOPES: Final = "outbound_scopes"
    OUTBOUND_LABELS: Final = "outbound_labels"
    OUTBOUND_SIGNAL_TYPES: Final = "outbound_signal_types"
    ATTEMPTS: Final = "attempts"
    # The hub's database role (database_role.granted)
    ROLE: Final = "role"
    CREATED: Final = "created"
    DATABASE: Final = "database"
    SCHEMA: Final = "schema"
    APPEND_ONLY: Final = "append_only"
    STATEMENTS: Final = "statements"
    # Private lookup (lookup.*; credential.created of a lookup-only credential; KIND: above)
    DAILY_LIMIT: Final = "daily_limit"
    SUITE: Final = "suite"
    SUCCESSOR: Final = "successor"
    CREDENTIAL: Final = "credential"
    DAY: Final = "day"
    EVALUATIONS: Final = "evaluations"
    REQUESTS: Final = "requests"
    REFUSED: Final = "refused"


class PolicyRule:
    """The ``rule`` recorded in a decision's policy snapshot (docs/vetting.md)."""

    QUORUM: Final = "quorum"
    INCIDENT_QUORUM: Final = "incident_quorum"
    TRUSTED_MEMBER: Final = "trusted_member"
    INCIDENT: Final = "incident"
    ADMIN_RULING: Final = "admin_ruling"
    DISPUTE_RESOLUTION: Final = "dispute_resolution"
    DISPUTE_THRESHOLD: Final = "dispute_threshold"
    TRUSTED_PEER: Final = "trusted_peer"  # a peer under the trust policy vetted it (federation)
