"""DRF permission classes built on principals: a view names the capability it needs."""

from rest_framework.permissions import BasePermission

from members.principals import principal_for_request


class IsAuthenticatedPrincipal(BasePermission):
    """Any authenticated, active principal (the default for every endpoint)."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_active)


class HasCapability(IsAuthenticatedPrincipal):
    """Requires ``view.required_capability`` (or, per method, ``view.required_capabilities``)."""

    message = "Your role or token scopes do not allow this."

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        per_method = getattr(view, "required_capabilities", None)
        capability = (per_method or {}).get(
            request.method, getattr(view, "required_capability", None)
        )
        if capability is None:
            return False
        return principal_for_request(request).can(capability)
