"""Peers (federation/propagation/peers.py): registering, changing, rotating and the credentials,
through ``manage.py peer`` (the fixed CLI of docs/federation.md) and the Django admin, with the
health both show."""

import base64
import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from federation.propagation.authentication import authenticate_peer_token, split_peer_token
from federation.propagation.models import OutboxItem, PeerLink
from federation.propagation.selectors import peers_health
from federation.transparency.models import AuditEvent
from members.models import Peer
from tests.support.sending import make_peer, new_hub_key, vetted_entry


def peer(*args) -> str:
    out = io.StringIO()
    call_command("peer", *args, stdout=out)
    return out.getvalue()


def test_add_prints_one_json_line_with_the_token_shown_once(db):
    _key, public = new_hub_key()
    out = peer(
        "add", "--hub-id", "bravo.hub", "--name", "Bravo", "--url", "https://bravo.example/",
        "--public-key", public, "--inbound-policy", "trust", "--scopes", "federation",
        "--labels", "b,a", "--signal-types", "pdq,md5",
    )  # fmt: skip
    (line,) = out.splitlines()
    printed = json.loads(line)
    assert printed.keys() == {"hub_id", "inbound_token"} and printed["hub_id"] == "bravo.hub"
    registered = Peer.objects.get(hub_id="bravo.hub")
    assert authenticate_peer_token(*split_peer_token(printed["inbound_token"])) == registered
    assert (registered.url, registered.inbound_policy) == ("https://bravo.example", "trust")
    assert (registered.outbound_labels, registered.outbound_signal_types) == (
        ["a", "b"],
        ["md5", "pdq"],
    )
    assert base64.b64encode(registered.public_key_bytes).decode() == public
    assert PeerLink.objects.filter(peer=registered).exists()
    event = AuditEvent.objects.get(action="peer.registered")
    assert event.data["key_id"] == registered.key_id
    assert event.data["outbound"] == {
        "scopes": ["federation"],
        "labels": ["a", "b"],
        "signal_types": ["md5", "pdq"],
    }
    assert registered.inbound_secret_hash not in json.dumps(
        list(AuditEvent.objects.values_list("data", flat=True))
    )


def test_a_peer_without_a_url_is_known_by_key_only(db):
    out = peer("add", "--hub-id", "alpha.hub", "--name", "A", "--public-key", new_hub_key()[1])
    assert json.loads(out) == {"hub_id": "alpha.hub"}
    assert Peer.objects.get(hub_id="alpha.hub").inbound_prefix == ""


@pytest.mark.parametrize(
    "args,code",
    [
        (["--hub-id", "bad hub"], "invalid"),
        (["--hub-id", "hub.test.concordat"], "invalid"),  # this hub's own id
        (["--url", "https://user:pw@bravo.example"], "invalid"),
        (["--url", "ftp://bravo.example"], "invalid"),
        (["--url", "https://bravo.example/?x=1"], "invalid"),
        (["--public-key", base64.b64encode(b"x" * 31).decode()], "invalid"),
        (["--public-key", "not base64!"], "invalid"),
        (["--scopes", "hub"], "invalid"),
        (["--signal-types", "sha1"], "invalid"),
    ],
)
def test_add_refuses_what_is_not_a_peer(db, args, code):
    base = {"--hub-id": "bravo.hub", "--name": "Bravo", "--url": "https://bravo.example",
            "--public-key": new_hub_key()[1]}  # fmt: skip
    options = dict(base)
    options.update(dict(zip(args[::2], args[1::2], strict=True)))
    with pytest.raises(CommandError, match=code):
        peer("add", *[part for pair in options.items() for part in pair])
    assert not Peer.objects.exists() and not AuditEvent.objects.exists()


def test_a_key_that_is_not_a_curve_point_is_refused(db):
    # 32 bytes whose y-coordinate is not on Ed25519 (y = 2 has no x).
    bad = base64.b64encode((2).to_bytes(32, "little")).decode()
    with pytest.raises(CommandError, match="not a valid Ed25519"):
        peer("add", "--hub-id", "bravo.hub", "--name", "B", "--public-key", bad)


def test_update_audits_only_what_changed(db):
    make_peer("bravo.hub")
    out = peer(
        "update", "--hub-id", "bravo.hub", "--state", "suspended", "--inbound-policy", "review"
    )
    assert json.loads(out)["state"] == "suspended"
    event = AuditEvent.objects.get(action="peer.changed")
    assert event.data == {"from": {"state": "active"}, "to": {"state": "suspended"}}
    peer("update", "--hub-id", "bravo.hub", "--state", "suspended")  # nothing changes
    assert AuditEvent.objects.filter(action="peer.changed").count() == 1


def test_rotate_key_needs_a_reason_and_a_new_key(db):
    registered = make_peer("bravo.hub")
    old = registered.key_id
    same = base64.b64encode(registered.public_key_bytes).decode()
    with pytest.raises(CommandError, match="same_key"):
        peer("rotate-key", "--hub-id", "bravo.hub", "--public-key", same, "--reason", "x")
    with pytest.raises(CommandError, match="reason_required"):
        peer(
            "rotate-key", "--hub-id", "bravo.hub", "--public-key", new_hub_key()[1], "--reason", " "
        )
    _key, public = new_hub_key()
    assert json.loads(peer("rotate-key", "--hub-id", "bravo.hub", "--public-key", public,
                           "--reason", "rotated"))["key_id"] != old  # fmt: skip
    event = AuditEvent.objects.get(action="peer.key_rotated")
    assert event.data["from"] == old and event.data["reason"] == "rotated"


def test_set_outbound_token_and_an_unknown_peer(db):
    make_peer("bravo.hub", token=False)
    peer("set-outbound-token", "--hub-id", "bravo.hub", "--token", "cp_abc_def")
    assert Peer.objects.get(hub_id="bravo.hub").outbound_token == "cp_abc_def"
    event = AuditEvent.objects.filter(action="peer.credential_issued").order_by("-pk").first()
    assert event.data == {"direction": "outbound", "prefix": "abc"}
    with pytest.raises(CommandError, match="token"):
        peer("set-outbound-token", "--hub-id", "bravo.hub", "--token", "cc_member_token")
    with pytest.raises(CommandError, match="No peer"):
        peer("update", "--hub-id", "nobody.hub", "--state", "active")


def test_status_shows_each_peers_health(acme_submitter):
    bravo = make_peer("bravo.hub")
    make_peer("charlie.hub")
    for _ in range(3):
        vetted_entry(acme_submitter)
    oldest = timezone.now() - timedelta(minutes=5)
    OutboxItem.objects.filter(peer=bravo).update(created_at=oldest)
    first = OutboxItem.objects.filter(peer=bravo).order_by("pk").first()
    OutboxItem.objects.filter(pk=first.pk).update(state="dead")
    PeerLink.objects.filter(peer=bravo).update(
        last_push_error="HTTP 503", last_push_error_at=oldest
    )

    status = {h["hub_id"]: h for h in json.loads(peer("status", "--json"))}

    assert status["bravo.hub"]["outbox_depth"] == 2 and status["bravo.hub"]["dead_letters"] == 1
    assert status["bravo.hub"]["lag_seconds"] >= 300
    assert status["bravo.hub"]["last_error"] == "HTTP 503"
    assert status["charlie.hub"]["outbox_depth"] == 3 and status["charlie.hub"]["dead_letters"] == 0
    assert [h.as_json() for h in peers_health()] == [
        {**s, "lag_seconds": pytest.approx(s["lag_seconds"], abs=5) if s["lag_seconds"] else None}
        for s in status.values()
    ]
    text = peer("status")
    assert "bravo.hub" in text and "dead 1" in text and "last error" in text
    listed = json.loads(peer("list", "--json"))
    assert [p["hub_id"] for p in listed] == ["bravo.hub", "charlie.hub"]
    assert all("outbound_token" in p and p["outbound_token"] is True for p in listed)


def test_the_admin_lists_each_peers_health(
    acme_submitter, consortium_admin, django_assert_max_num_queries
):
    bravo = make_peer("bravo.hub")
    vetted_entry(acme_submitter)
    OutboxItem.objects.filter(peer=bravo).update(state="dead")
    client = Client()
    client.force_login(consortium_admin.user)

    response = client.get("/admin/members/peer/")

    assert response.status_code == 200
    page = response.content.decode()
    for heading in ("Outbox", "Lag", "Push", "Pull", "Dead letters (live / all)", "Refused"):
        assert heading in page
    assert "state__exact=dead" in page  # the dead letters link to the outbox, filtered
    detail = client.get(f"/admin/members/peer/{bravo.pk}/change/").content.decode()
    assert bravo.key_id in detail and base64.b64encode(bravo.public_key_bytes).decode() in detail
    outbox = client.get("/admin/federation/outboxitem/?state__exact=dead")
    assert outbox.status_code == 200 and "bravo.hub" in outbox.content.decode()
