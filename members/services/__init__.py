"""Services that change members: their signing keys (``keys``), API credentials
(``credentials``), roles (``roles``), organisations (``organisations``) and user accounts
(``users``); a name shown to other members passes ``members.validators.check_display_name``.
Each runs in one transaction and writes its audit event in that transaction; the
API, the Django admin and the management commands all call these, by the names below."""

from members.services.credentials import (
    IssuedCredential,
    credential_create,
    credential_revoke,
    lookup_credential_create,
)
from members.services.keys import (
    KeyRegistrationRefused,
    signing_key_proof_check,
    signing_key_register,
    signing_key_revoke,
)
from members.services.organisations import ORGANISATION_FIELDS, organisation_save
from members.services.roles import membership_set, staff_role_set
from members.services.users import USER_AUDITED_FIELDS, user_save

__all__ = [
    "ORGANISATION_FIELDS",
    "USER_AUDITED_FIELDS",
    "IssuedCredential",
    "KeyRegistrationRefused",
    "credential_create",
    "credential_revoke",
    "lookup_credential_create",
    "membership_set",
    "organisation_save",
    "signing_key_proof_check",
    "signing_key_register",
    "signing_key_revoke",
    "staff_role_set",
    "user_save",
]
