"""The admin's federation pages fit a 1,366 x 768 screen, in a real headless Chromium: the peer
list, the outbox list and an entry's page need no horizontal scrolling, with the long values they
show (errors, hub ids, UUIDs, signals) present (docs/operations.md, "Where an entry went")."""

import pytest
from django.utils import timezone

from federation.contributions.models import Contribution
from federation.propagation.models import OutboxItem, PeerLink, PulledItem, Receipt
from federation.transparency.actions import Action, ObjectType
from federation.transparency.models import AuditEvent
from members.models import StaffRoleName
from tests.support.parties import make_staff
from tests.support.sending import make_peer, vetted_entry

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LONG_ERROR = (
    "HTTP 503 from https://federation.peer-hub-with-a-long-name.example.org/api/v1/federation/"
    "batches: upstream connect error or disconnect/reset before headers; reset reason: overflow"
)


# Elements whose content is wider than their box and that scroll (or would be cut) sideways.
INNER_SCROLLERS = """
[...document.querySelectorAll("body *")]
  .filter(e => e.scrollWidth > e.clientWidth + 1
      && ["auto", "scroll"].includes(getComputedStyle(e).overflowX))
  .map(e => `${e.tagName}.${e.className} ${e.scrollWidth} > ${e.clientWidth}`)
"""


@pytest.fixture
def federation_rows(acme_submitter):
    """connie (consortium admin); three peers with long hub ids, one failing its pushes and
    pulls; entries sent to them, one with a long dead letter, one pulled, one received."""
    make_staff("connie", StaffRoleName.CONSORTIUM_ADMIN)
    peers = [
        make_peer(f"{name}.federation.peer-hub-with-a-long-name.example.org")
        for name in ("bravo", "charlie", "delta")
    ]
    entries = [vetted_entry(acme_submitter) for _ in range(3)]
    entry = entries[0]
    now = timezone.now()
    OutboxItem.objects.filter(entry=entry, peer=peers[0]).update(
        state="dead", attempts=8, last_error=LONG_ERROR
    )
    OutboxItem.objects.filter(entry=entry, peer=peers[1]).update(
        state="delivered", attempts=1, delivered_at=now
    )
    PeerLink.objects.update_or_create(
        peer=peers[0],
        defaults={
            "last_push_error": LONG_ERROR,
            "last_push_error_at": now,
            "last_pull_error": LONG_ERROR,
            "last_pull_error_at": now,
            "peer_pulled_through": 123456,
            "peer_pulled_at": now,
        },
    )
    add = Contribution.objects.get(entry=entry)
    event = AuditEvent.objects.create(
        action=Action.FEDERATION_SENT,
        actor_type="peer",
        actor_id=peers[2].hub_id,
        object_type=ObjectType.PEER,
        object_id=peers[2].hub_id,
        data={"peer": peers[2].hub_id, "via": "pull", "items": ["a" * 64]},
    )
    PulledItem.objects.create(
        peer=peers[2], kind="contribution", entry=entry, contribution=add, event=event,
        digest="a" * 64,
    )  # fmt: skip
    Receipt.objects.create(
        contribution=add,
        peer_hub=peers[2].hub_id,
        via="pull",
        path=[peers[2].hub_id, peers[1].hub_id],
        effective_scope="federation",
        digest="b" * 64,
    )
    return entry


def test_the_peer_list_outbox_and_entry_page_fit_1366_pixels(
    federation_rows, browser_page, live_server, log_in
):
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 768})
    log_in(page, "connie", "pw-connie", "/admin/members/peer/")
    for path, shown in (
        ("/admin/members/peer/", "bravo.federation.peer-hub-with-a-long-name.example.org"),
        ("/admin/federation/outboxitem/", "dead letter"),
        (f"/admin/federation/entry/{federation_rows.pk}/change/", "Pulled by peers"),
    ):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("load")
        assert shown in page.content(), path
        widths = page.evaluate(
            "[document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]"
        )
        assert max(widths[:2]) <= widths[2], (path, widths)
        # Nor a box scrolling sideways inside the page (the admin wraps its lists in one).
        assert page.evaluate(INNER_SCROLLERS) == [], path
