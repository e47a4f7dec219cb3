"""Django's CommonMiddleware, except that it never redirects an API request.

``APPEND_SLASH`` answers ``POST /api/v1/contributions`` with a 301 to the slashed URL; a client
that follows it turns the POST into a GET and drops the submission without an error. Under
``/api/`` the request instead falls through to the JSON 404 (``federation.api.errors``), whose
``details.url`` names the URL that exists. The admin and the reports keep the redirect.
"""

from django.middleware.common import CommonMiddleware

API_PREFIX = "/api/"


class ApiAwareCommonMiddleware(CommonMiddleware):
    def should_redirect_with_slash(self, request) -> bool:
        if request.path_info.startswith(API_PREFIX):
            return False
        return super().should_redirect_with_slash(request)
