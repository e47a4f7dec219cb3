"""Who may read the reports: signed-in users whose principal holds the ``audit`` capability
(auditors and consortium admins). Anonymous visitors are sent to the login page; everyone else
signed in gets 403."""

from django.contrib.auth.mixins import AccessMixin
from django.core.exceptions import PermissionDenied

from members.models import Scope
from members.principals import principal_for_user


class AuditorRequiredMixin(AccessMixin):
    """Put first in a view's bases; checks before any other work of the view."""

    required_capability = Scope.AUDIT

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if not principal_for_user(request.user).can(self.required_capability):
            raise PermissionDenied("Reports are for auditors and consortium admins.")
        return super().dispatch(request, *args, **kwargs)
