"""The admin's index page links to the reports for those who may read them (auditors and
consortium admins), so an auditor who signs in at /admin/ finds them, and shows an alert while
this hub, as a witness, holds split-view evidence against a log (docs/transparency.md)."""

from django.contrib import admin
from django.urls import reverse

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
    return _index(request, extra_context=context)


admin.site.index = index_with_reports
admin.site.index_template = "admin/concordat/index.html"
