"""Sync cursors: opaque, signed tokens naming a stream position.

A cursor is ``django.core.signing`` over the position (HMAC-SHA256 with the hub's secret key and
a salt of its own), so a client cannot forge one or make one up: anything that does not verify is
refused with 400 ``invalid_cursor`` before the database is read. A cursor grants nothing — every
member sees the same shared set — it only says where a reader stands.

A reader who started from the stream's start (no ``after``) also carries the compaction horizon
of that moment while it is still above their position: the removals compaction had dropped up to
there belonged to entries whose every change was gone before the reader began, so the reader
cannot have held them and does not need them (docs/sync.md, "Removals and retention"). Such a
cursor signs ``[position, horizon]``; every other cursor signs the bare position, as it always has.
"""

from dataclasses import dataclass

from django.core import signing

from federation.errors import InvalidInput

_SALT = "concordat.sync.cursor.v1"
_MAX_LENGTH = 200


@dataclass(frozen=True)
class Cursor:
    """Where a reader stands: ``position``, and the horizon below which compaction's dropped
    removals cannot concern them (0: none known, every dropped removal above ``position`` does)."""

    position: int
    horizon: int = 0


def cursor_for(position: int, *, horizon: int = 0) -> str:
    if horizon > position:
        return signing.Signer(salt=_SALT).sign_object([position, horizon])
    return signing.Signer(salt=_SALT).sign_object(position)


def cursor_of(cursor: str) -> Cursor:
    """The place a cursor names; ``InvalidInput("invalid_cursor")`` unless it is one of ours."""
    if not isinstance(cursor, str) or len(cursor) > _MAX_LENGTH:
        raise _invalid()
    try:
        value = signing.Signer(salt=_SALT).unsign_object(cursor)
    except (signing.BadSignature, ValueError, UnicodeError):
        raise _invalid() from None
    if _is_count(value):
        return Cursor(position=value)
    if isinstance(value, list) and len(value) == 2 and all(map(_is_count, value)):
        position, horizon = value
        if horizon > position:
            return Cursor(position=position, horizon=horizon)
    raise _invalid()


def position_of(cursor: str) -> int:
    """The position a cursor names (``cursor_of``'s)."""
    return cursor_of(cursor).position


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _invalid() -> InvalidInput:
    return InvalidInput(
        "The cursor is not one this hub issued. Resume from the last cursor you stored, "
        "or start again from the export (docs/sync.md).",
        code="invalid_cursor",
        details={"parameter": "after", "export": "/api/v1/sync/export"},
    )
