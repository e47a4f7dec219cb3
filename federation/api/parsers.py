"""A JSON parser that refuses bodies over the configured limit, and never fails with a 500.

DRF hands JSON parsers ``request.body``, for which Django already refuses a declared
``Content-Length`` over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (rendered as 413 ``payload_too_large`` by
federation/api/errors.py). This parser enforces the limit again on what it is given, whatever the
headers said, reading at most one byte past the limit, and turns every decoding failure (bad
bytes, bad JSON, nesting too deep for the decoder) into a 400 ``malformed_json``.

Bodies without a ``Content-Length`` (chunked transfer encoding) are not read by Django's WSGI
handler at all; such requests arrive with an empty body and are refused as invalid (docs/api.md).
"""

import base64
import hashlib
import json

import orjson
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from federation.errors import ConcordatError
from federation.transparency.actions import Key


class PayloadTooLarge(ConcordatError):
    code = "payload_too_large"
    status = 413


class BoundedJSONParser(JSONParser):
    def body_limit(self) -> int:
        """The largest body accepted, in bytes (a subclass may set a narrower one)."""
        return settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    def parse(self, stream, media_type=None, parser_context=None):
        limit = self.body_limit()
        parser_context = parser_context or {}
        request = parser_context.get("request")
        meta = request.META if request is not None else {}
        declared = meta.get("CONTENT_LENGTH") or meta.get("HTTP_CONTENT_LENGTH")
        try:
            declared_length = int(declared) if declared is not None else None
        except ValueError:
            declared_length = None
        if declared_length is not None and declared_length > limit:
            raise self.too_large(limit)
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise self.too_large(limit)
        if request is not None:
            request.request_body = body
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            if encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
                body = body.decode(encoding).encode("utf-8")
            # orjson: strict RFC 8259 (no NaN/Infinity, no lone surrogates, valid UTF-8), nesting
            # bounded, and faster than the standard library on bulk bodies.
            data = orjson.loads(body)
        except (ValueError, LookupError) as exc:  # bad JSON, bad bytes, unknown charset
            raise ParseError(f"JSON parse error - {exc}") from exc
        if isinstance(data, dict | list) and not _no_duplicate_names(body, data):
            try:
                # Valid JSON by now (orjson accepted it), so this pass can fail only on a
                # duplicate name; orjson's result is the one returned.
                json.loads(body, object_pairs_hook=_refuse_duplicate_names)
            except _DuplicateName as exc:
                raise ParseError(
                    f"JSON parse error - duplicate member name {exc.name[:64]!a}"
                    " (RFC 8785 requires I-JSON: each name once per object)"
                ) from None
            except (ValueError, RecursionError) as exc:  # nesting orjson allows, json does not
                raise ParseError(f"JSON parse error - {type(exc).__name__}") from exc
        return data

    @staticmethod
    def too_large(limit: int) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"Request bodies are limited to {limit} bytes.", details={"limit": limit}
        )


def _no_duplicate_names(body: bytes, data: dict | list) -> bool:
    """True only if no object in ``body`` (which orjson parsed into ``data``) repeats a name.

    Counts colons instead of parsing again. Every colon in a JSON text either ends a member name
    (one per member) or stands for itself inside a string, unless written as the escape
    ``\\u003a``. orjson keeps one member per name and writes every colon literally, so when the
    body has no such escape, re-encoding ``data`` gives as many colons as the body exactly when
    no member was dropped: a dropped duplicate takes at least its own colon with it. False means
    "not shown": a duplicate, a colon escape, or nesting orjson will not re-encode (deeper than
    255), and the caller runs the exact pass that names the duplicate."""
    # One scan for a backslash (memchr) first: most bodies hold no escape at all, and looking
    # for the two six-byte spellings cost twice as much as parsing the colons (a 500-item batch).
    if b"\\" in body and (b"\\u003a" in body or b"\\u003A" in body):
        return False
    try:
        return orjson.dumps(data).count(b":") == body.count(b":")
    except orjson.JSONEncodeError:
        return False


class _DuplicateName(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def _refuse_duplicate_names(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _DuplicateName(name)
            seen.add(name)
    return result


# Bytes of a refused body kept verbatim (base64) as evidence; its size and SHA-256 are always kept.
EVIDENCE_HEAD_BYTES = 256


def body_evidence(request) -> dict:
    """Bounded evidence of a request's body: its size, SHA-256 and first bytes (base64).

    Works on a DRF request after parsing, whether it succeeded or not; a body that was never
    read (refused on its declared Content-Length, or of another media type) is described by the
    declared length alone."""
    body = getattr(request, "request_body", None)
    if body is None:
        declared = request.META.get("CONTENT_LENGTH") or ""
        return {
            Key.SIZE: int(declared) if declared.isdigit() else None,
            Key.SHA256: None,
            Key.HEAD: None,
        }
    return {
        Key.SIZE: len(body),
        Key.SHA256: hashlib.sha256(body).hexdigest(),
        Key.HEAD: base64.b64encode(body[:EVIDENCE_HEAD_BYTES]).decode(),
    }
