"""The server and its OpenAPI schema agree: schemathesis generates requests from /api/schema/ for
every operation (valid and invalid ones), sends them through the WSGI application with the token
of the operation's audience, and checks each answer: no 5xx, a status and a body the schema
documents, an invalid request refused, a valid one not refused.

A bounded number of examples per operation keeps this to well under a minute; the full run is
``schemathesis run`` against a live hub (docs/api.md). What a schema cannot say is listed in
``CANNOT_SAY`` with the reason, and only that check is skipped for only that operation.
"""

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from federation.lookup.services import lookup_key_create
from federation.lookup.table import lookup_table_refresh
from federation.propagation.peers import peer_register
from federation.wsgi import application
from tests.support.parties import make_member, make_organisation, make_staff
from tests.support.sending import ACTOR, new_hub_key


def negative_data_rejection_as_documented(ctx, response, case):
    """``negative_data_rejection``, but for a query parameter that docs/api.md ("Query
    parameters") says is read, not refused: given empty (an empty object is sent empty too), it
    reads as left out; given several times (a list), as its last value."""
    if any(value in ("", {}) or isinstance(value, list) for value in (case.query or {}).values()):
        return None
    return negative_data_rejection(ctx, response, case)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection_as_documented,
    positive_data_acceptance,
]

# A request the schema calls valid that the server refuses for what no schema can know: a
# signature, a reference to data, a relation between two parameters, the log's current size.
_SIGNED = "an Ed25519 signature over the body (and its clock window) that generated data lacks"
CANNOT_SAY = {
    ("POST", "/api/v1/contributions/"): _SIGNED,
    ("POST", "/api/v1/contributions/bulk/"): _SIGNED,
    ("POST", "/api/v1/keys/"): _SIGNED,
    ("POST", "/api/v1/federation/batches"): _SIGNED,
    ("POST", "/api/v1/witness/add-checkpoint"): "a signed note and a consistency proof",
    ("POST", "/api/v1/credentials/"): "holder names an existing user of your organisation",
    ("GET", "/api/v1/sync/changes"): "after is an HMAC-signed cursor only the hub issues",
    ("GET", "/api/v1/match"): "value's length depends on type, another query parameter",
    ("GET", "/api/v1/log/entries"): "start < end, and both within the log's current size",
    ("GET", "/api/v1/log/contributions"): "start < end, and both within the log's current size",
    ("GET", "/api/v1/log/figures"): "size within the log's current size",
    ("GET", "/api/v1/log/checkpoint"): "size names a checkpoint the hub signed",
    ("GET", "/api/v1/log/checkpoint/cosigned"): "size names a checkpoint the hub signed",
    ("GET", "/api/v1/log/proof/inclusion"): "index and tree_size within the log's current size",
    ("GET", "/api/v1/log/proof/consistency"): "first <= second within the log's current size",
    ("POST", "/api/v1/incidents/"): "a name's refused characters above U+FFFF (private use "
    "planes 15-16, some format characters): no regex dialect common to ECMA, Python and Rust "
    "names them, so the schema's pattern covers the BMP only",
    ("POST", "/api/v1/incidents/{id}/close/"): "ended_at after the incident's started_at",
    ("POST", "/api/v1/entries/{id}/approve/"): "a consortium admin's ruling needs a reason",
    ("POST", "/api/v1/lookup/evaluate"): "elements: canonical ristretto255 encodings",
    ("GET", "/api/v1/lookup/table/changes"): "key_id and since must name the current key's table",
}
# Accepted though the schema says otherwise, by design or by DRF: a bulk request answers 200 with
# each malformed item rejected in results (docs/api.md); DRF's CharField takes a number for a
# string (coerced: 0 -> "0").
LENIENT = {
    ("POST", "/api/v1/contributions/bulk/"),
    ("POST", "/api/v1/incidents/"),
    ("POST", "/api/v1/credentials/"),
}
# /api/v1/log/health answers 503 when the log is stalled: documented, and its purpose.
SERVER_ERRORS_DOCUMENTED = {
    ("GET", "/api/v1/log/health"),
}

# Whose token each family of URLs (the first segment under /api/v1/) is called with: the
# audience that may use it, so that requests reach the view rather than stop at 401/403.
TOKEN_FOR = {
    **dict.fromkeys(
        [
            "contributions",
            "keys",
            "credentials",
            "memberships",
            "labels",
            "hub",
            "match",
            "sync",
            "lookup",
            "live",
        ],
        "member_admin",
    ),
    **dict.fromkeys(["entries", "review"], "reviewer"),
    **dict.fromkeys(["policy", "incidents", "log"], "consortium_admin"),
    "federation": "peer",
    "witness": None,  # public
}


@pytest.fixture(autouse=True)
def requests_keep_the_test_connection():
    # Requests go straight to the WSGI application, in the test's transaction: as Django's test
    # client does, keep the end of each request from closing the test's database connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _schema():
    loaded = schemathesis.openapi.from_dict(
        json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))
    )
    loaded.app = application  # requests go to the WSGI application in this process
    # A NUL in any query parameter is 400 invalid on every endpoint (docs/api.md, "Errors"),
    # which one rule says for all; generating it per parameter would test that rule 49 times.
    # A parameter an operation does not list is ignored (docs/api.md, "Query parameters"), so an
    # extra one makes no request invalid.
    loaded.config.generation.update(allow_x00=False, allow_extra_parameters=False)
    return loaded


@pytest.fixture
def tokens(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the key file is written on commit
        lookup_key_create(actor=ACTOR)  # the private lookup answers 503 without one
    lookup_table_refresh()  # ... and while its table is being built
    acme, globex = make_organisation("acme"), make_organisation("globex")
    peer = peer_register(
        hub_id="bravo.example",
        name="Bravo",
        url="http://bravo.invalid",
        public_key=new_hub_key()[1],
        actor=ACTOR,
    )
    return {
        "member_admin": make_member("ada", acme, "member-admin").token,
        "reviewer": make_member("gus", globex, "reviewer", with_key=False).token,
        "consortium_admin": make_staff("connie", "consortium-admin").token,
        "peer": peer.inbound_token,
    }


schema = _schema()


@schema.parametrize()
@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_the_server_answers_as_its_schema_says(case, tokens):
    operation = (case.method.upper(), case.path)
    audience = TOKEN_FOR[case.path.split("/")[3]]  # a new family must be given one here
    token = tokens[audience] if audience else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    excluded = []
    if operation in CANNOT_SAY:
        excluded.append(positive_data_acceptance)
    if operation in LENIENT:
        excluded.append(negative_data_rejection_as_documented)
    if operation in SERVER_ERRORS_DOCUMENTED:
        excluded.append(not_a_server_error)
    case.call_and_validate(
        headers=headers,
        checks=[check for check in CHECKS if check not in excluded],
    )
