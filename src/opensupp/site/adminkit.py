"""What the admin pages (site/admin.py) share: the partner API's routes called as the signed-in
admin's partner and account, the admin check (``admin_only``: 403 for an agent, the API's
NotFound as a 404 page), rendering with the pages' headers (a strict CSP), the API's errors
as a form shows them (``Problem``), and the redirect after a change with its notice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from opensupp.errors import Conflict, DomainError, NotFound, ValidationFailed
from opensupp.site.auth import SignedIn, require_user
from opensupp.site.i18n import text
from opensupp.site.partnerapi import PartnerApi

if TYPE_CHECKING:
    from opensupp.site.app import Site

log = logging.getLogger("opensupp.site")

FLASH = "admin.flash"
#: the API's routes that change something (their ends)
WRITES = ("/create", "/update", "/delete", "/test", "/rotate-secret", "/retry")
MAX_ID = 2**63 - 1
SECTIONS = ("users", "triggers", "officehours", "offlineemails", "hooks", "box")


def page_policy() -> str:
    """The admin pages' Content-Security-Policy: this origin only, no inline code, not framed."""
    return "; ".join((
        "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
        "connect-src 'self'", "frame-src 'self'", "base-uri 'none'", "form-action 'self'",
        "frame-ancestors 'none'",
    ))


HEADERS = {"content-security-policy": page_policy(), "cache-control": "no-store",
           "referrer-policy": "same-origin", "x-content-type-options": "nosniff"}


@dataclass
class Problem:
    """What a refused form shows: the API's message, and its problems by field."""

    message: str
    fields: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, exc: DomainError, conflict_field: str | None = None) -> Problem:
        fields: dict[str, str] = {}
        if isinstance(exc, ValidationFailed):
            for error in exc.errors:
                fields.setdefault(error.field, error.message)
        elif isinstance(exc, Conflict) and conflict_field:
            fields[conflict_field] = exc.message
        return cls(exc.message, fields)


Handler = Callable[[Request, SignedIn], Awaitable[Response]]


class AdminPages:
    """What the sections share: the API's routes, the admin check, rendering, redirects."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.api = PartnerApi(site.settings, site.db)

    def admin_only(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` for the account's admins only (403 for an agent); the API's NotFound is a 404 page."""
        async def guarded(request: Request) -> Response:
            who = await require_user(self.site, request, admin=True)
            try:
                return await handler(request, who)
            except NotFound as exc:
                return await self.site.error(request, 404, exc.code, exc.message)

        guarded.__name__ = handler.__name__
        return guarded

    async def call(self, who: SignedIn, path: str, data: dict[str, Any] | None = None, query: str = "") -> Any:
        """The partner API's route ``/accounts/{who's account}/{path}``, as who's partner
        (a change is logged: who made it, and which route; never the values)."""
        answer = await self.api.call(partner_id=who.partner_id, account_id=who.account_id, path=path, data=data,
                                     query=query)
        if path.endswith(WRITES):
            log.info("admin %d of account %d: %s", who.user_id, who.account_id, path)
        return answer

    def page(self, request: Request, who: SignedIn, template: str, status: int = 200, **context: Any) -> Response:
        flash = request.session.pop(FLASH, None)
        values = {"who": who, "lang": who.lang, "flash": text(who.lang, flash) if flash else None,
                  "sections": SECTIONS, "problem": None, **context}
        return self.site.templates.TemplateResponse(request, f"admin/{template}", values, status_code=status,
                                                    headers=HEADERS)

    @staticmethod
    def done(request: Request, location: str, flash: str) -> Response:
        """After a change: back to ``location`` (303), with the notice ``flash`` (a text key)."""
        request.session[FLASH] = flash
        return RedirectResponse(location, status_code=303, headers={"cache-control": "no-store"})


def item_id(request: Request, name: str = "id") -> int:
    """The id ``name`` in the path; one no row can have is the API's NotFound."""
    value = int(request.path_params[name])
    if not 0 < value <= MAX_ID:
        raise NotFound(f"No item {value}.")
    return value


async def form_of(request: Request) -> dict[str, str]:
    """The form's text fields (a repeated name: its last value), the CSRF token left out."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str) and key != "csrf_token"}
