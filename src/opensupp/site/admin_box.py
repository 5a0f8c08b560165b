"""/admin/box: the chat box's look (boxlook/api.py's routes and model): colour, side, title
and greeting, with a live preview. The preview (``/admin/box/preview?color=&...``, admins
only) is the box's own page with the look asked for applied over the stored one, each field
checked by the API's model (a refused field shows the stored value); box.js shows it
without connecting, so no visitor is made. admin.js reloads it as the form changes."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from opensupp.boxlook.api import BoxLookUpdate
from opensupp.boxlook.models import BoxLook
from opensupp.errors import DomainError, NotFound, ValidationFailed
from opensupp.site.adminkit import AdminPages, Problem, form_of
from opensupp.site.auth import SignedIn
from opensupp.site.loader import account_by_id, box_page
from opensupp.web.fields import validate

HOME = "/admin/box"
FIELDS = ("color", "position", "title", "welcome")


def asked_look(stored: BoxLook, asked: dict[str, str]) -> BoxLook:
    """``stored`` with the fields of ``asked`` that the API's model accepts."""
    data = {name: asked[name] for name in FIELDS if name in asked}
    try:
        body = validate(BoxLookUpdate, data)
    except ValidationFailed as exc:
        bad = {error.field for error in exc.errors}
        body = validate(BoxLookUpdate, {k: v for k, v in data.items() if k not in bad})
    return dataclasses.replace(stored, **body.model_dump(exclude_unset=True))


def routes(pages: AdminPages) -> list[BaseRoute]:
    async def page(request: Request, who: SignedIn, *, status: int = 200, form: dict[str, Any] | None = None,
                   problem: Problem | None = None) -> Response:
        stored = await pages.call(who, "box/get")
        account = await account_by_id(pages.site, who.account_id)
        assert account is not None  # the session's account (a deleted one ends the session)
        look = {**stored, **(form or {})}
        return pages.page(request, who, "box.html", status, section="box", look=look, problem=problem,
                          preview=f"{HOME}/preview?" + urlencode({k: look.get(k, "") for k in FIELDS}),
                          widget=f"/widget?accountKey={account.key}", account_title=account.title)

    async def show(request: Request, who: SignedIn) -> Response:
        return await page(request, who)

    async def update(request: Request, who: SignedIn) -> Response:
        form = await form_of(request)
        try:
            await pages.call(who, "box/update", {name: form[name] for name in FIELDS if name in form})
        except DomainError as exc:
            return await page(request, who, status=400, form=form, problem=Problem.of(exc))
        return pages.done(request, HOME, "admin.saved")

    async def preview(request: Request, who: SignedIn) -> Response:
        stored = BoxLook(**await pages.call(who, "box/get"))
        account = await account_by_id(pages.site, who.account_id)
        if account is None:
            raise NotFound(f"No account {who.account_id}.")
        look = asked_look(stored, dict(request.query_params))
        return box_page(pages.site, request, account, look, "page", preview=True)

    guard = pages.admin_only
    return [
        Route(HOME, guard(show), methods=["GET"]),
        Route(HOME, guard(update), methods=["POST"]),
        Route(HOME + "/preview", guard(preview), methods=["GET"]),
    ]
