"""Who did something, as the services and the audit log need it: one typed ``Actor``.

Services take ``actor: Actor`` rather than a user, an organisation and an audit dict passed
separately. An actor is one of four kinds:

- ``member``: a user of a member organisation (through the web UI or an API credential);
- ``staff``: hub staff (a consortium admin, an auditor, a Django superuser);
- ``system``: the hub itself (a management command, a periodic task, an automatic policy);
- ``peer``: another hub we federate with (federation, later).

``audit_type``, ``id`` and ``label`` are how the actor is named in audit events (their ``actor``
object, docs/transparency.md); ``organisation`` is the member it acts for (events carry its slug)
and ``user`` the account behind it, if any.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from members.models import Organisation
from members.principals import Principal


class ActorKind(StrEnum):
    MEMBER = "member"
    STAFF = "staff"
    SYSTEM = "system"
    PEER = "peer"


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    audit_type: str
    id: str
    label: str
    organisation: Organisation | None = None
    user: Any = None

    @property
    def audit(self) -> dict[str, str]:
        """The ``actor`` object of an audit event."""
        return {"type": self.audit_type, "id": self.id, "label": self.label}

    @property
    def organisation_slug(self) -> str:
        """What audit events carry in ``organisation``: the member acted for, or ``""``."""
        return self.organisation.slug if self.organisation is not None else ""

    @classmethod
    def system(cls, name: str) -> "Actor":
        """The hub itself, doing ``name`` (``"cli"``, ``"sequencer"`` …)."""
        return cls(kind=ActorKind.SYSTEM, audit_type="system", id=name, label=name)

    @classmethod
    def peer(cls, hub_id: str, label: str = "") -> "Actor":
        """A peer hub (federation)."""
        return cls(kind=ActorKind.PEER, audit_type="hub", id=hub_id, label=label or hub_id)

    @classmethod
    def for_principal(cls, principal: Principal) -> "Actor":
        """The actor of an authenticated principal: a member user (organisation set) or staff."""
        user = principal.user
        if user is None:
            raise ValueError("an anonymous principal cannot act")
        if principal.credential is not None:  # named by its credential, and whose it is
            audit_type = "credential"
            actor_id = f"cc_{principal.credential.prefix}"
            label = f"{user.get_username()} via {principal.credential.name}"
        else:
            audit_type, actor_id, label = "user", str(user.pk), user.get_username()
        return cls(
            kind=ActorKind.MEMBER if principal.organisation is not None else ActorKind.STAFF,
            audit_type=audit_type,
            id=actor_id,
            label=label,
            organisation=principal.organisation,
            user=principal.user,
        )

    @classmethod
    def for_user(cls, user) -> "Actor":
        from members.principals import principal_for_user

        principal = principal_for_user(user)
        if principal.user is None:  # an inactive account still did what it did
            return cls(
                kind=ActorKind.STAFF,
                audit_type="user",
                id=str(user.pk),
                label=user.get_username(),
                user=user,
            )
        return cls.for_principal(principal)
