"""Reading a new password the way Django's own commands do: twice, validated, never echoed."""

import getpass

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

MAX_TRIES = 3


def read_new_password(user, *, prompt: str = "Password: ") -> str:
    for _ in range(MAX_TRIES):
        first = getpass.getpass(prompt)
        if first != getpass.getpass("Password (again): "):
            print("The passwords do not match; try again.")
            continue
        try:
            validate_password(first, user)
        except ValidationError as exc:
            print("\n".join(exc.messages))
            continue
        return first
    raise CommandError(f"No acceptable password after {MAX_TRIES} tries; nothing was changed.")
