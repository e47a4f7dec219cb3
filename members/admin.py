"""The Django admin for consortium admins: organisations, users and roles, signing keys and API
credentials; and the admin plumbing both apps share (who may use it, errors, reason pages).

Every change goes through ``members.services`` (or ``federation.vetting.services``), so a change
made here writes the same audit event as the API, with the admin user as actor.
"""

import base64
import json
from collections.abc import Callable, Iterable

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse

from federation.errors import ConcordatError
from members.actors import Actor
from members.models import (
    ApiCredential,
    Membership,
    Organisation,
    Scope,
    SigningKey,
    StaffRole,
)
from members.principals import principal_for_user
from members.services import (
    credential_create,
    credential_revoke,
    membership_set,
    organisation_save,
    signing_key_proof_check,
    signing_key_register,
    signing_key_revoke,
    staff_role_set,
    user_save,
)

User = get_user_model()

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


# --- Actions that ask for a reason on an intermediate page --------------------------------------


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="Recorded with each decision and in the audit log.",
    )


def run_reason_action(
    modeladmin,
    request,
    queryset,
    *,
    title: str,
    button: str,
    apply: Callable[[object, str], None],
    targets: Callable[[Iterable], Iterable] | None = None,
):
    """Ask for a reason, then ``apply(obj, reason)`` to each target (the selected objects, or
    what ``targets`` derives from them), reporting each refusal as a message."""
    form = ReasonForm(request.POST if "apply" in request.POST else None)
    objects = list(targets(queryset) if targets else queryset)
    if form.is_bound and form.is_valid():
        done = 0
        for obj in objects:
            try:
                apply(obj, form.cleaned_data["reason"])
                done += 1
            except ConcordatError as exc:
                modeladmin.message_user(request, f"{obj}: {exc.message}", messages.WARNING)
        if done:
            modeladmin.message_user(request, f"{title}: done for {done} of {len(objects)}.")
        return None  # back to the change list
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "button": button,
        "objects": objects,
        "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
        "action": request.POST.get("action", ""),
        "select_across": request.POST.get("select_across", "0"),
        "form": form,
        "opts": modeladmin.model._meta,
    }
    return TemplateResponse(request, "admin/concordat/reason_action.html", context)


def report_each(modeladmin, request, queryset, apply: Callable[[object], None], done_text: str):
    """Apply a service to each selected object, reporting refusals as messages."""
    done = 0
    for obj in queryset:
        try:
            apply(obj)
            done += 1
        except ConcordatError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{done_text}: {done}.")


# --- Organisations, users and roles -------------------------------------------------------------


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


# --- Signing keys ---------------------------------------------------------------------------------


class SigningKeyRegisterForm(forms.ModelForm):
    """The admin cannot sign for a member: it registers a key only with the member's own signed
    registration (proof of possession), pasted as the JSON the member's tooling produced."""

    signed_registration = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "cols": 90}),
        max_length=4000,
        help_text='The member\'s signed key registration, as JSON: {"registration": {"kind": '
        '"concordat.key", ...}, "signature": "..."} (docs/signing.md, "Key registration").',
    )
    not_before = forms.SplitDateTimeField(
        required=False,
        widget=AdminSplitDateTime,
        help_text="Blank for now; contributions signed before this are refused.",
    )
    actor: Actor | None = None  # set per request by SigningKeyAdmin.get_form

    class Meta:
        model = SigningKey
        fields = ["organisation", "label", "not_before"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["organisation"].queryset = Organisation.objects.filter(hub=settings.HUB_ID)

    def clean_signed_registration(self) -> dict:
        try:
            envelope = json.loads(self.cleaned_data["signed_registration"])
        except ValueError as exc:
            raise forms.ValidationError(f"This is not JSON: {exc}") from exc
        if not isinstance(envelope, dict) or envelope.keys() != {"registration", "signature"}:
            raise forms.ValidationError(
                'Paste an object with exactly "registration" and "signature".'
            )
        return envelope

    def clean(self):
        cleaned = super().clean()
        envelope, organisation = cleaned.get("signed_registration"), cleaned.get("organisation")
        if envelope is not None and organisation is not None:
            try:
                # Records a refusal in the log (the admin's transaction commits an invalid form).
                signing_key_proof_check(
                    organisation=organisation,
                    registration=envelope["registration"],
                    signature=envelope["signature"],
                    actor=self.actor,
                )
            except ConcordatError as exc:
                self.add_error("signed_registration", f"{exc.code}: {exc.message}")
        return cleaned


class RevokedFilter(admin.SimpleListFilter):
    title = "revoked"
    parameter_name = "revoked"

    def lookups(self, request, model_admin):
        return [("no", "Not revoked"), ("yes", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(revoked_at__isnull=self.value() == "no")
        return queryset


@admin.register(SigningKey)
class SigningKeyAdmin(HubAdminPermissions, admin.ModelAdmin):
    list_display = ["key_id", "organisation", "label", "not_before", "revoked_at", "revoke_reason"]
    list_filter = [RevokedFilter, "organisation"]
    search_fields = ["key_id", "label", "organisation__slug"]
    actions = ["revoke_keys"]
    readonly_fields = [
        "key_id",
        "organisation",
        "public_key_base64",
        "registration",
        "label",
        "not_before",
        "revoked_at",
        "revoke_reason",
        "created_at",
        "created_by",
    ]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # keys are registered and revoked, never edited

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = type(
                "SigningKeyRegisterForm",
                (SigningKeyRegisterForm,),
                {"actor": admin_actor(request)},
            )
            kwargs["fields"] = SigningKeyRegisterForm.Meta.fields
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["organisation", "signed_registration", "label", "not_before"]
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    @admin.display(description="Public key (base64)")
    def public_key_base64(self, key) -> str:
        return base64.b64encode(key.public_key_bytes).decode()

    def save_model(self, request, obj, form, change):
        envelope = form.cleaned_data["signed_registration"]
        key = signing_key_register(
            organisation=form.cleaned_data["organisation"],
            registration=envelope["registration"],
            signature=envelope["signature"],
            label=form.cleaned_data.get("label") or "",
            not_before=form.cleaned_data.get("not_before"),
            actor=admin_actor(request),
        )
        obj.pk, obj.key_id, obj.public_key = key.pk, key.key_id, key.public_key

    @admin.action(
        description="Revoke the selected keys (asks for a reason)", permissions=["revoke"]
    )
    def revoke_keys(self, request, queryset):
        return run_reason_action(
            self,
            request,
            queryset.select_related("organisation"),
            title="Revoke signing keys",
            button="Revoke",
            apply=lambda key, reason: signing_key_revoke(
                key=key, reason=reason, actor=admin_actor(request)
            ),
        )

    def has_revoke_permission(self, request) -> bool:
        return is_hub_admin(request)


# --- API credentials ------------------------------------------------------------------------------


class CredentialCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="No more than the holder's role allows.",
    )

    class Meta:
        model = ApiCredential
        fields = ["holder", "name", "scopes", "expires_at"]


@admin.register(ApiCredential)
class ApiCredentialAdmin(HubAdminPermissions, admin.ModelAdmin):
    list_display = [
        "name",
        "token_prefix",
        "holder",
        "organisation",
        "scopes",
        "kind",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = [RevokedFilter, "organisation"]
    search_fields = ["name", "prefix", "holder__username"]
    actions = ["revoke_credentials"]
    readonly_fields = [
        "name",
        "token_prefix",
        "holder",
        "organisation",
        "scopes",
        "kind",
        "lookup_daily_limit",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    autocomplete_fields = ["holder"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = CredentialCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["holder", "name", "scopes", "expires_at"]
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    @admin.display(description="Token")
    def token_prefix(self, credential) -> str:
        return f"cc_{credential.prefix}_…"

    def save_model(self, request, obj, form, change):
        issued = credential_create(
            holder=form.cleaned_data["holder"],
            name=form.cleaned_data["name"],
            scopes=list(form.cleaned_data["scopes"]),
            expires_at=form.cleaned_data.get("expires_at"),
            actor=admin_actor(request),
        )
        obj.pk, obj.prefix = issued.credential.pk, issued.credential.prefix
        self.message_user(
            request,
            f"The token for “{issued.credential.name}” is shown only now; copy it: {issued.token}",
            messages.WARNING,
        )

    @admin.action(description="Revoke the selected credentials", permissions=["revoke"])
    def revoke_credentials(self, request, queryset):
        report_each(
            self,
            request,
            queryset.select_related("organisation"),
            lambda credential: credential_revoke(credential=credential, actor=admin_actor(request)),
            "Credentials revoked",
        )

    def has_revoke_permission(self, request) -> bool:
        return is_hub_admin(request)
