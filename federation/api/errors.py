"""Renders every API error in one documented shape (docs/api.md):

{"error": {"code": "invalid", "message": "…", "details": {...} | null}}

DRF exceptions and domain errors (``federation.errors.ConcordatError``) go through
``exception_handler``; URLs that match no view, and unexpected failures, under ``/api/`` get the
same shape from ``api_not_found`` and ``api_server_error`` (the project's handler404/handler500).
Under ``/taxii2/`` those handlers answer TAXII's error object instead (docs/taxii.md).
"""

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from django.urls import is_valid_path
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from federation.errors import ConcordatError
from federation.taxii.api import taxii_error

_DRF_CODES = {
    exceptions.ParseError: "malformed_json",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ValidationError: "invalid",
}
TAXII_PREFIX = "/taxii2/"
_BAD_REQUEST = (
    "The request was refused before reaching the API (for example, a Host header this hub does "
    "not serve; see DJANGO_ALLOWED_HOSTS)."
)
# Error details may quote the client's input back; keep such quotes short.
_MAX_DETAIL_TEXT = 300


def error_body(code: str, message: str, details=None) -> dict:
    return {"error": {"code": code, "message": message, "details": details}}


def exception_handler(exc, context):
    if isinstance(exc, ConcordatError):
        return Response(
            error_body(exc.code, _safe(exc.message), _safe(exc.details)), status=exc.status
        )
    if isinstance(exc, RequestDataTooBig):
        # DRF reads JSON bodies through Django's request.body, which refuses a declared
        # Content-Length over DATA_UPLOAD_MAX_MEMORY_SIZE before reading anything.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            error_body(
                "payload_too_large",
                f"Request bodies are limited to {limit} bytes.",
                {"limit": limit},
            ),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        message = "The request is not valid; see details for each field."
        details = response.data
    else:
        message = str(exc.detail) if hasattr(exc, "detail") else str(exc)
        details = None
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response.status_code = status.HTTP_401_UNAUTHORIZED
        response["WWW-Authenticate"] = 'Bearer realm="concordat"'
    response.data = error_body(code, _safe(message), _safe(details))
    return response


def _safe(value):
    """Details that can always be rendered: no lone surrogates (which cannot be encoded as UTF-8)
    and no very long quotes of the input."""
    if isinstance(value, str):
        if len(value) > _MAX_DETAIL_TEXT:
            value = value[:_MAX_DETAIL_TEXT] + "…"
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_safe(str(key)): _safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(item) for item in value]
    return value


def api_not_found(request, exception=None):
    if request.path.startswith(TAXII_PREFIX):
        return taxii_error(404, "not_found", "No such resource.")
    if request.path.startswith("/api/"):
        slashed, unslashed = _slashed_url(request), _unslashed_url(request)
        if slashed is not None or unslashed is not None:
            # No redirect (a followed 301 turns a POST into a GET): say which URL exists.
            right = slashed or unslashed
            rule = "ends with a slash" if slashed else "has no trailing slash"
            return JsonResponse(
                error_body(
                    "not_found",
                    f"No API endpoint at {_safe(request.path)}; the URL {rule}: {_safe(right)}.",
                    {"url": _safe(right)},
                ),
                status=404,
            )
        return JsonResponse(
            error_body("not_found", f"No API endpoint at {_safe(request.path)}."), status=404
        )
    return defaults.page_not_found(request, exception)


def _slashed_url(request) -> str | None:
    path = request.path_info
    if path.endswith("/"):
        return None
    urlconf = getattr(request, "urlconf", None)
    if not is_valid_path(f"{path}/", urlconf):
        return None
    return f"{request.path}/"


def _unslashed_url(request) -> str | None:
    """The URL without its trailing slash, for the families that have none (``match``, ``log/``,
    ``sync/``, ``federation/``, ``witness/``)."""
    path = request.path_info
    if not path.endswith("/") or path == "/":
        return None
    urlconf = getattr(request, "urlconf", None)
    if not is_valid_path(path.rstrip("/"), urlconf):
        return None
    return request.path.rstrip("/")


def api_bad_request(request, exception=None):
    """Django's own 400s (a disallowed ``Host`` header, other suspicious requests) that happen
    before any view runs. Must not call ``request.get_host()``: that is what failed."""
    if request.path.startswith(TAXII_PREFIX):
        return taxii_error(400, "bad_request", _BAD_REQUEST)
    if request.path.startswith("/api/"):
        return JsonResponse(
            error_body(
                "bad_request",
                _BAD_REQUEST,
            ),
            status=400,
        )
    return defaults.bad_request(request, exception)


def api_permission_denied(request, exception=None):
    if request.path.startswith(TAXII_PREFIX):
        return taxii_error(403, "permission_denied", "You do not have permission to do this.")
    if request.path.startswith("/api/"):
        return JsonResponse(
            error_body("permission_denied", "You do not have permission to do this."), status=403
        )
    return defaults.permission_denied(request, exception)


def api_server_error(request):
    if request.path.startswith(TAXII_PREFIX):
        return taxii_error(500, "server_error", "The server failed to answer.")
    if request.path.startswith("/api/"):
        return JsonResponse(
            error_body("server_error", "The hub failed to handle this request."), status=500
        )
    return defaults.server_error(request)
