"""The typed actor services take, and how it is named in audit events."""

import pytest

from federation.contributions.models import Contribution
from federation.contributions.services import contributions_submit
from federation.transparency.actions import Action
from federation.transparency.audit import AuditRecord, audit_record
from federation.transparency.models import AuditEvent
from members.actors import Actor, ActorKind
from members.models import ApiCredential
from members.principals import ANONYMOUS, principal_for_user


def test_a_member_user_acts_for_their_organisation(acme_reviewer):
    actor = Actor.for_principal(principal_for_user(acme_reviewer.user))

    assert actor.kind == ActorKind.MEMBER
    assert (actor.organisation, actor.user) == (acme_reviewer.organisation, acme_reviewer.user)
    assert actor.audit == {"type": "user", "id": str(acme_reviewer.user.pk), "label": "arthur"}
    assert actor.organisation_slug == "acme"


def test_a_member_with_a_token_is_named_by_the_token(acme_submitter):
    credential = ApiCredential.objects.get(holder=acme_submitter.user)
    actor = Actor.for_principal(principal_for_user(acme_submitter.user, credential))

    assert actor.kind == ActorKind.MEMBER
    assert actor.audit["type"] == "credential"
    assert actor.audit["id"] == f"cc_{credential.prefix}"
    assert actor.audit["label"] == f"{acme_submitter.user.username} via {credential.name}"


def test_staff_act_for_the_hub_not_an_organisation(consortium_admin):
    actor = Actor.for_user(consortium_admin.user)

    assert actor.kind == ActorKind.STAFF
    assert actor.organisation is None and actor.organisation_slug == ""
    assert actor.user == consortium_admin.user


def test_the_hub_itself_and_a_peer_hub():
    assert Actor.system("cli").audit == {"type": "system", "id": "cli", "label": "cli"}
    assert Actor.system("cli").kind == ActorKind.SYSTEM
    peer = Actor.peer("hub.b.example")
    assert (peer.kind, peer.audit["type"], peer.user) == (ActorKind.PEER, "hub", None)


def test_an_anonymous_principal_cannot_act():
    with pytest.raises(ValueError):
        Actor.for_principal(ANONYMOUS)


def test_an_audit_record_names_its_actor_only_by_an_actor(db):
    event = audit_record(AuditRecord(action=Action.LABEL_CREATED, actor=Actor.system("test")))
    assert (event.actor_type, event.actor_id, event.actor_label) == ("system", "test", "test")

    with pytest.raises(TypeError):
        AuditRecord(
            action=Action.LABEL_CREATED, actor={"type": "system", "id": "test", "label": "test"}
        )


def test_ingest_submits_for_the_actors_organisation_and_needs_one(acme_submitter):
    (result,) = contributions_submit(actor=acme_submitter.actor, items=[acme_submitter.signed()])
    assert result.status == "created"
    event = AuditEvent.objects.get(action=Action.CONTRIBUTION_ACCEPTED, object_id=result.uuid)
    assert (event.organisation, event.actor_type, event.actor_label) == ("acme", "user", "alice")
    assert Contribution.objects.get(uuid=result.uuid).organisation == acme_submitter.organisation

    with pytest.raises(ValueError):
        contributions_submit(actor=Actor.system("cli"), items=[acme_submitter.signed()])
