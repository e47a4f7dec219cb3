"""The vetting queue in the Django admin, in a real headless Chromium: a consortium admin signs
in, filters the queue to pending entries with one label, approves one with a reason on the
intermediate page, and sees it vetted, with the ruling recorded and audited."""

import pytest

from federation.contributions.models import Entry
from federation.contributions.services import contributions_submit
from federation.transparency.models import AuditEvent
from federation.vetting.models import Decision
from members.models import Role, StaffRoleName
from tests.support.parties import make_member, make_organisation, make_staff

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def queue():
    """connie (consortium admin) and three pending entries from acme: two attack-footage, one
    manifesto. Returns the entries by name."""
    make_staff("connie", StaffRoleName.CONSORTIUM_ADMIN)
    acme = make_member("alice", make_organisation("acme"), Role.SUBMITTER)
    items = [
        acme.signed(labels=["attack-footage"]),
        acme.signed(labels=["attack-footage", "glorification"]),
        acme.signed(labels=["manifesto"]),
    ]
    results = contributions_submit(actor=acme.actor, items=items)
    entries = [Entry.objects.get(pk=r.entry_id) for r in results]
    return {"target": entries[0], "other_footage": entries[1], "manifesto": entries[2]}


def test_consortium_admin_approves_a_pending_entry_from_the_queue(
    queue, browser_page, live_server, log_in, screenshot_path
):
    page = browser_page
    target = queue["target"]
    log_in(page, "connie", "pw-connie", "/admin/federation/entry/")
    assert page.locator("#changelist").is_visible(), page.content()[:2000]

    # Filter the queue: pending, labelled attack-footage.
    page.click("#changelist-filter a:has-text('Pending review')")
    page.click("#changelist-filter a:has-text('attack-footage')")
    assert "state__exact=pending" in page.url and "label=attack-footage" in page.url
    page.wait_for_load_state("load")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2  # the manifesto entry is filtered out

    # Approve one, giving a reason on the intermediate page.
    page.check(f"input[name=_selected_action][value='{target.pk}']")
    page.select_option("select[name=action]", "approve_entries")
    page.click("button[name=index]")
    assert page.locator("h1").inner_text() == "Approve entries"
    page.fill("#id_reason", "Matches the perpetrator's original stream")
    page.click("input[type=submit][value=Approve]")
    page.wait_for_load_state("load")
    assert "Approve entries: done for 1 of 1." in page.locator("ul.messagelist").inner_text()

    # The entry is vetted: it has left the pending queue and shows as vetted.
    assert page.locator(f"input[name=_selected_action][value='{target.pk}']").count() == 0
    page.goto(f"{live_server.url}/admin/federation/entry/?state__exact=vetted")
    vetted_row = page.locator("#result_list tbody tr", has_text=f"{target.value[:16]}")
    assert vetted_row.count() == 1
    assert "Vetted" in vetted_row.inner_text()
    page.screenshot(path=str(screenshot_path("admin-vetting.png")), full_page=True)

    # Its page shows the signature check and the ruling, read-only.
    page.click(f"#result_list a[href*='/entry/{target.pk}/change/']")
    page.wait_for_load_state("load")
    body = page.locator("#content").inner_text()
    assert "✔ valid (key" in body
    assert "Matches the perpetrator's original stream" in body
    page.screenshot(path=str(screenshot_path("admin-vetting-entry.png")), full_page=True)

    target.refresh_from_db()
    assert target.state == Entry.State.VETTED
    ruling = Decision.objects.get(entry=target)
    assert (ruling.kind, ruling.user.username) == (Decision.Kind.ADMIN, "connie")
    event = AuditEvent.objects.get(action="entry.vetted", object_id=str(target.pk))
    assert (event.actor_type, event.actor_label) == ("user", "connie")
    assert Entry.objects.get(pk=queue["other_footage"].pk).state == Entry.State.PENDING


def test_consortium_admin_rejects_an_entry_from_its_own_page(
    queue, browser_page, live_server, log_in
):
    page = browser_page
    entry = queue["manifesto"]
    log_in(page, "connie", "pw-connie", f"/admin/federation/entry/{entry.pk}/change/")
    # The full value is on the page, selectable in one click.
    assert page.locator("code.copyable", has_text=entry.value).first.is_visible()

    page.fill("#id_decision_reason", "Not what the label says")
    page.click("button[name=decision][value=reject]")
    page.wait_for_load_state("load")

    assert "the entry is now rejected" in page.locator("ul.messagelist").inner_text()
    assert page.locator("button[name=decision]").count() == 0
    entry.refresh_from_db()
    assert entry.state == Entry.State.REJECTED
    event = AuditEvent.objects.get(action="entry.rejected", object_id=str(entry.pk))
    assert (event.actor_label, event.data["reason"]) == ("connie", "Not what the label says")
