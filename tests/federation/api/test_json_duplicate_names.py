"""Every JSON body is I-JSON (RFC 7493, which RFC 8785 requires): a duplicate member name anywhere,
in the envelope, inside the signed contribution, at any depth, is 400 malformed_json."""

import io
import json

import pytest
from rest_framework.exceptions import ParseError

from federation.api.parsers import BoundedJSONParser
from federation.contributions.models import Contribution
from federation.signing import sign_contribution

pytestmark = pytest.mark.django_db

SINGLE = "/api/v1/contributions/"
BULK = "/api/v1/contributions/bulk/"


def _post_raw(party, url: str, text: str):
    return party.client.generic("POST", url, text.encode(), content_type="application/json")


def _assert_malformed(response):
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "malformed_json"
    assert "duplicate member name" in response.json()["error"]["message"]


def _signed_text(party, document: dict) -> str:
    return json.dumps(
        {"contribution": document, "signature": sign_contribution(party.private_key, document)}
    )


def test_duplicate_name_in_the_envelope_is_malformed_json(acme_submitter):
    text = _signed_text(acme_submitter, acme_submitter.contribution())
    text = text[:-1] + ', "signature": "AAAA"}'
    _assert_malformed(_post_raw(acme_submitter, SINGLE, text))
    assert not Contribution.objects.exists()


def test_duplicate_name_inside_the_signed_contribution_is_malformed_json(acme_submitter):
    # The signature is good over the last-wins reading; the hub must not pick a reading at all.
    document = acme_submitter.contribution(labels=["attack-footage"])
    text = _signed_text(acme_submitter, document)
    text = text.replace(
        '"labels": ["attack-footage"]', '"labels": ["x"], "labels": ["attack-footage"]'
    )
    _assert_malformed(_post_raw(acme_submitter, SINGLE, text))
    assert not Contribution.objects.exists()


def test_nested_duplicate_in_the_signal_object_is_malformed_json(acme_submitter):
    document = acme_submitter.contribution()
    text = _signed_text(acme_submitter, document)
    value = document["signal"]["value"]
    text = text.replace(f'"value": "{value}"', f'"value": "{"0" * 64}", "value": "{value}"')
    _assert_malformed(_post_raw(acme_submitter, SINGLE, text))


def test_names_equal_after_unescaping_are_duplicates(acme_submitter):
    text = _signed_text(acme_submitter, acme_submitter.contribution())
    text = text.replace('"scope": "federation"', '"scope": "hub", "\\u0073cope": "federation"')
    _assert_malformed(_post_raw(acme_submitter, SINGLE, text))


def test_one_duplicate_deep_in_a_bulk_refuses_the_whole_request(acme_submitter):
    items = [acme_submitter.signed() for _ in range(50)]
    text = json.dumps({"items": items})
    last = json.dumps(items[-1])
    text = text.replace(last, last[:-1] + ', "signature": "x"}')
    _assert_malformed(_post_raw(acme_submitter, BULK, text))
    assert not Contribution.objects.exists()


def test_duplicate_names_are_refused_by_other_endpoints_too(acme_admin):
    text = '{"name": "bot", "scopes": ["read"], "name": "other"}'
    _assert_malformed(_post_raw(acme_admin, "/api/v1/credentials/", text))


def test_a_name_repeated_inside_a_string_or_in_sibling_objects_is_not_a_duplicate(acme_submitter):
    items = [acme_submitter.signed() for _ in range(2)]  # the same names in each item
    text = json.dumps({"items": items})
    response = _post_raw(acme_submitter, BULK, text)
    assert response.status_code == 200 and response.json()["created"] == 2
    parser = BoundedJSONParser()
    assert parser.parse(io.BytesIO(b'{"a": "\\"a\\": 1, \\"a\\": 2"}')) == {"a": '"a": 1, "a": 2'}


def test_nesting_the_duplicate_check_cannot_follow_is_malformed_not_a_500(acme_submitter):
    depth = 1010  # within orjson's limit (1024), beyond the standard library's recursion limit
    response = _post_raw(acme_submitter, BULK, "[" * depth + "]" * depth)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


@pytest.mark.parametrize(
    "text",
    [
        # A colon written as an escape would balance the colon a dropped duplicate takes away.
        '{"a": 1, "a": 2, "b": "\\u003a"}',
        '{"a:": 1, "a\\u003A": 2}',
        # Colons inside the dropped and the kept values, at depth, and beyond orjson's encoder.
        '{"x": [{"k": "1:2:3", "k": "4"}]}',
        '{"x": {"y": ":", "y": "::"}, "z": ":::"}',
        "[" * 300 + '{"d": 1, "d": 2}' + "]" * 300,
    ],
)
def test_every_body_with_a_duplicate_is_refused_by_the_parser(text):
    with pytest.raises(ParseError, match="duplicate member name"):
        BoundedJSONParser().parse(io.BytesIO(text.encode()))


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "\\u003a", "b": ":"}',
        '{"a:b": {"c": "d:e"}, "f": [":", {"g": 1}]}',
        "[" * 300 + '{"d": 1, "e": ":"}' + "]" * 300,
    ],
)
def test_bodies_with_colons_in_names_and_values_are_accepted(text):
    assert BoundedJSONParser().parse(io.BytesIO(text.encode())) == json.loads(text)
