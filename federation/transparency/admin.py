"""The Django admin for this hub's own log: the audit events (read-only for everyone, with links
to their entry and inclusion proof) and the witnesses that cosign this log's checkpoints."""

import json
from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import Subquery
from django.db.models.fields.json import KeyTextTransform
from django.urls import reverse
from django.utils.html import format_html

from federation.transparency.actions import Key, ObjectType
from federation.transparency.models import AuditEvent, Checkpoint, Witness
from members.admin import ReadOnlyHubAdmin
from members.models import Scope
from members.principals import principal_for_user

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


# --- Witnesses of this log ------------------------------------------------------------------------
# Read-only here: configured with the audited management command hub_witnesses; the rest is
# written by the task that collects cosignatures.


@admin.register(Witness)
class WitnessAdmin(ReadOnlyHubAdmin, admin.ModelAdmin):
    list_display = ["name", "url", "active", "tree_size", "last_cosigned_at", "last_error"]
    fields = [
        "name", "vkey", "url", "active", "tree_size", "last_cosigned_at", "last_attempt_at",
        "last_error",
    ]  # fmt: skip
    readonly_fields = fields
