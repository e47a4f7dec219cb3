"""A JSON parser that refuses bodies over the configured limit before reading them."""

from django.conf import settings
from rest_framework.parsers import JSONParser

from federation.errors import ConcordatError


class PayloadTooLarge(ConcordatError):
    code = "payload_too_large"
    status = 413


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        try:
            too_large = declared is not None and int(declared) > limit
        except ValueError:
            too_large = False
        if too_large:
            raise PayloadTooLarge(
                f"Request bodies are limited to {limit} bytes.", details={"limit": limit}
            )
        return super().parse(stream, media_type, parser_context)
