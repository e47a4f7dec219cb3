"""The Django admin for this hub as a witness: the logs it witnesses and the split-view evidence
it keeps. Read-only here: logs to witness are configured with the audited management command
witnessed_logs; the rest is written by the witness."""

import base64

from django.contrib import admin, messages
from django.utils.html import format_html

from federation.transparency.models import SplitViewEvidence, WitnessedLog
from members.admin import ReadOnlyHubAdmin


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
