"""vpdq entries in the auditor reports (by signal type, entry history) and in TAXII (an
``x_vpdq`` pattern over the signal's value, a collection of its own)."""

import pytest
from django.test import Client
from stix2validator import ValidationOptions, validate_instance

from federation.reports import selectors
from federation.taxii import stix
from tests.support.taxii import objects
from tests.support.vetting import submit_entry
from tests.support.vpdq import digest_of, random_frames, vpdq_signal

pytestmark = pytest.mark.django_db


@pytest.fixture
def trusted_acme(acme, acme_submitter):
    acme.trusted = True
    acme.save()
    return acme_submitter


def test_a_vetted_vpdq_entry_is_an_x_vpdq_indicator_in_its_own_collection(
    trusted_acme, globex_reviewer
):
    frames = random_frames(30)
    submit_entry(trusted_acme, signal=vpdq_signal(frames))
    submit_entry(trusted_acme, signal={"type": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e"})

    collection = stix.collection_id("signal-type:vpdq")
    url = f"/taxii2/shared/collections/{collection}/objects/"
    (indicator,) = objects(globex_reviewer, url, **{"match[type]": "indicator"})

    assert indicator["pattern"] == f"[file:hashes.x_vpdq = '{digest_of(frames)}']"
    assert validate_instance(indicator, ValidationOptions(version="2.1")).errors == []


def test_reports_count_vpdq_contributions_by_signal_type_and_show_their_history(
    acme_submitter, globex_submitter, auditor
):
    frames = random_frames(12)
    entry = submit_entry(acme_submitter, signal=vpdq_signal(frames))
    submit_entry(globex_submitter, signal=vpdq_signal(frames))
    submit_entry(acme_submitter, signal={"type": "pdq", "value": "ab" * 32})

    rows = selectors.counts_by_signal_type(filters=selectors.ReportFilters())
    assert {row["signal_type"]: row["total"] for row in rows} == {"vpdq": 2, "pdq": 1}
    only = selectors.counts_by_signal_type(filters=selectors.ReportFilters(signal_type="vpdq"))
    assert [(row["signal_type"], row["add"]) for row in only] == [("vpdq", 2)]

    browser = Client()
    browser.force_login(auditor.user)
    history = browser.get(f"/reports/entries/{entry.pk}/")
    assert history.status_code == 200
    assert digest_of(frames) in history.content.decode()
