"""The fast canonical encodings (of validated contributions, and of any JSON value such as an audit
event's leaf document) equal RFC 8785 (the rfc8785 package)."""

import json
import string

import orjson
import pytest
import rfc8785
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from federation.canonical import (
    canonical_json_bytes,
    canonical_json_decoded,
    canonical_json_fast,
    in_fast_domain,
)
from federation.signing import MalformedContribution, parse_contribution
from federation.transparency.audit import row_document, row_leaf_bytes

_slug = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=20)
# Any text a hub id may hold: control characters, quotes, backslashes, non-BMP characters...
_any_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40)
# ...and the printable ASCII most hub ids are, whose contributions take the short road.
_ascii_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1)


@st.composite
def contributions(draw) -> dict:
    action = draw(st.sampled_from(["add", "retract"]))
    signal_type, length = draw(st.sampled_from([("pdq", 64), ("md5", 32), ("sha256", 64)]))
    signal = {
        "type": signal_type,
        "value": draw(
            st.one_of(
                st.text(alphabet="0123456789abcdefABCDEF", min_size=length, max_size=length),
                st.text(alphabet="0123456789abcdef", min_size=length, max_size=length),
            )
        ),
    }
    if signal_type == "pdq" and draw(st.booleans()):
        signal["quality"] = draw(st.integers(0, 100))
    document = {
        "kind": "concordat.contribution",
        "v": 1,
        "hub": draw(st.one_of(_any_text, _ascii_text)),
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


# Any JSON value an audit event's data may hold (what PostgreSQL's jsonb gives back, and more):
# floats, integers beyond JCS's range, keys whose code-point and UTF-16 orders differ, control
# characters, lone surrogates.
_keys = st.one_of(
    _any_text,
    st.text(alphabet='a\ue000\uffff\U0001f600\U00010000\x1f"\\', max_size=4),
)
_json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(-(2**53) + 1, 2**53 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(_keys, children, max_size=5)
    ),
    max_leaves=30,
)


def _reference(value):
    try:
        return rfc8785.dumps(value)
    except Exception as exc:  # the fast encoder must fail the same way
        return type(exc)


def _fast(value):
    try:
        return canonical_json_bytes(value)
    except Exception as exc:
        return type(exc)


@settings(max_examples=1000, deadline=None)
@given(_json_values)
def test_fast_canonical_json_equals_rfc8785_on_any_json_value(value):
    assert _fast(value) == _reference(value)


@pytest.mark.parametrize(
    "value",
    [
        {"\ue000": 1, "\U0001f600": 2},  # UTF-16 puts the surrogate pair first, code points last
        {"n": 1.0, "m": 1e21, "k": 5e-7},  # JCS numbers, not Python's repr
        {"big": 2**53},  # beyond JCS's integers: an error, as rfc8785 raises
        ("a", "tuple"),
        {"lone": "\ud800"},
        {"control": "\x00\x1f\x7f\u2028", "quote": '"\\'},
    ],
)
def test_fast_canonical_json_leaves_what_differs_to_rfc8785(value):
    assert _fast(value) == _reference(value)


# ASCII values, the shape of most bodies a hub receives, with text that looks like numbers.
_ascii_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(-(2**53) + 1, 2**53 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        _ascii_text,
        st.sampled_from(["a:1.5", "x,2e5", "[3.0", ":-0.0", "18:48:19Z", "3e05", ":1", "-"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.one_of(_slug, _ascii_text), children, max_size=5),
    ),
    max_leaves=30,
)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(_json_values, _ascii_values))
def test_canonical_json_of_a_decoded_value_equals_the_walked_one(value):
    # The JSON text of ``value`` (the standard library writes what orjson refuses to: integers
    # beyond 64 bits, lone surrogates) as orjson decodes it, when it does.
    try:
        decoded = orjson.loads(json.dumps(value))
    except orjson.JSONDecodeError:
        assume(False)
    assert canonical_json_decoded(decoded) == canonical_json_fast(decoded)


@pytest.mark.parametrize(
    "text",
    [
        b'{"a":1.0}', b'[1.5]', b'{"a":[2,-0.0]}', b'1.5', b'-2', b'7',
        b'{"a":123456789012345678901234567890}', b'{"n":9007199254740992}',
        b'{"n":-9007199254740991}', rb'{"\ue000":1,"\ud83d\ude00":2}', rb'{"e":"\u00e9"}',
        b'{"s":"a:1.5","t":"[3e5"}', b'{"v":1,"w":[0,1,-2],"x":null,"y":true}',
    ],
)  # fmt: skip
def test_canonical_json_of_a_decoded_body_takes_the_walk_where_its_bytes_may_differ(text):
    decoded = orjson.loads(text)
    assert canonical_json_decoded(decoded) == canonical_json_fast(decoded)
    assert canonical_json_decoded(decoded) == (
        rfc8785.dumps(decoded) if in_fast_domain(decoded) else None
    )


def _leaf(row, **kwargs):
    try:
        return row_leaf_bytes(row, **kwargs)
    except Exception as exc:
        return type(exc)


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(st.integers(1, 2**53 - 1), st.integers()),
    st.lists(st.one_of(st.text(), _any_text), min_size=7, max_size=7),
    _json_values,
)
def test_an_event_rows_leaf_bytes_equal_rfc8785_of_its_document(pk, texts, data):
    row = (pk, "2026-12-06T17:00:00.000000Z", *texts, data)
    reference = _reference(row_document(*row))
    assert _leaf(row) == reference
    if in_fast_domain(data):  # as the sequencer passes it once it has walked the data
        assert _leaf(row, data_checked=True) == reference
