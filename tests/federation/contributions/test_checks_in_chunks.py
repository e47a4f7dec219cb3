"""``check_contributions_in_chunks`` parses the chunks after the one its caller holds on a thread
of its own: the outcome is the same as checking the items whole, an error there is raised to the
caller, the database (incidents) is only read on the caller's thread, and the thread stops when
the caller stops reading. No database is needed: keys and taxonomy are given."""

import threading
import time
import uuid
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.contributions import checks
from federation.contributions.checks import check_contributions, check_contributions_in_chunks
from federation.signing import sign_contribution
from tests.support.checks import NOW, check_context, signed_item, signing_key

CHUNK = 4


@pytest.fixture
def private_key():
    return Ed25519PrivateKey.generate()


def _items(private_key, count, **kwargs):
    return [signed_item(private_key, created_at=NOW, **kwargs) for _ in range(count)]


def _parsing_threads():
    return [t for t in threading.enumerate() if t.name == "contribution-checks"]


def test_chunks_together_are_the_outcome_of_the_whole(private_key):
    key = signing_key(private_key, not_before=NOW.replace(year=2025))
    items = _items(private_key, 10)
    items[5]["signature"] = items[6]["signature"]  # a forged one, in the second chunk
    items[9] = {"contribution": {}, "signature": "x"}  # a malformed one, in the last
    context = check_context(key, rule="relay")
    chunks = list(check_contributions_in_chunks(items=items, context=context, chunk_size=CHUNK))
    whole = check_contributions(items=items, context=context)
    assert [[v.index for v in chunk.verified] for chunk in chunks] == [
        [0, 1, 2, 3],
        [4, 6, 7],
        [8],
    ]
    assert [v.index for chunk in chunks for v in chunk.verified] == [
        v.index for v in whole.verified
    ]
    assert (
        [(r.index, r.code) for chunk in chunks for r in chunk.rejections]
        == [(r.index, r.code) for r in whole.rejections]
        == [(5, "bad_signature"), (9, "invalid")]
    )


def test_an_error_while_parsing_ahead_is_raised_on_the_callers_thread(private_key, monkeypatch):
    key = signing_key(private_key, not_before=NOW.replace(year=2025))
    items = _items(private_key, 12)
    parse = checks.parse_contribution
    calls = []

    def failing(document):
        calls.append(threading.current_thread())
        if len(calls) == 6:
            raise RuntimeError("a bug while parsing")
        return parse(document)

    monkeypatch.setattr(checks, "parse_contribution", failing)
    chunks = check_contributions_in_chunks(
        items=items, context=check_context(key, rule="relay"), chunk_size=CHUNK
    )
    assert len(next(chunks).verified) == CHUNK
    with pytest.raises(RuntimeError, match="a bug while parsing"):
        next(chunks)
    assert threading.current_thread() not in calls  # all parsing ran on the parsing thread


def _with_incident(private_key, incident):
    document = {
        **signed_item(private_key, created_at=NOW)["contribution"],
        "incident": str(incident),
    }
    return {"contribution": document, "signature": sign_contribution(private_key, document)}


def test_incidents_are_read_on_the_callers_thread_only(private_key):
    key = signing_key(private_key, not_before=NOW.replace(year=2025))
    known, unknown = uuid.uuid4(), uuid.uuid4()
    items = _items(private_key, 7)
    items[2] = _with_incident(private_key, known)
    items[6] = _with_incident(private_key, unknown)
    readers = []

    def incidents():
        readers.append(threading.current_thread())
        return frozenset({known})

    context = replace(check_context(key, rule="relay"), incidents=incidents)
    chunks = list(check_contributions_in_chunks(items=items, context=context, chunk_size=CHUNK))
    assert readers == [threading.current_thread()]  # loaded once, and here
    assert [(r.index, r.code) for chunk in chunks for r in chunk.rejections] == [
        (6, "unknown_incident")
    ]
    assert 2 in [v.index for chunk in chunks for v in chunk.verified]


def test_the_parsing_thread_stops_when_the_caller_stops_reading(private_key, monkeypatch):
    key = signing_key(private_key, not_before=NOW.replace(year=2025))
    items = _items(private_key, 40)
    parse = checks.parse_contribution
    parsed = []

    def counted(document):
        parsed.append(document["uuid"])
        return parse(document)

    monkeypatch.setattr(checks, "parse_contribution", counted)
    chunks = check_contributions_in_chunks(
        items=items, context=check_context(key, rule="relay"), chunk_size=CHUNK
    )
    next(chunks)
    time.sleep(0.3)
    # The chunk held, one waiting for the caller and one parsed and waiting to be handed over.
    assert len(parsed) <= 3 * CHUNK
    assert _parsing_threads()
    chunks.close()
    deadline = time.monotonic() + 2
    while _parsing_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _parsing_threads()
    assert len(parsed) <= 3 * CHUNK
