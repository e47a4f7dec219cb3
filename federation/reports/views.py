"""The auditor report pages and their CSV exports. Thin: a form reads the query string, selectors
count, charts draw, a template lays out. Bad input is shown on the page (or a 400 for CSV)."""

from urllib.parse import urlencode

from django.conf import settings
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render as django_render
from django.utils import timezone
from django.views import View

from federation.contributions.models import Entry
from federation.reports import charts, exports, selectors
from federation.reports.access import AuditorRequiredMixin
from federation.reports.forms import FilterForm, SearchForm, TransparencyForm
from federation.reports.history import entry_history
from federation.reports.log_agreement import log_agreement
from federation.reports.periodic import transparency_report

SEARCH_PAGE_SIZE = 100
# Entry ids are PostgreSQL bigints; a larger number in the URL names no entry (and must not reach
# the database, which would refuse it with an error).
MAX_ENTRY_ID = 2**63 - 1


def render(request, template: str, context: dict, status: int = 200) -> HttpResponse:
    return django_render(request, template, {"hub_id": settings.HUB_ID, **context}, status=status)


def _form_errors(form) -> str:
    return "; ".join(
        f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
        for field, messages in form.errors.items()
    )


class OverviewView(AuditorRequiredMixin, View):
    """Counts by period, member, label, signal type and action, as charts and tables."""

    def get(self, request):
        form = FilterForm(request.GET or None)
        if request.GET and not form.is_valid():
            return render(request, "reports/overview.html", {"form": form}, status=400)
        filters = form.filters() if request.GET else selectors.ReportFilters()
        by_period = selectors.counts_by_period(filters=filters)
        by_member = selectors.counts_by_member(filters=filters)
        by_label = selectors.counts_by_label(filters=filters)
        by_type = selectors.counts_by_signal_type(filters=filters)
        by_action = selectors.counts_by_action(filters=filters)
        audit_actions = selectors.audit_counts_by_action(filters=filters)
        action_rows = [
            {"name": f"{row['source']}: {row['action']}", "total": row["total"]}
            for row in by_action
        ]
        context = {
            "form": form,
            "filters": filters,
            "query": urlencode(filters.as_query()),
            "totals": selectors.overview_totals(filters=filters),
            "by_period": by_period,
            "by_member": by_member,
            "by_label": by_label,
            "by_type": by_type,
            "by_action": by_action,
            "audit_actions": audit_actions,
            "agreement": log_agreement(filters=filters),
            "charts": {
                "period": charts.period_chart(by_period, granularity=filters.granularity),
                "member": charts.ranking_chart(
                    by_member, key="member", title="Contributions by member"
                ),
                "label": charts.ranking_chart(
                    by_label, key="label", title="Contributions by label"
                ),
                "type": charts.ranking_chart(
                    by_type, key="signal_type", title="Contributions by signal type"
                ),
                "action": charts.ranking_chart(
                    action_rows, key="name", title="Actions", series="Count"
                ),
            },
        }
        return render(request, "reports/overview.html", context)


class SearchView(AuditorRequiredMixin, View):
    """Who shared what: contributions by hash value and/or member, 100 to a page."""

    def get(self, request):
        if not request.GET:
            return render(request, "reports/search.html", {"form": SearchForm()})
        form = SearchForm(request.GET)
        if not form.is_valid():
            return render(request, "reports/search.html", {"form": form}, status=400)
        value, member = form.cleaned_data["value"], form.cleaned_data["member"]
        results = selectors.contributions_search(value=value, member=member or None)
        page = Paginator(results, SEARCH_PAGE_SIZE).get_page(request.GET.get("page"))
        query = urlencode({k: v for k, v in (("value", value), ("member", member)) if v})
        return render(
            request,
            "reports/search.html",
            {"form": form, "page": page, "query": query, "searched": True},
        )


def _history_or_404(pk: int):
    if pk > MAX_ENTRY_ID:
        raise Http404("No such entry.")
    try:
        return entry_history(entry_id=pk)
    except Entry.DoesNotExist:
        raise Http404("No such entry.") from None


class EntryHistoryView(AuditorRequiredMixin, View):
    """One entry's full history, with links to the inclusion proofs of its log events."""

    def get(self, request, pk: int):
        history = _history_or_404(pk)
        return render(request, "reports/entry.html", {"history": history})


class EntryHistoryCsvView(AuditorRequiredMixin, View):
    def get(self, request, pk: int):
        history = _history_or_404(pk)
        return exports.csv_response(
            filename=f"concordat_entry-{pk}.csv",
            header=exports.ENTRY_HISTORY_COLUMNS,
            rows=exports.entry_history_rows(history),
        )


class OverviewCsvView(AuditorRequiredMixin, View):
    """Any overview report (``by-member``, ``contributions``, ...) as CSV, with the same filters."""

    def get(self, request, report: str) -> HttpResponse:
        export = exports.OVERVIEW_EXPORTS.get(report)
        if export is None:
            raise Http404("No such report.")
        form = FilterForm(request.GET)
        if not form.is_valid():
            return HttpResponseBadRequest(_form_errors(form), content_type="text/plain")
        filters = form.filters()
        header, rows = export
        return exports.csv_response(
            filename=exports.filename_for(report, filters), header=header, rows=rows(filters)
        )


class SearchCsvView(AuditorRequiredMixin, View):
    """Every contribution a search finds (not only one page), streamed."""

    def get(self, request):
        form = SearchForm(request.GET)
        if not form.is_valid():
            return HttpResponseBadRequest(_form_errors(form), content_type="text/plain")
        results = selectors.contributions_search(
            value=form.cleaned_data["value"], member=form.cleaned_data["member"] or None
        )
        return exports.csv_response(
            filename="concordat_search.csv",
            header=exports.SEARCH_COLUMNS,
            rows=exports.contribution_rows(results),
        )


class TransparencyView(AuditorRequiredMixin, View):
    """The printable periodic transparency report (``?period=YYYY-MM`` or ``?from=&to=``)."""

    csv = False

    def get(self, request):
        form = TransparencyForm(request.GET)
        if not form.is_valid():
            if self.csv:
                return HttpResponseBadRequest(_form_errors(form), content_type="text/plain")
            return render(request, "reports/transparency.html", {"form": form}, status=400)
        today = timezone.now().date()
        first_day, last_day, title = form.bounds(today)
        report = transparency_report(
            first_day=first_day, last_day=last_day, title=title, filters=form.filters(today)
        )
        if self.csv:
            return exports.csv_response(
                filename=exports.filename_for("transparency", report.filters),
                header=exports.TRANSPARENCY_COLUMNS,
                rows=exports.transparency_rows(report),
            )
        return render(
            request,
            "reports/transparency.html",
            {
                "form": form,
                "report": report,
                "query": request.GET.urlencode(),
                "root_hash_hex": bytes(report.checkpoint.root_hash).hex()
                if report.checkpoint
                else "",
            },
        )
