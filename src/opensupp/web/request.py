"""What a partner-API handler sees (``Request``), what it answers, and the handlers' types.

A request's headers are kept as the server handed them over (ASGI's list of lower-cased
byte pairs, repeated names included) and read only when asked: the hot path pays for
neither a header mapping nor a cookie parse that no handler wants.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias
from urllib.parse import parse_qsl

import orjson

from opensupp.web.errors import JSON

if TYPE_CHECKING:
    from opensupp.db import Database, Session
    from opensupp.web.asgi import App
    from opensupp.web.routing import Route

RawHeaders: TypeAlias = Sequence[tuple[bytes, bytes]]
Headers: TypeAlias = list[tuple[bytes, bytes]]
#: a handler's or the edge's answer: status, headers, the body's bytes
Answer: TypeAlias = tuple[int, Headers, bytes]


class Request:
    """The caller, the ids in the path, the query, the headers and the cookies."""

    __slots__ = ("method", "path", "raw_path", "query_string", "raw_headers", "partner_id", "key_id", "ids", "route",
                 "app", "_query", "_cookies")

    def __init__(self, app: App, method: str, path: str, query_string: bytes, raw_path: bytes | None = None,
                 raw_headers: RawHeaders = ()) -> None:
        self.app = app
        self.method = method
        self.path = path
        self.raw_path = raw_path
        self.query_string = query_string
        self.raw_headers = raw_headers
        self.partner_id: int | None = None
        self.key_id: int | None = None
        self.ids: list[int] = []
        self.route: Route | None = None  # the route matched, once routed
        self._query: dict[str, str] | None = None
        self._cookies: dict[str, str] | None = None

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            self._query = dict(parse_qsl(self.query_string.decode("latin-1"), keep_blank_values=True))
        return self._query

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), latin-1 decoded as HTTP sends it."""
        wanted = name.lower().encode("latin-1")
        for key, value in self.raw_headers:
            if key == wanted:
                return value.decode("latin-1")
        return None

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (any case), in the order received."""
        wanted = name.lower().encode("latin-1")
        return [value.decode("latin-1") for key, value in self.raw_headers if key == wanted]

    @property
    def cookies(self) -> dict[str, str]:
        """The ``Cookie`` headers' pairs, parsed on first use as browsers send them."""
        if self._cookies is None:
            from starlette.requests import cookie_parser  # as the web pages parse them

            self._cookies = cookie_parser("; ".join(self.header_values("cookie")))
        return self._cookies

    @property
    def db(self) -> Database:
        return self.app.db


def ok(result: Any) -> Answer:
    """A 200 with ``result`` as JSON; bytes are the JSON already (a handler that writes its own)."""
    return 200, [JSON], result if type(result) is bytes else orjson.dumps(result)


class Caller(Protocol):
    """What a handler reads of the request on an authenticated route (every verb's but a
    ``page``'s, which may be public): the partner calling, the ids in the path
    (``/accounts/{aid}/users/{id}``: account, then item) and the query."""

    @property
    def partner_id(self) -> int: ...

    @property
    def ids(self) -> list[int]: ...

    @property
    def query(self) -> dict[str, str]: ...


# The handlers' shapes, by verb (web/routing.py's VERBS); ``session`` is the unit of work the
# verb opens. A handler may be typed more loosely (``req: Any``), never differently. The
# verbs that take a Caller run after authentication: its ``partner_id`` is set.
GetHandler: TypeAlias = Callable[[Caller, "Session"], Awaitable[Any]]
#: (req, session, after: the id the page starts after (0: the first page), limit) -> (records, whether more follow)
ListHandler: TypeAlias = Callable[[Caller, "Session", int, int], Awaitable[tuple[list[dict[str, Any]], bool]]]
DeleteHandler: TypeAlias = Callable[[Caller, "Session"], Awaitable[None]]
#: create, update, action, query: the validated body (or what ``prepare`` made of it)
BodyHandler: TypeAlias = Callable[[Caller, "Session", Any], Awaitable[Any]]
#: page: no unit of work; a raw route returns an Answer, others a result to answer as JSON
PageHandler: TypeAlias = Callable[[Request], Awaitable[Any]]
#: batch: the validated body, answered whole
BatchHandler: TypeAlias = Callable[[Request, Any], Awaitable[Answer]]
#: runs before the unit of work opens (password hashing must not hold a transaction)
Prepare: TypeAlias = Callable[[Request, Any], Awaitable[Any]]
Handler: TypeAlias = GetHandler | ListHandler | DeleteHandler | BodyHandler | PageHandler | BatchHandler
