"""Who may call what: every URL pattern under /api/v1/ (and the monitoring endpoints) and every
method it answers, for every role.

The routes are enumerated from Django's URL resolver, so an endpoint added without a decision in
``DECISIONS`` fails ``test_every_api_route_and_method_has_a_declared_decision``. To declare one,
add a line: the route pattern as Django prints it, the concrete URL to call (``{entry}``,
``{incident}``… are filled from the ``world`` fixture), and per method who is allowed.

Outcomes checked for each (route, method, role):
- anonymous and not public: 401;
- not allowed: 403 with code ``permission_denied`` (the capability check, before any other work);
- ``hidden``: the role may use the endpoint but the object is another organisation's: 404;
- allowed: anything but 401, 403 ``permission_denied``, 404 and 5xx (the request body is ``{}``,
  so an allowed call may well answer 400 or 409: that is past the authorisation step).
"""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from federation.contributions.models import Entry
from federation.contributions.services import contributions_submit
from federation.live.evidence import LiveSettings
from federation.live.services import live_session_open
from federation.lookup.keys import write_key_file
from federation.lookup.services import lookup_key_create
from federation.lookup.table import lookup_table_refresh
from federation.taxii.selectors import ALL_COLLECTION
from federation.taxii.stix import indicator_id
from federation.transparency.checkpoints import hub_verifier_key
from federation.transparency.models import WitnessedLog
from federation.transparency.sequencer import sequence_pending
from federation.vetting.services import incident_declare
from federation.witnessing.witness import witnessed_log_save
from members.actors import Actor
from members.models import Role
from members.services import credential_create, lookup_credential_create
from tests.support.parties import make_member, make_organisation, register_key

ANONYMOUS = "anonymous"
ROLES = (
    ANONYMOUS,
    "acme_submitter",
    "acme_reviewer",
    "acme_admin",
    "globex_admin",  # a member admin of another organisation, acting on acme's objects
    "consortium_admin",
    "auditor",
    "lookup_platform",  # a non-member platform's lookup-only token (docs/private-lookup.md)
)

# Who holds each capability (docs/api.md, "Roles and scopes"), written out rather than derived
# from the code under test.
EVERYONE = frozenset(ROLES)
READ = frozenset(
    {"acme_submitter", "acme_reviewer", "acme_admin", "globex_admin", "consortium_admin"}
)
SUBMIT = frozenset({"acme_submitter", "acme_admin", "globex_admin"})
REVIEW = frozenset({"acme_reviewer", "acme_admin", "globex_admin"})
MANAGE = frozenset({"acme_admin", "globex_admin"})
HUB_ADMIN = frozenset({"consortium_admin"})
AUDIT = frozenset({"consortium_admin", "auditor"})
# The private lookup: lookup-only tokens, and every member role through its read capability.
LOOKUP = READ | {"lookup_platform"}
# Objects of acme's that another organisation's member admin must not even see.
OTHER_ORGANISATION = frozenset({"globex_admin"})


@dataclass(frozen=True)
class Access:
    allowed: frozenset[str]
    hidden: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Route:
    url: str
    methods: dict[str, Access]


DECISIONS: dict[str, Route] = {
    "api/v1/hub/": Route("/api/v1/hub/", {"GET": Access(EVERYONE)}),
    # members: each organisation manages its own keys, credentials and roles
    "api/v1/keys/": Route("/api/v1/keys/", {"GET": Access(MANAGE), "POST": Access(MANAGE)}),
    "api/v1/keys/<str:key_id>/revoke/": Route(
        "/api/v1/keys/{acme_key}/revoke/",
        {"POST": Access(MANAGE - OTHER_ORGANISATION, hidden=OTHER_ORGANISATION)},
    ),
    "api/v1/credentials/": Route(
        "/api/v1/credentials/", {"GET": Access(MANAGE), "POST": Access(MANAGE)}
    ),
    "api/v1/credentials/<int:pk>/revoke/": Route(
        "/api/v1/credentials/{acme_credential}/revoke/",
        {"POST": Access(MANAGE - OTHER_ORGANISATION, hidden=OTHER_ORGANISATION)},
    ),
    "api/v1/memberships/": Route("/api/v1/memberships/", {"GET": Access(MANAGE)}),
    "api/v1/memberships/<int:pk>/": Route(
        "/api/v1/memberships/{acme_membership}/",
        {"PATCH": Access(MANAGE - OTHER_ORGANISATION, hidden=OTHER_ORGANISATION)},
    ),
    # contributions and entries
    "api/v1/contributions/": Route(
        "/api/v1/contributions/", {"GET": Access(READ), "POST": Access(SUBMIT)}
    ),
    "api/v1/contributions/bulk/": Route("/api/v1/contributions/bulk/", {"POST": Access(SUBMIT)}),
    "api/v1/contributions/<uuid:uuid>/": Route(
        "/api/v1/contributions/{acme_contribution}/",
        {
            # an organisation's own contributions; the hub's staff read them through entries
            "GET": Access(
                READ - OTHER_ORGANISATION - HUB_ADMIN, hidden=OTHER_ORGANISATION | HUB_ADMIN
            )
        },
    ),
    "api/v1/entries/": Route("/api/v1/entries/", {"GET": Access(READ)}),
    "api/v1/entries/<int:pk>/": Route("/api/v1/entries/{entry}/", {"GET": Access(READ)}),
    # vetting (issue 4)
    "api/v1/review/queue/": Route("/api/v1/review/queue/", {"GET": Access(REVIEW)}),
    "api/v1/entries/<int:pk>/approve/": Route(
        "/api/v1/entries/{entry}/approve/", {"POST": Access(REVIEW | HUB_ADMIN)}
    ),
    "api/v1/entries/<int:pk>/reject/": Route(
        "/api/v1/entries/{entry}/reject/", {"POST": Access(REVIEW | HUB_ADMIN)}
    ),
    "api/v1/entries/<int:pk>/resolve/": Route(
        "/api/v1/entries/{entry}/resolve/", {"POST": Access(HUB_ADMIN)}
    ),
    "api/v1/entries/<int:pk>/decisions/": Route(
        "/api/v1/entries/{entry}/decisions/", {"GET": Access(READ)}
    ),
    "api/v1/entries/<int:pk>/feedback/": Route(
        "/api/v1/entries/{entry}/feedback/", {"GET": Access(READ), "PUT": Access(REVIEW)}
    ),
    "api/v1/labels/": Route("/api/v1/labels/", {"GET": Access(READ)}),
    "api/v1/incidents/": Route(
        "/api/v1/incidents/", {"GET": Access(READ), "POST": Access(HUB_ADMIN)}
    ),
    "api/v1/incidents/<uuid:pk>/": Route("/api/v1/incidents/{incident}/", {"GET": Access(READ)}),
    "api/v1/incidents/<uuid:pk>/close/": Route(
        "/api/v1/incidents/{incident}/close/", {"POST": Access(HUB_ADMIN)}
    ),
    "api/v1/policy/": Route("/api/v1/policy/", {"GET": Access(READ), "PATCH": Access(HUB_ADMIN)}),
    # the transparency log (issue 5): the audit capability; the verifier key is public
    "api/v1/log/key": Route("/api/v1/log/key", {"GET": Access(EVERYONE)}),
    "api/v1/log/checkpoint": Route("/api/v1/log/checkpoint", {"GET": Access(AUDIT)}),
    # sync: every member role reads the shared set (docs/sync.md)
    "api/v1/sync/changes": Route("/api/v1/sync/changes", {"GET": Access(READ)}),
    "api/v1/sync/export": Route("/api/v1/sync/export", {"GET": Access(READ)}),
    "api/v1/sync/frames": Route("/api/v1/sync/frames?values=" + "0" * 64, {"GET": Access(READ)}),
    # matching: every member role matches against the shared set (docs/matching.md)
    "api/v1/match": Route("/api/v1/match", {"GET": Access(READ), "POST": Access(READ)}),
    # live-stream sessions (docs/video.md): read, like matching; a session is its member's
    # (the hub's staff get 403 member_only, past this check)
    "api/v1/live": Route("/api/v1/live", {"POST": Access(READ)}),
    "api/v1/live/<uuid:session_id>": Route(
        "/api/v1/live/{acme_live_session}",
        {
            "GET": Access(READ - OTHER_ORGANISATION, hidden=OTHER_ORGANISATION),
            "DELETE": Access(READ - OTHER_ORGANISATION, hidden=OTHER_ORGANISATION),
        },
    ),
    "api/v1/live/<uuid:session_id>/frames": Route(
        "/api/v1/live/{acme_live_session}/frames",
        {"POST": Access(READ - OTHER_ORGANISATION, hidden=OTHER_ORGANISATION)},
    ),
    # private lookup (docs/private-lookup.md): lookup-only tokens and members, nothing else
    "api/v1/lookup/key": Route("/api/v1/lookup/key", {"GET": Access(LOOKUP)}),
    "api/v1/lookup/table": Route("/api/v1/lookup/table", {"GET": Access(LOOKUP)}),
    "api/v1/lookup/table/changes": Route(
        "/api/v1/lookup/table/changes?key_id={lookup_key}&since=0", {"GET": Access(LOOKUP)}
    ),
    "api/v1/lookup/evaluate": Route("/api/v1/lookup/evaluate", {"POST": Access(LOOKUP)}),
    "api/v1/log/entries": Route("/api/v1/log/entries?start=0&end=1", {"GET": Access(AUDIT)}),
    "api/v1/log/proof/inclusion": Route(
        "/api/v1/log/proof/inclusion?index=0&tree_size=1", {"GET": Access(AUDIT)}
    ),
    "api/v1/log/proof/consistency": Route(
        "/api/v1/log/proof/consistency?first=1&second=1", {"GET": Access(AUDIT)}
    ),
    # issue 8: signed bytes by leaf, figures from the log, freshness; health is for monitoring
    "api/v1/log/contributions": Route(
        "/api/v1/log/contributions?start=0&end=1", {"GET": Access(AUDIT)}
    ),
    "api/v1/log/figures": Route("/api/v1/log/figures", {"GET": Access(AUDIT)}),
    "api/v1/log/status": Route("/api/v1/log/status", {"GET": Access(AUDIT)}),
    "api/v1/log/health": Route("/api/v1/log/health", {"GET": Access(EVERYONE)}),
    "api/v1/log/checkpoint/cosigned": Route(
        "/api/v1/log/checkpoint/cosigned", {"GET": Access(AUDIT)}
    ),
    # issue 13: the witness (C2SP tlog-witness) is open: only a checkpoint signed by a witnessed
    # log's key changes its state (docs/transparency.md, "Witnesses"); evidence is public too
    "api/v1/witness/add-checkpoint": Route(
        "/api/v1/witness/add-checkpoint", {"POST": Access(EVERYONE)}
    ),
    "api/v1/witness/key": Route("/api/v1/witness/key", {"GET": Access(EVERYONE)}),
    "api/v1/witness/evidence": Route("/api/v1/witness/evidence", {"GET": Access(EVERYONE)}),
    "api/v1/witness/<str:origin_hash>/checkpoint": Route(
        "/api/v1/witness/{witnessed_origin_hash}/checkpoint", {"GET": Access(EVERYONE)}
    ),
    # TAXII 2.1 (docs/taxii.md): read-only, the sync API's read capability; writes are refused
    # by TAXII's own 403 (read_only) after the capability check
    "taxii2/": Route("/taxii2/", {"GET": Access(READ)}),
    "taxii2/shared/": Route("/taxii2/shared/", {"GET": Access(READ)}),
    "taxii2/shared/collections/": Route("/taxii2/shared/collections/", {"GET": Access(READ)}),
    "taxii2/shared/collections/<str:collection_id>/": Route(
        "/taxii2/shared/collections/{taxii_collection}/", {"GET": Access(READ)}
    ),
    "taxii2/shared/collections/<str:collection_id>/objects/": Route(
        "/taxii2/shared/collections/{taxii_collection}/objects/",
        {"GET": Access(READ), "POST": Access(READ)},
    ),
    "taxii2/shared/collections/<str:collection_id>/objects/<str:object_id>/": Route(
        "/taxii2/shared/collections/{taxii_collection}/objects/{stix_indicator}/",
        {"GET": Access(READ), "DELETE": Access(READ)},
    ),
    "taxii2/shared/collections/<str:collection_id>/objects/<str:object_id>/versions/": Route(
        "/taxii2/shared/collections/{taxii_collection}/objects/{stix_indicator}/versions/",
        {"GET": Access(READ)},
    ),
    "taxii2/shared/collections/<str:collection_id>/manifest/": Route(
        "/taxii2/shared/collections/{taxii_collection}/manifest/", {"GET": Access(READ)}
    ),
    # anything else under /taxii2/ (status resources too): 404 to readers, after the check
    "taxii2/^.*$": Route(
        "/taxii2/shared/status/nothing/",
        {
            method: Access(frozenset(), hidden=READ)
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
        },
    ),
}


# Federation endpoints (docs/federation.md) answer peer hubs only, authenticated by their cp_
# tokens: a member's or staff's cc_ token is not a peer's, so every role here, like an anonymous
# caller, is refused as unauthenticated (401) before anything else.
PEER_ONLY: dict[str, Route] = {
    "api/v1/federation/batches": Route("/api/v1/federation/batches", {"POST": Access(frozenset())}),
    "api/v1/federation/feed": Route(
        "/api/v1/federation/feed?after=0", {"GET": Access(frozenset())}
    ),
}


# Monitoring (docs/operations.md), at the site's root: the probes answer anyone (a load balancer
# calls them without credentials); metrics need the metrics capability (a consortium admin's; an
# allowed network also lets a caller in, and none is allowed in the tests' settings).
METRICS = frozenset({"consortium_admin"})
MONITORING: dict[str, Route] = {
    "metrics": Route("/metrics", {"GET": Access(METRICS)}),
    "health/live": Route("/health/live", {"GET": Access(EVERYONE)}),
    "health/ready": Route("/health/ready", {"GET": Access(EVERYONE)}),
}
CHECKED: dict[str, Route] = {**DECISIONS, **MONITORING}


def _is_monitoring(pattern: URLPattern) -> bool:
    view = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
    return getattr(view, "__module__", "").startswith("federation.monitoring")


def api_routes() -> dict[str, dict[str, object]]:
    """Every URL pattern under /api/v1/ and /taxii2/, and every monitoring endpoint, with the HTTP
    methods its view implements."""
    found: dict[str, dict[str, object]] = {}

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and (
                route.startswith(("api/v1/", "taxii2/")) or _is_monitoring(pattern)
            ):
                found[route] = {"methods": _methods(pattern.callback), "pattern": pattern}

    walk(get_resolver().url_patterns, "")
    return found


def _methods(callback) -> set[str]:
    view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view is None:  # a function view: ask what it says it allows
        return {"GET"}
    return {
        method.upper()
        for method in view.http_method_names
        if method not in ("options", "head", "trace") and hasattr(view, method)
    }


def declared(route: str) -> Route | None:
    return CHECKED.get(route) or PEER_ONLY.get(route)


def cases() -> list[tuple[str, str]]:
    return sorted(
        (route, method)
        for route, info in api_routes().items()
        for method in info["methods"]
        if route in CHECKED and method in CHECKED[route].methods
    )


def test_every_api_route_and_method_has_a_declared_decision():
    routes = api_routes()
    missing = [
        f"{method} {route}"
        for route, info in sorted(routes.items())
        for method in sorted(info["methods"])
        if declared(route) is None or method not in declared(route).methods
    ]
    assert not missing, (
        "Declare who may call these in tests/test_authorisation_matrix.py DECISIONS: "
        + ", ".join(missing)
    )
    stale = [route for route in [*CHECKED, *PEER_ONLY] if route not in routes]
    assert not stale, f"DECISIONS names routes that no longer exist: {stale}"


@pytest.fixture
def world(
    acme_submitter,
    acme_reviewer,
    acme_admin,
    globex_admin,
    consortium_admin,
    auditor,
    anonymous,
):
    """The parties by role, and objects of acme's (and a shared entry) to aim requests at."""
    initech = make_member("ivan", make_organisation("initech"), Role.SUBMITTER)
    (shared,) = contributions_submit(actor=initech.actor, items=[initech.signed()])
    (own,) = contributions_submit(actor=acme_submitter.actor, items=[acme_submitter.signed()])
    spare_key = register_key(acme_admin.organisation, Ed25519PrivateKey.generate())
    spare_credential = credential_create(
        holder=acme_submitter.user,
        name="spare",
        scopes=["read"],
        actor=Actor.system("test"),
    ).credential
    incident = incident_declare(name="Matrix incident", actor=Actor.system("test"))
    live_session = live_session_open(actor=acme_submitter.actor, settings=LiveSettings())
    # A shared entry of a trusted member, for TAXII's object endpoints.
    umbrella = make_member("uma", make_organisation("umbrella", trusted=True), Role.SUBMITTER)
    (vetted,) = contributions_submit(actor=umbrella.actor, items=[umbrella.signed()])
    vetted_entry = Entry.objects.get(pk=vetted.entry_id)
    sequence_pending()  # a checkpoint, so that the log's endpoints have something to serve
    # A log this hub witnessed, so that its monitoring endpoint has a checkpoint to serve.
    witnessed, _ = witnessed_log_save(
        origin="witnessed.hub.test", vkey=hub_verifier_key(), actor=Actor.system("test")
    )
    WitnessedLog.objects.filter(pk=witnessed.pk).update(checkpoint="a cosigned checkpoint\n")
    lookup_key = lookup_key_create(actor=Actor.system("test"))
    write_key_file(Path(settings.LOOKUP_KEY_PATH), lookup_key)  # what the commit would write
    lookup_table_refresh()
    platform = APIClient()
    platform.credentials(
        HTTP_AUTHORIZATION="Bearer "
        + lookup_credential_create(
            holder=get_user_model().objects.create_user("tinyshare"),
            name="uploads",
            actor=Actor.system("test"),
        ).token
    )
    clients = {
        ANONYMOUS: anonymous,
        "lookup_platform": platform,
        "acme_submitter": acme_submitter.client,
        "acme_reviewer": acme_reviewer.client,
        "acme_admin": acme_admin.client,
        "globex_admin": globex_admin.client,
        "consortium_admin": consortium_admin.client,
        "auditor": auditor.client,
    }
    values = {
        "entry": shared.entry_id,
        "acme_contribution": own.uuid,
        "acme_key": spare_key.key_id,
        "acme_credential": spare_credential.pk,
        "acme_membership": acme_reviewer.user.membership.pk,
        "incident": incident.pk,
        "acme_live_session": live_session.pk,
        "taxii_collection": ALL_COLLECTION,
        "stix_indicator": indicator_id(
            signal_type=vetted_entry.signal_type, value=vetted_entry.value
        ),
        "witnessed_origin_hash": hashlib.sha256(b"witnessed.hub.test").hexdigest(),
        "lookup_key": lookup_key.key_id,
    }
    return clients, values


def outcome(response) -> str:
    if response.status_code == 401:
        return "401"
    if response.status_code == 404:
        return "404"
    if response.status_code >= 500:
        return f"{response.status_code} (server error)"
    if response.status_code == 403:
        code = _error_code(response)
        return "403" if code == "permission_denied" else f"allowed (refused: {code})"
    return "allowed"


def _error_code(response) -> str | None:
    try:
        body = response.json()
        # TAXII's error object carries the code as error_code (docs/taxii.md).
        return body["error_code"] if "error_code" in body else body["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def expected(access: Access, role: str) -> str:
    if role in access.allowed:
        return "allowed"
    if role == ANONYMOUS:
        return "401"
    if role in access.hidden:
        return "404"
    return "403"


@pytest.mark.parametrize(("route", "method"), cases())
def test_authorisation(world, route, method):
    clients, values = world
    target = declared(route)
    url = target.url.format(**values)
    access = target.methods[method]
    wrong = []
    for role in ROLES:
        call = getattr(clients[role], method.lower())
        response = call(url, {}, format="json") if method != "GET" else call(url)
        got = outcome(response)
        want = expected(access, role)
        if not (got == want or (want == "allowed" and got.startswith("allowed"))):
            wrong.append(f"{role}: expected {want}, got {got} ({response.status_code})")
    assert not wrong, f"{method} {url}:\n  " + "\n  ".join(wrong)


@pytest.mark.parametrize(
    ("route", "method"),
    sorted((route, method) for route, target in PEER_ONLY.items() for method in target.methods),
)
def test_peer_only_routes_refuse_every_role_as_unauthenticated(world, route, method):
    clients, _values = world
    url = PEER_ONLY[route].url
    wrong = []
    for role in ROLES:
        call = getattr(clients[role], method.lower())
        response = call(url, {}, format="json") if method != "GET" else call(url)
        if response.status_code != 401:
            wrong.append(f"{role}: {response.status_code}")
    assert not wrong, f"{method} {url}: " + ", ".join(wrong)
