"""Routes in the PHP wrapper's URL grammar, and the look-up that serves them (one dict look-up).

A route is declared once with its verb (``VERBS``: list, get, create, update, delete,
action, query, page, batch), its body and response models; the HTTP methods it answers,
its unit of work, how its body is validated, idempotency (a create's), paging (a list's)
and the OpenAPI document are all derived from that one declaration, and the dispatch
(web/asgi.py) runs each verb its way.

Paths are matched segment by segment after dropping empty segments, so a trailing slash
or a doubled slash never matters and never redirects. A segment of canonical decimal
digits (no leading zero, at most 18 digits so it fits a BIGINT) fills an ``{id}`` slot;
anything else (``0012``, ``-1``, ``abc``, 20 digits) matches no route and is a 404 (to a
caller with a valid key: without one, a 401, as on every route that is not public).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from opensupp.web.fields import Body
from opensupp.web.request import BodyHandler, DeleteHandler, GetHandler, ListHandler

# a decorator hands its handler back as it came; the bound is the shape its verb calls
_H = TypeVar("_H", bound=Callable[..., Awaitable[Any]])
_List = TypeVar("_List", bound=ListHandler)
_Get = TypeVar("_Get", bound=GetHandler)
_Body = TypeVar("_Body", bound=BodyHandler)
_Delete = TypeVar("_Delete", bound=DeleteHandler)

_PARAM = re.compile(r"\{(\w+)\}")
SLOT = "{}"

#: verb -> (HTTP methods, unit of work)
VERBS: dict[str, tuple[tuple[str, ...], str]] = {
    "list": (("GET",), "read"),
    "get": (("GET",), "read"),
    "create": (("POST",), "single"),
    "update": (("POST",), "transaction"),
    "delete": (("GET",), "single"),
    "action": (("POST",), "transaction"),
    "query": (("POST",), "read"),  # a POST that only reads (its body is a question, not a change)
    "page": (("GET",), "none"),
    "batch": (("POST",), "none"),  # its calls share one transaction or open their own (web/batch.py)
}


@dataclass(slots=True)
class Route:
    path: str
    verb: str
    handler: Callable[..., Awaitable[Any]]
    summary: str
    tag: str
    body: type[Body] | None = None
    response: type[BaseModel] | None = None
    unit: str = "read"
    public: bool = False
    description: str = ""
    params: tuple[str, ...] = ()
    key: tuple[str, ...] = ()
    methods: tuple[str, ...] = ("GET",)
    allow: str = "GET"
    get_as_post: bool = False
    raw: bool = False  # handler builds its own response (docs pages)
    # OpenAPI parameter objects for the query string the handler reads (documentation only)
    query: tuple[dict[str, Any], ...] = ()
    # async (req, body) -> what the handler gets instead of the body; runs before the
    # unit of work opens (password hashing must not hold a transaction)
    prepare: Callable[..., Awaitable[Any]] | None = None
    # the body may be validated by pydantic straight from the JSON (see fields.validate_json):
    # it has no check_raw rules (they read the parsed JSON), and no Idempotency-Key
    # fingerprint (a create's) nor batch needs the parsed JSON either
    direct_json: bool = False
    # the body's validation can be long (it says how long: Body.validation_cost)
    costly: bool = False

    def __post_init__(self) -> None:
        self.params = tuple(_PARAM.findall(self.path))
        self.key = template_key(self.path)
        self.methods, default_unit = VERBS[self.verb]
        if self.unit == "read":
            self.unit = default_unit
        # The PHP wrapper sends a GET when a create's or update's parameters are empty.
        self.get_as_post = self.methods == ("POST",)
        self.allow = "GET, POST" if self.get_as_post else ", ".join(self.methods)
        self.direct_json = (self.body is not None and self.verb not in ("create", "batch")
                            and not _overrides(self.body, "check_raw"))
        self.costly = self.body is not None and _overrides(self.body, "validation_cost")


def _overrides(body: type[Body], name: str) -> bool:
    """Whether ``body`` has its own classmethod ``name`` rather than ``Body``'s."""
    return getattr(body, name).__func__ is not getattr(Body, name).__func__


def template_key(path: str) -> tuple[str, ...]:
    return tuple(SLOT if _PARAM.fullmatch(s) else s for s in path.split("/") if s)


def match_key(path: str) -> tuple[tuple[str, ...], list[int]]:
    """('accounts', '{}', 'get'), [12] for '//accounts/12/get/'."""
    key: list[str] = []
    ids: list[int] = []
    for segment in path.split("/"):
        if not segment:
            continue
        if segment.isdigit() and segment.isascii() and segment[0] != "0" and len(segment) <= 18:
            key.append(SLOT)
            ids.append(int(segment))
        else:
            key.append(segment)
    return tuple(key), ids


@dataclass
class Router:
    routes: list[Route] = field(default_factory=list)

    def add(self, verb: str, path: str, **kwargs: Any) -> Callable[[_H], _H]:
        """Register the decorated handler for ``verb`` at ``path`` (its shapes: web/request.py)."""

        def register(handler: _H) -> _H:
            summary = kwargs.pop("summary", None) or (handler.__doc__ or handler.__name__).strip().splitlines()[0]
            description = kwargs.pop("description", None) or _rest_of_doc(handler.__doc__)
            self.routes.append(Route(path, verb, handler, summary=summary, description=description, **kwargs))
            return handler

        return register

    def list(self, path: str, **kw: Any) -> Callable[[_List], _List]:
        return self.add("list", path, **kw)

    def create(self, path: str, **kw: Any) -> Callable[[_Body], _Body]:
        return self.add("create", path, **kw)

    def get(self, path: str, **kw: Any) -> Callable[[_Get], _Get]:
        return self.add("get", path, **kw)

    def update(self, path: str, **kw: Any) -> Callable[[_Body], _Body]:
        return self.add("update", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[_Delete], _Delete]:
        return self.add("delete", path, **kw)


def _rest_of_doc(doc: str | None) -> str:
    if not doc:
        return ""
    lines = doc.strip().splitlines()[1:]
    return "\n".join(line.strip() for line in lines).strip()


class RouteTable:
    def __init__(self, routers: list[Router]) -> None:
        self.routes = [r for router in routers for r in router.routes]
        self._by_key: dict[tuple[str, ...], Route] = {}
        for route in self.routes:
            if route.key in self._by_key:
                raise ValueError(f"two routes for {route.path}")
            self._by_key[route.key] = route

    def lookup(self, path: str) -> tuple[Route | None, list[int]]:
        key, ids = match_key(path)
        return self._by_key.get(key), ids
