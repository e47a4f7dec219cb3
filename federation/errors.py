"""The one family of domain errors. Each carries a stable code and an HTTP status; the API's
exception handler renders them as ``{"error": {"code", "message", "details"}}``."""

from typing import Any


class ConcordatError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInput(ConcordatError):
    code = "invalid"
    status = 400


class Forbidden(ConcordatError):
    code = "permission_denied"
    status = 403


class NotFound(ConcordatError):
    code = "not_found"
    status = 404


class Conflict(ConcordatError):
    code = "conflict"
    status = 409


class Gone(ConcordatError):
    code = "gone"
    status = 410


class RateLimited(ConcordatError):
    code = "rate_limited"
    status = 429


class Unavailable(ConcordatError):
    code = "unavailable"
    status = 503
