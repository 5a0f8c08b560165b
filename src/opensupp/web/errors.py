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
    e.HeadTooLarge: 431,
    e.Unavailable: 503,
}

JSON = (b"content-type", b"application/json")


#: Bytes of the problems an error answer lists, about (at least one is listed)
MAX_LISTED_BYTES = 4096


def error_body(exc: e.DomainError) -> dict[str, Any]:
    """``{"error", "message"}``; a validation error adds its first problems (``errors``: at
    most ``MAX_LISTED``, about ``MAX_LISTED_BYTES`` of them, each field and message cut at
    ``MAX_SHOWN``/``MAX_SHOWN_MESSAGE`` characters) and, when there are more, how many (``moreErrors``)."""
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    if isinstance(exc, e.ValidationFailed):
        listed: list[dict[str, str]] = []
        size = 0
        for problem in exc.errors[: e.MAX_LISTED]:
            item = {"field": e.shown(problem.field), "message": e.shown(problem.message, e.MAX_SHOWN_MESSAGE)}
            size += len(orjson.dumps(item))
            if listed and size > MAX_LISTED_BYTES:
                break
            listed.append(item)
        body["errors"] = listed
        more = len(exc.errors) - len(listed) + exc.unlisted
        if more:
            body["moreErrors"] = more
    return body


def error_response(exc: e.DomainError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    status = STATUS.get(type(exc), 500)
    headers = [JSON]
    if isinstance(exc, e.MethodNotAllowed):
        headers.append((b"allow", exc.allow.encode()))
    elif isinstance(exc, (e.RateLimited, e.Unavailable)):
        headers.append((b"retry-after", str(exc.retry_after).encode()))
    elif isinstance(exc, e.RequestTimeout):  # the rest of the request may never come: end it
        headers.append((b"connection", b"close"))
    return status, headers, orjson.dumps(error_body(exc))


def server_error(error_id: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = {"error": "ServerError", "message": f"Internal server error (error id {error_id})."}
    return 500, [JSON], orjson.dumps(body)
