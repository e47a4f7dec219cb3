"""API conventions: one error shape for every 4xx, never a 500 on bad input, bounded cursor pages,
and an OpenAPI schema that generates cleanly with a self-hosted docs page."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from federation.contributions.models import Contribution
from tests.support.api_errors import assert_error_shape

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]


def _post_endpoints(admin) -> list[tuple[str, str]]:
    # (credentials/<pk>/revoke/ takes no body and reads none.)
    return [
        ("post", "/api/v1/contributions/"),
        ("post", "/api/v1/contributions/bulk/"),
        ("post", "/api/v1/keys/"),
        ("post", f"/api/v1/keys/{admin.signing_key.key_id}/revoke/"),
        ("post", "/api/v1/credentials/"),
        ("patch", f"/api/v1/memberships/{admin.user.membership.pk}/"),
    ]


MALFORMED_BODIES: list[bytes] = [
    b"",
    b"{",
    b"null",
    b"5",
    b'"text"',
    b"[]",
    b"[1, 2, 3]",
    b"{}",
    b'{"contribution": 5, "signature": 5}',
    b'{"contribution": "x", "signature": null}',
    b'{"contribution": [], "signature": []}',
    b'{"contribution": {"kind": {"a": [[[{}]]]}}, "signature": "A"}',
    b'{"items": "x"}',
    b'{"items": 5}',
    b'{"items": [5, "x", null, [], {"a": 1}]}',
    b'{"items": [{"contribution": {}, "signature": ""}]}',
    b'{"items": [{"contribution": {"uuid": "\\u0000\\ud800"}, "signature": "\\u0000"}]}',
    b'{"public_key": 5, "label": [], "not_before": {}}',
    b'{"public_key": "' + b"A" * 10_000 + b'"}',
    b'{"public_key": "\\ud800\\u0000"}',
    b'{"reason": null, "effective_at": "yesterday"}',
    b'{"reason": "\\u0000", "effective_at": "2999-01-01T00:00:00Z"}',
    b'{"name": "\\ud800", "scopes": ["\\ud800", 5, null], "holder": "\\u0000"}',
    b'{"name": "x", "scopes": "read", "expires_at": 5}',
    b'{"name": "x", "scopes": [[[[]]]], "holder": {"a": 1}}',
    b'{"role": "consortium-admin"}',
    b'{"role": ["\\ud800"]}',
    b'{"v": 1' + b"0" * 5000 + b"}",
    b'{"v": 1e999999, "contribution": -1e999999}',
    b'{"v": NaN, "w": Infinity}',
    b"\xff\xfe\x00{\x00}",
    b'{"a": "\xc3\x28"}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"contribution": '
    + json.dumps({"signal": {"type": "pdq", "value": "a" * 100_000}}).encode()
    + b', "signature": "x"}',
]


def test_every_write_endpoint_answers_malformed_bodies_with_a_4xx_in_the_error_shape(acme_admin):
    for method, path in _post_endpoints(acme_admin):
        for body in MALFORMED_BODIES:
            response = getattr(acme_admin.client, method)(
                path, data=body, content_type="application/json"
            )
            if path.endswith("/bulk/") and response.status_code == 200:
                # A well-formed list of bad items: each item is answered on its own.
                results = response.json()["results"]
                assert {r["status"] for r in results} == {"rejected"}
                assert all(set(r["error"]) == {"code", "message", "details"} for r in results)
                continue
            assert_error_shape(response)
    assert not Contribution.objects.exists()
    assert (
        acme_admin.signing_key.__class__.objects.get(pk=acme_admin.signing_key.pk).revoked_at
        is None
    )


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data"])
def test_other_media_types_are_415(acme_admin, content_type):
    response = acme_admin.client.post(
        "/api/v1/contributions/", data=b"<x/>", content_type=content_type
    )
    error = assert_error_shape(response, 415)
    assert error["code"] == "unsupported_media_type"


def test_missing_token_is_401_and_wrong_token_is_401(anonymous):
    error = assert_error_shape(anonymous.get("/api/v1/entries/"), 401)
    assert error["code"] == "not_authenticated"
    for token in ["cc_nope_nope", "not-a-token", "cc_" + "a" * 300, "cc__x"]:
        anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        response = anonymous.get("/api/v1/entries/")
        assert assert_error_shape(response, 401)["code"] == "authentication_failed"
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_non_ascii_authorization_header_is_401(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer cc_\u00e9\u00e9_x")
    assert_error_shape(anonymous.get("/api/v1/entries/"), 401)


def test_forbidden_is_403_method_not_allowed_is_405_and_unknown_urls_are_404(
    acme_reviewer, acme_submitter
):
    assert assert_error_shape(acme_reviewer.client.get("/api/v1/keys/"), 403)["code"] == (
        "permission_denied"
    )
    error = assert_error_shape(acme_submitter.client.delete("/api/v1/contributions/"), 405)
    assert error["code"] == "method_not_allowed"
    assert assert_error_shape(acme_submitter.client.get("/api/v1/no-such-thing/"), 404)["code"] == (
        "not_found"
    )
    assert_error_shape(acme_submitter.client.get("/api/v1/entries/999999/"), 404)


contribution_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _mutated_contribution(base: dict):
    field_names = st.sampled_from([*base, "signal.type", "signal.value", "extra"])

    @st.composite
    def mutate(draw):
        document = json.loads(json.dumps(base))
        for _ in range(draw(st.integers(min_value=1, max_value=3))):
            name = draw(field_names)
            value = draw(contribution_values)
            if name.startswith("signal."):
                if isinstance(document.get("signal"), dict):
                    document["signal"][name.split(".")[1]] = value
            else:
                document[name] = value
        return document

    return mutate()


def test_fuzzed_contribution_objects_never_cause_a_500(acme_submitter):
    base = acme_submitter.contribution()

    @hypothesis_settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(document=_mutated_contribution(base), signature=contribution_values)
    def check(document, signature):
        single = acme_submitter.client.post(
            "/api/v1/contributions/",
            {"contribution": document, "signature": signature},
            format="json",
        )
        assert single.status_code < 500
        if single.status_code >= 400:
            assert_error_shape(single)
        bulk = acme_submitter.client.post(
            "/api/v1/contributions/bulk/",
            {"items": [{"contribution": document, "signature": signature}, document]},
            format="json",
        )
        assert bulk.status_code == 200, bulk.content[:300]
        assert [r["index"] for r in bulk.json()["results"]] == [0, 1]

    check()


def test_list_pages_are_cursor_paginated_and_page_size_is_bounded(acme_submitter):
    for _ in range(3):
        acme_submitter.submit()
    first = acme_submitter.client.get("/api/v1/contributions/?page_size=2").json()
    assert len(first["results"]) == 2
    assert "cursor=" in first["next"]
    second = acme_submitter.client.get(first["next"]).json()
    assert len(second["results"]) == 1
    assert {r["uuid"] for r in first["results"]}.isdisjoint(r["uuid"] for r in second["results"])
    huge = acme_submitter.client.get("/api/v1/entries/?page_size=100000")
    assert huge.status_code == 200
    from federation.api.pagination import StandardCursorPagination

    assert StandardCursorPagination.max_page_size == 1000
    bad_cursor = acme_submitter.client.get("/api/v1/entries/?cursor=%%%garbage")
    assert_error_shape(bad_cursor, 404)


@pytest.mark.parametrize("page_size", ["null", "0", "-1", "1.5", "1e3", " 2", "٣"])
def test_a_page_size_that_is_not_a_whole_number_of_at_least_one_is_refused(
    acme_submitter, page_size
):
    response = acme_submitter.client.get("/api/v1/contributions/", {"page_size": page_size})
    error = assert_error_shape(response, 400)
    assert error["code"] == "invalid"
    assert error["details"] == {"parameter": "page_size", "value": page_size}


def test_a_page_size_over_the_cap_is_capped_and_leading_zeros_are_read(acme_submitter):
    for _ in range(2):
        acme_submitter.submit()
    assert (
        len(acme_submitter.client.get("/api/v1/contributions/?page_size=0001").json()["results"])
        == 1
    )
    assert acme_submitter.client.get(f"/api/v1/entries/?page_size={'9' * 5000}").status_code == 200


def test_the_schema_and_docs_are_served_whatever_credential_comes_with_the_request(anonymous):
    # A peer hub's cp_ token, or any token this hub does not know, is not read by these pages.
    for header in ("Bearer cp_0123456789ab_secret", "Bearer cc_0123456789ab_wrong", "Basic eA=="):
        anonymous.credentials(HTTP_AUTHORIZATION=header)
        for url in ("/api/schema/", "/api/docs/", "/api/redoc/"):
            assert anonymous.get(url).status_code == 200, (header, url)


def test_openapi_schema_generates_without_warnings():
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--settings=settings.test",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "/api/v1/contributions/bulk/" in done.stdout


def test_schema_and_docs_pages_are_served_without_a_cdn(anonymous, acme_submitter):
    schema = acme_submitter.client.get("/api/schema/")
    assert schema.status_code == 200
    docs = acme_submitter.client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html
    assert "/static/drf_spectacular_sidecar/" in html
