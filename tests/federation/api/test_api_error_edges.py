"""Every 4xx under /api/ is in the documented JSON error shape, including the ones Django answers
before a view runs, and an API write is never redirected."""

import pytest
import yaml
from django.test import Client, override_settings

from federation.contributions.models import Contribution
from tests.support.api_errors import assert_error_shape

pytestmark = pytest.mark.django_db


def test_a_disallowed_host_gets_a_json_400_under_the_api(acme_submitter):
    response = acme_submitter.client.get("/api/v1/entries/", HTTP_HOST="evil.example")
    error = assert_error_shape(response, 400)
    assert error["code"] == "bad_request"


def test_a_disallowed_host_outside_the_api_keeps_djangos_page():
    response = Client().get("/admin/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert not response["Content-Type"].startswith("application/json")


def test_a_post_without_the_trailing_slash_is_a_json_404_naming_the_url(acme_submitter):
    response = acme_submitter.client.post(
        "/api/v1/contributions", acme_submitter.signed(), format="json"
    )
    error = assert_error_shape(response, 404)
    assert error["details"] == {"url": "/api/v1/contributions/"}
    assert "Location" not in response
    assert not Contribution.objects.exists()


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_no_api_url_redirects_to_its_slashed_form(acme_admin, method):
    response = getattr(acme_admin.client, method)("/api/v1/keys")
    error = assert_error_shape(response, 404)
    assert error["details"] == {"url": "/api/v1/keys/"}


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/match",
        "/api/v1/sync/changes",
        "/api/v1/sync/export",
        "/api/v1/log/status",
        "/api/v1/federation/batches",
        "/api/v1/witness/add-checkpoint",
    ],
)
def test_a_trailing_slash_on_a_url_without_one_is_a_json_404_naming_the_url(acme_submitter, url):
    for method in ("get", "post"):
        response = getattr(acme_submitter.client, method)(f"{url}/")
        error = assert_error_shape(response, 404)
        assert error["details"] == {"url": url}
        assert "has no trailing slash" in error["message"]


def test_an_unknown_api_url_is_a_plain_json_404(acme_submitter):
    error = assert_error_shape(acme_submitter.client.post("/api/v1/nothing-here"), 404)
    assert error["details"] is None


def test_the_admin_still_redirects_to_the_slashed_url():
    response = Client().get("/admin")
    assert response.status_code == 301
    assert response["Location"] == "/admin/"


@override_settings(DEBUG=False)
def test_the_schema_says_a_decisions_organisation_and_user_may_be_null():
    response = Client().get("/api/schema/")
    schema = yaml.safe_load(response.content)
    decision = schema["components"]["schemas"]["Decision"]["properties"]
    assert decision["organisation"].get("nullable") is True
    assert decision["user"].get("nullable") is True


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/api/v1/witness/evidence?origin=M%00", "origin"),
        ("/api/v1/sync/changes?label=a%00", "label"),
        ("/api/v1/entries/?label=a%00b", "label"),
        ("/api/v1/log/figures?mo%00nth=2026-01", "mo\x00nth"),
    ],
)
def test_a_nul_character_in_a_query_parameter_is_a_json_400_not_a_server_error(
    acme_submitter, url, parameter
):
    response = acme_submitter.client.get(url)
    error = assert_error_shape(response, 400)
    assert error["code"] == "invalid"
    assert error["details"] == {"parameter": parameter}


def test_a_query_string_with_an_escaped_percent_zero_zero_is_not_a_nul(acme_submitter):
    response = acme_submitter.client.get("/api/v1/entries/?label=%2500")
    assert response.status_code == 200
