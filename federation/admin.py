"""The Django admin for consortium admins: the vetting queue (entries), rulings and disputes,
feedback, incidents, the label taxonomy, the vetting policy, and the read-only audit log.

Each action calls a service in ``federation.vetting.services`` so that it writes the same audit
events as the API (docs/vetting.md, "The admin").
"""

import base64
import json
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Prefetch, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from federation.contributions.models import Contribution, Entry, Label
from federation.errors import ConcordatError
from federation.propagation.admin import EntryFederationFields
from federation.signing import verify_signature
from federation.transparency.actions import Key, ObjectType, PolicyRule
from federation.transparency.models import (
    AuditEvent,
    Checkpoint,
    SplitViewEvidence,
    Witness,
    WitnessedLog,
)
from federation.vetting.models import Decision, Feedback, Incident, VettingPolicy
from federation.vetting.policy import with_vote_tally
from federation.vetting.services import (
    POLICY_FIELDS,
    DisputeOutcome,
    entry_resolve_dispute,
    entry_rule,
    incident_close,
    incident_declare,
    label_save,
    vetting_policy_update,
)
from members.admin import (
    HubAdminPermissions,
    ReadOnlyHubAdmin,
    ReadOnlyInline,
    admin_actor,
    is_hub_admin,
    report_each,
    run_reason_action,
)
from members.models import Organisation, Scope
from members.principals import principal_for_user

# --- The vetting queue ----------------------------------------------------------------------------


class MemberFilter(admin.SimpleListFilter):
    """Entries a member contributed to (any add or retract)."""

    title = "member"
    parameter_name = "member"

    def lookups(self, request, model_admin):
        return [(o.slug, o.slug) for o in Organisation.objects.only("slug").order_by("slug")]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(
            Exists(
                Contribution.objects.filter(
                    entry_id=OuterRef("pk"), organisation__slug=self.value()
                )
            )
        )


class IncidentFilter(admin.SimpleListFilter):
    """Entries with a contribution tagged with an incident."""

    title = "incident"
    parameter_name = "incident"

    def lookups(self, request, model_admin):
        return [(str(i.pk), i.name) for i in Incident.objects.order_by("-started_at")[:50]]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(
            Exists(Contribution.objects.filter(entry_id=OuterRef("pk"), incident_id=self.value()))
        )


class LabelFilter(admin.SimpleListFilter):
    title = "label"
    parameter_name = "label"

    def lookups(self, request, model_admin):
        return [(label.slug, label.slug) for label in Label.objects.order_by("slug")]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(
            Exists(
                Entry.labels.through.objects.filter(
                    entry_id=OuterRef("pk"), label__slug=self.value()
                )
            )
        )


class ContributionInline(ReadOnlyInline):
    model = Contribution
    fk_name = "entry"
    verbose_name_plural = "contributions (signed statements by members)"
    fields = [
        "uuid",
        "organisation",
        "action",
        "labels",
        "incident",
        "status",
        "created_at",
        "received_at",
        "content_hash_copyable",
        "signature_check",
    ]
    readonly_fields = fields
    ordering = ["received_at", "pk"]

    @admin.display(description="Content hash (SHA-256 of the signed bytes)")
    def content_hash_copyable(self, contribution) -> str:
        return copyable(contribution.content_hash)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("organisation", "signing_key")

    @admin.display(description="Signature")
    def signature_check(self, contribution) -> str:
        return _signature_badge(contribution)


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
    ordering = ["created_at", "pk"]

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


def _signature_check(contribution: Contribution) -> tuple[bool, str]:
    """Verify the stored signature again over the stored bytes with the member's stored key."""
    key = contribution.signing_key
    try:
        public_key = Ed25519PublicKey.from_public_bytes(key.public_key_bytes)
    except ValueError:
        return False, "stored key is malformed"
    if not verify_signature(
        public_key, bytes(contribution.signature), contribution.canonical.encode()
    ):
        return False, "does not verify"
    if not key.is_active_at(contribution.created_at):
        return True, f"valid, but key {key.key_id} was not active when signed"
    if key.revoked_at is not None:
        return True, f"valid; key {key.key_id} revoked since {key.revoked_at:%Y-%m-%d %H:%M}"
    return True, f"valid (key {key.key_id})"


def _signature_badge(contribution: Contribution) -> str:
    valid, text = _signature_check(contribution)
    colour = "#1a7f37" if valid else "#cf222e"
    mark = "✔" if valid else "✘"
    return format_html('<span style="color:{}">{} {}</span>', colour, mark, text)


def copyable(value: str) -> str:
    """A hash or id in full, in a monospace box that one click selects for copying."""
    return format_html(
        '<code class="copyable" style="user-select:all;word-break:break-all">{}</code>', value
    )


_RULE_TEXT = {
    PolicyRule.QUORUM: "quorum of reviewers' votes",
    PolicyRule.INCIDENT_QUORUM: "an incident's quorum of reviewers' votes",
    PolicyRule.TRUSTED_MEMBER: "automatic: a trusted member's add",
    PolicyRule.INCIDENT: "automatic: an incident's fast lane",
    PolicyRule.ADMIN_RULING: "a consortium admin's ruling",
    PolicyRule.DISPUTE_RESOLUTION: "a consortium admin's resolution of a dispute",
    PolicyRule.DISPUTE_THRESHOLD: "members' dissent reached the dispute threshold",
}


def policy_text(snapshot: dict) -> str:
    """A decision's recorded policy in words rather than JSON."""
    if not snapshot:
        return "—"
    rule = snapshot.get(Key.RULE)
    lines = [f"Rule: {_RULE_TEXT.get(rule, rule or 'not recorded')}"]
    if snapshot.get(Key.EFFECTIVE_QUORUM) is not None:
        needed = snapshot[Key.EFFECTIVE_QUORUM]
        lines.append(f"Needed {needed} approval{'s' if needed != 1 else ''} (or rejections)")
    if snapshot.get(Key.INCIDENT):
        lines.append(f"Incident {snapshot[Key.INCIDENT]}")
    if snapshot.get(Key.MEMBER):
        lines.append(f"Member {snapshot[Key.MEMBER]}")
    trusted = "yes" if snapshot.get(Key.AUTO_VET_TRUSTED) else "no"
    lines.append(
        f"Hub policy then: quorum {snapshot.get(Key.QUORUM)}, trusted members auto-vetted: "
        f"{trusted}, dispute threshold {snapshot.get(Key.DISPUTE_THRESHOLD)}"
    )
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


@admin.register(Entry)
class EntryAdmin(
    EntryFederationFields, DisputeResolutionActions, ReadOnlyHubAdmin, admin.ModelAdmin
):
    """The vetting queue: filter pending entries, approve or reject them with a reason; resolve
    disputes. Consortium admins' approvals and rejections here are rulings (no quorum)."""

    list_display = [
        "id",
        "signal",
        "state",
        "review_round",
        "label_list",
        "contributors",
        "approvals",
        "state_changed_at",
    ]
    list_display_links = ["id"]
    list_filter = ["state", LabelFilter, "signal_type", MemberFilter, IncidentFilter]
    search_fields = ["value"]
    # The queue: what has waited longest in its state first.
    ordering = ["state_changed_at", "id"]
    change_form_template = "admin/federation/entry/change_form.html"
    list_per_page = 50
    actions = ["approve_entries", "reject_entries", "confirm_disputes", "reject_disputes"]
    inlines = [ContributionInline, DecisionInline, FeedbackInline]
    fields = [
        "signal_type",
        "value_copyable",
        "state",
        "review_round",
        "label_list",
        "signature_status",
        "created_at",
        "updated_at",
        "state_changed_at",
        "dispute_resolved_at",
        *EntryFederationFields.federation_fields,
    ]
    readonly_fields = fields

    def get_inlines(self, request, obj):
        # An entry vetted on a peer's word has no decisions here: the federation fields above
        # say why it is vetted, in place of an empty list.
        if obj is not None and not obj.decisions.exists():
            return [i for i in self.inlines if i is not DecisionInline]
        return self.inlines

    def get_queryset(self, request):
        # The votes that count towards the quorum, counted as the quorum rule counts them.
        return with_vote_tally(super().get_queryset(request)).prefetch_related(
            Prefetch("labels", queryset=Label.objects.only("slug")),
            Prefetch(
                "contributions",
                queryset=Contribution.objects.select_related("organisation", "signing_key"),
            ),
        )

    @admin.display(description="Signal", ordering="value")
    def signal(self, entry) -> str:
        return format_html("{}: {}", entry.signal_type, copyable(entry.value))

    @admin.display(description="Labels")
    def label_list(self, entry) -> str:
        return ", ".join(sorted(label.slug for label in entry.labels.all()))

    @admin.display(description="Contributors")
    def contributors(self, entry) -> str:
        active = {
            c.organisation.slug
            for c in entry.contributions.all()
            if c.action == Contribution.Action.ADD and c.status == Contribution.Status.ACTIVE
        }
        return ", ".join(sorted(active)) or "—"

    @admin.display(description="Counted votes (✔/✘) this round")
    def approvals(self, entry) -> str:
        return f"{entry.counted_approvals} / {entry.counted_rejections}"

    @admin.display(description="Signature status")
    def signature_status(self, entry) -> str:
        rows = [
            (c.organisation.slug, c.action, str(c.uuid), _signature_badge(c))
            for c in entry.contributions.all()
        ]
        if not rows:
            return "—"
        return format_html(
            "<table><thead><tr><th>member</th><th>action</th><th>uuid</th><th>signature</th>"
            "</tr></thead><tbody>{}</tbody></table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )

    @admin.display(description="Value")
    def value_copyable(self, entry) -> str:
        return copyable(entry.value)

    def has_vet_permission(self, request) -> bool:
        return is_hub_admin(request)

    # --- Deciding from the entry's own page ---------------------------------------------------

    # decision → (service call, label, the state it applies to)
    PAGE_DECISIONS = {
        "approve": ("Approve (ruling)", Entry.State.PENDING),
        "reject": ("Reject (ruling)", Entry.State.PENDING),
        "confirm": ("Resolve the dispute: confirm", Entry.State.DISPUTED),
        "reject_dispute": ("Resolve the dispute: reject", Entry.State.DISPUTED),
    }

    def get_urls(self):
        decide = path(
            "<int:object_id>/decide/",
            self.admin_site.admin_view(self.decide_view),
            name="federation_entry_decide",
        )
        return [decide, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        entry = self.get_object(request, object_id)
        offered = []
        if entry is not None and self.has_vet_permission(request):
            offered = [
                (name, label)
                for name, (label, state) in self.PAGE_DECISIONS.items()
                if state == entry.state
            ]
        context = {**(extra_context or {}), "decisions": offered}
        if offered:
            context["decide_url"] = reverse("admin:federation_entry_decide", args=[entry.pk])
        return super().change_view(request, object_id, form_url, extra_context=context)

    def decide_view(self, request, object_id):
        """Approve, reject or resolve one entry from its page, with a reason; the same services
        as the actions (and the API), so the same decisions and audit events."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_vet_permission(request):
            raise PermissionDenied
        change_url = reverse("admin:federation_entry_change", args=[object_id])
        decision, reason = request.POST.get("decision"), request.POST.get("reason", "")
        actor = admin_actor(request)
        calls = {
            "approve": lambda: entry_rule(
                entry_id=object_id, verdict=Decision.Verdict.APPROVE, reason=reason, actor=actor
            ),
            "reject": lambda: entry_rule(
                entry_id=object_id, verdict=Decision.Verdict.REJECT, reason=reason, actor=actor
            ),
            "confirm": lambda: entry_resolve_dispute(
                entry_id=object_id, outcome=DisputeOutcome.CONFIRM, reason=reason, actor=actor
            ),
            "reject_dispute": lambda: entry_resolve_dispute(
                entry_id=object_id, outcome=DisputeOutcome.REJECT, reason=reason, actor=actor
            ),
        }
        if decision not in calls:
            self.message_user(request, "Choose a decision.", messages.ERROR)
            return HttpResponseRedirect(change_url)
        try:
            made = calls[decision]()
        except ConcordatError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(change_url)
        self.message_user(
            request, f"{self.PAGE_DECISIONS[decision][0]}: the entry is now {made.entry.state}."
        )
        return HttpResponseRedirect(change_url)

    def _rule(self, request, queryset, verdict: str, title: str, button: str):
        return run_reason_action(
            self,
            request,
            queryset,
            title=title,
            button=button,
            apply=lambda entry, reason: entry_rule(
                entry_id=entry.pk,
                verdict=verdict,
                reason=reason,
                actor=admin_actor(request),
            ),
        )

    @admin.action(
        description="Approve the selected pending entries (asks for a reason)", permissions=["vet"]
    )
    def approve_entries(self, request, queryset):
        return self._rule(request, queryset, Decision.Verdict.APPROVE, "Approve entries", "Approve")

    @admin.action(
        description="Reject the selected pending entries (asks for a reason)", permissions=["vet"]
    )
    def reject_entries(self, request, queryset):
        return self._rule(request, queryset, Decision.Verdict.REJECT, "Reject entries", "Reject")


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
    search_fields = ["entry__value", "reason", "user__username"]
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


# --- Taxonomy, incidents and policy ---------------------------------------------------------------


@admin.register(Label)
class LabelAdmin(HubAdminPermissions, admin.ModelAdmin):
    list_display = ["slug", "name", "active"]
    list_filter = ["active"]
    search_fields = ["slug", "name", "description"]
    fields = ["slug", "name", "description", "active"]

    def get_readonly_fields(self, request, obj=None):
        # Signed contributions name labels by slug: a slug is never renamed, only deactivated.
        return ["slug"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        label_save(label=obj, actor=admin_actor(request))


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


# --- The audit log --------------------------------------------------------------------------------

PROOF_PATH = "/api/v1/log/proof/inclusion"  # docs/transparency.md


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit log, read-only for everyone, superusers included: events are written only by
    services, in the transaction of the change they record."""

    list_display = [
        "id",
        "occurred_at",
        "action",
        "actor_label",
        "organisation",
        "object_type",
        "object_id",
        "entry_link",
        "leaf_index",
        "proof_link",
    ]
    list_filter = ["action", "actor_type", "object_type"]
    search_fields = ["action", "actor_label", "organisation", "object_id"]
    date_hierarchy = "occurred_at"
    readonly_fields = [
        "id",
        "occurred_at",
        "action",
        "actor_type",
        "actor_id",
        "actor_label",
        "organisation",
        "object_type",
        "object_id",
        "entry_link",
        "data_json",
        "leaf_index",
        "proof_link",
    ]
    fields = readonly_fields

    def get_queryset(self, request):
        # What the links need, in the page's one query: the latest signed tree size, and the
        # entry an event about a contribution names in its data.
        return (
            super()
            .get_queryset(request)
            .annotate(
                latest_tree_size=Subquery(
                    Checkpoint.objects.order_by("-tree_size").values("tree_size")[:1]
                ),
                data_entry_id=KeyTextTransform(Key.ENTRY_ID, "data"),
            )
        )

    @admin.display(description="Entry")
    def entry_link(self, event) -> str:
        entry_id = event.object_id if event.object_type == ObjectType.ENTRY else None
        entry_id = entry_id or getattr(event, "data_entry_id", None)
        if not entry_id or not str(entry_id).isdigit():
            return "—"
        url = reverse("admin:federation_entry_change", args=[entry_id])
        return format_html('<a href="{}">entry {}</a>', url, entry_id)

    @admin.display(description="Inclusion proof")
    def proof_link(self, event) -> str:
        size = getattr(event, "latest_tree_size", None)
        if event.leaf_index is None:
            return "not yet sequenced"
        if size is None or event.leaf_index >= size:
            return "awaiting a checkpoint"
        query = urlencode({"index": event.leaf_index, "tree_size": size})
        return format_html(
            '<a href="{}?{}">leaf {} of {}</a>', PROOF_PATH, query, event.leaf_index, size
        )

    @staticmethod
    def _may_read(request) -> bool:
        user = request.user
        if not (user.is_authenticated and user.is_active):
            return False
        return user.is_superuser or principal_for_user(user).can(Scope.AUDIT)

    def has_module_permission(self, request) -> bool:
        return self._may_read(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._may_read(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Data")
    def data_json(self, event) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event.data, indent=2, sort_keys=True))


# --- Witnessing -----------------------------------------------------------------------------------
# Read-only here: logs to witness and witnesses of this log are configured with the audited
# management commands (witnessed_logs, hub_witnesses); the rest is written by the witness and
# the collecting task.


@admin.register(WitnessedLog)
class WitnessedLogAdmin(ReadOnlyHubAdmin, admin.ModelAdmin):
    list_display = ["origin", "state_shown", "tree_size", "cosigned_at"]
    list_filter = ["state"]
    fields = ["origin", "vkey", "state", "tree_size", "root_hash_b64", "checkpoint", "cosigned_at"]
    readonly_fields = fields

    @admin.display(description="State")
    def state_shown(self, log) -> str:
        if log.state == WitnessedLog.State.SPLIT_VIEW:
            return format_html('<strong style="color:#ba2121">{}</strong>', log.get_state_display())
        return log.get_state_display()

    @admin.display(description="Root hash")
    def root_hash_b64(self, log) -> str:
        return base64.b64encode(bytes(log.root_hash)).decode() if log.root_hash else "—"


@admin.register(SplitViewEvidence)
class SplitViewEvidenceAdmin(ReadOnlyHubAdmin, admin.ModelAdmin):
    list_display = ["origin", "kind", "detected_at", "reason"]
    fields = [
        "origin", "kind", "reason", "detected_at", "cosigned_note", "shown_note", "old_size",
        "proof",
    ]  # fmt: skip
    readonly_fields = fields

    def changelist_view(self, request, extra_context=None):
        if self.get_queryset(request).exists():
            messages.error(
                request,
                "A witnessed log showed two histories: both signed checkpoints are kept here "
                "and at GET /api/v1/witness/evidence (docs/transparency.md, 'Witnesses').",
            )
        return super().changelist_view(request, extra_context)


@admin.register(Witness)
class WitnessAdmin(ReadOnlyHubAdmin, admin.ModelAdmin):
    list_display = ["name", "url", "active", "tree_size", "last_cosigned_at", "last_error"]
    fields = [
        "name", "vkey", "url", "active", "tree_size", "last_cosigned_at", "last_attempt_at",
        "last_error",
    ]  # fmt: skip
    readonly_fields = fields


# The admin index links auditors to the reports.
import federation.reports.admin_index  # noqa: E402, F401

# Federation: peers and the outbox (federation/propagation/admin.py).
from federation.propagation import admin as propagation_admin  # noqa: E402, F401
