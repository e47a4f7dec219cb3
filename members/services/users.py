"""Creating and changing user accounts (the Django admin, the account commands): the event names
what changed and never holds a password or its hash."""

from django.db import transaction

from federation.transparency.actions import Action, Key, ObjectType
from federation.transparency.audit import AuditRecord, audit_record
from members.actors import Actor

USER_AUDITED_FIELDS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "is_active",
    "is_staff",
    "is_superuser",
)


def user_save(*, user, actor: Actor, password_changed: bool = False) -> object:
    """Create a user or save changes to their account (the Django admin). The event names what
    changed; it never holds a password or its hash."""
    model = type(user)
    with transaction.atomic():
        before = (
            model.objects.filter(pk=user.pk).values(*USER_AUDITED_FIELDS).first()
            if user.pk
            else None
        )
        user.save()
        after = {name: getattr(user, name) for name in USER_AUDITED_FIELDS}
        if before == after and not password_changed:
            return user
        audit_record(
            AuditRecord(
                action=Action.USER_CREATED if before is None else Action.USER_CHANGED,
                actor=actor,
                object_type=ObjectType.USER,
                object_id=user.get_username(),
                data={Key.FROM: before, Key.TO: after, Key.PASSWORD_CHANGED: password_changed},
            )
        )
    return user
