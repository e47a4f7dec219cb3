"""Building blocks for tests: organisations, users with roles, keys, tokens and signed contributions.

Tests normally use the named-party fixtures in conftest.py; these functions build more when needed.
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from federation.signing import (
    format_timestamp,
    key_registration_document,
    sign_contribution,
    sign_key_registration,
)
from members.actors import Actor
from members.models import (
    Membership,
    Organisation,
    Role,
    SigningKey,
    StaffRole,
    key_id_for,
)
from members.principals import ROLE_CAPABILITIES, principal_for_user
from members.services import credential_create, signing_key_register

User = get_user_model()


@dataclass
class Party:
    """A user acting through the API with a token carrying all their role's scopes."""

    user: Any
    role: str | None
    organisation: Organisation | None = None
    token: str | None = None
    private_key: Ed25519PrivateKey | None = None
    signing_key: SigningKey | None = None
    client: APIClient = field(default_factory=APIClient)

    @property
    def principal(self):
        return principal_for_user(self.user)

    @property
    def actor(self) -> Actor:
        """This party as the actor of a service call (their user, for their organisation)."""
        return Actor.for_principal(self.principal)

    def contribution(self, **overrides) -> dict[str, Any]:
        """A well-formed, signed-for contribution document for this party's organisation."""
        document = {
            "kind": "concordat.contribution",
            "v": 1,
            "hub": settings.HUB_ID,
            "member": self.organisation.slug,
            "key_id": self.signing_key.key_id,
            "uuid": str(uuid.uuid4()),
            "created_at": format_timestamp(datetime.now(UTC).replace(microsecond=0)),
            "action": "add",
            "signal": {"type": "pdq", "value": random_hex(64)},
            "labels": ["attack-footage"],
            "scope": "federation",
        }
        document.update(overrides)
        return document

    def signed(self, document: dict[str, Any] | None = None, **overrides) -> dict[str, Any]:
        document = document if document is not None else self.contribution(**overrides)
        return {
            "contribution": document,
            "signature": sign_contribution(self.private_key, document),
        }

    def submit(self, document: dict[str, Any] | None = None, **overrides):
        return self.client.post(
            "/api/v1/contributions/", self.signed(document, **overrides), format="json"
        )


def random_hex(length: int) -> str:
    return uuid.uuid4().hex * (length // 32) + uuid.uuid4().hex[: length % 32]


def make_organisation(slug: str, *, trusted: bool = False) -> Organisation:
    return Organisation.objects.create(slug=slug, name=slug.title(), trusted=trusted)


def make_member(
    username: str, organisation: Organisation, role: str, *, with_key: bool = True
) -> Party:
    user = User.objects.create_user(username=username, password="pw-" + username)
    Membership.objects.create(user=user, organisation=organisation, role=role)
    party = Party(user=user, role=role, organisation=organisation)
    _issue_token(party)
    if with_key:
        party.private_key = Ed25519PrivateKey.generate()
        party.signing_key = register_key(organisation, party.private_key)
    return party


def signed_key_registration(
    private_key: Ed25519PrivateKey,
    organisation: Organisation,
    *,
    hub: str | None = None,
    created_at: datetime | None = None,
    **overrides,
) -> dict[str, Any]:
    """``{"registration", "signature"}``: the key's own proof of possession for ``organisation``
    (on this hub unless ``hub``); ``overrides`` change the object before it is signed."""
    document = key_registration_document(
        hub=hub or settings.HUB_ID,
        member=organisation.slug,
        public_key=raw_public_key(private_key),
        created_at=created_at or datetime.now(UTC).replace(microsecond=0),
    )
    document.update(overrides)
    return {"registration": document, "signature": sign_key_registration(private_key, document)}


def register_key(
    organisation: Organisation, private_key: Ed25519PrivateKey, **kwargs
) -> SigningKey:
    """Register ``private_key``'s public key for ``organisation`` with a valid proof."""
    return signing_key_register(
        organisation=organisation,
        actor=Actor.system("test"),
        **signed_key_registration(private_key, organisation),
        **kwargs,
    )


def make_staff(username: str, role: str) -> Party:
    user = User.objects.create_user(username=username, password="pw-" + username, is_staff=True)
    StaffRole.objects.create(user=user, role=role)
    party = Party(user=user, role=role)
    _issue_token(party)
    return party


def raw_public_key(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def _issue_token(party: Party) -> None:
    issued = credential_create(
        holder=party.user,
        name=f"{party.user.username}-token",
        scopes=sorted(ROLE_CAPABILITIES[party.role]),
        actor=Actor.system("test"),
    )
    party.token = issued.token
    party.client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.token}")


__all__ = [
    "Party",
    "Role",
    "key_id_for",
    "make_member",
    "make_organisation",
    "make_staff",
    "register_key",
    "signed_key_registration",
]
