"""DRF permission classes built on principals: a view names the capability it needs."""

from rest_framework.permissions import BasePermission

from members.principals import principal_for_request


class IsAuthenticatedPrincipal(BasePermission):
    """Any authenticated, active principal (the default for every endpoint). A user of a suspended
    organisation is refused everywhere, whatever the endpoint asks for beyond this."""

    message = "Your organisation is suspended, or you may not do this."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated and request.user.is_active):
            return False
        organisation = principal_for_request(request).organisation
        return organisation is None or organisation.is_active


class HasCapability(IsAuthenticatedPrincipal):
    """Requires ``view.required_capability`` (or, per method, ``view.required_capabilities``)."""

    message = "Your role or token scopes do not allow this."

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        if request.method not in view.allowed_methods:
            return True  # let the view answer 405 rather than a misleading 403
        per_method = getattr(view, "required_capabilities", None)
        capability = (per_method or {}).get(
            request.method, getattr(view, "required_capability", None)
        )
        if capability is None:
            return False
        return principal_for_request(request).can(capability)
