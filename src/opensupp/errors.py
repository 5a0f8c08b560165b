"""Domain errors with stable codes.

Services raise these; exactly one module (``opensupp.web.errors``) turns them into an
HTTP status and the ``{"error", "message"}`` body. Nothing here knows about HTTP.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

#: Problems one error answer lists (``errors``); the rest are counted, not listed, so an
#: answer stays a few KB and cheap to build whatever the body held.
MAX_LISTED = 20
#: Unknown keys of one object reported one by one; the rest are counted in one more error.
MAX_UNKNOWN = 20
#: Characters of a field's path (a key can be as long as the body) or of a problem in the
#: summary shown; a problem's own message is cut at ``MAX_SHOWN_MESSAGE``.
MAX_SHOWN = 200
MAX_SHOWN_MESSAGE = 1000


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Unlisted(FieldError):
    """Problems counted, not listed: ``count`` more unknown fields of the object at ``field``."""

    count: int = 0


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
        self.errors = [e for e in errors if not isinstance(e, Unlisted)]
        self.unlisted = sum(e.count for e in errors if isinstance(e, Unlisted))  # problems beyond ``errors``
        super().__init__(message or summarize(self.errors, self.unlisted))


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


class HeadTooLarge(DomainError):
    """A request head (its line and headers) larger than the server reads."""

    code = "RequestHeaderFieldsTooLarge"


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


def unknown_fields(keys: Iterable[str], allowed: Collection[str], at: str, message: str) -> list[FieldError]:
    """The keys of an object at ``at`` that are not ``allowed``, each with ``message``: at
    most ``MAX_UNKNOWN`` of them, then one error on the object counting the rest."""
    unknown = [key for key in keys if key not in allowed]
    errors = [FieldError(f"{at}.{key}" if at else str(key), message) for key in unknown[:MAX_UNKNOWN]]
    if len(unknown) > MAX_UNKNOWN:
        errors.append(more_unknown(at, len(unknown) - MAX_UNKNOWN))
    return errors


def more_unknown(at: str, count: int) -> Unlisted:
    """What counts an object's unknown keys beyond the first ``MAX_UNKNOWN``."""
    return Unlisted(at, f"has {count} more fields that are not known", count)


def shown(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` as an answer shows it: cut at ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summarize(errors: list[FieldError], unlisted: int = 0) -> str:
    parts = [shown(f"{e.field}: {e.message}" if e.field else e.message) for e in errors[:5]]
    more = len(errors) + unlisted - len(parts)
    return "Invalid request: " + "; ".join(parts) + (f" (and {more} more)" if more else "") + "."
