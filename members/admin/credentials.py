"""The admin of API credentials: created with scopes no wider than the holder's role (the token
shown once), revoked, never edited."""

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html_join

from members.admin.reasons import report_each
from members.admin.site import HubAdminPermissions, RevokedFilter, admin_actor, is_hub_admin
from members.models import (
    ApiCredential,
    Scope,
)
from members.services import (
    credential_create,
    credential_revoke,
)


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
        "scope_names",
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
        "scope_descriptions",
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

    @admin.display(description="Scopes")
    def scope_names(self, credential) -> str:
        return ", ".join(credential.scopes) or "—"

    @admin.display(description="Scopes")
    def scope_descriptions(self, credential) -> str:
        labels = dict(Scope.choices)
        return (
            format_html_join(
                "", "<div>{}: {}</div>", ((s, labels.get(s, s)) for s in credential.scopes)
            )
            or "—"
        )

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
