"""vpdq signals across hubs (docs/video.md §4 and §5, docs/federation.md): a relayed vpdq add is
checked and stored with its frame list like a local one, and batches that carry frame lists,
pushed or pulled, stay within the receiver's body limit."""

import json

import pytest

from federation.contributions.models import Entry
from federation.propagation.delivery import outbox_drain
from federation.propagation.models import OutboxItem
from federation.propagation.wire import parse_batch
from federation.sync.sequencer import sync_sequence_pending
from federation.video.models import VideoFrames
from tests.support.federation import RemoteHub, contribution_item
from tests.support.sending import (
    feed_reader,
    make_peer,
    vetted_entry,
)
from tests.support.vpdq import digest_of, random_frames, vpdq_signal

pytestmark = pytest.mark.django_db


@pytest.fixture
def bravo(db):
    return RemoteHub("bravo.example")


def test_a_relayed_vpdq_add_is_accepted_with_its_frames_stored(bravo):
    member = bravo.member("acme")
    frames = random_frames(300)
    item = contribution_item(member, member.contribution(signal=vpdq_signal(frames)))
    response = bravo.push([item])
    assert response.status_code == 200, response.json()
    assert response.json()["accepted"] == 1
    entry = Entry.objects.get(signal_type="vpdq", value=digest_of(frames))
    assert entry.state == Entry.State.VETTED
    assert json.loads(VideoFrames.objects.get(entry=entry).canonical) == frames


def test_a_relayed_vpdq_add_whose_value_is_not_its_frames_digest_is_rejected_alone(bravo):
    member = bravo.member("acme")
    signal = vpdq_signal(random_frames(10))
    signal["frames"] = signal["frames"][:-1]
    bad = contribution_item(member, member.contribution(signal=signal))
    good = contribution_item(member, member.contribution(signal=vpdq_signal(random_frames(4))))
    body = bravo.push([bad, good]).json()
    assert [r["status"] for r in body["results"]] == ["rejected", "accepted"]
    assert VideoFrames.objects.count() == 1


def test_pushed_batches_of_frame_lists_fit_the_receivers_body_limit(
    acme_submitter, receiver, settings
):
    settings.FEDERATION_MAX_BODY_BYTES = 400_000
    peer = make_peer("bravo.hub", url=receiver.url)
    for n in range(5):  # about 135 KB of frames each: two to a batch
        vetted_entry(acme_submitter, signal=vpdq_signal(random_frames(1500, seed=n)))

    outbox_drain(peer_id=peer.pk, lane="normal", max_rounds=10)

    sizes = [len(json.dumps(body, separators=(",", ":"))) for body in receiver.batches]
    assert [len(body["batch"]["items"]) for body in receiver.batches] == [2, 2, 1]
    assert max(sizes) <= 400_000
    assert set(OutboxItem.objects.values_list("state", flat=True)) == {"delivered"}
    assert {i["contribution"]["signal"]["value"] for i in receiver.items()} == set(
        Entry.objects.values_list("value", flat=True)
    )


def test_a_single_frame_list_over_the_limit_still_goes_alone(acme_submitter, receiver, settings):
    settings.FEDERATION_MAX_BODY_BYTES = 50_000
    peer = make_peer("bravo.hub", url=receiver.url)
    for n in range(2):
        vetted_entry(acme_submitter, signal=vpdq_signal(random_frames(1500, seed=n)))
    outbox_drain(peer_id=peer.pk, lane="normal", max_rounds=10)
    assert [len(body["batch"]["items"]) for body in receiver.batches] == [1, 1]


def test_pulled_pages_of_frame_lists_fit_the_body_limit(acme_submitter, settings):
    _bravo, client = feed_reader("bravo.hub")
    settings.FEDERATION_MAX_BODY_BYTES = 400_000
    for n in range(5):
        vetted_entry(acme_submitter, signal=vpdq_signal(random_frames(1500, seed=n)))
    sync_sequence_pending()

    after, counts, seen = 0, [], set()
    while True:
        response = client.get("/api/v1/federation/feed", {"after": after})
        assert response.status_code == 200
        assert len(response.content) <= 400_000
        batch = parse_batch(response.json())
        counts.append(len(batch.items))
        seen |= {i["contribution"]["signal"]["value"] for i in response.json()["batch"]["items"]}
        after = batch.feed["next"]
        if not batch.feed["more"]:
            break
    assert counts[:3] == [2, 2, 1]
    assert seen == set(Entry.objects.values_list("value", flat=True))
