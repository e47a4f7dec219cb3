"""Query parameters (docs/api.md, "Query parameters"): a value an endpoint cannot read is refused;
an empty value reads as the parameter left out, a repeated one as its last value, and a parameter
the endpoint does not list is ignored."""

import pytest

from tests.support.api_errors import assert_error_shape

pytestmark = pytest.mark.django_db


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [entry["id"] for entry in response.json()["results"]]


@pytest.fixture
def entries(acme_submitter, acme_reviewer):
    for _ in range(3):
        acme_submitter.submit()
    return acme_reviewer.client


@pytest.mark.parametrize(
    "query",
    ["state=shared-ish", "signal_type=PDQ", "signal_type=photo", "page_size=x"],
)
def test_a_value_the_endpoint_cannot_read_is_refused(entries, query):
    response = entries.get(f"/api/v1/entries/?{query}")
    error = assert_error_shape(response, 400)
    assert error["code"] == "invalid"


def test_an_empty_value_reads_as_the_parameter_left_out(entries):
    everything = _ids(entries.get("/api/v1/entries/"))
    assert len(everything) == 3
    for query in ("state=", "signal_type=", "label=", "page_size=", "cursor="):
        assert _ids(entries.get(f"/api/v1/entries/?{query}")) == everything, query


def test_a_repeated_parameter_reads_as_its_last_value(entries):
    assert _ids(entries.get("/api/v1/entries/?state=bogus&state=pending")) == _ids(
        entries.get("/api/v1/entries/?state=pending")
    )
    assert_error_shape(entries.get("/api/v1/entries/?state=pending&state=bogus"), 400)
    assert len(_ids(entries.get("/api/v1/entries/?page_size=5&page_size=1"))) == 1


def test_a_parameter_the_endpoint_does_not_list_is_ignored(entries):
    assert _ids(entries.get("/api/v1/entries/?stat=retracted&afer=9")) == _ids(
        entries.get("/api/v1/entries/")
    )
