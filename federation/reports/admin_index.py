"""The admin's index page links to the reports for those who may read them (auditors and
consortium admins), so an auditor who signs in at /admin/ finds them, and shows an alert while
this hub, as a witness, holds split-view evidence against a log (docs/transparency.md), and a
warning for each peer with dead letters that still matter, refused items or failing pulls
(docs/operations.md, "Where an entry went")."""

from django.contrib import admin
from django.urls import reverse

from federation.propagation.selectors import peers_health
from members.admin import is_hub_admin
from members.models import Scope
from members.principals import principal_for_user

_index = admin.site.index


def index_with_reports(request, extra_context=None):
    context = dict(extra_context or {})
    if request.user.is_authenticated and principal_for_user(request.user).can(Scope.AUDIT):
        context["reports_url"] = reverse("reports:overview")
    if request.user.is_authenticated and request.user.is_staff:
        # A witness that caught a log showing two histories: the alert stays until an operator
        # resumes the log (manage.py witnessed_logs resume); the evidence itself stays.
        from federation.transparency.models import SplitViewEvidence, WitnessedLog

        split = (
            SplitViewEvidence.objects.filter(witnessed_log__state=WitnessedLog.State.SPLIT_VIEW)
            .order_by("origin")
            .values_list("origin", flat=True)
        )
        context["split_views"] = sorted(set(split))
        context["split_view_url"] = reverse("admin:federation_splitviewevidence_changelist")
    if request.user.is_authenticated and is_hub_admin(request):
        context["peer_warnings"] = _peer_warnings()
        context["peers_url"] = reverse("admin:members_peer_changelist")
    return _index(request, extra_context=context)


def _peer_warnings() -> list[str]:
    """One sentence per peer that needs attention (one query for all peers)."""
    warnings = []
    for h in peers_health():
        if not h.needs_attention:
            continue
        parts = []
        if h.live_dead_letters:
            parts.append(f"{h.live_dead_letters} dead letter{'s' * (h.live_dead_letters != 1)}")
        if h.refused:
            parts.append(f"{h.refused} refused item{'s' * (h.refused != 1)}")
        if h.pull_failing:
            since = h.last_pull_error_at
            parts.append("pulls failing" + (f" since {since:%Y-%m-%d %H:%M} UTC" if since else ""))
        warnings.append(f"{h.hub_id}: {', '.join(parts)}")
    return warnings


admin.site.index = index_with_reports
admin.site.index_template = "admin/concordat/index.html"
