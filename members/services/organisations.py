"""Creating and changing organisations (a consortium admin, in the Django admin): every change of
what a member may do is audited."""

from django.db import IntegrityError, transaction

from federation.errors import Conflict, InvalidInput
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from members.actors import Actor
from members.mirrors import require_local
from members.models import Organisation
from members.validators import check_display_name

ORGANISATION_FIELDS = ("slug", "name", "status", "trusted")


def organisation_save(*, organisation: Organisation, actor: Actor) -> Organisation:
    """Create an organisation or save changes to it (a consortium admin, in the Django admin).
    Suspending a member or marking it trusted changes what it may do, so every change is audited."""
    if not organisation.slug or not organisation.name:
        raise InvalidInput("An organisation needs a slug and a name.")
    require_local(organisation, action="be changed (federation keeps mirrors up to date)")
    check_display_name(organisation.name, field="name")
    with transaction.atomic():
        before = (
            Organisation.objects.filter(pk=organisation.pk).values(*ORGANISATION_FIELDS).first()
            if organisation.pk
            else None
        )
        try:
            with transaction.atomic():
                organisation.save()
        except IntegrityError:
            raise Conflict("An organisation with this slug exists.", code="slug_exists") from None
        after = {name: getattr(organisation, name) for name in ORGANISATION_FIELDS}
        if before == after:
            return organisation
        audit_record(
            AuditRecord(
                action=(
                    Action.ORGANISATION_CREATED if before is None else Action.ORGANISATION_CHANGED
                ),
                actor=actor,
                organisation=organisation.slug,
                object_type=ObjectType.ORGANISATION,
                object_id=organisation.slug,
                data={Key.FROM: before, Key.TO: after},
            )
        )
    return organisation
