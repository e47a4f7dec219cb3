"""The names of API tokens made by management commands."""

from django.utils import timezone

from members.models import ApiCredential

NAME_LENGTH = ApiCredential._meta.get_field("name").max_length


def cli_token_name(*, user, role: str, command: str) -> str:
    """A name that tells an admin reading the credential list whose token it is, with what role
    it was made, by which command and when: ``alice (reviewer at acme): manage.py create_member,
    2026-12-05``."""
    made = f"manage.py {command}, {timezone.now():%Y-%m-%d}"
    who = f"{user.username} ({role})"
    return f"{who[: NAME_LENGTH - len(made) - 2]}: {made}"
