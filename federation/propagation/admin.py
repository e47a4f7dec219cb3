"""The Django admin for federation: peers (with each one's delivery and pull health at a glance),
the outbox (filter by peer, state, kind and lane, search by signal value or entry id; put dead
letters and refused items back in the queue; dead letters the peer no longer needs are shown as
moot). The entry page's federation fields are ``federation.admin_trail``.

Every change calls ``federation.propagation.peers`` or ``.delivery``, so it writes the same audit
events as ``manage.py peer``. A peer's pinned key is never edited in the form: it changes only by
the "rotate the pinned key" action, which asks for the new key and a reason.
"""

import base64

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from federation.contributions.models import Entry, SignalType
from federation.errors import ConcordatError
from federation.propagation.models import OutboxItem
from federation.propagation.peers import (
    OUTBOUND_SCOPES,
    peer_register,
    peer_rotate_key,
    peer_set_outbound_token,
    peer_update,
)
from federation.propagation.retry import outbox_retry
from federation.propagation.selectors import (
    health_of,
    live_dead_letters,
    moot_dead_letters,
    peers_with_health,
    with_moot_reason,
    without_jit,
)
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


def _health_cell(*, ok, error, error_at, recovered_at, ok_label) -> str:
    """One column of a peer's health: the last success, and the last error (in red while it
    stands; "recovered at" once a later attempt succeeded). Short times and the error cut to
    40 characters (all of it on hover), so that the list fits a 1,366-pixel screen."""
    first = format_html("{} {}", ok_label, _short(ok))
    if not error:
        if recovered_at:
            return format_html("{}<br>recovered at {}", first, _short(recovered_at))
        return first
    if recovered_at:
        return format_html(
            '{}<br><span title="{}">error {}, recovered at {}</span>',
            first, error, _short(error_at), _short(recovered_at),
        )  # fmt: skip
    return format_html(
        '{}<br><span style="color:#cf222e" title="{}">error {}: {}</span>',
        first, error, _short(error_at), error if len(error) <= 40 else error[:39] + "…",
    )  # fmt: skip


def _short(moment) -> str:
    return timezone.localtime(moment).strftime("%d %b %H:%M") if moment else "never"


def _rendered_without_jit(view, request, extra_context):
    """A changelist rendered (its queries run) inside ``without_jit``: the dead-letter
    conditions make PostgreSQL compile the list's queries for seconds otherwise."""
    with without_jit():
        response = view(request, extra_context)
        if hasattr(response, "render"):
            response.render()
    return response


def shown_time(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else "never"


@admin.register(Peer)
class PeerAdmin(HubAdminPermissions, admin.ModelAdmin):
    """Peer hubs. The list is the federation's health at a glance: sending (outbox, push) and
    receiving (pull), one compact column each, so the list fits a 1,366-pixel screen."""

    list_display = [
        "hub_id",
        "state",
        "inbound_policy",
        "outbox_depth",
        "lag",
        "push_health",
        "pull_health",
        "dead_letters",
        "refused",
    ]
    list_filter = ["state", "inbound_policy"]
    search_fields = ["hub_id", "name", "url"]
    actions = ["rotate_key", "issue_inbound_credential"]

    def get_queryset(self, request):
        return peers_with_health()

    def changelist_view(self, request, extra_context=None):
        return _rendered_without_jit(super().changelist_view, request, extra_context)

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

    @admin.display(description="Outbox")
    def outbox_depth(self, peer) -> str:
        health = self._health(peer)
        parts = [str(health.outbox_depth)]
        if health.incident_depth:
            parts.append(f"{health.incident_depth} incident")
        if health.in_flight:
            parts.append(f"{health.in_flight} in flight")
        return parts[0] + (f" ({', '.join(parts[1:])})" if parts[1:] else "")

    @admin.display(description="Lag")
    def lag(self, peer) -> str:
        health = self._health(peer)
        if health.lag_seconds is None:
            return "—"
        return format_html(
            '<span title="oldest undelivered: {}">{} s</span>',
            shown_time(health.oldest_undelivered),
            f"{health.lag_seconds:.0f}",
        )

    @admin.display(description="Push")
    def push_health(self, peer) -> str:
        h = self._health(peer)
        cell = _health_cell(
            ok=h.last_success,
            error=h.last_error,
            error_at=h.last_error_at,
            recovered_at=h.push_recovered_at,
            ok_label="last success",
        )
        return format_html(
            '{}<br><span title="{}">attestations {}</span>',
            cell,
            "whether the peer's last answer said it takes attestations under a root "
            "(and this hub's FEDERATION_ATTESTATION_ROOTS is on)",
            "under roots" if h.attestation_roots else "signed alone",
        )

    @admin.display(description="Pull")
    def pull_health(self, peer) -> str:
        h = self._health(peer)
        ours = _health_cell(
            ok=h.last_pull,
            error=h.last_pull_error,
            error_at=h.last_pull_error_at,
            recovered_at=h.pull_recovered_at,
            ok_label="last pull",
        )
        if h.peer_pulled_at is None:
            return ours
        return format_html(
            '{}<br><span title="how far it has pulled our feed (stream position)">'
            "it pulled to {}, {}</span>",
            ours, h.peer_pulled_through, _short(h.peer_pulled_at),
        )  # fmt: skip

    @admin.display(description="Dead letters (live / all)")
    def dead_letters(self, peer) -> str:
        h = self._health(peer)
        if not h.dead_letters:
            return "0"
        url = reverse("admin:federation_outboxitem_changelist")
        return format_html(
            '<a href="{}?peer={}&amp;state__exact=dead&amp;dead=live" style="color:{}">{}</a>'
            ' / <a href="{}?peer={}&amp;state__exact=dead">{}</a>',
            url, peer.hub_id, "#cf222e" if h.live_dead_letters else "inherit",
            h.live_dead_letters, url, peer.hub_id, h.dead_letters,
        )  # fmt: skip

    @admin.display(description="Refused")
    def refused(self, peer) -> str:
        count = self._health(peer).refused
        if not count:
            return "0"
        url = reverse("admin:federation_outboxitem_changelist")
        return format_html(
            '<a href="{}?peer={}&amp;state__exact=refused" style="color:#cf222e">{}</a>',
            url, peer.hub_id, count,
        )  # fmt: skip

    @admin.display(description="Health")
    def health(self, peer) -> str:
        h = self._health(peer)
        return format_html(
            "depth {} (incident {}, in flight {}), oldest {}, lag {}, last success {}, "
            "dead letters {} ({} live), refused {}, last pull {}{}{}, our feed pulled by it "
            "through {} (last {})",
            h.outbox_depth, h.incident_depth, h.in_flight, shown_time(h.oldest_undelivered),
            self.lag(peer), shown_time(h.last_success), h.dead_letters, h.live_dead_letters,
            h.refused, shown_time(h.last_pull),
            f", last push error at {shown_time(h.last_error_at)}: {h.last_error}"
            + (f" (recovered at {shown_time(h.push_recovered_at)})" if h.push_recovered_at else "")
            if h.last_error else "",
            f", last pull error at {shown_time(h.last_pull_error_at)}: {h.last_pull_error}"
            if h.last_pull_error else (
                f", pull recovered at {shown_time(h.pull_recovered_at)}" if h.pull_recovered_at else ""
            ),
            h.peer_pulled_through, shown_time(h.peer_pulled_at),
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


class PeerHubFilter(admin.SimpleListFilter):
    """The peer, named by its hub id (``?peer=<hub id>``)."""

    title = "peer (hub id)"
    parameter_name = "peer"

    def lookups(self, request, model_admin):
        return [
            (hub, hub) for hub in Peer.objects.order_by("hub_id").values_list("hub_id", flat=True)
        ]

    def queryset(self, request, queryset):
        return queryset.filter(peer__hub_id=self.value()) if self.value() else queryset


class DeadLetterFilter(admin.SimpleListFilter):
    """Dead letters that still matter, apart from those the peer no longer needs."""

    title = "dead letters"
    parameter_name = "dead"

    def lookups(self, request, model_admin):
        return [("live", "still matter"), ("moot", "moot (the peer holds the item)")]

    def queryset(self, request, queryset):
        if self.value() == "live":
            return live_dead_letters(queryset)
        if self.value() == "moot":
            return moot_dead_letters(queryset)
        return queryset


@admin.register(OutboxItem)
class OutboxItemAdmin(ReadOnlyHubAdmin, admin.ModelAdmin):
    """What is owed to each peer; dead letters and refused items can be put back in the queue.
    Dead letters the peer no longer needs (it holds the item: see
    ``federation.propagation.selectors``) are shown as moot. One query for a page of rows."""

    list_display = [
        "id", "peer_hub", "kind", "entry_link", "signal", "state_shown", "attempts", "timing",
        "error",
    ]  # fmt: skip
    list_filter = ["state", PeerHubFilter, "kind", "lane", DeadLetterFilter]
    list_select_related = ["peer", "entry", "signing_key"]
    search_fields = ["entry__value"]  # shows the search box; get_search_results does the work
    search_help_text = "A signal value (any type, exact) or an entry id."
    show_full_result_count = False
    ordering = ["-id"]
    actions = ["retry"]
    fields = [
        "peer_hub", "kind", "entry_link", "signal", "contribution", "signing_key", "path", "lane",
        "state_shown", "attempts", "next_attempt_at", "claimed_until", "last_error", "digest",
        "created_at", "delivered_at",
    ]  # fmt: skip
    readonly_fields = fields

    def get_queryset(self, request):
        # The list's related rows too: the changelist adds list_select_related only to a queryset
        # that selects none.
        return with_moot_reason(
            super().get_queryset(request).select_related(*self.list_select_related)
        )

    def changelist_view(self, request, extra_context=None):
        return _rendered_without_jit(super().changelist_view, request, extra_context)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        # Entries by value through their unique (signal_type, value) index, every type at once,
        # read first so that the rows are then found by their entry index.
        ids = list(
            Entry.objects.filter(signal_type__in=SignalType.values, value=term).values_list(
                "pk", flat=True
            )
        )
        if term.isdigit() and len(term) < 19:
            ids.append(int(term))
        return queryset.filter(entry_id__in=ids), False

    @admin.display(description="Peer", ordering="peer__hub_id")
    def peer_hub(self, row) -> str:
        return row.peer.hub_id

    @admin.display(description="Entry", ordering="entry_id")
    def entry_link(self, row) -> str:
        if row.entry_id is None:
            return "—"
        url = reverse("admin:federation_entry_change", args=[row.entry_id])
        return format_html('<a href="{}">{}</a>', url, row.entry_id)

    @admin.display(description="Signal / key")
    def signal(self, row) -> str:
        if row.entry_id is not None:
            value = row.entry.value
            return format_html(
                '{}: <code title="{}">{}</code>',
                row.entry.signal_type, value, value if len(value) <= 20 else value[:16] + "…",
            )  # fmt: skip
        if row.signing_key_id is not None:
            return format_html("key <code>{}</code>", row.signing_key.key_id)
        return "—"

    @admin.display(description="State", ordering="state")
    def state_shown(self, row) -> str:
        moot = getattr(row, "moot_reason", None)
        if row.state == OutboxItem.State.DEAD and moot:
            return format_html('dead letter, <span style="color:#1a7f37">moot: {}</span>', moot)
        if row.state == OutboxItem.State.DEAD:
            return mark_safe('<strong style="color:#cf222e">dead letter</strong>')
        if (
            row.state == OutboxItem.State.PENDING
            and row.claimed_until
            and row.claimed_until > timezone.now()
        ):
            return format_html("in flight (lease until {})", shown_time(row.claimed_until))
        return row.get_state_display()

    @admin.display(description="Queued / delivered or next try", ordering="created_at")
    def timing(self, row) -> str:
        second = (
            row.delivered_at if row.state == OutboxItem.State.DELIVERED else
            row.next_attempt_at if row.state == OutboxItem.State.PENDING else None
        )  # fmt: skip
        # Short times kept whole (the full ones on hover), so that the list fits 1,366 pixels.
        return format_html(
            '<span class="nowrap" title="{}">{}</span><br><span class="nowrap" title="{}">{}</span>',
            shown_time(row.created_at), _short(row.created_at),
            shown_time(second) if second else "", _short(second) if second else "—",
        )  # fmt: skip

    @admin.display(description="Last error")
    def error(self, row) -> str:
        if not row.last_error:
            return ""
        return format_html('<span title="{}">{}</span>', row.last_error, row.last_error[:60])

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
