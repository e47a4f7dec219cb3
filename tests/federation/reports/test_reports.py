"""The auditor reports: who may read them, and that their numbers, searches, histories, CSV and
printable report match the data."""

import csv
import io
from datetime import UTC, datetime

import pytest
from django.test import Client

from federation.contributions.models import Contribution, Entry
from federation.contributions.services import contributions_submit
from federation.transparency.models import AuditEvent, Checkpoint
from federation.vetting.models import Decision, Feedback
from tests.support.parties import random_hex
from tests.support.tampering import as_superuser_bypassing_triggers

pytestmark = pytest.mark.django_db

OCT_2 = datetime(2026, 10, 2, 9, 30, tzinfo=UTC)
OCT_3 = datetime(2026, 10, 3, 14, 0, tzinfo=UTC)
OCT_5 = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)
SEP_20 = datetime(2026, 9, 20, 12, 0, tzinfo=UTC)


def browser_for(party) -> Client:
    client = Client()
    client.force_login(party.user)
    return client


def submit(party, items) -> list:
    results = contributions_submit(actor=party.actor, items=items)
    assert all(r.status == "created" for r in results), [r.as_dict() for r in results]
    return results


def received(results, moment) -> None:
    with as_superuser_bypassing_triggers():  # back-dating is not something the hub ever does
        Contribution.objects.filter(uuid__in=[r.uuid for r in results]).update(received_at=moment)


def csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment; filename=")
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def seeded(acme_submitter, globex_submitter, globex_reviewer):
    """ACME adds three PDQ (one shared with Globex) and one MD5 and retracts a PDQ; Globex adds
    two SHA-256 and the shared PDQ. One ACME add is a month earlier (September)."""
    shared = random_hex(64)
    acme_pdq = [acme_submitter.signed(signal={"type": "pdq", "value": shared})] + [
        acme_submitter.signed(signal={"type": "pdq", "value": random_hex(64)}) for _ in range(2)
    ]
    acme_adds = submit(acme_submitter, acme_pdq)
    received(acme_adds[:2], OCT_2)
    received(acme_adds[2:], SEP_20)
    md5_value = random_hex(32).upper()
    received(
        submit(
            acme_submitter,
            [
                acme_submitter.signed(
                    signal={"type": "md5", "value": md5_value},
                    labels=["manifesto", "propaganda"],
                )
            ],
        ),
        OCT_3,
    )
    retracted_value = acme_pdq[1]["contribution"]["signal"]["value"]
    received(
        submit(
            acme_submitter,
            [
                acme_submitter.signed(
                    action="retract", labels=[], signal={"type": "pdq", "value": retracted_value}
                )
            ],
        ),
        OCT_5,
    )
    globex_items = [
        globex_submitter.signed(
            signal={"type": "sha256", "value": random_hex(64)}, labels=["recruitment"]
        )
        for _ in range(2)
    ] + [
        globex_submitter.signed(
            signal={"type": "pdq", "value": shared}, labels=["attack-footage", "glorification"]
        )
    ]
    received(submit(globex_submitter, globex_items), OCT_5)
    shared_entry = Entry.objects.get(signal_type="pdq", value=shared)
    Decision.objects.create(
        entry=shared_entry,
        review_round=1,
        kind=Decision.Kind.VOTE,
        verdict=Decision.Verdict.APPROVE,
        user=globex_reviewer.user,
        organisation=globex_reviewer.organisation,
        reason="matches the attack video",
        policy={"quorum": 1, "rule": "quorum"},
        created_at=OCT_3,
    )
    Feedback.objects.create(
        entry=shared_entry,
        organisation=globex_reviewer.organisation,
        user=globex_reviewer.user,
        opinion=Feedback.Opinion.DISAGREE,
        note="=HYPERLINK(evil) is a news clip",
        created_at=OCT_5,
        updated_at=OCT_5,
    )
    return {
        "shared": shared,
        "shared_entry": shared_entry,
        "md5": md5_value.lower(),
        "retracted": retracted_value,
    }


# --- access --------------------------------------------------------------------------------

REPORT_URLS = [
    "/reports/",
    "/reports/search/?member=acme",
    "/reports/transparency/?period=2026-10",
    "/reports/transparency.csv?period=2026-10",
    "/reports/export/by-member.csv",
    "/reports/search.csv?member=acme",
]


@pytest.mark.parametrize("url", REPORT_URLS)
@pytest.mark.parametrize("party_name", ["auditor", "consortium_admin"])
def test_auditors_and_consortium_admins_may_read_reports(request, acme, url, party_name):
    party = request.getfixturevalue(party_name)
    assert browser_for(party).get(url).status_code == 200


@pytest.mark.parametrize("url", REPORT_URLS)
@pytest.mark.parametrize(
    "party_name", ["acme_submitter", "acme_reviewer", "acme_admin", "globex_admin"]
)
def test_members_are_refused_reports(request, url, party_name):
    party = request.getfixturevalue(party_name)
    assert browser_for(party).get(url).status_code == 403


@pytest.mark.parametrize("url", REPORT_URLS)
def test_anonymous_visitors_are_sent_to_log_in(acme, url):
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/reports/")


def test_entry_history_is_refused_to_members(seeded, acme_admin):
    url = f"/reports/entries/{seeded['shared_entry'].pk}/"
    assert browser_for(acme_admin).get(url).status_code == 403


def test_an_api_token_does_not_open_the_reports(auditor):
    # Reports are session pages; the bearer token of an auditor is for the API only.
    assert auditor.client.get("/reports/").status_code == 302


# --- overview counts -----------------------------------------------------------------------


def test_overview_counts_by_member_label_type_and_action(seeded, auditor):
    response = browser_for(auditor).get("/reports/")
    assert response.status_code == 200
    context = response.context
    assert context["totals"]["contributions"] == 8
    assert context["totals"]["adds"] == 7
    assert context["totals"]["retracts"] == 1
    assert context["totals"]["entries"] == 6
    assert context["totals"]["decisions"] == 1
    assert {r["member"]: (r["total"], r["add"], r["retract"]) for r in context["by_member"]} == {
        "acme": (5, 4, 1),
        "globex": (3, 3, 0),
    }
    assert {r["label"]: r["total"] for r in context["by_label"]} == {
        "attack-footage": 4,
        "glorification": 1,
        "manifesto": 1,
        "propaganda": 1,
        "recruitment": 2,
    }
    assert {r["signal_type"]: r["total"] for r in context["by_type"]} == {
        "pdq": 5,
        "md5": 1,
        "sha256": 2,
    }
    assert {(r["source"], r["action"]): r["total"] for r in context["by_action"]} == {
        ("contribution", "add"): 7,
        ("contribution", "retract"): 1,
        ("decision", "vote approve"): 1,
    }
    audit = {r["action"]: r["total"] for r in context["audit_actions"]}
    assert audit["contribution.accepted"] == 8


def test_overview_draws_each_chart_as_inline_svg_without_scripts(seeded, auditor):
    html = browser_for(auditor).get("/reports/").content.decode()
    for name in ("period", "member", "label", "type", "action"):
        assert f'data-chart="{name}"><svg' in html
    assert "<script" not in html
    assert "globex" in html and "attack-footage" in html


def test_counts_by_day_fill_empty_days_and_respect_the_period(seeded, auditor):
    response = browser_for(auditor).get("/reports/?from=2026-10-01&to=2026-10-31")
    assert response.status_code == 200
    rows = [
        (r["period"].isoformat(), r["add"], r["retract"]) for r in response.context["by_period"]
    ]
    assert rows == [
        ("2026-10-02", 2, 0),
        ("2026-10-03", 1, 0),
        ("2026-10-04", 0, 0),
        ("2026-10-05", 3, 1),
    ]
    assert response.context["totals"]["contributions"] == 7  # the September add is outside


def test_counts_by_month(seeded, auditor):
    response = browser_for(auditor).get("/reports/?granularity=month")
    rows = [(r["period"].isoformat(), r["total"]) for r in response.context["by_period"]]
    assert rows == [("2026-09-01", 1), ("2026-10-01", 7)]


def test_filters_by_member_label_and_signal_type(seeded, auditor):
    client = browser_for(auditor)
    by_member = client.get("/reports/?member=globex").context
    assert by_member["totals"]["contributions"] == 3
    assert [r["member"] for r in by_member["by_member"]] == ["globex"]
    by_label = client.get("/reports/?label=attack-footage").context
    assert by_label["totals"]["contributions"] == 4
    assert {r["member"]: r["total"] for r in by_label["by_member"]} == {"acme": 3, "globex": 1}
    by_type = client.get("/reports/?signal_type=pdq&member=acme").context
    assert by_type["totals"]["contributions"] == 4
    assert by_type["totals"]["retracts"] == 1


def test_bad_filters_are_explained_not_crashed(auditor):
    client = browser_for(auditor)
    response = client.get("/reports/?from=2026-13-45&member=nobody&granularity=year")
    assert response.status_code == 400
    assert b"Please correct the filters" in response.content
    backwards = client.get("/reports/?from=2026-10-05&to=2026-10-01")
    assert backwards.status_code == 400
    assert b"ends before it starts" in backwards.content
    assert client.get("/reports/export/by-member.csv?to=9999-12-31").status_code == 400


def test_overview_costs_a_fixed_number_of_queries(seeded, auditor, django_assert_max_num_queries):
    client = browser_for(auditor)
    client.get("/reports/")  # warm the session and the policy caches
    with django_assert_max_num_queries(20):
        assert client.get("/reports/").status_code == 200


# --- CSV -----------------------------------------------------------------------------------


def test_csv_by_member_matches_the_page(seeded, auditor):
    response = browser_for(auditor).get(
        "/reports/export/by-member.csv?from=2026-10-01&to=2026-10-31"
    )
    assert (
        'filename="concordat_by-member_from-2026-10-01_to-2026-10-31.csv"'
        in response["Content-Disposition"]
    )
    rows = csv_rows(response)
    assert rows == [
        {"member": "acme", "contributions": "4", "add": "3", "retract": "1", "entries": "3"},
        {"member": "globex", "contributions": "3", "add": "3", "retract": "0", "entries": "3"},
    ]


def test_csv_of_every_report_has_a_header_and_rows(seeded, auditor):
    client = browser_for(auditor)
    for report, column in [
        ("by-period", "period_start"),
        ("by-label", "label"),
        ("by-signal-type", "signal_type"),
        ("by-action", "action"),
        ("audit-actions", "audit_action"),
        ("contributions", "uuid"),
    ]:
        rows = csv_rows(client.get(f"/reports/export/{report}.csv?granularity=week"))
        assert rows, report
        assert column in rows[0], report


def test_csv_of_contributions_lists_each_with_its_member_and_value(seeded, auditor):
    response = browser_for(auditor).get("/reports/export/contributions.csv?signal_type=md5")
    assert 'filename="concordat_contributions.csv"' in response["Content-Disposition"]
    rows = csv_rows(response)
    assert len(rows) == 1
    assert rows[0]["member"] == "acme"
    assert rows[0]["value"] == seeded["md5"]
    assert rows[0]["labels"] == "manifesto propaganda"
    assert rows[0]["received_at"].startswith("2026-10-03T14:00")


def test_unknown_csv_report_is_not_found(auditor):
    assert browser_for(auditor).get("/reports/export/nothing.csv").status_code == 404


# --- who shared what -----------------------------------------------------------------------


def test_search_by_hash_finds_every_member_that_shared_it(seeded, auditor):
    response = browser_for(auditor).get(f"/reports/search/?value={seeded['shared'].upper()}")
    assert response.status_code == 200
    found = list(response.context["page"].object_list)
    assert sorted(c.organisation.slug for c in found) == ["acme", "globex"]
    assert all(c.entry.value == seeded["shared"] for c in found)
    assert f"/reports/entries/{seeded['shared_entry'].pk}/".encode() in response.content


def test_search_by_member_lists_only_their_contributions_newest_first(seeded, auditor):
    response = browser_for(auditor).get("/reports/search/?member=acme")
    found = list(response.context["page"].object_list)
    assert len(found) == 5
    assert {c.organisation.slug for c in found} == {"acme"}
    assert [c.received_at for c in found] == sorted((c.received_at for c in found), reverse=True)


def test_search_by_hash_and_member_narrows_to_both(seeded, auditor):
    response = browser_for(auditor).get(f"/reports/search/?value={seeded['shared']}&member=globex")
    assert [c.organisation.slug for c in response.context["page"].object_list] == ["globex"]


def test_search_results_are_paginated(acme_submitter, auditor):
    items = [
        acme_submitter.signed(signal={"type": "md5", "value": random_hex(32)}) for _ in range(105)
    ]
    submit(acme_submitter, items)
    client = browser_for(auditor)
    first = client.get("/reports/search/?member=acme")
    assert len(first.context["page"].object_list) == 100
    assert first.context["page"].paginator.count == 105
    second = client.get("/reports/search/?member=acme&page=2")
    assert len(second.context["page"].object_list) == 5
    rows = csv_rows(client.get("/reports/search.csv?member=acme"))
    assert len(rows) == 105


def test_search_refuses_non_hex_and_empty_queries(auditor):
    client = browser_for(auditor)
    assert client.get("/reports/search/?value=not-a-hash").status_code == 400
    assert client.get("/reports/search/?value=").status_code == 400
    assert client.get("/reports/search.csv?value=zz").status_code == 400
    assert client.get("/reports/search/").status_code == 200  # the empty form


# --- entry history -------------------------------------------------------------------------


def test_entry_history_shows_contributions_decisions_feedback_and_log_events(seeded, auditor):
    entry = seeded["shared_entry"]
    contributions = list(entry.contributions.order_by("pk"))
    first, second = (c.uuid for c in contributions)
    events = AuditEvent.objects.filter(object_type="contribution", object_id=str(first))
    events.update(leaf_index=0)
    AuditEvent.objects.filter(object_type="contribution", object_id=str(second)).update(
        leaf_index=1
    )
    AuditEvent.objects.create(
        action="entry.disputed",
        actor_type="system",
        actor_id="vetting",
        object_type="entry",
        object_id=str(entry.pk),
        data={"from": "vetted", "to": "disputed"},
        leaf_index=7,
    )
    AuditEvent.objects.create(
        action="entry.dispute_resolved",
        actor_type="user",
        actor_id="1",
        object_type="entry",
        object_id=str(entry.pk),
        data={"from": "disputed", "to": "vetted"},
    )
    Checkpoint.objects.create(tree_size=5, root_hash=b"\x01" * 32, note="hub.test\n5\n")

    response = browser_for(auditor).get(f"/reports/entries/{entry.pk}/")
    assert response.status_code == 200
    history = response.context["history"]
    assert [c.contribution.organisation.slug for c in history.contributions] == ["acme", "globex"]
    assert all(c.signature_valid for c in history.contributions)
    assert history.labels == ["attack-footage", "glorification"]
    assert [d.decision.reason for d in history.decisions] == ["matches the attack video"]
    assert [f.opinion for f in history.feedback] == ["disagree"]
    assert {e.event.action for e in history.events} == {
        "contribution.accepted",
        "entry.disputed",
        "entry.dispute_resolved",
    }
    html = response.content.decode()
    assert "/api/v1/log/proof/inclusion?index=0&amp;tree_size=5" in html
    assert "/api/v1/log/proof/inclusion?index=1&amp;tree_size=5" in html
    assert "sequenced; awaiting a checkpoint" in html  # leaf 7 is beyond the checkpoint
    assert "not yet sequenced" in html  # the resolution
    assert "verified" in html
    assert str(contributions[0].signing_key.key_id) in html
    assert contributions[0].content_hash in html
    assert "matches the attack video" in html
    # The decision's policy in words, not JSON.
    assert "Hub policy then: quorum 1" in html and "&quot;quorum&quot;" not in html


def test_entry_history_flags_a_signature_that_no_longer_verifies(seeded, auditor):
    entry = seeded["shared_entry"]
    tampered = entry.contributions.order_by("pk").first()
    with as_superuser_bypassing_triggers():
        Contribution.objects.filter(pk=tampered.pk).update(
            canonical=tampered.canonical.replace("attack-footage", "manifesto")
        )
    response = browser_for(auditor).get(f"/reports/entries/{entry.pk}/")
    assert [c.signature_valid for c in response.context["history"].contributions] == [False, True]
    assert b"DOES NOT VERIFY" in response.content


def test_entry_history_of_a_retracted_signal_shows_the_retraction(seeded, auditor):
    entry = Entry.objects.get(value=seeded["retracted"])
    response = browser_for(auditor).get(f"/reports/entries/{entry.pk}/")
    assert entry.state == Entry.State.RETRACTED
    rows = [
        (c.contribution.action, c.contribution.status)
        for c in response.context["history"].contributions
    ]
    assert rows == [("add", "withdrawn"), ("retract", "applied")]
    actions = {e.event.action for e in response.context["history"].events}
    assert "entry.retracted" in actions


def test_entry_history_csv_lists_every_record_and_defuses_formulas(seeded, auditor):
    entry = seeded["shared_entry"]
    rows = csv_rows(browser_for(auditor).get(f"/reports/entries/{entry.pk}.csv"))
    kinds = [row["kind"] for row in rows]
    assert kinds.count("contribution") == 2
    assert kinds.count("decision") == 1
    assert kinds.count("feedback") == 1
    assert kinds.count("audit_event") == 2
    feedback = next(row for row in rows if row["kind"] == "feedback")
    assert feedback["detail"] == "'=HYPERLINK(evil) is a news clip"


def test_unknown_entry_is_not_found(auditor):
    client = browser_for(auditor)
    assert client.get("/reports/entries/999999/").status_code == 404
    assert client.get(f"/reports/entries/{10**30}/").status_code == 404
    assert client.get(f"/reports/entries/{10**30}.csv").status_code == 404


def test_entry_history_costs_a_fixed_number_of_queries(
    seeded, auditor, django_assert_max_num_queries
):
    client = browser_for(auditor)
    url = f"/reports/entries/{seeded['shared_entry'].pk}/"
    client.get(url)
    # 12, and three for federation: the entry's outbox rows, its receipts, the state's event.
    with django_assert_max_num_queries(15):
        client.get(url)


# --- printable transparency report ---------------------------------------------------------


def test_transparency_report_for_a_month(seeded, auditor):
    entry = seeded["shared_entry"]
    AuditEvent.objects.create(
        action="entry.disputed",
        actor_type="system",
        actor_id="vetting",
        object_type="entry",
        object_id=str(entry.pk),
        data={"from": "vetted", "to": "disputed"},
        occurred_at=OCT_5,
    )
    Checkpoint.objects.create(
        tree_size=12, root_hash=bytes(range(32)), note="hub.test.concordat\n12\nAAEC\n\n— sig\n"
    )
    response = browser_for(auditor).get("/reports/transparency/?period=2026-10")
    assert response.status_code == 200
    report = response.context["report"]
    assert report.title == "October 2026"
    assert report.totals["contributions"] == 7
    assert report.totals["retracts"] == 1
    assert report.disputes == 1
    assert {r["member"]: r["total"] for r in report.by_member} == {"acme": 4, "globex": 3}
    html = response.content.decode()
    assert "Transparency report: October 2026" in html
    assert "<strong>7</strong> signed contributions" in html
    assert bytes(range(32)).hex() in html
    assert "hub.test.concordat\n12\nAAEC" in html
    assert "@media print" in html


def test_transparency_report_for_an_explicit_period_and_as_csv(seeded, auditor):
    client = browser_for(auditor)
    response = client.get("/reports/transparency/?from=2026-09-01&to=2026-10-02")
    report = response.context["report"]
    assert report.totals["contributions"] == 3  # September's add and the two on 2 October
    rows = csv_rows(client.get("/reports/transparency.csv?from=2026-09-01&to=2026-10-02"))
    cells = {(row["section"], row["item"]): row["count"] for row in rows}
    assert cells[("totals", "contributions")] == "3"
    assert cells[("member", "acme")] == "3"
    assert cells[("label", "attack-footage")] == "3"


def test_transparency_report_refuses_bad_periods(auditor):
    client = browser_for(auditor)
    for query in (
        "period=2026-13",
        "period=november",
        "from=2026-10-01",
        "period=2026-10&from=2026-10-01&to=2026-10-02",
    ):
        response = client.get(f"/reports/transparency/?{query}")
        assert response.status_code == 400, query
    assert client.get("/reports/transparency.csv?period=x").status_code == 400


def test_transparency_report_says_when_nothing_is_signed_yet(auditor):
    response = browser_for(auditor).get("/reports/transparency/?period=2026-10")
    assert response.status_code == 200
    assert b"No checkpoint has been signed yet." in response.content
    assert b"No contributions in this period." in response.content


def test_entry_history_says_when_stored_labels_no_longer_match_the_signed_bytes(seeded, auditor):
    from django.db import connection

    entry = seeded["shared_entry"]
    tampered = entry.contributions.order_by("pk").first()
    # an insider edits the copy, not the signed bytes
    with as_superuser_bypassing_triggers(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE federation_contribution SET labels = %s WHERE id = %s",
            ['["manifesto"]', tampered.pk],
        )
    client = browser_for(auditor)
    response = client.get(f"/reports/entries/{entry.pk}/")
    checked = response.context["history"].contributions
    assert [c.signature_valid for c in checked] == [True, True]  # the signature still holds
    assert [c.fields_match for c in checked] == [False, True]
    (mismatch,) = checked[0].mismatches
    assert (mismatch.field, mismatch.stored) == ("labels", '["manifesto"]')
    assert "attack-footage" in mismatch.signed
    html = response.content.decode()
    assert "DO NOT MATCH the signed bytes" in html
    assert "labels: stored <code>[&quot;manifesto&quot;]</code>" in html
    rows = csv_rows(client.get(f"/reports/entries/{entry.pk}.csv"))
    details = [row["detail"] for row in rows if row["kind"] == "contribution"]
    assert "stored_fields=MISMATCH(labels)" in details[0]
    assert "stored_fields=match" in details[1]


def test_entry_history_checks_every_stored_field_against_the_signed_bytes(seeded, auditor):
    entry = seeded["shared_entry"]
    first = entry.contributions.order_by("pk").first()
    response = browser_for(auditor).get(f"/reports/entries/{entry.pk}/")
    assert all(c.fields_match for c in response.context["history"].contributions)
    assert "match the signed bytes" in response.content.decode()
    with as_superuser_bypassing_triggers():
        Contribution.objects.filter(pk=first.pk).update(
            action="retract", scope="hub", origin_hub="elsewhere", created_at=SEP_20
        )
    Entry.objects.filter(pk=entry.pk).update(value="0" * 64)
    checked = browser_for(auditor).get(f"/reports/entries/{entry.pk}/").context["history"]
    assert {m.field for m in checked.contributions[0].mismatches} == {
        "action",
        "scope",
        "origin hub",
        "created_at",
        "signal value",
    }
    assert {m.field for m in checked.contributions[1].mismatches} == {"signal value"}


def test_transparency_csv_carries_the_entries_disputed_now_the_page_shows(seeded, auditor):
    Entry.objects.filter(pk=seeded["shared_entry"].pk).update(state=Entry.State.DISPUTED)
    client = browser_for(auditor)
    page = client.get("/reports/transparency/?period=2026-10")
    assert page.context["report"].entries_disputed_now == 1
    assert "1 entry is disputed as this report is generated" in page.content.decode()
    rows = csv_rows(client.get("/reports/transparency.csv?period=2026-10"))
    cells = {(row["section"], row["item"]): row["count"] for row in rows}
    assert cells[("now", "entries disputed now")] == "1"


def test_a_contribution_is_dated_by_the_time_of_its_accepted_log_event(acme_submitter, auditor):
    results = submit(
        acme_submitter,
        [acme_submitter.signed(signal={"type": "md5", "value": random_hex(32)}) for _ in range(3)],
    )
    for result in results:
        contribution = Contribution.objects.get(uuid=result.uuid)
        event = AuditEvent.objects.get(action="contribution.accepted", object_id=str(result.uuid))
        assert contribution.received_at == event.occurred_at  # to the microsecond
    # So a period's contributions in the reports are the period's accepted events in the log.
    moment = Contribution.objects.get(uuid=results[0].uuid).received_at
    day = moment.date().isoformat()
    client = browser_for(auditor)
    overview = client.get(f"/reports/?from={day}&to={day}").context["totals"]
    log = csv_rows(client.get(f"/reports/export/audit-actions.csv?from={day}&to={day}"))
    accepted = {row["audit_action"]: int(row["count"]) for row in log}["contribution.accepted"]
    assert overview["contributions"] == accepted == 3
