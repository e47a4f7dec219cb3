"""Audit events are written in the transaction of the change they record: both or neither."""

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import DataError, transaction

from federation.contributions.models import Contribution
from federation.contributions.services import contributions_submit
from federation.transparency.models import AuditEvent
from members.actors import Actor, ActorKind
from members.models import ApiCredential, SigningKey
from members.services import credential_revoke, membership_set, signing_key_register
from tests.support.parties import signed_key_registration

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")
# PostgreSQL text cannot hold NUL, so it refuses the audit row. (Over-long values no longer fail:
# audit columns are cut to their width, tests/federation/transparency/test_audit_field_bounds.py.)
UNRECORDABLE_ACTOR = Actor(kind=ActorKind.SYSTEM, audit_type="system", id="x\x00", label="test")


class Abort(Exception):
    pass


def test_rolled_back_key_registration_leaves_no_audit_event(acme):
    with pytest.raises(Abort), transaction.atomic():
        signing_key_register(
            organisation=acme,
            **signed_key_registration(Ed25519PrivateKey.generate(), acme),
            actor=ACTOR,
        )
        assert AuditEvent.objects.filter(action="key.registered").exists()
        raise Abort
    assert not AuditEvent.objects.filter(action="key.registered").exists()
    assert not SigningKey.objects.exists()


def test_key_registration_whose_audit_event_fails_is_not_kept(acme):
    with pytest.raises(DataError):
        signing_key_register(
            organisation=acme,
            **signed_key_registration(Ed25519PrivateKey.generate(), acme),
            actor=UNRECORDABLE_ACTOR,
        )
    assert not SigningKey.objects.exists()


def test_credential_revocation_whose_audit_event_fails_is_not_kept(acme_submitter):
    credential = ApiCredential.objects.get(holder=acme_submitter.user)
    with pytest.raises(DataError):
        credential_revoke(credential=credential, actor=UNRECORDABLE_ACTOR)
    assert ApiCredential.objects.get(pk=credential.pk).revoked_at is None


def test_role_change_whose_audit_event_fails_is_not_kept(acme_submitter):
    with pytest.raises(DataError):
        membership_set(
            user=acme_submitter.user,
            organisation=acme_submitter.organisation,
            role="reviewer",
            actor=UNRECORDABLE_ACTOR,
        )
    acme_submitter.user.membership.refresh_from_db()
    assert acme_submitter.user.membership.role == "submitter"


def test_rolled_back_submission_leaves_neither_contributions_nor_events(acme_submitter):
    good = acme_submitter.signed()
    bad = acme_submitter.signed(key_id="0" * 32)
    with pytest.raises(Abort), transaction.atomic():
        results = contributions_submit(actor=acme_submitter.actor, items=[good, bad])
        assert [r.status for r in results] == ["created", "rejected"]
        raise Abort
    assert not Contribution.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="contribution.").exists()


def test_accepted_contribution_event_carries_the_signed_evidence(acme_submitter):
    signed = acme_submitter.signed()
    acme_submitter.client.post("/api/v1/contributions/", signed, format="json")
    stored = Contribution.objects.get()
    event = AuditEvent.objects.get(action="contribution.accepted")
    assert "canonical" not in event.data  # committed to by content_hash, stored in the row
    assert event.data["signature"] == signed["signature"]
    assert event.data["key_id"] == acme_submitter.signing_key.key_id
    assert event.data["content_hash"] == stored.content_hash
    assert event.data["entry_id"] == stored.entry_id


def test_invalid_item_is_audited_without_storing_unsafe_input(acme_submitter):
    item = {"contribution": {"uuid": "\u0000bad\ud800", "kind": 5}, "signature": "\u0000"}
    results = contributions_submit(actor=acme_submitter.actor, items=[item])
    assert results[0].error["code"] == "invalid"
    assert not AuditEvent.objects.filter(action="contribution.rejected").exists()
    event = AuditEvent.objects.get(action="contribution.malformed_items")
    assert event.data["reasons"][0]["code"] == "invalid"
    assert event.data["count"] == 1 and event.data["samples"] == []  # nothing unsafe kept


def test_no_code_path_updates_or_deletes_audit_events():
    """Append-only: outside the sequencer (which sets leaf_index once), no module writes to
    existing audit events."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[3]
    pattern = re.compile(r"AuditEvent\.objects[^\n]*\.(update|delete)\(|event\.delete\(")
    offenders = [
        str(path.relative_to(root))
        for folder in ("members", "federation")
        for path in (root / folder).rglob("*.py")
        if "migrations" not in path.parts
        and path.name != "sequencer.py"
        and pattern.search(path.read_text())
    ]
    assert offenders == []
