"""Domain errors with stable codes.

Services raise these; exactly one module (``opensupp.web.errors``) turns them into an
HTTP status and the ``{"error", "message"}`` body. Nothing here knows about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class DomainError(Exception):
    code = "ServerError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidJSON(DomainError):
    code = "InvalidJSON"


class ValidationFailed(DomainError):
    code = "ValidationError"

    def __init__(self, errors: list[FieldError], message: str | None = None) -> None:
        self.errors = errors
        super().__init__(message or summarize(errors))


class AuthError(DomainError):
    code = "AuthError"


class NotFound(DomainError):
    code = "NotFound"


class MethodNotAllowed(DomainError):
    code = "MethodNotAllowed"

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.allow = allow


class Conflict(DomainError):
    code = "Conflict"


class PayloadTooLarge(DomainError):
    code = "PayloadTooLarge"


class IdempotencyMismatch(DomainError):
    code = "IdempotencyMismatch"


class RateLimited(DomainError):
    code = "RateLimited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """The database cannot be reached, does not answer in time, or cannot write (a full
    disk, a read-only server): nothing is wrong with the request, so the answer is a 503
    saying when to try again, not a 500. The driver's error, if any, is the ``__cause__``."""

    code = "ServiceUnavailable"
    RETRY_AFTER = 5  # seconds: a restarting database is usually back within a few

    def __init__(self, message: str | None = None, retry_after: int = RETRY_AFTER) -> None:
        super().__init__(message or "The service is temporarily unavailable (its database cannot be reached "
                         f"or cannot write). Retry in {retry_after} s.")
        self.retry_after = retry_after


def invalid(field: str, message: str) -> ValidationFailed:
    """One bad field, as a ValidationFailed ready to raise."""
    return ValidationFailed([FieldError(field, message)])


def summarize(errors: list[FieldError]) -> str:
    parts = [f"{e.field}: {e.message}" if e.field else e.message for e in errors[:5]]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "Invalid request: " + "; ".join(parts) + more + "."
