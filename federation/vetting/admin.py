"""The Django admin for vetting: rulings (decisions), members' feedback and disputes, incidents
and the hub's vetting policy, plus the pieces the entry page shows (decisions, feedback, the
dispute actions, a decision's policy in words).

Each action calls a service in ``federation.vetting.services`` so that it writes the same audit
events as the API (docs/vetting.md, "The admin").
"""

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from federation.contributions.models import Entry
from federation.vetting.models import Decision, Feedback, Incident, VettingPolicy
from federation.vetting.services import (
    POLICY_FIELDS,
    DisputeOutcome,
    entry_resolve_dispute,
    incident_close,
    incident_declare,
    vetting_policy_update,
)
from federation.vetting.wording import policy_lines
from members.admin import (
    HubAdminPermissions,
    ReadOnlyHubAdmin,
    ReadOnlyInline,
    admin_actor,
    is_hub_admin,
    report_each,
    run_reason_action,
)


def policy_text(snapshot: dict) -> str:
    """A decision's recorded policy in words rather than JSON (``federation.vetting.wording``)."""
    lines = policy_lines(snapshot)
    if not lines:
        return "—"
    return format_html_join("", "<div>{}</div>", ((line,) for line in lines))


class DisputeResolutionActions:
    """Admin actions that resolve the disputes of the selected entries (or of the entries the
    selected rows point at, through ``dispute_targets``), asking for a reason."""

    dispute_targets = None

    def _resolve(self, request, queryset, outcome: str, title: str, button: str):
        return run_reason_action(
            self,
            request,
            queryset,
            title=title,
            button=button,
            targets=self.dispute_targets,
            apply=lambda entry, reason: entry_resolve_dispute(
                entry_id=entry.pk,
                outcome=outcome,
                reason=reason,
                actor=admin_actor(request),
            ),
        )

    @admin.action(description="Resolve disputes: confirm (vetted again)", permissions=["vet"])
    def confirm_disputes(self, request, queryset):
        return self._resolve(
            request, queryset, DisputeOutcome.CONFIRM, "Confirm disputed entries", "Confirm"
        )

    @admin.action(description="Resolve disputes: reject", permissions=["vet"])
    def reject_disputes(self, request, queryset):
        return self._resolve(
            request, queryset, DisputeOutcome.REJECT, "Reject disputed entries", "Reject"
        )


class DecisionInline(ReadOnlyInline):
    model = Decision
    fields = [
        "created_at",
        "review_round",
        "kind",
        "verdict",
        "organisation",
        "user",
        "reason",
        "policy_applied",
    ]
    readonly_fields = fields
    ordering = ["-created_at", "-pk"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("organisation", "user")

    @admin.display(description="Policy")
    def policy_applied(self, decision) -> str:
        return policy_text(decision.policy)


class FeedbackInline(ReadOnlyInline):
    model = Feedback
    fields = ["organisation", "opinion", "note", "user", "created_at", "updated_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("organisation", "user")


@admin.register(Decision)
class DecisionAdmin(ReadOnlyHubAdmin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "entry",
        "review_round",
        "kind",
        "verdict",
        "organisation",
        "user",
        "reason",
    ]
    list_filter = ["kind", "verdict", "organisation"]
    search_fields = ["entry__value", "reason", "user__username", "organisation__slug"]
    # The latest decisions are what an admin comes to check.
    ordering = ["-created_at", "-pk"]
    list_select_related = ["entry", "organisation", "user"]
    readonly_fields = [
        "entry",
        "review_round",
        "kind",
        "verdict",
        "organisation",
        "user",
        "reason",
        "policy_readable",
        "policy",
        "created_at",
    ]

    @admin.display(description="Policy that applied")
    def policy_readable(self, decision) -> str:
        return policy_text(decision.policy)


class EntryStateFilter(admin.SimpleListFilter):
    title = "entry state"
    parameter_name = "entry_state"

    def lookups(self, request, model_admin):
        return Entry.State.choices

    def queryset(self, request, queryset):
        return queryset.filter(entry__state=self.value()) if self.value() else queryset


@admin.register(Feedback)
class FeedbackAdmin(DisputeResolutionActions, ReadOnlyHubAdmin, admin.ModelAdmin):
    """Members' opinions of vetted entries; filter by entry state "disputed" to find disputes and
    resolve them here or on the entries."""

    list_display = ["updated_at", "entry_link", "entry_state", "organisation", "opinion", "note"]
    list_filter = [EntryStateFilter, "opinion", "organisation"]
    search_fields = ["entry__value", "note"]
    list_select_related = ["entry", "organisation"]
    readonly_fields = [
        "entry",
        "organisation",
        "user",
        "opinion",
        "note",
        "created_at",
        "updated_at",
    ]
    actions = ["confirm_disputes", "reject_disputes"]

    @admin.display(description="Entry")
    def entry_link(self, feedback) -> str:
        url = reverse("admin:federation_entry_change", args=[feedback.entry_id])
        return format_html('<a href="{}">{}</a>', url, feedback.entry)

    @admin.display(description="Entry state", ordering="entry__state")
    def entry_state(self, feedback) -> str:
        return feedback.entry.get_state_display()

    def has_vet_permission(self, request) -> bool:
        return is_hub_admin(request)

    @staticmethod
    def dispute_targets(feedback):
        return Entry.objects.filter(pk__in={f.entry_id for f in feedback}).order_by("pk")


# --- Incidents and policy -------------------------------------------------------------------------


class IncidentDeclareForm(forms.ModelForm):
    started_at = forms.SplitDateTimeField(
        required=False, widget=AdminSplitDateTime, help_text="Blank for now."
    )
    quorum = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=100,
        help_text="Used only when not auto-vetting; blank keeps the hub's quorum.",
    )

    class Meta:
        model = Incident
        fields = ["name", "description", "started_at", "auto_vet", "quorum"]


@admin.register(Incident)
class IncidentAdmin(HubAdminPermissions, admin.ModelAdmin):
    """Declare incidents here (Add) and close them with the action."""

    list_display = ["name", "started_at", "ended_at", "active", "auto_vet", "quorum", "declared_by"]
    list_filter = ["auto_vet"]
    search_fields = ["name", "description"]
    actions = ["close_incidents"]
    form = IncidentDeclareForm
    readonly_fields = [
        "id",
        "name",
        "description",
        "started_at",
        "ended_at",
        "auto_vet",
        "quorum",
        "declared_by",
    ]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # an incident's terms are fixed when declared; close it and declare anew

    def has_close_permission(self, request) -> bool:
        return is_hub_admin(request)

    def get_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else IncidentDeclareForm.Meta.fields

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    @admin.display(boolean=True, description="Active")
    def active(self, incident) -> bool:
        return incident.is_active_at(timezone.now())

    def save_model(self, request, obj, form, change):
        incident = incident_declare(
            name=form.cleaned_data["name"],
            description=form.cleaned_data.get("description") or "",
            started_at=form.cleaned_data.get("started_at"),
            auto_vet=form.cleaned_data.get("auto_vet", True),
            quorum=form.cleaned_data.get("quorum"),
            actor=admin_actor(request),
        )
        obj.pk = incident.pk

    @admin.action(description="Close the selected incidents", permissions=["close"])
    def close_incidents(self, request, queryset):
        report_each(
            self,
            request,
            queryset,
            lambda incident: incident_close(incident_id=incident.pk, actor=admin_actor(request)),
            "Incidents closed",
        )


class VettingPolicyForm(forms.ModelForm):
    quorum = forms.IntegerField(min_value=1, max_value=100)
    dispute_threshold = forms.IntegerField(min_value=1, max_value=100)

    class Meta:
        model = VettingPolicy
        fields = list(POLICY_FIELDS)


@admin.register(VettingPolicy)
class VettingPolicyAdmin(HubAdminPermissions, admin.ModelAdmin):
    """The hub's one policy row; each change is audited (``policy.changed``)."""

    form = VettingPolicyForm
    list_display = ["__str__", "quorum", "auto_vet_trusted", "dispute_threshold", "updated_at"]

    def has_add_permission(self, request, *args) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        policy = VettingPolicy.current()
        return HttpResponseRedirect(
            reverse("admin:federation_vettingpolicy_change", args=[policy.pk])
        )

    def save_model(self, request, obj, form, change):
        vetting_policy_update(
            changes={
                name: form.cleaned_data[name] for name in POLICY_FIELDS if name in form.changed_data
            },
            actor=admin_actor(request),
        )
