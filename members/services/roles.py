"""Who may do what: a user's role in their organisation, and hub staff roles. Each change is one
audited transaction."""

from django.db import transaction

from federation.errors import Conflict, InvalidInput
from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from members.actors import Actor
from members.mirrors import require_local
from members.models import (
    Membership,
    Organisation,
    Role,
    StaffRole,
)


def membership_set(*, user, organisation: Organisation, role: str, actor: Actor) -> Membership:
    """Give ``user`` a role in ``organisation`` (creating the membership if needed)."""
    if role not in Role.values:
        raise InvalidInput(f"role must be one of {Role.values}.")
    require_local(organisation, action="have users")
    with transaction.atomic():
        if StaffRole.objects.filter(user=user).exists():
            raise Conflict(
                "Hub staff cannot also belong to a member organisation.", code="staff_user"
            )
        membership = Membership.objects.select_for_update().filter(user=user).first()
        previous = membership.role if membership else None
        if membership is not None and membership.organisation_id != organisation.pk:
            raise Conflict("This user belongs to another organisation.", code="other_organisation")
        if membership is None:
            membership = Membership.objects.create(user=user, organisation=organisation, role=role)
        elif previous != role:
            membership.role = role
            membership.save(update_fields=["role"])
        else:
            return membership
        audit_record(
            AuditRecord(
                action=Action.ROLE_CHANGED,
                actor=actor,
                organisation=organisation.slug,
                object_type=ObjectType.USER,
                object_id=user.get_username(),
                data={Key.USER: user.get_username(), Key.FROM: previous, Key.TO: role},
            )
        )
    return membership


def staff_role_set(*, user, role: str | None, actor: Actor) -> StaffRole | None:
    """Make ``user`` hub staff (consortium admin or auditor), or remove the staff role (None)."""
    with transaction.atomic():
        if role is not None and Membership.objects.filter(user=user).exists():
            raise Conflict(
                "Members of an organisation cannot also be hub staff.", code="member_user"
            )
        current = StaffRole.objects.select_for_update().filter(user=user).first()
        previous = current.role if current else None
        if previous == role:
            return current
        if role is None:
            current.delete()
            current = None
        elif current is None:
            current = StaffRole.objects.create(user=user, role=role)
        else:
            current.role = role
            current.save(update_fields=["role"])
        audit_record(
            AuditRecord(
                action=Action.ROLE_CHANGED,
                actor=actor,
                object_type=ObjectType.USER,
                object_id=user.get_username(),
                data={Key.USER: user.get_username(), Key.FROM: previous, Key.TO: role},
            )
        )
    return current
