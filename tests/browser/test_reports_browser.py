"""The auditor reports in a real headless Chromium: an auditor signs in, the overview shows
readable charts of seeded data, and the transparency report lays out for print (its federation
figures within an A4 page's width)."""

from datetime import UTC, datetime, timedelta

import pytest

from federation.contributions.models import Contribution, Entry
from federation.contributions.services import contributions_submit
from federation.propagation.models import PulledItem
from federation.transparency.actions import Action
from federation.transparency.audit import AuditRecord, audit_record_many
from federation.transparency.models import AuditEvent
from federation.vetting.models import Decision
from members.actors import Actor
from members.models import Role, StaffRoleName
from tests.support.parties import make_member, make_organisation, make_staff, random_hex
from tests.support.sending import make_peer
from tests.support.tampering import as_superuser_bypassing_triggers

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

FIRST_DAY = datetime(2026, 10, 1, 10, 0, tzinfo=UTC)
MEMBERS = {
    # member: (signal types it shares, labels it uses)
    "acme": (["pdq", "pdq", "md5"], ["attack-footage", "glorification"]),
    "globex": (["sha256", "pdq"], ["recruitment", "propaganda"]),
    "initech": (["md5"], ["manifesto"]),
    "umbrella": (["pdq", "sha256"], ["incitement", "attack-footage"]),
}
HEX_LENGTH = {"pdq": 64, "sha256": 64, "md5": 32}


def seed_contributions() -> int:
    """A few dozen contributions from four members over ten days, with retractions and votes."""
    total = 0
    for index, (slug, (types, labels)) in enumerate(MEMBERS.items()):
        party = make_member(f"{slug}-bot", make_organisation(slug), Role.SUBMITTER)
        items = [
            party.signed(
                signal={"type": kind, "value": random_hex(HEX_LENGTH[kind])},
                labels=labels[: 1 + n % len(labels)],
            )
            for n in range(4 + 3 * index)
            for kind in [types[n % len(types)]]
        ]
        results = contributions_submit(actor=party.actor, items=items)
        assert all(r.status == "created" for r in results)
        with as_superuser_bypassing_triggers():
            for n, result in enumerate(results):
                Contribution.objects.filter(uuid=result.uuid).update(
                    received_at=FIRST_DAY + timedelta(days=(n * 3 + index) % 10, hours=n)
                )
        retract = items[0]["contribution"]["signal"]
        retracted = contributions_submit(
            actor=party.actor,
            items=[party.signed(action="retract", labels=[], signal=retract)],
        )
        with as_superuser_bypassing_triggers():
            Contribution.objects.filter(uuid=retracted[0].uuid).update(
                received_at=FIRST_DAY + timedelta(days=8 + index % 2)
            )
        total += len(items) + 1
    reviewer = make_member("vera", make_organisation("wayne"), Role.REVIEWER, with_key=False)
    for entry in Entry.objects.filter(state=Entry.State.PENDING).order_by("pk")[:6]:
        Decision.objects.create(
            entry=entry,
            review_round=entry.review_round,
            kind=Decision.Kind.VOTE,
            verdict=Decision.Verdict.APPROVE if entry.pk % 3 else Decision.Verdict.REJECT,
            user=reviewer.user,
            organisation=reviewer.organisation,
            created_at=FIRST_DAY + timedelta(days=5),
        )
    return total


@pytest.fixture
def seeded() -> int:
    """The seeded contributions and an auditor, otto; returns how many contributions."""
    make_staff("otto", StaffRoleName.AUDITOR)
    return seed_contributions()


def test_auditor_sees_readable_charts_on_the_overview(
    seeded, browser_page, live_server, log_in, screenshot_path
):
    total = seeded
    page = browser_page

    log_in(page, "otto", "pw-otto", next_path="/reports/")
    assert page.url == f"{live_server.url}/reports/"
    page.goto(f"{live_server.url}/reports/?from=2026-10-01&to=2026-10-31")
    assert page.locator(".totals strong").first.inner_text() == str(total)

    charts = page.locator("figure.chart > svg")
    assert charts.count() == 5
    for index in range(5):
        box = charts.nth(index).bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100, box
    member_chart = page.locator('figure[data-chart="member"] svg')
    for slug in MEMBERS:
        assert member_chart.get_by_text(slug, exact=True).first.is_visible()
    label_chart = page.locator('figure[data-chart="label"] svg')
    assert label_chart.get_by_text("attack-footage", exact=True).first.is_visible()
    assert page.locator('figure[data-chart="period"] svg').get_by_text("05 Oct").first.is_visible()
    # No chart library script ran or was fetched: the charts are plain SVG.
    assert page.evaluate("() => document.scripts.length") == 0

    path = screenshot_path("reports-overview.png")
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000


def test_transparency_report_prints_without_navigation(
    seeded, browser_page, live_server, log_in, screenshot_path
):
    page = browser_page
    log_in(page, "otto", "pw-otto", next_path="/reports/transparency/?period=2026-10")
    assert page.locator("h1").inner_text() == "Transparency report: October 2026"
    assert page.locator("form.filters").is_visible()

    page.emulate_media(media="print")
    assert not page.locator("form.filters").is_visible()
    assert not page.locator("header.site").is_visible()
    assert page.get_by_text("Contributions by member").is_visible()
    page.screenshot(path=str(screenshot_path("reports-transparency-print.png")), full_page=True)
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF")


@pytest.fixture
def federation_figures() -> None:
    """Figures in every federation column for two peers in October 2026, one with a long hub
    id, and an auditor, otto."""
    make_staff("otto", StaffRoleName.AUDITOR)
    audit_record_many(
        [
            AuditRecord(
                action=Action.FEDERATION_DEAD_LETTERED,
                actor=Actor.system("outbox"),
                object_type="peer",
                object_id="bravo-federation-partner.example.org",
                data={"items": list(range(12345)), "attempts": 8, "message": "HTTP 503"},
            )
        ],
        occurred_at=FIRST_DAY,
    )
    event = AuditEvent.objects.get(action=Action.FEDERATION_DEAD_LETTERED)
    for hub_id in ("bravo-federation-partner.example.org", "c.hub"):
        peer = make_peer(hub_id)
        PulledItem.objects.bulk_create(
            PulledItem(peer=peer, kind="key", event=event, digest=f"{n:064x}", pulled_at=FIRST_DAY)
            for n in range(3)
        )


def test_the_federation_figures_fit_an_a4_page(
    federation_figures, browser_page, live_server, log_in, screenshot_path
):
    page = browser_page
    # The width of an A4 page less the print margins (210 - 2 x 12 mm) at 96 pixels an inch.
    page.set_viewport_size({"width": 703, "height": 1000})
    log_in(page, "otto", "pw-otto", next_path="/reports/transparency/?period=2026-10")
    page.emulate_media(media="print")

    table = page.locator("#federation-figures")
    assert table.locator("tbody tr").count() == 2
    assert "12345" in table.inner_text()
    widths = table.evaluate("t => [t.scrollWidth, t.parentElement.clientWidth]")
    assert widths[0] <= widths[1], widths
    table.screenshot(path=str(screenshot_path("reports-transparency-federation-print.png")))
