"""The partner API's own routes, called in-process for a signed-in admin (the admin pages).

An admin page does not restate a rule: it calls the route the partner API serves
(``/accounts/{aid}/users/create``, ...) through the API core's ``dispatch``, so the body is
validated by the same model, prepared the same way (a password hashed off the event loop),
written by the same service in the same unit of work, and refused with the same errors
(``opensupp.errors.DomainError``: the caller shows ``message`` and ``errors``). The caller
is the signed-in user's partner; the account is always the user's own (``account_id``), so
another account's item is the API's NotFound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from opensupp.boxlook.api import router as boxlook
from opensupp.hooks.api import router as hooks
from opensupp.officehours.api import router as officehours
from opensupp.offlineemails.api import router as offlineemails
from opensupp.outbox.api import router as outbox
from opensupp.triggers.api import router as triggers
from opensupp.users.api import router as users
from opensupp.web.asgi import App
from opensupp.web.request import Request

if TYPE_CHECKING:
    from opensupp.config import Settings
    from opensupp.db import Database

#: the partner API's routers the admin pages call (opensupp/app.py serves them all)
ROUTERS = [users, triggers, officehours, offlineemails, hooks, outbox, boxlook]


class PartnerApi:
    """``call(partner_id, account_id, "users/create", data)``: the API's answer, as its JSON."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.core = App(settings, ROUTERS, db=db)  # nothing starts: dispatch only (the server's core owns the db)

    async def call(self, *, partner_id: int, account_id: int, path: str, data: dict[str, Any] | None = None,
                   query: str = "") -> Any:
        """The route at ``/accounts/{account_id}/{path}``; ``data`` is the body (None: a GET).
        Raises the API's DomainError (NotFound, ValidationFailed, Conflict...)."""
        full = f"/accounts/{account_id}/{path}"
        route, ids = self.core.table.lookup(full)
        if route is None:
            raise LookupError(full)  # a bug in the pages, not the caller's mistake
        req = Request(self.core, "GET" if data is None else "POST", full, query.encode())
        req.partner_id, req.ids, req.route = partner_id, ids, route
        _, _, body = await self.core.dispatch(route, req, b"", None, data=data)
        return orjson.loads(body) if body else None
