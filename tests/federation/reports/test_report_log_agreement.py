"""Each report page says whether its contribution figures agree with the log's at the latest
checkpoint (docs/reports.md): a superuser's edit of a contribution row, which moves the tables
but not the log, is shown as a difference, figure by figure."""

import csv
import io

import pytest
from django.test import Client
from django.utils import timezone

from federation.contributions.models import Contribution, Entry
from federation.transparency.sequencer import sequence_pending
from tests.support.tampering import as_superuser_bypassing_triggers

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged(acme_submitter, globex_submitter):
    acme_submitter.submit()
    acme_submitter.submit(
        labels=["attack-footage", "propaganda"], signal={"type": "md5", "value": "ab" * 16}
    )
    globex_submitter.submit()
    sequence_pending()


@pytest.fixture
def browser(auditor):
    client = Client()
    client.force_login(auditor.user)
    return client


def overview(browser, query: str = ""):
    response = browser.get(f"/reports/{query}")
    assert response.status_code == 200
    return response.context["agreement"], response.content.decode()


def differences(agreement) -> set[tuple[str, str, int, int]]:
    return {(d.figure, d.item, d.tables, d.log) for d in agreement.differences}


def test_untouched_figures_agree_with_the_log(logged, browser):
    agreement, html = overview(browser)
    assert (agreement.state, agreement.compared, agreement.differences) == ("agree", 3, [])
    assert 'data-log-agreement="agree"' in html
    assert f"agree with the log at checkpoint {agreement.tree_size}" in html
    # Narrowed pages are compared on the same narrowing.
    assert overview(browser, "?member=acme")[0].compared == 2
    assert overview(browser, "?label=propaganda")[0].compared == 1
    assert overview(browser, "?signal_type=md5")[0].state == "agree"


def test_an_edit_of_a_contributions_labels_is_shown_as_a_difference(logged, browser):
    contribution = Contribution.objects.get(organisation__slug="globex")
    with as_superuser_bypassing_triggers():
        Contribution.objects.filter(pk=contribution.pk).update(labels=["propaganda"])
    agreement, html = overview(browser)
    assert agreement.state == "differ"
    assert differences(agreement) == {
        ("by label", "attack-footage", 2, 3),
        ("by label", "propaganda", 2, 1),
    }
    assert 'data-log-agreement="differ"' in html and "DO NOT AGREE" in html
    period = timezone.now().strftime("%Y-%m")
    report = browser.get(f"/reports/transparency/?period={period}")
    assert report.context["report"].log_agreement.state == "differ"
    assert "DO NOT AGREE" in report.content.decode()
    text = b"".join(browser.get(f"/reports/transparency.csv?period={period}").streaming_content)
    cells = {
        (row["section"], row["item"]): row["count"]
        for row in csv.DictReader(io.StringIO(text.decode()))
    }
    assert cells[("agreement with the log", "differ")] == "2"
    section = f"differs from the log at checkpoint {agreement.tree_size}: by label"
    assert cells[(section, "attack-footage (tables)")] == "2"
    assert cells[(section, "attack-footage (log)")] == "3"


def test_an_edit_of_an_entrys_signal_type_or_a_rows_origin_is_seen(logged, browser):
    entry = Contribution.objects.get(organisation__slug="globex").entry
    Entry.objects.filter(pk=entry.pk).update(signal_type="sha256")
    assert ("by signal type", "sha256", 1, 0) in differences(overview(browser)[0])
    # A row passed off as relayed by a peer leaves the comparison, and the log still counts it.
    acme_md5 = Contribution.objects.get(entry__signal_type="md5")
    with as_superuser_bypassing_triggers():
        Contribution.objects.filter(pk=acme_md5.pk).update(origin_hub="elsewhere.hub.test")
    agreement, html = overview(browser)
    assert ("by member", "acme", 1, 2) in differences(agreement)
    assert agreement.from_peers == 1
    assert "1 contribution relayed by peer hubs is counted here" in html


def test_contributions_after_the_checkpoint_are_not_compared_yet(logged, acme_submitter, browser):
    acme_submitter.submit(signal={"type": "md5", "value": "cd" * 16})
    agreement, html = overview(browser)
    assert (agreement.state, agreement.compared, agreement.pending) == ("agree", 3, 1)
    assert "compared once a checkpoint covers them" in html


def test_before_any_checkpoint_the_page_says_it_cannot_compare(acme_submitter, browser):
    acme_submitter.submit()
    agreement, html = overview(browser)
    assert agreement.state == "no_checkpoint"
    assert "No checkpoint has been signed yet" in html
