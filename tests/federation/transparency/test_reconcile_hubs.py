"""reconcile-hubs' pairing (client/concordat_client/verifier.py) of what two hubs' logs say crossed
between them: pushed batches, pull-feed pages taken, and pull pages whose answer never arrived.
The live version, with real hubs pushing and pulling, is in tests/integration."""

import io
import uuid

from concordat_client import crosscheck, verifier

A, B = "a.hub", "b.hub"


def sent(peer: str, items: list[str], *, via: str | None = None, batch: str | None = None):
    data = {"peer": peer, "batch": batch or str(uuid.uuid4()), "items": items}
    if via is not None:
        data["via"] = via
    return {"action": crosscheck.FEDERATION_SENT, "data": data}


def received(peer: str, batch: str, *, accepted=(), duplicates=(), via: str = "push"):
    data = {
        "peer": peer,
        "batch": batch,
        "via": via,
        "accepted": list(accepted),
        "duplicates": list(duplicates),
        "rejected": [],
    }
    return {"action": crosscheck.FEDERATION_RECEIVED, "data": data}


def compare(a_docs: list[dict], b_docs: list[dict]) -> tuple[int, str]:
    out = io.StringIO()
    problems = crosscheck.compare_federation_records(verifier.Report(out), (A, a_docs), (B, b_docs))
    return problems, out.getvalue()


def digests(n: int) -> list[str]:
    return [uuid.uuid4().hex * 2 for _ in range(n)]


def test_items_served_on_a_pull_page_and_recorded_by_the_puller_reconcile():
    pushed, pulled = digests(2), digests(3)
    push_batch, page = str(uuid.uuid4()), str(uuid.uuid4())
    a_log = [
        sent(B, pushed, via="push", batch=push_batch),
        sent(B, pulled, via="pull", batch=page),
    ]
    b_log = [
        received(A, push_batch, accepted=pushed),
        received(A, page, accepted=pulled[:1], duplicates=pulled[1:], via="pull"),
    ]
    problems, out = compare(a_log, b_log)
    assert problems == 0, out
    assert f"OK    {A} -> {B}: 5 items sent, every one recorded, none other" in out


def test_items_pulled_that_the_feed_never_recorded_serving_are_unmatched():
    # What a hub without the feed's federation.sent left: every pulled item unmatched.
    pulled, page = digests(3), str(uuid.uuid4())
    problems, out = compare([], [received(A, page, duplicates=pulled, via="pull")])
    assert problems == 3
    assert f"3 items {B} recorded from {A} that {A} never says it sent" in out


def test_a_pull_page_never_recorded_by_the_puller_is_a_note_not_a_failure():
    # The answer was lost (or the page refused whole): the puller asks again from its cursor,
    # and the next page carries the same entries with fresh attestations (other digests).
    lost, again = digests(2), digests(2)
    lost_page, next_page = str(uuid.uuid4()), str(uuid.uuid4())
    a_log = [
        sent(B, lost, via="pull", batch=lost_page),
        sent(B, again, via="pull", batch=next_page),
    ]
    b_log = [received(A, next_page, accepted=again, via="pull")]
    problems, out = compare(a_log, b_log)
    assert problems == 0, out
    assert f"NOTE  1 pull pages {A} served to {B} that {B} never recorded" in out
    assert "2 items offered only on them" in out
    assert f"OK    {A} -> {B}: 2 items sent, every one recorded, none other" in out


def test_a_pull_page_recorded_without_some_of_its_items_is_a_failure():
    page_items, page = digests(3), str(uuid.uuid4())
    a_log = [sent(B, page_items, via="pull", batch=page)]
    b_log = [received(A, page, accepted=page_items[:2], via="pull")]
    problems, out = compare(a_log, b_log)
    assert problems == 1
    assert f"1 items {A} says it sent to {B} that {B} never recorded" in out
    assert page_items[2] in out


def test_a_pushed_batch_never_recorded_is_still_a_failure():
    # Only pull pages may go unrecorded: a push is recorded as sent once the peer answered.
    items = digests(2)
    a_log = [sent(B, items, via="push"), sent(B, items[1:], via="pull")]
    problems, out = compare(a_log, [])
    assert problems == 2
    assert f"2 items {A} says it sent to {B} that {B} never recorded" in out


def test_sent_events_written_before_via_was_recorded_count_as_pushes():
    items = digests(1)
    problems, _out = compare([sent(B, items)], [])
    assert problems == 1
