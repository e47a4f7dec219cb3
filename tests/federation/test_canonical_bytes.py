"""The fast canonical encoding of validated contributions equals RFC 8785 (the rfc8785 package)."""

import string

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.signing import MalformedContribution, parse_contribution

_slug = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=20)
# Any text a hub id may hold: control characters, quotes, backslashes, non-BMP characters...
_any_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40)


@st.composite
def contributions(draw) -> dict:
    action = draw(st.sampled_from(["add", "retract"]))
    signal_type, length = draw(st.sampled_from([("pdq", 64), ("md5", 32), ("sha256", 64)]))
    signal = {
        "type": signal_type,
        "value": draw(st.text(alphabet="0123456789abcdefABCDEF", min_size=length, max_size=length)),
    }
    if signal_type == "pdq" and draw(st.booleans()):
        signal["quality"] = draw(st.integers(0, 100))
    document = {
        "kind": "concordat.contribution",
        "v": 1,
        "hub": draw(_any_text),
        "member": draw(_slug),
        "key_id": draw(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)),
        "uuid": str(draw(st.uuids())),
        "created_at": "2026-11-25T06:00:00Z",
        "action": action,
        "signal": signal,
        "labels": draw(st.lists(_slug, min_size=1, max_size=5, unique=True))
        if action == "add"
        else [],
        "scope": draw(st.sampled_from(["hub", "peers", "federation"])),
    }
    if draw(st.booleans()):
        document["incident"] = draw(st.one_of(st.none(), st.uuids().map(str)))
    return document


@settings(max_examples=500, deadline=None)
@given(contributions())
def test_fast_canonical_bytes_equal_rfc8785(document):
    assert parse_contribution(document).canonical == rfc8785.dumps(document)


def test_lone_surrogate_is_malformed_not_a_crash():
    document = {
        "kind": "concordat.contribution", "v": 1, "hub": "hub\ud800", "member": "acme",
        "key_id": "0" * 32, "uuid": "7c1a2b3c-1234-4abc-8def-0123456789ab",
        "created_at": "2026-11-25T06:00:00Z", "action": "add",
        "signal": {"type": "md5", "value": "0" * 32}, "labels": ["propaganda"], "scope": "hub",
    }  # fmt: skip
    try:
        parse_contribution(document)
    except MalformedContribution as exc:
        assert exc.field == "contribution"
    else:
        raise AssertionError("a lone surrogate was accepted")
