"""Who is acting, and what they may do.

A principal is a user, their organisation and role, and, when they came with an API credential,
that credential. Capabilities are the role's, intersected with the credential's scopes, and empty
for a suspended organisation, a foreign one (a read-only mirror of another hub's member, which can
never act here, members/mirrors.py) or an inactive user. A lookup-only credential (a non-member
platform, docs/private-lookup.md) has the ``lookup`` capability and no other, whoever holds it.
Every permission check in the code base asks ``principal.can(capability)``.
"""

from dataclasses import dataclass, field

from members.models import ApiCredential, Organisation, Role, Scope, StaffRoleName

ROLE_CAPABILITIES: dict[str, frozenset[str]] = {
    Role.SUBMITTER: frozenset({Scope.READ, Scope.SUBMIT}),
    Role.REVIEWER: frozenset({Scope.READ, Scope.REVIEW}),
    Role.MEMBER_ADMIN: frozenset({Scope.READ, Scope.SUBMIT, Scope.REVIEW, Scope.MANAGE}),
    StaffRoleName.CONSORTIUM_ADMIN: frozenset(
        {Scope.READ, Scope.AUDIT, Scope.HUB_ADMIN, Scope.METRICS}
    ),
    StaffRoleName.AUDITOR: frozenset({Scope.AUDIT}),
}


@dataclass(frozen=True)
class Principal:
    user: object | None
    organisation: Organisation | None = None
    role: str | None = None
    credential: ApiCredential | None = None
    capabilities: frozenset[str] = field(default_factory=frozenset)

    def can(self, capability: str) -> bool:
        return capability in self.capabilities


ANONYMOUS = Principal(user=None)


def principal_for_user(user, credential: ApiCredential | None = None) -> Principal:
    if user is None or not user.is_authenticated or not user.is_active:
        return ANONYMOUS
    organisation = None
    role = None
    membership = getattr(user, "membership", None) if _has(user, "membership") else None
    staff_role = getattr(user, "staff_role", None) if _has(user, "staff_role") else None
    if staff_role is not None:
        role = staff_role.role
    elif membership is not None:
        role = membership.role
        organisation = membership.organisation
    capabilities = ROLE_CAPABILITIES.get(role, frozenset())
    if organisation is not None and not (organisation.is_active and organisation.is_local):
        capabilities = frozenset()
    if credential is not None and credential.kind == ApiCredential.Kind.LOOKUP:
        capabilities = frozenset({Scope.LOOKUP})
        if organisation is not None and not (organisation.is_active and organisation.is_local):
            capabilities = frozenset()
        return Principal(
            user=user,
            organisation=organisation,
            role=role,
            credential=credential,
            capabilities=capabilities & frozenset(credential.scopes),
        )
    if credential is not None:
        if credential.organisation_id != (organisation.pk if organisation else None) or (
            credential.organisation is not None and not credential.organisation.is_local
        ):
            capabilities = frozenset()
        capabilities = capabilities & frozenset(credential.scopes)
    if Scope.READ in capabilities:  # whoever reads the shared set may look up in it privately
        capabilities = capabilities | {Scope.LOOKUP}
    return Principal(
        user=user,
        organisation=organisation,
        role=role,
        credential=credential,
        capabilities=capabilities,
    )


def _has(user, attribute: str) -> bool:
    try:
        getattr(user, attribute)
    except Exception:  # RelatedObjectDoesNotExist is per-model; any absence means "none".
        return False
    return True


def principal_for_request(request) -> Principal:
    """The principal of a DRF or Django request, computed once per request."""
    cached = getattr(request, "_concordat_principal", None)
    if cached is not None:
        return cached
    credential = getattr(request, "auth", None)
    if not isinstance(credential, ApiCredential):
        credential = None
    principal = principal_for_user(getattr(request, "user", None), credential)
    request._concordat_principal = principal
    return principal
