"""The TAXII 2.1 API, read-only, mounted at /taxii2/ (docs/taxii.md).

Every response, errors included, is ``application/taxii+json;version=2.1``, and every error is
TAXII's error object (``title``, ``description``, ``http_status``, ``error_code``), so that TAXII
clients, which check the content type before anything else, always read what went wrong.
Authentication and the ``read`` capability are the sync API's (docs/sync.md); like sync, reading
writes no audit event.
"""

import logging
from datetime import UTC, datetime, timedelta

import orjson
from django.core import signing
from django.http import Http404, HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.views import APIView

from federation.errors import ConcordatError, Forbidden, InvalidInput, NotFound
from federation.taxii import selectors, stix
from federation.taxii.authentication import BasicTokenAuthentication
from federation.taxii.versions import stix_versions_pending, stix_versions_sequence
from members.authentication import ApiCredentialAuthentication
from members.models import Scope
from members.permissions import HasCapability

logger = logging.getLogger(__name__)

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
API_ROOT = "shared/"
PAGE_SIZE = 1_000
PAGE_SIZE_MAX = 10_000
SEQUENCE_BATCH_SIZE = 10_000
SEQUENCE_BATCHES_PER_READ = 2
_NEXT_SALT = "federation.taxii.next"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_READ_ONLY = "This API root is read-only: its collections cannot be written."
_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    429: "Too many requests",
    500: "Server error",
}


def taxii_response(body: bytes | dict, *, status: int = 200, headers=None) -> HttpResponse:
    if isinstance(body, dict):
        body = orjson.dumps(body)
    response = HttpResponse(body, status=status, content_type=TAXII_MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def taxii_error(status: int, code: str, description: str, *, headers=None) -> HttpResponse:
    """TAXII's error object, for the views' errors and for those raised before a view runs (an
    unknown URL, a refused ``Host``: the project's error handlers, federation/api/errors.py)."""
    body = {
        "title": _TITLES.get(status, "Error"),
        "description": description,
        "error_code": code,
        "http_status": str(status),
    }
    return taxii_response(body, status=status, headers=headers)


def accepts_taxii(accept: str) -> bool:
    """Whether an ``Accept`` header admits TAXII 2.1: ``application/taxii+json`` with
    ``version=2.1`` or no version, or a wildcard covering it; no header admits anything."""
    if not accept.strip():
        return True
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        values = dict(p.split("=", 1) for p in params if "=" in p)
        if values.get("q", "1").strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        if media.lower() in ("*/*", "application/*"):
            return True
        if media.lower() == "application/taxii+json" and values.get("version", "2.1") == "2.1":
            return True
    return False


class TaxiiView(APIView):
    """What every TAXII endpoint shares: authentication (Bearer, or Basic with the token as
    password), the ``read`` capability, ``Accept`` negotiation and TAXII error objects."""

    # No OPTIONS: DRF answers it with its own metadata response, outside TAXII's media type.
    http_method_names = ["get", "post", "put", "patch", "delete", "head"]
    authentication_classes = [ApiCredentialAuthentication, BasicTokenAuthentication]
    permission_classes = [HasCapability]
    required_capability = Scope.READ

    def perform_content_negotiation(self, request, force=False):
        if not accepts_taxii(request.META.get("HTTP_ACCEPT", "")):
            raise exceptions.NotAcceptable(f"This server answers only {TAXII_MEDIA_TYPE}.")
        return (None, TAXII_MEDIA_TYPE)

    def handle_exception(self, exc):
        headers = {}
        if isinstance(exc, ConcordatError):
            status, code, description = exc.status, exc.code, exc.message
        elif isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            status, code, description = 401, "not_authenticated", str(exc.detail)
            headers["WWW-Authenticate"] = 'Basic realm="concordat", Bearer realm="concordat"'
        elif isinstance(exc, Http404):
            status, code, description = 404, "not_found", "No such resource."
        elif isinstance(exc, exceptions.APIException):
            status = exc.status_code
            code = exc.default_code if isinstance(exc.default_code, str) else "error"
            description = str(exc.detail)
            if isinstance(exc, exceptions.Throttled) and exc.wait:
                headers["Retry-After"] = str(int(exc.wait) + 1)
        else:
            logger.exception("TAXII request failed", exc_info=exc)
            status, code, description = 500, "server_error", "The server failed to answer."
        return taxii_error(status, code, description, headers=headers)


@extend_schema(exclude=True)
class DiscoveryView(TaxiiView):
    """``GET /taxii2/``: the server and its one API root."""

    def get(self, request):
        root = request.build_absolute_uri(f"/taxii2/{API_ROOT}")
        return taxii_response(
            {
                "title": "Concordat",
                "description": "The Christchurch Call shared hash set, read-only, in STIX 2.1.",
                "default": root,
                "api_roots": [root],
            }
        )


@extend_schema(exclude=True)
class ApiRootView(TaxiiView):
    def get(self, request):
        return taxii_response(
            {
                "title": "Concordat shared set",
                "description": "Read-only collections of the hub's shared set (docs/taxii.md).",
                "versions": [TAXII_MEDIA_TYPE],
                "max_content_length": 0,
            }
        )


def _collection_document(collection: selectors.Collection) -> dict:
    return {
        "id": collection.id,
        "title": collection.title,
        "description": collection.description,
        "can_read": True,
        "can_write": False,
        "media_types": [stix.STIX_MEDIA_TYPE],
    }


def _collection(collection_id: str) -> selectors.Collection:
    collection = selectors.collection_get(collection_id=collection_id)
    if collection is None:
        raise NotFound("No such collection.", details={"collection": collection_id})
    return collection


@extend_schema(exclude=True)
class CollectionsView(TaxiiView):
    def get(self, request):
        return taxii_response(
            {"collections": [_collection_document(c) for c in selectors.collections_list()]}
        )


@extend_schema(exclude=True)
class CollectionView(TaxiiView):
    def get(self, request, collection_id):
        return taxii_response(_collection_document(_collection(collection_id)))


class _ObjectsBase(TaxiiView):
    """Reads a page of object versions with TAXII's filters and paging parameters."""

    allowed_filters = ("id", "type", "version", "spec_version")

    def page(self, request, collection, *, ids=None, versions=None):
        if stix_versions_pending():
            # Bounded, so that a backlog (the migration's, a huge bulk change) cannot hold a
            # request for long: what is left is numbered by the next reads, after what they
            # served, so nothing is lost (docs/taxii.md, "Versions").
            stix_versions_sequence(
                batch_size=SEQUENCE_BATCH_SIZE, max_batches=SEQUENCE_BATCHES_PER_READ
            )
        params = request.query_params
        wanted, limit = _filter(params, self.allowed_filters, ids=ids, versions=versions)
        return selectors.objects_page(collection=collection, wanted=wanted, limit=limit)

    def envelope(self, page, items: list[bytes]) -> HttpResponse:
        parts = [b'{"more":', b"true" if page.more else b"false"]
        if page.more:
            last = page.rows[-1]
            parts += [b',"next":', orjson.dumps(next_token(last.date_added, last.id))]
        if items:
            parts += [b',"objects":[', b",".join(items), b"]"]
        parts.append(b"}")
        return taxii_response(b"".join(parts), headers=_added_headers(page))


@extend_schema(exclude=True)
class ObjectsView(_ObjectsBase):
    def get(self, request, collection_id):
        page = self.page(request, _collection(collection_id))
        return self.envelope(page, [row.document.encode() for row in page.rows])

    def post(self, request, collection_id):
        raise Forbidden(_READ_ONLY, code="read_only")


@extend_schema(exclude=True)
class ManifestView(_ObjectsBase):
    def get(self, request, collection_id):
        page = self.page(request, _collection(collection_id))
        return self.envelope(page, [_manifest_record(row) for row in page.rows])


@extend_schema(exclude=True)
class ObjectView(_ObjectsBase):
    allowed_filters = ("version", "spec_version")

    def get(self, request, collection_id, object_id):
        collection = _collection(collection_id)
        page = self.page(request, collection, ids=frozenset({object_id}))
        if not page.rows and not selectors.object_exists(collection=collection, stix_id=object_id):
            raise NotFound("No such object in this collection.", details={"object": object_id})
        return self.envelope(page, [row.document.encode() for row in page.rows])

    def delete(self, request, *args, **kwargs):
        raise Forbidden(_READ_ONLY, code="read_only")


@extend_schema(exclude=True)
class VersionsView(_ObjectsBase):
    allowed_filters = ("spec_version",)

    def get(self, request, collection_id, object_id):
        collection = _collection(collection_id)
        page = self.page(
            request, collection, ids=frozenset({object_id}), versions=frozenset({"all"})
        )
        if not page.rows and not selectors.object_exists(collection=collection, stix_id=object_id):
            raise NotFound("No such object in this collection.", details={"object": object_id})
        body = {"more": page.more}
        if page.rows:
            body["versions"] = [stix.stix_time(row.modified) for row in page.rows]
        return taxii_response(body, headers=_added_headers(page))


@extend_schema(exclude=True)
class NoSuchResourceView(TaxiiView):
    """Anything else under /taxii2/ (status resources included: a read-only root has none)."""

    def get(self, request, *args, **kwargs):
        raise NotFound("No such TAXII resource.")

    post = put = patch = delete = get


def _manifest_record(row: selectors.ObjectRow) -> bytes:
    return orjson.dumps(
        {
            "id": row.stix_id,
            "date_added": stix.taxii_time(row.date_added),
            "version": stix.stix_time(row.modified),
            "media_type": stix.STIX_MEDIA_TYPE,
        }
    )


def _added_headers(page: selectors.ObjectPage) -> dict[str, str]:
    if not page.rows:
        return {}
    return {
        "X-TAXII-Date-Added-First": stix.taxii_time(page.rows[0].date_added),
        "X-TAXII-Date-Added-Last": stix.taxii_time(page.rows[-1].date_added),
    }


def next_token(date_added: datetime, pk: int) -> str:
    """A stateless, signed ``next``: the last version's ``(date_added, id)``."""
    micros = (date_added - _EPOCH) // _MICROSECOND
    return signing.Signer(salt=_NEXT_SALT).sign(f"{micros}.{pk}")


def position_of(token: str) -> tuple[datetime, int]:
    try:
        micros, pk = signing.Signer(salt=_NEXT_SALT).unsign(token).split(".")
        return _EPOCH + int(micros) * _MICROSECOND, int(pk)
    except (signing.BadSignature, ValueError, OverflowError):
        raise InvalidInput(
            "next must be the value of a page's next, unchanged.",
            code="invalid_next",
            details={"parameter": "next"},
        ) from None


def parse_timestamp(raw: str, parameter: str) -> datetime:
    try:
        if not raw.endswith("Z"):
            raise ValueError(raw)
        moment = datetime.fromisoformat(raw[:-1] + "+00:00")
    except ValueError:
        raise InvalidInput(
            f"{parameter} must be a UTC timestamp such as 2026-12-01T10:00:00.000Z.",
            details={"parameter": parameter},
        ) from None
    return moment


def _values(params, name: str) -> list[str]:
    return [v.strip() for raw in params.getlist(name) for v in raw.split(",") if v.strip()]


def _filter(params, allowed, *, ids=None, versions=None):
    unknown = sorted(
        name for name in params if name.startswith("match[") and name[6:-1] not in allowed
    )
    if unknown:
        raise InvalidInput(
            f"Filters this endpoint does not support: {', '.join(unknown)}.",
            details={"parameters": unknown},
        )
    raw_limit = params.get("limit")
    limit = PAGE_SIZE
    if raw_limit not in (None, ""):
        if not raw_limit.isascii() or not raw_limit.isdigit() or int(raw_limit) < 1:
            raise InvalidInput(
                "limit must be a positive whole number.", details={"parameter": "limit"}
            )
        limit = min(int(raw_limit), PAGE_SIZE_MAX)
    raw_versions = _values(params, "match[version]") if versions is None else list(versions)
    keywords = {v for v in raw_versions if v in ("first", "last", "all")}
    timestamps = frozenset(
        parse_timestamp(v, "match[version]") for v in raw_versions if v not in keywords
    )
    raw_added = params.get("added_after")
    raw_next = params.get("next")
    wanted = selectors.ObjectFilter(
        ids=ids if ids is not None else frozenset(_values(params, "match[id]")),
        types=frozenset(_values(params, "match[type]")),
        versions=frozenset(keywords or ({"last"} if not timestamps else set())),
        timestamps=timestamps,
        spec_versions=frozenset(_values(params, "match[spec_version]")),
        added_after=parse_timestamp(raw_added, "added_after") if raw_added else None,
        after=position_of(raw_next) if raw_next else None,
    )
    return wanted, limit
