"""The Django admin for federation: peers (with each one's delivery health at a glance) and the
outbox (filter by peer, state and lane; put dead letters and refused items back in the queue).

Every change calls ``federation.propagation.peers`` or ``.delivery``, so it writes the same audit
events as ``manage.py peer``. A peer's pinned key is never edited in the form: it changes only by
the "rotate the pinned key" action, which asks for the new key and a reason.
"""

import base64

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.html import format_html

from federation.contributions.models import SignalType
from federation.errors import ConcordatError
from federation.propagation.delivery import outbox_retry
from federation.propagation.models import OutboxItem
from federation.propagation.peers import (
    OUTBOUND_SCOPES,
    peer_register,
    peer_rotate_key,
    peer_set_outbound_token,
    peer_update,
)
from federation.propagation.selectors import health_of, peers_with_health
from members.admin import HubAdminPermissions, ReadOnlyHubAdmin, admin_actor, is_hub_admin
from members.models import Peer


def _labels(value: str) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class PeerPolicyForm(forms.ModelForm):
    # Checked by the service (http or https, no credentials in it), not by a URLField.
    url = forms.CharField(
        required=False, max_length=500, help_text="Base URL of its API; blank: known by key only."
    )
    outbound_scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in OUTBOUND_SCOPES],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Signed scopes this peer may receive; none ticked: both. hub never leaves.",
    )
    outbound_labels = forms.CharField(
        required=False, help_text="Comma-separated label slugs; blank: every label."
    )
    outbound_signal_types = forms.MultipleChoiceField(
        choices=SignalType.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None ticked: every signal type.",
    )
    new_outbound_token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="The token the peer's admins issued to this hub (cp_…); blank: unchanged.",
    )

    class Meta:
        model = Peer
        fields = ["state", "url", "inbound_policy"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["outbound_labels"] = ", ".join(self.instance.outbound_labels)
            self.initial["outbound_scopes"] = list(self.instance.outbound_scopes)
            self.initial["outbound_signal_types"] = list(self.instance.outbound_signal_types)


class PeerAddForm(PeerPolicyForm):
    public_key_base64 = forms.CharField(
        label="Public key (base64)",
        help_text="The peer's hub key: `manage.py hub_keygen --if-missing` on the peer prints it.",
    )

    class Meta:
        model = Peer
        fields = ["hub_id", "name", "url", "inbound_policy"]


class RotateKeyForm(forms.Form):
    public_key = forms.CharField(help_text="The peer's new hub key, base64 of 32 bytes.")
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="Recorded in the audit log.",
    )


@admin.register(Peer)
class PeerAdmin(HubAdminPermissions, admin.ModelAdmin):
    """Peer hubs. The list is the federation's health at a glance."""

    list_display = [
        "hub_id",
        "name",
        "state",
        "inbound_policy",
        "outbox_depth",
        "oldest_undelivered",
        "lag",
        "last_success",
        "last_error",
        "dead_letters",
    ]
    list_filter = ["state", "inbound_policy"]
    search_fields = ["hub_id", "name", "url"]
    actions = ["rotate_key", "issue_inbound_credential"]

    def get_queryset(self, request):
        return peers_with_health()

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = PeerAddForm if obj is None else PeerPolicyForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        policies = ["outbound_scopes", "outbound_labels", "outbound_signal_types"]
        if obj is None:
            return ["hub_id", "name", "url", "public_key_base64", "inbound_policy", *policies]
        return [
            "hub_id", "name", "key", "state", "url", "inbound_policy", *policies,
            "inbound_credential", "new_outbound_token", "outbound_token_set", "health",
        ]  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["hub_id", "name", "key", "inbound_credential", "outbound_token_set", "health"]

    def save_model(self, request, obj, form, change):
        data, actor = form.cleaned_data, admin_actor(request)
        policies = {
            "outbound_scopes": list(data.get("outbound_scopes") or []),
            "outbound_labels": _labels(data.get("outbound_labels")),
            "outbound_signal_types": list(data.get("outbound_signal_types") or []),
        }
        if not change:
            registered = peer_register(
                hub_id=data["hub_id"],
                name=data["name"],
                url=data.get("url") or "",
                public_key=data["public_key_base64"],
                inbound_policy=data["inbound_policy"],
                actor=actor,
                **policies,
            )
            obj.pk = registered.peer.pk
            if registered.inbound_token:
                self.message_user(
                    request,
                    f"Give this token to {obj.hub_id}'s admins (shown only now): "
                    f"{registered.inbound_token}",
                    messages.WARNING,
                )
            peer = registered.peer
        else:
            peer = peer_update(
                peer=obj,
                state=data["state"],
                url=data.get("url") or "",
                inbound_policy=data["inbound_policy"],
                actor=actor,
                **policies,
            )
        if data.get("new_outbound_token"):
            peer_set_outbound_token(peer=peer, token=data["new_outbound_token"], actor=actor)

    # --- Health at a glance (federation.propagation.selectors, like `manage.py peer status`)

    def _health(self, peer):
        return health_of(peer)

    @admin.display(description="Outbox depth")
    def outbox_depth(self, peer) -> str:
        health = self._health(peer)
        if health.incident_depth:
            return f"{health.outbox_depth} ({health.incident_depth} incident)"
        return str(health.outbox_depth)

    @admin.display(description="Oldest undelivered")
    def oldest_undelivered(self, peer):
        return self._health(peer).oldest_undelivered or "—"

    @admin.display(description="Lag")
    def lag(self, peer) -> str:
        seconds = self._health(peer).lag_seconds
        return "—" if seconds is None else f"{seconds:.0f} s"

    @admin.display(description="Last success")
    def last_success(self, peer):
        return self._health(peer).last_success or "never"

    @admin.display(description="Last error")
    def last_error(self, peer) -> str:
        health = self._health(peer)
        if not health.last_error:
            return "—"
        return format_html(
            '<span title="{}">{}: {}</span>',
            health.last_error,
            health.last_error_at,
            health.last_error[:80],
        )

    @admin.display(description="Dead letters")
    def dead_letters(self, peer) -> str:
        count = self._health(peer).dead_letters
        if not count:
            return "0"
        return format_html(
            '<a href="../outboxitem/?peer__id__exact={}&state__exact=dead" style="color:#cf222e">'
            "{}</a>",
            peer.pk,
            count,
        )

    @admin.display(description="Health")
    def health(self, peer) -> str:
        h = self._health(peer)
        return format_html(
            "depth {} (incident {}), oldest {}, lag {}, last success {}, dead letters {}, "
            "refused {}, last pull {}{}",
            h.outbox_depth, h.incident_depth, h.oldest_undelivered or "—",
            self.lag(peer), h.last_success or "never", h.dead_letters, h.refused,
            h.last_pull or "never", f", last pull error: {h.last_pull_error}" if h.last_pull_error else "",
        )  # fmt: skip

    @admin.display(description="Pinned hub key")
    def key(self, peer) -> str:
        return format_html(
            "key id <code>{}</code><br><code style='user-select:all'>{}</code>",
            peer.key_id,
            base64.b64encode(peer.public_key_bytes).decode(),
        )

    @admin.display(description="Inbound credential")
    def inbound_credential(self, peer) -> str:
        return f"cp_{peer.inbound_prefix}_…" if peer.inbound_prefix else "none"

    @admin.display(description="Outbound token", boolean=True)
    def outbound_token_set(self, peer) -> bool:
        return bool(peer.outbound_token)

    # --- Actions

    @admin.action(description="Rotate the pinned key (asks for the key and a reason)",
                  permissions=["rotate"])  # fmt: skip
    def rotate_key(self, request, queryset):
        peers = list(queryset)
        form = RotateKeyForm(request.POST if "apply" in request.POST else None)
        if len(peers) != 1:
            self.message_user(request, "Rotate one peer's key at a time.", messages.WARNING)
            return None
        if form.is_bound and form.is_valid():
            try:
                peer_rotate_key(
                    peer=peers[0],
                    public_key=form.cleaned_data["public_key"],
                    reason=form.cleaned_data["reason"],
                    actor=admin_actor(request),
                )
            except ConcordatError as exc:
                self.message_user(request, f"{peers[0]}: {exc.message}", messages.ERROR)
                return None
            self.message_user(request, f"{peers[0]}: the new key is pinned.")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Rotate the pinned key of {peers[0]}",
            "button": "Rotate",
            "objects": peers,
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            "action": request.POST.get("action", ""),
            "select_across": request.POST.get("select_across", "0"),
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/concordat/reason_action.html", context)

    @admin.action(description="Issue a new inbound credential (the old one stops working)",
                  permissions=["rotate"])  # fmt: skip
    def issue_inbound_credential(self, request, queryset):
        from federation.propagation.authentication import peer_inbound_credential_issue

        for peer in queryset:
            if not peer.is_link:
                self.message_user(request, f"{peer}: known by key only, no credential.")
                continue
            token = peer_inbound_credential_issue(peer=peer, actor=admin_actor(request))
            self.message_user(
                request, f"{peer}: its new token (shown only now): {token}", messages.WARNING
            )

    def has_rotate_permission(self, request) -> bool:
        return is_hub_admin(request)


@admin.register(OutboxItem)
class OutboxItemAdmin(ReadOnlyHubAdmin, admin.ModelAdmin):
    """What is owed to each peer; dead letters and refused items can be put back in the queue."""

    list_display = [
        "id", "peer", "kind", "lane", "state", "attempts", "next_attempt_at", "error",
        "created_at", "delivered_at",
    ]  # fmt: skip
    list_filter = ["peer", "state", "lane", "kind"]
    list_select_related = ["peer"]
    ordering = ["-id"]
    actions = ["retry"]
    fields = [
        "peer", "kind", "contribution", "entry", "signing_key", "path", "lane", "state",
        "attempts", "next_attempt_at", "claimed_until", "last_error", "digest", "created_at",
        "delivered_at",
    ]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="Last error")
    def error(self, row) -> str:
        return row.last_error[:120]

    @admin.action(description="Retry (dead letters and refused items)", permissions=["retry"])
    def retry(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        count = outbox_retry(item_ids=ids, actor=admin_actor(request))
        skipped = len(ids) - count
        self.message_user(
            request,
            f"Put back in the queue: {count}."
            + (f" {skipped} were neither dead nor refused." if skipped else ""),
        )

    def has_retry_permission(self, request) -> bool:
        return is_hub_admin(request)
