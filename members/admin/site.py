"""The admin site's titles, who may use it (consortium admins), the actor of what they do, and
the base classes every Concordat admin builds on: nothing deleted, domain errors shown as messages."""

from django.contrib import admin, messages
from django.http import HttpResponseRedirect

from federation.errors import ConcordatError
from members.actors import Actor
from members.models import (
    Scope,
)
from members.principals import principal_for_user

admin.site.site_header = "Concordat hub administration"
admin.site.site_title = "Concordat admin"
admin.site.index_title = "Run the hub"
# The changelists of the vetting queue are wide; the page needs the room more than the nav.
admin.site.enable_nav_sidebar = False


def is_hub_admin(request) -> bool:
    """Consortium admins (the ``hub-admin`` capability) and Django superusers run the hub."""
    user = request.user
    if not (user.is_authenticated and user.is_active):
        return False
    return user.is_superuser or principal_for_user(user).can(Scope.HUB_ADMIN)


def admin_actor(request) -> Actor:
    """The signed-in admin user, as the actor of what they do here."""
    return Actor.for_user(request.user)


class HubAdminPermissions:
    """Consortium admins may view, add and change; nothing is deleted (the record must stay).

    Django's model permissions are not used: roles come from ``StaffRole`` like everywhere else.
    A domain error raised by a service while saving is shown as a message, not a server error.
    """

    def has_module_permission(self, request) -> bool:
        return is_hub_admin(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return is_hub_admin(request)

    def has_add_permission(self, request, *args) -> bool:
        return is_hub_admin(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return is_hub_admin(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changeform_view(self, request, *args, **kwargs):
        try:
            return super().changeform_view(request, *args, **kwargs)
        except ConcordatError as exc:
            # The admin's own transaction has rolled back with the service's.
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class ReadOnlyHubAdmin(HubAdminPermissions):
    """A record consortium admins read but never edit here (a service changes it, via actions)."""

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_view_permission(self, request, obj=None) -> bool:
        return is_hub_admin(request)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class RevokedFilter(admin.SimpleListFilter):
    title = "revoked"
    parameter_name = "revoked"

    def lookups(self, request, model_admin):
        return [("no", "Not revoked"), ("yes", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(revoked_at__isnull=self.value() == "no")
        return queryset
