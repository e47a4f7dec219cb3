"""Foreign members: read-only mirrors of other hubs' organisations, and the guard that keeps them so.

An organisation is identified by (hub, slug). Federation creates a mirror for each member of a
peer hub whose contributions it relays; a mirror exists so that those contributions and keys have
an owner here. It can never log in, hold API credentials or memberships, register keys through
this hub's API or admin, or vote: ``require_local`` is called by every service that would give it
one of those, and authentication refuses a credential or user tied to one (members/principals.py).
"""

import re

from django.conf import settings
from django.db import transaction

from federation.errors import Conflict, InvalidInput
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from members.actors import Actor
from members.models import Organisation

_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,64}")


def require_local(organisation: Organisation | None, *, action: str) -> None:
    """Refuse (409 ``foreign_organisation``) to let a foreign member ``action``."""
    if organisation is not None and not organisation.is_local:
        raise Conflict(
            f"{organisation.slug} is a member of hub {organisation.hub!r}, mirrored here read-only: "
            f"it cannot {action} on this hub.",
            code="foreign_organisation",
        )


def organisation_mirror(
    *, hub: str, slug: str, name: str, actor: Actor | None = None
) -> Organisation:
    """Create (or rename) the read-only mirror of member ``slug`` of the peer hub ``hub``.

    Idempotent: the same (hub, slug) is the same mirror. This hub's own id is refused: a peer
    cannot introduce a member of ours.
    """
    if not isinstance(hub, str) or not hub or len(hub) > 200:
        raise InvalidInput("hub must be a hub id of 1-200 characters.", code="invalid_hub")
    if hub == settings.HUB_ID:
        raise InvalidInput(
            "A mirror names another hub's member; this hub's own members are not mirrored.",
            code="local_hub",
        )
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
        raise InvalidInput("slug must be 1-64 characters from A-Z a-z 0-9 - _.", code="invalid")
    name = (name or slug)[:200]
    actor = actor or Actor.system("federation")
    with transaction.atomic():
        organisation, created = Organisation.objects.select_for_update().get_or_create(
            hub=hub, slug=slug, defaults={"name": name}
        )
        if not created and organisation.name == name:
            return organisation
        previous = None if created else organisation.name
        if not created:
            organisation.name = name
            organisation.save(update_fields=["name"])
        audit_record(
            AuditRecord(
                action=Action.ORGANISATION_MIRRORED,
                actor=actor,
                organisation=slug,
                object_type=ObjectType.ORGANISATION,
                object_id=f"{slug}@{hub}",
                data={Key.HUB: hub, Key.SLUG: slug, Key.NAME: name, Key.PREVIOUS_NAME: previous},
            )
        )
    return organisation
