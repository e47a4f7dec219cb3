"""The admin of organisations, users and their roles (memberships, staff roles)."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group
from django.db import transaction

from members.admin.site import HubAdminPermissions, ReadOnlyInline, admin_actor, is_hub_admin
from members.models import (
    Membership,
    Organisation,
    StaffRole,
)
from members.principals import principal_for_user
from members.services import (
    membership_set,
    organisation_save,
    staff_role_set,
    user_save,
)

User = get_user_model()


class MembershipInline(ReadOnlyInline):
    model = Membership
    fields = ["user", "role", "created_at"]
    readonly_fields = fields


@admin.register(Organisation)
class OrganisationAdmin(HubAdminPermissions, admin.ModelAdmin):
    """This hub's members, and read-only mirrors of other hubs' members (created by federation:
    they cannot be added, changed or given users here)."""

    list_display = ["slug", "hub", "name", "status", "trusted", "created_at"]
    list_filter = ["hub", "status", "trusted"]
    search_fields = ["slug", "name", "hub"]
    fields = ["slug", "name", "status", "trusted"]
    inlines = [MembershipInline]

    def get_fields(self, request, obj=None):
        return ["hub", *self.fields] if obj is not None else self.fields

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and (obj is None or obj.is_local)

    def get_readonly_fields(self, request, obj=None):
        # The slug names the member inside signed contributions: it never changes.
        return ["hub", "slug"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        organisation_save(organisation=obj, actor=admin_actor(request))


@admin.register(Membership)
class MembershipAdmin(HubAdminPermissions, admin.ModelAdmin):
    list_display = ["user", "organisation", "role", "created_at"]
    list_filter = ["role", "organisation"]
    search_fields = ["user__username", "organisation__slug"]
    fields = ["user", "organisation", "role"]
    autocomplete_fields = ["user"]

    def get_readonly_fields(self, request, obj=None):
        return ["user", "organisation"] if obj is not None else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "organisation":  # foreign members hold no memberships
            kwargs["queryset"] = Organisation.objects.filter(hub=settings.HUB_ID)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        membership = membership_set(
            user=obj.user, organisation=obj.organisation, role=obj.role, actor=admin_actor(request)
        )
        obj.pk = membership.pk


@admin.register(StaffRole)
class StaffRoleAdmin(HubAdminPermissions, admin.ModelAdmin):
    list_display = ["user", "role", "created_at"]
    list_filter = ["role"]
    fields = ["user", "role"]
    autocomplete_fields = ["user"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return is_hub_admin(request) and (obj is None or obj.user_id != request.user.pk)

    def get_readonly_fields(self, request, obj=None):
        return ["user"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        staff_role = staff_role_set(user=obj.user, role=obj.role, actor=admin_actor(request))
        obj.pk = staff_role.pk

    def delete_model(self, request, obj):
        staff_role_set(user=obj.user, role=None, actor=admin_actor(request))

    def delete_queryset(self, request, queryset):
        for staff_role in queryset.select_related("user"):
            self.delete_model(request, staff_role)


admin.site.unregister(Group)  # roles are Concordat's own (Membership, StaffRole), not groups
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class ConcordatUserAdmin(HubAdminPermissions, UserAdmin):
    """Accounts. Roles are given in Memberships and Staff roles; tick "Staff status" for hub staff
    so that they can sign in here."""

    list_display = ["username", "email", "role", "is_active", "is_staff", "last_login"]
    list_filter = ["is_active", "is_staff"]
    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        ("Personal info", {"fields": ["first_name", "last_name", "email"]}),
        ("Status", {"fields": ["is_active", "is_staff"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    readonly_fields = ["last_login", "date_joined"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("membership", "staff_role")

    @admin.display(description="Role")
    def role(self, user) -> str:
        principal = principal_for_user(user)
        if principal.organisation is not None:
            return f"{principal.role} at {principal.organisation.slug}"
        return principal.role or "—"

    def save_model(self, request, obj, form, change):
        user_save(
            user=obj,
            actor=admin_actor(request),
            password_changed=not change or "password" in form.changed_data,
        )

    def user_change_password(self, request, id, form_url=""):
        # The new password and its audit event commit together or not at all.
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:
                user_save(
                    user=User.objects.get(pk=id), actor=admin_actor(request), password_changed=True
                )
        return response
