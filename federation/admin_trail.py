"""The entry page's federation fields in the admin (``EntryFederationFields``, mixed into the
entry admin in ``federation/admin.py``): which peers each item of an entry was queued for, sent and
delivered to, which peers pulled its items from our feed, where its contributions arrived from,
and why the entry is in its state here, each with a link to the log leaf that records it. Read-only; one read per page
(``federation.propagation.selectors.entry_trail``)."""

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from federation.propagation.admin import shown_time
from federation.propagation.models import OutboxItem
from federation.propagation.selectors import entry_trail
from federation.reports.history import inclusion_proof_url
from federation.reports.selectors import latest_checkpoint
from federation.transparency.actions import Action, Key
from federation.vetting.wording import rule_text


def _table(headers: list[str], rows: list[tuple], empty: str) -> str:
    if not rows:
        return empty
    cells = "".join("<td>{}</td>" for _ in headers)
    return format_html(
        "<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>",
        format_html_join("", "<th>{}</th>", ((h,) for h in headers)),
        format_html_join("", "<tr>" + cells + "</tr>", rows),
    )


def _leaf(event, checkpoint) -> str:
    if event is None:
        return "—"
    if event.leaf_index is None:
        return "not yet sequenced"
    url = inclusion_proof_url(leaf_index=event.leaf_index, checkpoint=checkpoint)
    if url is None:
        return f"leaf {event.leaf_index} (awaiting a checkpoint)"
    return format_html('<a href="{}">leaf {}</a>', url, event.leaf_index)


class EntryFederationFields:
    """Read-only fields of the entry's admin page: which peers each item of the entry was queued
    for, sent and delivered to (from the outbox rows), where its contributions arrived from (the
    receipts) and why the entry is in its state here. Read once per page (``entry_trail``)."""

    federation_fields = ["why_in_state", "sent_to_peers", "pulled_by_peers", "received_from_peers"]

    def _trail(self, entry):
        if getattr(entry, "_federation_trail", None) is None:
            entry._federation_trail = entry_trail(entry=entry)
            entry._federation_checkpoint = latest_checkpoint()
        return entry._federation_trail

    @admin.display(description="Why in this state here")
    def why_in_state(self, entry) -> str:
        event = self._trail(entry).state_event
        if event is None:
            return "—"
        policy = (event.data or {}).get(Key.POLICY)
        reason = (event.data or {}).get(Key.REASON)
        text = rule_text(policy) if policy else (reason or event.action)
        return format_html(
            "{} ({}, {} by {})",
            text,
            event.action,
            shown_time(event.occurred_at),
            event.actor_label or event.actor_id,
        )

    @admin.display(description="Sent to peers")
    def sent_to_peers(self, entry) -> str:
        trail = self._trail(entry)
        rows = []
        for row in trail.deliveries:
            item = (
                f"{row.contribution.action} {row.contribution.uuid}"
                if row.contribution_id
                else "entry state"
                if row.kind == OutboxItem.Kind.ENTRY
                else "key"
            )
            state = row.get_state_display()
            if row.in_flight:
                state = f"in flight (lease until {shown_time(row.claimed_until)})"
            if row.state == OutboxItem.State.DEAD:
                state = (
                    f"dead letter, moot: {row.moot_reason}" if row.moot_reason else "dead letter"
                )
            rows.append((
                row.peer.hub_id, item, state, shown_time(row.created_at),
                shown_time(row.delivered_at) if row.delivered_at else "—", row.attempts,
                row.last_error or "—", _leaf(row.sent_event, entry._federation_checkpoint),
            ))  # fmt: skip
        return _table(
            ["peer", "item", "state", "queued", "delivered", "attempts", "last error",
             Action.FEDERATION_SENT],
            rows,
            "Not queued for any peer.",
        )  # fmt: skip

    @admin.display(description="Pulled by peers")
    def pulled_by_peers(self, entry) -> str:
        trail = self._trail(entry)
        rows = [
            (
                p.peer.hub_id,
                f"{p.contribution.action} {p.contribution.uuid}" if p.contribution_id
                else "entry state",
                shown_time(p.pulled_at), _leaf(p.event, entry._federation_checkpoint),
            )
            for p in trail.pulls
        ]  # fmt: skip
        return _table(
            ["peer", "item", "first pulled", Action.FEDERATION_SENT],
            rows,
            "No peer has pulled it from this hub's feed.",
        )

    @admin.display(description="Arrived from peers")
    def received_from_peers(self, entry) -> str:
        trail = self._trail(entry)
        rows = [
            (
                r.peer_hub, f"{r.contribution.action} {r.contribution.uuid}", r.via,
                " → ".join(r.path) or "—", shown_time(r.received_at), r.effective_scope,
                _leaf(r.received_event, entry._federation_checkpoint),
            )
            for r in trail.receipts
        ]  # fmt: skip
        return _table(
            ["peer", "item", "via", "path", "received", "scope here", Action.FEDERATION_RECEIVED],
            rows,
            "Nothing arrived from a peer: this hub's own members' entry.",
        )
