"""The Django admin for consortium admins: the vetting queue (entries) and the label taxonomy.
The other admins sit beside their packages and are registered from here: vetting (rulings,
feedback, incidents, policy), transparency (the audit log, this log's witnesses), witnessing
(logs this hub witnesses), propagation (peers, the outbox) and the reports' index links.

Each action calls a service in ``federation.vetting.services`` so that it writes the same audit
events as the API (docs/vetting.md, "The admin").
"""

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Prefetch
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from federation.admin_trail import EntryFederationFields
from federation.contributions.models import Contribution, Entry, Label
from federation.errors import ConcordatError
from federation.signing import verify_signature
from federation.vetting.admin import DecisionInline, DisputeResolutionActions, FeedbackInline
from federation.vetting.models import Decision, Incident
from federation.vetting.policy import with_vote_tally
from federation.vetting.services import (
    DisputeOutcome,
    entry_resolve_dispute,
    entry_rule,
    label_save,
)
from members.admin import (
    HubAdminPermissions,
    ReadOnlyHubAdmin,
    ReadOnlyInline,
    admin_actor,
    is_hub_admin,
    run_reason_action,
)
from members.models import Organisation


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


# The admins beside their packages, registered with this app's admin.
import federation.reports.admin_index  # noqa: E402
import federation.transparency.admin  # noqa: E402
import federation.vetting.admin  # noqa: E402
import federation.witnessing.admin  # noqa: E402, F401

# Federation: peers and the outbox (federation/propagation/admin.py).
from federation.propagation import admin as propagation_admin  # noqa: E402, F401
