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


class RequestTimeout(DomainError):
    """The client did not send its request (head or body) in time."""

    code = "RequestTimeout"


class IdempotencyMismatch(DomainError):
    code = "IdempotencyMismatch"


class RateLimited(DomainError):
    code = "RateLimited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A dependency (the database) cannot be reached; not part of the partner API."""

    code = "Unavailable"


def invalid(field: str, message: str) -> ValidationFailed:
    """One bad field, as a ValidationFailed ready to raise."""
    return ValidationFailed([FieldError(field, message)])


def summarize(errors: list[FieldError]) -> str:
    parts = [f"{e.field}: {e.message}" if e.field else e.message for e in errors[:5]]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "Invalid request: " + "; ".join(parts) + more + "."
