"""The exact boundaries of ``parse_contribution`` and ``decode_signature`` (docs/signing.md §2,
§12): the spellings of a uuid, a created_at and a signature that are one character away from
valid, each refused on its field with its message, and the valid ones read to the same values.
They hold the fast checks (a pattern for the uuid, the timestamp read with its Z, a signature
decoded once) to what the reference checks refused before them, and the plain contributions'
short road to the full checks."""

import base64
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.signing import (
    MalformedContribution,
    _contribution_checked_in_full,
    _plain_contribution,
    decode_signature,
    parse_contribution,
)

_UUID = "0b6f3a52-8d1e-4c7a-9f60-2e5b1d4c8a01"
_UUID_MESSAGE = "must be a UUID in its 36-character lowercase form"
_TIME_MESSAGE = "must be an RFC 3339 UTC time such as 2026-01-31T12:00:00Z"


def _document(**overrides) -> dict:
    document = {
        "kind": "concordat.contribution",
        "v": 1,
        "hub": "hub.example.org",
        "member": "acme",
        "key_id": "b6905b13f5c1225b86dec3961c026794",
        "uuid": _UUID,
        "created_at": "2026-01-31T12:00:00Z",
        "action": "add",
        "signal": {"type": "pdq", "value": "ab" * 32},
        "labels": ["attack-footage"],
        "scope": "federation",
    }
    document.update(overrides)
    return document


def _refusal(document) -> tuple[str, str]:
    with pytest.raises(MalformedContribution) as refused:
        parse_contribution(document)
    return refused.value.field, refused.value.message


@pytest.mark.parametrize(
    "spelling",
    [
        _UUID.upper(),
        _UUID.replace("-", ""),
        "{" + _UUID + "}",
        "urn:uuid:" + _UUID,
        _UUID[:8] + "_" + _UUID[9:],
        _UUID[:-1] + "g",
        _UUID[:-1] + "\u0663",  # a digit, but not an ASCII one
        _UUID + "\n",
        _UUID[:-1],
        42,
    ],
)
@pytest.mark.parametrize("field", ["uuid", "incident"])
def test_a_uuid_not_in_its_lowercase_hyphenated_form_is_refused(field, spelling):
    assert _refusal(_document(**{field: spelling})) == (field, _UUID_MESSAGE)


def test_uuids_are_read_as_uuid_values():
    incident = str(uuid.uuid4())
    parsed = parse_contribution(_document(incident=incident))
    assert (parsed.uuid, parsed.incident) == (uuid.UUID(_UUID), uuid.UUID(incident))


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T12:00:00.5Z", datetime(2026, 1, 31, 12, 0, 0, 500_000, tzinfo=UTC)),
        ("2026-01-31T12:00:00.0001Z", datetime(2026, 1, 31, 12, 0, 0, 100, tzinfo=UTC)),
        ("2028-02-29T23:59:59.999999Z", datetime(2028, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)),
    ],
)
def test_created_at_is_read_as_a_utc_moment(text, moment):
    created_at = parse_contribution(_document(created_at=text)).created_at
    assert created_at == moment and created_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-01-31T12:00:00+00:00", _TIME_MESSAGE),
        ("2026-01-31T12:00:00z", _TIME_MESSAGE),
        ("2026-01-31 12:00:00Z", _TIME_MESSAGE),
        ("2026-01-31T12:00:00.1234567Z", _TIME_MESSAGE),
        ("2026-01-31T12:00:00Z\n", _TIME_MESSAGE),
        ("2026-02-30T12:00:00Z", "is not a real date and time"),
        ("2026-01-31T24:00:00Z", "is not a real date and time"),
        ("2026-01-31T23:59:60Z", "is not a real date and time"),
        ("\u0662\u0660\u0662\u0666-01-31T12:00:00Z", "is not a real date and time"),
    ],
)
def test_created_at_other_than_rfc_3339_utc_is_refused(text, message):
    assert _refusal(_document(created_at=text)) == ("created_at", message)


def test_missing_fields_are_named_before_unknown_ones():
    document = _document(extra=1)
    del document["scope"]
    assert _refusal(document) == ("scope", "this field is required")
    assert _refusal(_document(extra=1)) == (
        "contribution",
        "unknown field 'extra' (nothing unsigned-for is accepted)",
    )


_SIGNATURE = base64.b64encode(bytes(range(64))).decode()


@pytest.mark.parametrize(
    ("spelling", "message"),
    [
        (_SIGNATURE[:-3] + "9==", "is not canonical base64 (non-zero pad bits)"),
        (_SIGNATURE[:-1] + "A", "is not valid base64"),
        ("-" + _SIGNATURE[1:], "is not valid base64"),
        ("\u00e9" + _SIGNATURE[1:], "is not valid base64"),
        (_SIGNATURE[:-2] + "\n=", "is not valid base64"),
        (_SIGNATURE[:-1], "must be 64 bytes in padded base64 (88 characters)"),
        (None, "must be 64 bytes in padded base64 (88 characters)"),
    ],
)
def test_a_signature_not_in_its_one_canonical_spelling_is_refused(spelling, message):
    with pytest.raises(MalformedContribution) as refused:
        decode_signature(spelling)
    assert (refused.value.field, refused.value.message) == ("signature", message)


def test_a_canonical_signature_is_decoded():
    assert decode_signature(_SIGNATURE) == bytes(range(64))


# Values a field takes in place of its valid one: other JSON types, the edges of each pattern and
# length, text JSON escapes, and other valid values.
_ODD_VALUES = [
    None, 0, 1, 2, True, 1.0, "", " ", [], {}, ["attack-footage"], ["a", "a"], ["A_b-1", "c"],
    [f"l{n}" for n in range(17)], [f"l{n}" for n in range(16)], [1], "ab" * 32, "AB" * 32,
    "ab" * 16, "h" * 200, "h" * 201, "a" * 64, "a" * 65, 'hub"x', "hub\\x", "hub\x7fx",
    "hub\u00e9", "hub\nx", "hub/x",
    "retract", "add", "hub", "peers", "pdq", "md5", "sha256", "vpdq", _UUID, _UUID.upper(),
    "2026-02-30T12:00:00Z", "2026-01-31T12:00:00.5Z", "b6905b13f5c1225b86dec3961c026794",
    "concordat.contribution", {"type": "md5", "value": "ab" * 16},
    {"type": "pdq", "value": "ab" * 32, "quality": 90}, {"type": "pdq", "value": "AB" * 32},
    {"type": "vpdq", "value": "ab" * 32}, {"type": "sha256"}, {"type": 1, "value": "ab"},
    {"type": ["pdq"], "value": "ab" * 32},
]  # fmt: skip
_FIELDS = ["kind", "v", "hub", "member", "key_id", "uuid", "created_at", "action", "signal",
           "labels", "scope", "incident", "extra"]  # fmt: skip


def _parsed_alike(document) -> None:
    """The short road (``_plain_contribution``) takes only what the full checks accept, and
    gives what they give; anything else it leaves to them."""
    plain = _plain_contribution(document)
    try:
        full = _contribution_checked_in_full(document)
    except MalformedContribution:
        assert plain is None, document
    else:
        assert plain is None or plain == full, document


@pytest.mark.parametrize("field", _FIELDS)
def test_a_plain_contribution_parses_as_the_full_checks_parse_it(field):
    for value in _ODD_VALUES:
        _parsed_alike(_document(**{field: value}))
        _parsed_alike(_document(**{"action": "retract", "labels": [], field: value}))
    if field in _document():
        document = _document()
        del document[field]
        _parsed_alike(document)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(_FIELDS), st.one_of(st.sampled_from(_ODD_VALUES), st.text()), max_size=3
    )
)
def test_a_plain_contribution_parses_as_the_full_checks_parse_it_whatever_else_is_odd(overrides):
    _parsed_alike(_document(**overrides))


def test_the_common_contribution_takes_the_short_road():
    for document in (
        _document(),
        _document(incident=None),
        _document(incident=_UUID, action="retract", labels=[]),
        _document(signal={"type": "md5", "value": "ab" * 16}, labels=["a", "b-c"]),
    ):
        assert _plain_contribution(document) == _contribution_checked_in_full(document)
