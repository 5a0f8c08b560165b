"""The SDK's exceptions: one class per error type of the API (docs/API.md's table).

    OpensuppError
    ├── APIConnectionError          the server could not be reached (after retries)
    │   └── APITimeoutError
    └── APIStatusError              the server answered an error: .status, .error, .message,
        ├── BadRequestError  400      .errors (a list of {field, message}), .more_errors, .retry_after
        │   ├── InvalidJSONError
        │   └── ValidationError
        ├── AuthError        401
        ├── NotFoundError    404
        ├── MethodNotAllowedError 405
        ├── ConflictError    409
        ├── PayloadTooLargeError 413
        ├── IdempotencyMismatchError 422
        ├── RateLimitError   429
        └── ServerError      5xx
"""

from __future__ import annotations

from typing import Any


class OpensuppError(Exception):
    """Anything the SDK raises."""


class APIConnectionError(OpensuppError):
    def __init__(self, message: str = "Could not connect to the API.") -> None:
        super().__init__(message)
        self.message = message


class APITimeoutError(APIConnectionError):
    def __init__(self, message: str = "The request timed out.") -> None:
        super().__init__(message)


class APIStatusError(OpensuppError):
    def __init__(self, status: int, body: Any, retry_after: float | None = None) -> None:
        body = body if isinstance(body, dict) else {}
        self.status = status
        self.error: str = str(body.get("error") or "Error")
        self.message: str = str(body.get("message") or f"HTTP {status}")
        self.errors: list[dict[str, str]] = list(body.get("errors") or [])
        self.more_errors = int(body.get("moreErrors") or 0)  # problems not listed in .errors
        self.retry_after = retry_after
        self.body = body
        super().__init__(f"{status} {self.error}: {self.message}")


class BadRequestError(APIStatusError):
    pass


class InvalidJSONError(BadRequestError):
    pass


class ValidationError(BadRequestError):
    pass


class AuthError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class MethodNotAllowedError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class PayloadTooLargeError(APIStatusError):
    pass


class IdempotencyMismatchError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    pass


class ServerError(APIStatusError):
    pass


_BY_TYPE: dict[str, type[APIStatusError]] = {
    "InvalidJSON": InvalidJSONError,
    "ValidationError": ValidationError,
    "AuthError": AuthError,
    "NotFound": NotFoundError,
    "MethodNotAllowed": MethodNotAllowedError,
    "Conflict": ConflictError,
    "PayloadTooLarge": PayloadTooLargeError,
    "IdempotencyMismatch": IdempotencyMismatchError,
    "RateLimited": RateLimitError,
}
_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError, 401: AuthError, 404: NotFoundError, 405: MethodNotAllowedError, 409: ConflictError,
    413: PayloadTooLargeError, 422: IdempotencyMismatchError, 429: RateLimitError,
}


def error_for(status: int, body: Any, retry_after: float | None) -> APIStatusError:
    kind = body.get("error") if isinstance(body, dict) else None
    by_type = _BY_TYPE.get(kind) if isinstance(kind, str) else None
    cls = by_type or _BY_STATUS.get(status) or (ServerError if status >= 500 else APIStatusError)
    return cls(status, body, retry_after)
