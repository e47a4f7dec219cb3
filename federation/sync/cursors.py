"""Sync cursors: opaque, signed tokens naming a stream position.

A cursor is ``django.core.signing`` over the position (HMAC-SHA256 with the hub's secret key and
a salt of its own), so a client cannot forge one or make one up: anything that does not verify is
refused with 400 ``invalid_cursor`` before the database is read. A cursor grants nothing — every
member sees the same shared set — it only says where a reader stands.
"""

from django.core import signing

from federation.errors import InvalidInput

_SALT = "concordat.sync.cursor.v1"
_MAX_LENGTH = 200


def cursor_for(position: int) -> str:
    return signing.Signer(salt=_SALT).sign_object(position)


def position_of(cursor: str) -> int:
    """The position a cursor names; ``InvalidInput("invalid_cursor")`` unless it is one of ours."""
    if not isinstance(cursor, str) or len(cursor) > _MAX_LENGTH:
        raise _invalid()
    try:
        position = signing.Signer(salt=_SALT).unsign_object(cursor)
    except (signing.BadSignature, ValueError, UnicodeError):
        raise _invalid() from None
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise _invalid()
    return position


def _invalid() -> InvalidInput:
    return InvalidInput(
        "The cursor is not one this hub issued. Resume from the last cursor you stored, "
        "or start again from the export (docs/sync.md).",
        code="invalid_cursor",
        details={"parameter": "after", "export": "/api/v1/sync/export"},
    )
