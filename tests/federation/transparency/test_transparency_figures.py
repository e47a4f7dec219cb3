"""Figures counted from the log (GET /api/v1/log/figures and the transparency report's "from the
log at checkpoint N" section): they follow the leaves, not the mutable tables, so an edited
contribution row moves the report's table figures but not these."""

import csv
import io
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from federation.contributions.models import Contribution
from federation.transparency.audit import AuditRecord, audit_record_many
from federation.transparency.models import AuditEvent, Checkpoint
from federation.transparency.sequencer import sequence_pending
from members.actors import Actor
from tests.support.tampering import as_superuser_bypassing_triggers

ACTOR = Actor.system("test")


@pytest.fixture
def logged(acme_submitter, globex_submitter):
    acme_submitter.submit()
    acme_submitter.submit(
        labels=["attack-footage", "propaganda"], signal={"type": "md5", "value": "ab" * 16}
    )
    globex_submitter.submit()
    sequence_pending()
    return Checkpoint.objects.order_by("-tree_size").first().tree_size


def figures(client, query: str = ""):
    return client.get(f"/api/v1/log/figures{query}")


@pytest.mark.django_db
def test_figures_count_the_leaves_of_a_checkpoint(logged, auditor):
    body = figures(auditor.client).json()
    assert body["tree_size"] == logged
    assert body["events"] == logged == sum(body["events_by_action"].values())
    assert body["events_by_action"]["contribution.accepted"] == 3
    assert body["events_by_action"]["key.registered"] == 2
    assert body["contributions_accepted"] == 3
    assert body["contributions_by_action"] == {"add": 3, "retract": 0}
    assert body["contributions_by_organisation"] == {"acme": 2, "globex": 1}
    assert body["contributions_by_label"] == {"attack-footage": 3, "propaganda": 1}
    assert body["contributions_by_signal_type"] == {"md5": 1, "pdq": 2}
    first_accepted = AuditEvent.objects.filter(action="contribution.accepted").order_by(
        "leaf_index"
    )[0]
    earlier = figures(auditor.client, f"?size={first_accepted.leaf_index}").json()
    assert earlier["contributions_accepted"] == 0
    assert earlier["events"] == first_accepted.leaf_index


@pytest.mark.django_db
def test_figures_for_a_month_count_events_by_occurred_at(logged, auditor):
    this_month = timezone.now().strftime("%Y-%m")
    event = AuditEvent.objects.filter(action="contribution.accepted").order_by("leaf_index")[0]
    with as_superuser_bypassing_triggers():
        AuditEvent.objects.filter(pk=event.pk).update(
            occurred_at=timezone.now() - timedelta(days=40)
        )
    body = figures(auditor.client, f"?month={this_month}").json()
    assert body["month"] == this_month
    assert body["contributions_accepted"] == 2


@pytest.mark.django_db
def test_figures_refuse_bad_parameters_and_members(logged, auditor, acme_admin):
    assert figures(auditor.client, f"?size={logged + 1}").json()["error"]["code"] == "bad_tree_size"
    assert figures(auditor.client, "?month=2026-13").status_code == 400
    assert figures(acme_admin.client).status_code == 403


@pytest.mark.django_db
def test_the_months_at_the_ends_of_the_calendar_are_a_400_or_figures_never_a_500(logged, auditor):
    response = figures(auditor.client, "?month=0000-01")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid")
    assert response.json()["error"]["details"] == {"parameter": "month", "value": "0000-01"}
    for month in ("0001-01", "9999-12"):
        response = figures(auditor.client, f"?month={month}")
        assert response.status_code == 200, response.content
        assert response.json()["events"] == 0


@pytest.mark.django_db
def test_the_transparency_report_shows_the_figures_from_the_log_at_its_checkpoint(logged, auditor):
    browser = Client()
    browser.force_login(auditor.user)
    period = timezone.now().strftime("%Y-%m")
    # Someone edits a stored contribution's labels with SQL: the table figures move...
    contribution = Contribution.objects.filter(organisation__slug="globex").get()
    with as_superuser_bypassing_triggers():
        Contribution.objects.filter(pk=contribution.pk).update(labels=["edited"])
    response = browser.get(f"/reports/transparency/?period={period}")
    assert response.status_code == 200
    report = response.context["report"]
    assert {row["label"]: row["total"] for row in report.by_label}["attack-footage"] == 2
    # ...the figures from the log do not.
    assert report.log_figures["contributions_by_label"] == {"attack-footage": 3, "propaganda": 1}
    html = response.content.decode()
    assert f"Figures from the log at checkpoint {logged} ({period})" in html
    csv_response = browser.get(f"/reports/transparency.csv?period={period}")
    text = b"".join(csv_response.streaming_content).decode()
    cells = {
        (row["section"], row["item"]): row["count"] for row in csv.DictReader(io.StringIO(text))
    }
    section = f"from the log at checkpoint {logged}"
    assert cells[(section, "contributions accepted")] == "3"
    assert cells[(f"{section}: contributions by label", "attack-footage")] == "3"
    assert (f"{section}: contributions by label", "edited") not in cells


@pytest.mark.django_db
def test_a_report_for_a_period_that_is_not_a_month_says_the_log_figures_are_monthly(auditor):
    audit_record_many([AuditRecord(action="test.event", actor=ACTOR)])
    sequence_pending()
    browser = Client()
    browser.force_login(auditor.user)
    response = browser.get("/reports/transparency/?from=2026-09-01&to=2026-10-02")
    assert response.context["report"].log_figures is None
    assert "Figures counted from the log are shown for whole-month periods." in (
        response.content.decode()
    )
