"""The Django admin for consortium admins: organisations, users and roles, signing keys and API
credentials; and the admin plumbing both apps share (who may use it, errors, reason pages).

Every change goes through ``members.services`` (or ``federation.vetting.services``), so a change
made here writes the same audit event as the API, with the admin user as actor.

One module per job: ``site`` (who may use the admin, the base classes), ``reasons`` (actions that
ask for a reason), ``accounts`` (organisations, users, roles), ``keys`` (signing keys) and
``credentials`` (API credentials). Importing this package registers them all.
"""

from members.admin import accounts, credentials, keys  # noqa: F401  (registers the admins)
from members.admin.reasons import ReasonForm, report_each, run_reason_action
from members.admin.site import (
    HubAdminPermissions,
    ReadOnlyHubAdmin,
    ReadOnlyInline,
    RevokedFilter,
    admin_actor,
    is_hub_admin,
)

__all__ = [
    "HubAdminPermissions",
    "ReadOnlyHubAdmin",
    "ReadOnlyInline",
    "ReasonForm",
    "RevokedFilter",
    "admin_actor",
    "is_hub_admin",
    "report_each",
    "run_reason_action",
]
