"""The OpenAPI schema describes what partners send and receive: the signed contribution and bulk
items as typed objects, and on every operation its 4xx responses in the one error shape with the
codes behind them. (test_api_conventions.py runs `manage.py spectacular --validate --fail-on-warn`.)"""

import re
from pathlib import Path

import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from federation.api.schema import ERROR_CODES, TAG_DESCRIPTIONS
from federation.contributions.rejections import REJECTION_STATUS
from federation.signing import OPTIONAL_FIELDS, REQUIRED_FIELDS, SIGNAL_FIELDS

ROOT = Path(__file__).resolve().parents[3]
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def schema():
    generated = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(generated)  # OpenAPI 3 JSON-schema validation; raises on any error
    return generated


def _resolve(schema, node: dict) -> dict:
    while True:
        if "$ref" in node:
            node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        elif "allOf" in node and len(node["allOf"]) == 1:
            node = node["allOf"][0]
        else:
            return node


def _request_body(schema, path: str, method: str = "post") -> dict:
    body = schema["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return _resolve(schema, body)


def _operations(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method in METHODS:
                yield path, method, operation


def test_the_signed_contribution_is_a_typed_object_with_every_field(schema):
    submission = _request_body(schema, "/api/v1/contributions/")
    assert submission["type"] == "object"
    assert set(submission["required"]) == {"contribution", "signature"}
    contribution = _resolve(schema, submission["properties"]["contribution"])
    assert contribution["type"] == "object"
    assert set(contribution["properties"]) == REQUIRED_FIELDS | OPTIONAL_FIELDS
    assert set(contribution["required"]) == REQUIRED_FIELDS
    signal = _resolve(schema, contribution["properties"]["signal"])
    assert signal["type"] == "object"
    assert set(signal["required"]) >= SIGNAL_FIELDS
    assert contribution["properties"]["labels"]["type"] == "array"
    assert contribution["properties"]["uuid"]["format"] == "uuid"


def test_bulk_items_are_typed_signed_contributions(schema):
    bulk = _request_body(schema, "/api/v1/contributions/bulk/")
    items = bulk["properties"]["items"]
    assert items["type"] == "array"
    item = _resolve(schema, items["items"])
    assert item == _request_body(schema, "/api/v1/contributions/")
    result = schema["paths"]["/api/v1/contributions/bulk/"]["post"]["responses"]["200"]
    answer = _resolve(schema, result["content"]["application/json"]["schema"])
    item_result = _resolve(schema, answer["properties"]["results"]["items"])
    error = _resolve(schema, item_result["properties"]["error"])
    assert set(error["properties"]) == {"code", "message", "details"}


def test_the_stored_contribution_names_and_describes_its_verification_fields(schema):
    contribution = schema["components"]["schemas"]["Contribution"]["properties"]
    for name in ("canonical", "content_hash", "public_key", "signature", "origin_hub"):
        assert contribution[name]["type"] == "string"
        assert contribution[name].get("description"), name
    assert "base64" in contribution["public_key"]["description"]
    assert contribution["labels"]["type"] == "array"


def test_the_error_component_is_the_documented_shape(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    detail = _resolve(schema, error["properties"]["error"])
    assert set(detail["properties"]) == {"code", "message", "details"}
    assert detail["properties"]["details"].get("nullable") is True


def test_both_bearer_token_schemes_are_described(schema):
    """The members' credentials and the peers' (their descriptions live with the schema,
    federation/api/schema.py, not with the authentication classes)."""
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["bearerFormat"] == "cc_<prefix>_<secret>"
    assert schemes["peerAuth"]["bearerFormat"] == "cp_<prefix>_<secret>"
    batches = schema["paths"]["/api/v1/federation/batches"]["post"]
    assert batches["security"] == [{"peerAuth": []}]
    assert {"bearerAuth": []} in schema["paths"]["/api/v1/contributions/"]["post"]["security"]


# Answers a protocol defines otherwise: C2SP tlog-witness makes add-checkpoint's 409 the size the
# witness holds, as text/x.tlog.size (docs/transparency.md, "Witnesses").
PROTOCOL_ANSWERS = {("/api/v1/witness/add-checkpoint", "post", "409"): "text/x.tlog.size"}


def test_every_operation_lists_its_4xx_responses_in_the_error_shape(schema):
    for path, method, operation in _operations(schema):
        client_errors = {
            s: r
            for s, r in operation["responses"].items()
            if s.startswith("4") and (path, method, s) not in PROTOCOL_ANSWERS
        }
        assert client_errors, f"{method.upper()} {path} lists no 4xx response"
        assert "429" in client_errors, (method, path)
        for status, response in client_errors.items():
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (path, status)
            codes = [example["value"]["error"]["code"] for example in content["examples"].values()]
            assert codes, (method, path, status)
            for code in codes:
                assert code in ERROR_CODES, (method, path, code)
                assert f"`{code}`" in response["description"]


def test_the_protocol_answers_are_documented_as_the_protocol_has_them(schema):
    for (path, method, status), media_type in PROTOCOL_ANSWERS.items():
        assert list(schema["paths"][path][method]["responses"][status]["content"]) == [media_type]


def _codes(schema, path: str, method: str, status: str) -> set[str]:
    response = schema["paths"][path][method]["responses"][status]
    examples = response["content"]["application/json"]["examples"].values()
    return {example["value"]["error"]["code"] for example in examples}


def test_operations_list_their_own_domain_error_codes(schema):
    for code, status in REJECTION_STATUS.items():
        assert code in _codes(schema, "/api/v1/contributions/", "post", str(status))
    assert "too_many_items" in _codes(schema, "/api/v1/contributions/bulk/", "post", "400")
    assert "scope_exceeds_issuer" in _codes(schema, "/api/v1/credentials/", "post", "403")
    assert "key_exists" in _codes(schema, "/api/v1/keys/", "post", "409")
    assert "not_pending" in _codes(schema, "/api/v1/entries/{id}/approve/", "post", "409")
    assert "bad_range" in _codes(schema, "/api/v1/log/entries", "get", "400")
    assert {"not_authenticated", "authentication_failed"} <= _codes(
        schema, "/api/v1/entries/", "get", "401"
    )
    # Public endpoints do not claim 401s; a request body brings 400/413/415.
    assert "401" not in schema["paths"]["/api/v1/hub/"]["get"]["responses"]
    assert {"413", "415"} <= set(schema["paths"]["/api/v1/keys/"]["post"]["responses"])


def test_every_error_code_the_code_base_raises_is_described():
    raised = set(REJECTION_STATUS)
    for source in [*ROOT.glob("federation/**/*.py"), *ROOT.glob("members/**/*.py")]:
        raised |= set(re.findall(r'\bcode="([a-z_]+)"', source.read_text()))
    assert raised - set(ERROR_CODES) == set()


def test_every_json_success_response_is_a_typed_object(schema):
    """No operation answers with a bare ``{"type": "object"}``: a partner can read the fields."""
    untyped = []
    for path, method, operation in _operations(schema):
        for status, response in operation.get("responses", {}).items():
            if not status.startswith("2"):
                continue
            body = response.get("content", {}).get("application/json")
            if body is None:
                continue
            node = _resolve(schema, body["schema"])
            if node.get("type") == "array":
                node = _resolve(schema, node["items"])
            if node.get("type") == "object" and not node.get("properties"):
                untyped.append(f"{method.upper()} {path} {status}")
    assert untyped == []


def test_every_operation_is_tagged_with_its_audience(schema):
    assert [tag["name"] for tag in schema["tags"]] == list(TAG_DESCRIPTIONS)
    assert all(tag["description"] for tag in schema["tags"])
    for path, method, operation in _operations(schema):
        assert len(operation["tags"]) == 1 and operation["tags"][0] in TAG_DESCRIPTIONS, (
            method,
            path,
            operation["tags"],
        )
    tag = {(p, m): o["tags"][0] for p, m, o in _operations(schema)}
    assert tag["/api/v1/contributions/", "post"] == "partners: contributions"
    assert tag["/api/v1/sync/export", "get"] == "partners: sync"
    assert tag["/api/v1/entries/{id}/approve/", "post"] == "reviewers: vetting"
    assert tag["/api/v1/credentials/", "post"] == "admins: members"
    assert tag["/api/v1/log/checkpoint", "get"] == "auditors: log"
    assert tag["/api/v1/federation/batches", "post"] == "hubs: federation"
    assert tag["/api/v1/witness/add-checkpoint", "post"] == "hubs: witness"


def _parameter(schema, path: str, name: str, method: str = "get") -> dict:
    (found,) = [p for p in schema["paths"][path][method]["parameters"] if p["name"] == name]
    return found["schema"]


def test_request_bodies_require_what_the_server_requires(schema):
    # Found by the schema fuzzer (schemathesis): each was schema-valid and refused.
    membership = _request_body(schema, "/api/v1/memberships/{id}/", "patch")
    assert membership["required"] == ["role"]
    registration = _request_body(schema, "/api/v1/keys/")
    assert set(registration["required"]) >= {"registration", "signature"}
    assert registration["properties"]["registration"]["type"] == "object"
    assert registration["properties"]["signature"]["minLength"] == 1
    reject = _request_body(schema, "/api/v1/entries/{id}/reject/")
    assert reject["required"] == ["reason"] and reject["properties"]["reason"]["pattern"]
    bulk = _request_body(schema, "/api/v1/contributions/bulk/")["properties"]["items"]
    assert (bulk["minItems"], bulk["maxItems"]) == (1, 10_000)
    batch = _request_body(schema, "/api/v1/federation/batches")
    assert batch["properties"]["batch"]["type"] == "object"


def test_a_match_signal_value_has_its_types_length(schema):
    signals = _request_body(schema, "/api/v1/match")["properties"]["signals"]
    assert (signals["minItems"], signals["maxItems"]) == (1, 1000)
    by_type = {
        s["properties"]["type"]["enum"][0]: re.compile(s["properties"]["value"]["pattern"])
        for s in signals["items"]["oneOf"]
    }
    assert set(by_type) == {"pdq", "md5", "sha256"}
    assert by_type["md5"].match("A" * 32) and not by_type["md5"].match("a" * 64)
    assert by_type["pdq"].match(" " + "0" * 64) and not by_type["pdq"].match("0" * 32)
    threshold = _parameter(schema, "/api/v1/match", "threshold")
    assert (threshold["minimum"], threshold["maximum"]) == (0, 63)


def test_query_parameters_carry_the_bounds_the_server_checks(schema):
    assert _parameter(schema, "/api/v1/log/entries", "start")["minimum"] == 0
    assert _parameter(schema, "/api/v1/log/checkpoint", "size")["minimum"] == 0
    month = re.compile(_parameter(schema, "/api/v1/log/figures", "month")["pattern"])
    assert month.match("2026-12") and month.match("") and not month.match("0000-01")
    limit = _parameter(schema, "/api/v1/sync/changes", "limit")
    assert (limit["minimum"], limit["maximum"]) == (1, 10_000)
    feed = _parameter(schema, "/api/v1/federation/feed", "limit")
    assert (feed["minimum"], feed["maximum"]) == (1, 500)
    assert _parameter(schema, "/api/v1/entries/", "page_size")["minimum"] == 1
    # 400s the fuzzer met undocumented
    for path in ("/api/v1/log/contributions", "/api/v1/log/figures", "/api/v1/witness/evidence"):
        assert "invalid" in _codes(schema, path, "get", "400"), path
    assert "invalid" in _codes(schema, "/api/v1/entries/", "get", "400")


def test_names_shown_to_others_carry_the_display_name_rule_as_a_pattern(schema):
    for path, field in [
        ("/api/v1/incidents/", "name"),
        ("/api/v1/credentials/", "name"),
        ("/api/v1/keys/", "label"),
    ]:
        found = _request_body(schema, path)["properties"][field]
        pattern = re.compile((found["oneOf"][0] if "oneOf" in found else found)["pattern"])
        assert pattern.match("Stream attack, Ünïcode OK"), path
        for refused in ("a\u202eb", "tab\there", "zero\u200bwidth", "\ue000", ""):
            assert not pattern.match(refused), (path, refused)
