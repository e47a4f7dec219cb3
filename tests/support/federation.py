"""Remote hubs for receiving tests: a hub is an Ed25519 private key and a Peer row here; its
members have keys it binds; items and batches are built by hand with the wire.py builders."""

import base64
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from rest_framework.test import APIClient

from federation.canonical import canonical_bytes
from federation.propagation import attestation_roots, wire
from federation.propagation.authentication import peer_inbound_credential_issue
from federation.propagation.models import PeerLink
from federation.signing import key_registration_document, sign_contribution, sign_key_registration
from members.actors import Actor
from members.models import Peer
from tests.support.parties import random_hex, raw_public_key


def now_seconds() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class RemoteMember:
    """A member of a remote hub: its key, registration and the hub's binding of it."""

    hub: "RemoteHub"
    slug: str
    private_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    not_before: datetime = field(default_factory=lambda: now_seconds() - timedelta(days=1))
    revoked_at: datetime | None = None
    issued_at: datetime | None = None

    def __post_init__(self) -> None:
        self.registration = key_registration_document(
            hub=self.hub.hub_id,
            member=self.slug,
            public_key=raw_public_key(self.private_key),
            created_at=self.not_before,
        )
        self.registration_signature = sign_key_registration(self.private_key, self.registration)
        self.issued_at = self.issued_at or self.not_before

    @property
    def key_id(self) -> str:
        return self.registration["key_id"]

    def key_section(self, *, signer: Ed25519PrivateKey | None = None, **binding_overrides):
        """``{registration, signature, binding, binding_signature}``, bound by the home hub
        (or by ``signer``)."""
        binding = wire.key_binding_document(
            hub=self.hub.hub_id,
            member=self.slug,
            key_id=self.key_id,
            registration=canonical_bytes(self.registration),
            not_before=self.not_before,
            revoked_at=self.revoked_at,
            issued_at=self.issued_at,
        )
        binding.update(binding_overrides)
        signed = wire.sign_document(signer or self.hub.private_key, binding)
        document, signature = signed.as_wire()
        return {
            "registration": dict(self.registration),
            "signature": self.registration_signature,
            "binding": document,
            "binding_signature": signature,
        }

    def contribution(self, **overrides) -> dict[str, Any]:
        document = {
            "kind": "concordat.contribution",
            "v": 1,
            "hub": self.hub.hub_id,
            "member": self.slug,
            "key_id": self.key_id,
            "uuid": str(uuid.uuid4()),
            "created_at": wire.format_timestamp(now_seconds() - timedelta(minutes=1)),
            "action": "add",
            "signal": {"type": "pdq", "value": random_hex(64)},
            "labels": ["attack-footage"],
            "scope": "federation",
        }
        document.update(overrides)
        return document

    def sign(self, document: dict[str, Any]) -> str:
        return sign_contribution(self.private_key, document)


@dataclass
class RemoteHub:
    """A peer hub as seen from here: its key, the Peer row and the token it presents."""

    hub_id: str
    policy: str = Peer.InboundPolicy.TRUST
    link: bool = True
    private_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def __post_init__(self) -> None:
        self.peer = Peer.objects.create(
            hub_id=self.hub_id,
            name=self.hub_id.split(".")[0].title(),
            url=f"http://127.0.0.1:1/{self.hub_id}" if self.link else "",
            public_key=raw_public_key(self.private_key),
            inbound_policy=self.policy,
        )
        self.token = None
        if self.link:
            self.token = peer_inbound_credential_issue(actor=Actor.system("test"), peer=self.peer)
            PeerLink.objects.create(peer=self.peer)
        self.client = APIClient()
        if self.token:
            self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.token}")

    def member(self, slug: str = "acme", **kwargs) -> RemoteMember:
        return RemoteMember(self, slug, **kwargs)

    def attestation(
        self, signal: dict[str, str], *, state: str = "vetted", signer=None, **overrides
    ) -> dict[str, Any]:
        moment = now_seconds()
        document = wire.attestation_document(
            hub=self.hub_id,
            signal_type=signal["type"],
            value=signal["value"].lower(),
            state=state,
            decided_at=moment,
            policy="quorum 2",
            attested_at=moment,
        )
        document.update(overrides)
        return wire.signed_pair(
            wire.sign_document(signer or self.private_key, document), name="attestation"
        )

    def under_root(
        self, pairs: list[dict[str, Any]], *, signer=None, **overrides
    ) -> list[dict[str, Any]]:
        """The attestations of ``pairs`` (this hub's, each signed alone) under one root this hub
        signs (docs/federation.md, "Attestations under one root"), in the same order;
        ``overrides`` (``hub``, ``attested_at``) sign a root for another hub or time."""
        # One root, one attested_at: the first attestation's (the others were made within
        # the same second or the next).
        moment = pairs[0]["attestation"]["attested_at"]
        documents = [{**pair["attestation"], "attested_at": moment} for pair in pairs]
        tree = attestation_roots.Tree([canonical_bytes(document) for document in documents])
        root = attestation_roots.root_canonical(
            **{"hub": self.hub_id, "attested_at": moment, **overrides},
            size=tree.size, root=tree.root,
        )  # fmt: skip
        signature = (signer or self.private_key).sign(root)
        return [
            attestation_roots.rooted_pair(
                document, index=index, size=tree.size, proof=tree.proof(index),
                signature=signature,
            )
            for index, document in enumerate(documents)
        ]  # fmt: skip

    def batch(
        self,
        items: list[dict[str, Any]],
        *,
        to: str | None = None,
        sender: str | None = None,
        signer=None,
        feed: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        document = wire.batch_document(
            sender=sender or self.hub_id,
            receiver=to or settings.HUB_ID,
            batch_id=uuid.uuid4(),
            sent_at=now_seconds(),
            items=items,
            feed=feed,
        )
        return wire.signed_pair(
            wire.sign_document(signer or self.private_key, document), name="batch"
        )

    def push(self, items, **kwargs):
        return self.client.post(
            "/api/v1/federation/batches", self.batch(items, **kwargs), format="json"
        )


def contribution_item(
    member: RemoteMember,
    document: dict[str, Any] | None = None,
    *,
    via: list["RemoteHub"] | None = None,
    state: str = "vetted",
    key: dict[str, Any] | None = None,
    signature: str | None = None,
) -> dict[str, Any]:
    """A contribution item that ``member``'s hub vetted and sent, or that passed through the
    hubs ``via`` (origin first, the sender last), each attesting it."""
    document = document or member.contribution()
    hubs = via or [member.hub]
    return {
        "type": "contribution",
        "contribution": document,
        "signature": signature or member.sign(document),
        "key": key or member.key_section(),
        "attestations": [hub.attestation(document["signal"], state=state) for hub in hubs],
        "path": [hub.hub_id for hub in hubs],
    }


def entry_item(hubs: list["RemoteHub"], signal: dict[str, str], *, state: str) -> dict[str, Any]:
    return {
        "type": "entry",
        "attestations": [hub.attestation(signal, state=state) for hub in hubs],
        "path": [hub.hub_id for hub in hubs],
    }


def key_item(member: RemoteMember, *, via: list["RemoteHub"] | None = None) -> dict[str, Any]:
    hubs = via or [member.hub]
    return {"type": "key", "key": member.key_section(), "path": [hub.hub_id for hub in hubs]}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
