"""RFC 8785 (JCS) canonical JSON: the bytes every signed object of Concordat is signed over
(docs/signing.md). ``canonical_bytes`` is the reference (the rfc8785 package);
``canonical_json_bytes`` writes the same bytes many times faster through orjson wherever the two
agree, and a property test holds them to each other (tests/federation/test_canonical_bytes.py).
"""

import re
from typing import Any

import orjson
import rfc8785


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON, UTF-8: the bytes that are signed."""
    return rfc8785.dumps(document)


# orjson with sorted keys writes JCS on the domain where the two agree (see below): compact, the
# same short escapes and lowercase \u00xx for other control characters, non-ASCII as is.
JCS_ORJSON_OPTION = orjson.OPT_SORT_KEYS
JCS_INT_MAX = 2**53 - 1
# Keys sort identically by code point (Python) and by UTF-16 code unit (JCS) unless one holds a
# character at or above U+E000: a non-BMP character (a surrogate pair in UTF-16, D800-DFFF)
# sorts after U+E000-U+FFFF by code point but before them by code unit.
_KEY_SORT_LIMIT = "\ue000"


def in_fast_domain(value: object) -> bool:
    """Whether ``value`` holds only what orjson writes exactly as JCS: exact ``dict`` (string
    keys below U+E000), ``list``, ``str``, ``bool``, ``None`` and ``int`` within JCS's range.
    Floats (JCS's number formatting differs from Python's repr), tuples and subclasses (an
    ``Enum`` string, an ``int`` subclass) are left to the reference encoder."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is dict:
            for key in item:
                if type(key) is not str or not (key.isascii() or max(key) < _KEY_SORT_LIMIT):
                    return False
            for inner in item.values():
                inner_kind = type(inner)
                if inner_kind is str or inner is None:
                    continue
                pending.append(inner)
        elif kind is list:
            pending.extend(item)
        elif kind is int:
            if not -JCS_INT_MAX <= item <= JCS_INT_MAX:
                return False
        elif not (kind is str or kind is bool or item is None):
            return False
    return True


def canonical_json_bytes(document: object) -> bytes:
    """RFC 8785 bytes of any JSON value, identical to ``canonical_bytes`` (the rfc8785 package)
    and many times faster where it can be: on ``in_fast_domain`` values orjson with sorted keys
    writes the same bytes (same short escapes, lowercase \\u00xx for other control characters,
    non-ASCII as is; 14 times the standard library's C encoder on a 500-item batch here);
    anything else, text with no UTF-8 form (a lone surrogate) and nesting deeper than orjson's
    limit go to the rfc8785 package, errors included. A property test checks the two agree
    (tests/federation/test_canonical_bytes.py)."""
    fast = canonical_json_fast(document)
    return fast if fast is not None else rfc8785.dumps(document)


def canonical_json_fast(document: object) -> bytes | None:
    """``canonical_json_bytes`` of ``document`` if it takes the fast path (orjson), else None.

    A value that takes it holds only parts that would (the domain check covers every node, and
    orjson fails only on a node: a lone surrogate, too deep a nesting): the caller may write
    those parts with ``canonical_json_part`` without walking them again."""
    if in_fast_domain(document):
        try:
            return orjson.dumps(document, option=JCS_ORJSON_OPTION)
        except orjson.JSONEncodeError:
            pass  # rfc8785 writes it, or raises its own error for it
    return None


# A float in orjson's compact output, once every digit and minus sign reads 0 and every comma and
# opening bracket a colon: a number (which follows a colon, comma or bracket) with a fraction or an
# exponent, as orjson writes every finite float ("1.0", "-0.0", "1e+16", "5e-324"). Text can hold
# the same bytes ("a:1.5"): a false alarm, which the domain walk then settles.
_NUMBERS_READ_AS_ZERO = bytes.maketrans(b"-0123456789,[", b"00000000000::")
_FLOAT = re.compile(rb":0+[.eE]")
_DECODED_OPTION = (
    JCS_ORJSON_OPTION
    | orjson.OPT_STRICT_INTEGER
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def canonical_json_decoded(document: object) -> bytes | None:
    """``canonical_json_fast`` of a value as ``orjson.loads`` returned it (a pushed request's
    parsed body, a pulled page: exact ``dict``, ``list``, ``str``, ``int``, ``bool``, ``None`` and
    finite ``float``, nothing else), told from orjson's own bytes rather than by walking every
    node first: such a value is in ``in_fast_domain`` when it holds no float (none in the bytes,
    ``_FLOAT``), no integer beyond JCS's (orjson's 53-bit limit, the same bounds, refuses it) and
    no key at or above U+E000 (the bytes are ASCII). Anything else, a false alarm included, takes
    ``canonical_json_fast``: the same bytes, or None, either way. Not for other values: orjson
    writes a tuple as a list, an infinite float (which the standard library's decoder can return)
    as ``null``. A received batch's envelope (500 items of 1.7 kB) took 13.7 µs per item with the
    walk, 7.5 this way (docs/federation.md, round 9 of issue 28)."""
    try:
        written = orjson.dumps(document, option=_DECODED_OPTION)
    except orjson.JSONEncodeError:
        return canonical_json_fast(document)
    # A number at the top (no colon before it) is left to the walk, as is any non-ASCII text.
    numbers = written.translate(_NUMBERS_READ_AS_ZERO)
    if written.isascii() and numbers[:1] != b"0" and _FLOAT.search(numbers) is None:
        return written
    return canonical_json_fast(document)


def canonical_json_part(part: object) -> bytes:
    """RFC 8785 bytes of a part of a value whose ``canonical_json_fast`` was not None (a batch's
    item, an item's attestation): orjson's, without checking the domain again."""
    return orjson.dumps(part, option=JCS_ORJSON_OPTION)
