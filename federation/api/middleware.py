"""The API never answers with a redirect.

``ApiAwareCommonMiddleware`` is Django's CommonMiddleware, except for slashes under ``/api/``.

``APPEND_SLASH`` answers ``POST /api/v1/contributions`` with a 301 to the slashed URL; a client
that follows it turns the POST into a GET and drops the submission without an error. Under
``/api/`` the request instead falls through to the JSON 404 (``federation.api.errors``), whose
``details.url`` names the URL that exists. The admin and the reports keep the redirect.
"""

from django.conf import settings
from django.http import JsonResponse
from django.middleware.common import CommonMiddleware

from federation.api.errors import error_body

API_PREFIX = "/api/"


class ApiAwareCommonMiddleware(CommonMiddleware):
    def should_redirect_with_slash(self, request) -> bool:
        if request.path_info.startswith(API_PREFIX):
            return False
        return super().should_redirect_with_slash(request)


def api_https_required(get_response):
    """With ``SECURE_SSL_REDIRECT`` on, refuse a plain-HTTP API request instead of redirecting it.

    Django's SecurityMiddleware would answer 301 to the HTTPS URL (``/api/`` is exempt from that,
    settings/base.py): a client that follows it turns a POST into a GET and loses the submission.
    A JSON 403 ``https_required`` tells the client what to fix; its token has crossed in the clear
    already, which the message says.
    """

    def middleware(request):
        if (
            settings.SECURE_SSL_REDIRECT
            and request.path_info.startswith(API_PREFIX)
            and not request.is_secure()
        ):
            body = error_body(
                "https_required",
                "The API is served over HTTPS only; use the https:// URL. The credential of this "
                "request was sent in the clear: revoke it and issue a new one.",
                {"url": f"https://{request.get_host()}{request.get_full_path()}"},
            )
            return JsonResponse(body, status=403)
        return get_response(request)

    return middleware


def api_query_without_nul(get_response):
    """Refuse an API request whose query string holds a NUL character, as ``400 invalid``.

    PostgreSQL cannot hold NUL in text: a filter such as ``?origin=a%00`` or ``?label=a%00`` that
    reached a query raised in the database driver and answered 500 (found by the schema fuzzer).
    No parameter of the API can contain one, so it is refused here for every endpoint at once.
    """

    def middleware(request):
        query = request.META.get("QUERY_STRING", "")
        if request.path_info.startswith(API_PREFIX) and ("%00" in query or "\x00" in query):
            name = next(
                (key for key, values in request.GET.lists() if "\x00" in key + "".join(values)),
                None,
            )
            if name is None:
                return get_response(request)
            body = error_body(
                "invalid",
                "A query parameter holds a NUL character.",
                {"parameter": name[:100]},
            )
            return JsonResponse(body, status=400)
        return get_response(request)

    return middleware
