"""A JSON parser that refuses bodies over the configured limit, and never fails with a 500.

DRF hands JSON parsers ``request.body``, for which Django already refuses a declared
``Content-Length`` over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (rendered as 413 ``payload_too_large`` by
federation/api/errors.py). This parser enforces the limit again on what it is given, whatever the
headers said, reading at most one byte past the limit, and turns every decoding failure (bad
bytes, bad JSON, nesting too deep for the decoder) into a 400 ``malformed_json``.

Bodies without a ``Content-Length`` (chunked transfer encoding) are not read by Django's WSGI
handler at all; such requests arrive with an empty body and are refused as invalid (docs/api.md).
"""

import orjson
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from federation.errors import ConcordatError


class PayloadTooLarge(ConcordatError):
    code = "payload_too_large"
    status = 413


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        parser_context = parser_context or {}
        request = parser_context.get("request")
        meta = request.META if request is not None else {}
        declared = meta.get("CONTENT_LENGTH") or meta.get("HTTP_CONTENT_LENGTH")
        try:
            declared_length = int(declared) if declared is not None else None
        except ValueError:
            declared_length = None
        if declared_length is not None and declared_length > limit:
            raise self._too_large(limit)
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise self._too_large(limit)
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            if encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
                body = body.decode(encoding).encode("utf-8")
            # orjson: strict RFC 8259 (no NaN/Infinity, no lone surrogates, valid UTF-8), nesting
            # bounded, and about three times faster than the standard library on bulk bodies.
            return orjson.loads(body)
        except (ValueError, LookupError) as exc:  # bad JSON, bad bytes, unknown charset
            raise ParseError(f"JSON parse error - {exc}") from exc

    @staticmethod
    def _too_large(limit: int) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"Request bodies are limited to {limit} bytes.", details={"limit": limit}
        )
