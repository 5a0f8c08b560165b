"""The one place where domain errors become HTTP answers."""

from __future__ import annotations

from typing import Any

import orjson

from opensupp import errors as e

STATUS: dict[type[e.DomainError], int] = {
    e.InvalidJSON: 400,
    e.ValidationFailed: 400,
    e.AuthError: 401,
    e.NotFound: 404,
    e.MethodNotAllowed: 405,
    e.RequestTimeout: 408,
    e.Conflict: 409,
    e.PayloadTooLarge: 413,
    e.IdempotencyMismatch: 422,
    e.RateLimited: 429,
    e.Unavailable: 503,
}

JSON = (b"content-type", b"application/json")


def error_body(exc: e.DomainError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    if isinstance(exc, e.ValidationFailed):
        body["errors"] = [{"field": f.field, "message": f.message} for f in exc.errors]
    return body


def error_response(exc: e.DomainError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    status = STATUS.get(type(exc), 500)
    headers = [JSON]
    if isinstance(exc, e.MethodNotAllowed):
        headers.append((b"allow", exc.allow.encode()))
    elif isinstance(exc, e.RateLimited):
        headers.append((b"retry-after", str(exc.retry_after).encode()))
    elif isinstance(exc, e.RequestTimeout):  # the rest of the request may never come: end it
        headers.append((b"connection", b"close"))
    return status, headers, orjson.dumps(error_body(exc))


def server_error(error_id: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = {"error": "ServerError", "message": f"Internal server error (error id {error_id})."}
    return 500, [JSON], orjson.dumps(body)
