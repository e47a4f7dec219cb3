"""The admin of members' signing keys: registered only with the member's own signed registration,
revoked with a reason, never edited."""

import base64
import json

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.widgets import AdminSplitDateTime

from federation.errors import ConcordatError
from members.actors import Actor
from members.admin.reasons import run_reason_action
from members.admin.site import HubAdminPermissions, RevokedFilter, admin_actor, is_hub_admin
from members.models import (
    Organisation,
    SigningKey,
)
from members.services import (
    signing_key_proof_check,
    signing_key_register,
    signing_key_revoke,
)


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
