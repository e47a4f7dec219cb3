"""Peer credentials: issued once, hashed, compared in constant time, audited."""

import pytest

from federation.propagation.authentication import (
    PEER_TOKEN_PREFIX,
    authenticate_peer_token,
    hash_peer_secret,
    peer_inbound_credential_issue,
    split_peer_token,
)
from federation.transparency.actions import Action
from federation.transparency.models import AuditEvent
from members.actors import Actor
from members.models import Peer

pytestmark = pytest.mark.django_db


def _peer(hub_id="hub.remote.example") -> Peer:
    return Peer.objects.create(hub_id=hub_id, name="Remote", public_key=b"\x01" * 32)


def test_issued_token_authenticates_and_only_its_hash_is_kept():
    peer = _peer()
    token = peer_inbound_credential_issue(actor=Actor.system("test"), peer=peer)
    assert token.startswith(PEER_TOKEN_PREFIX)
    prefix, secret = split_peer_token(token)
    stored = Peer.objects.get(pk=peer.pk)
    assert stored.inbound_prefix == prefix
    assert stored.inbound_secret_hash == hash_peer_secret(secret)
    assert secret not in stored.inbound_secret_hash
    assert authenticate_peer_token(prefix, secret) == stored
    assert authenticate_peer_token(prefix, secret + "x") is None
    assert authenticate_peer_token("0" * 12, secret) is None


def test_issuing_again_replaces_the_old_credential_and_is_audited():
    peer = _peer()
    first = peer_inbound_credential_issue(actor=Actor.system("test"), peer=peer)
    second = peer_inbound_credential_issue(actor=Actor.system("test"), peer=peer)
    assert authenticate_peer_token(*split_peer_token(first)) is None
    assert authenticate_peer_token(*split_peer_token(second)) is not None
    events = AuditEvent.objects.filter(action=Action.PEER_CREDENTIAL_ISSUED).order_by("id")
    assert [e.data["direction"] for e in events] == ["inbound", "inbound"]
    assert events.last().data["prefix"] == split_peer_token(second)[0]
    assert events.last().object_id == peer.hub_id


@pytest.mark.parametrize(
    "token", ["cc_abc_def", "cp_", "cp_abc", "cp__secret", "cp_abc_", "cp_" + "a" * 300]
)
def test_malformed_tokens_are_not_peer_tokens(token):
    assert split_peer_token(token) is None


def test_a_peer_without_a_credential_cannot_be_matched_by_an_empty_prefix():
    _peer()
    assert authenticate_peer_token("", "anything") is None
