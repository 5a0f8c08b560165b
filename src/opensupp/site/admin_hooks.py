"""/admin/hooks: what the account sends out (hooks/api.py's routes and rules): list, create,
switch on or off, delete, send a test event, rotate the secret, and each hook's delivery log
with a retry per delivery (outbox/api.py). A hook's secret is shown once, on the page that
answers its creation or rotation, and never again (the list leaves it out; the API's get
still answers it). Why the outbox deactivated a hook is shown on it."""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from opensupp.errors import DomainError
from opensupp.hooks.validation import HOOK_NAMES, WEBHOOK_EVENTS
from opensupp.site.adminkit import AdminPages, Problem, item_id
from opensupp.site.auth import SignedIn
from opensupp.web.pagination import CURSOR_PATTERN

HOME = "/admin/hooks"
NAMES = [(name, name) for name in HOOK_NAMES]
EMPTY = {"name": "webhook", "url": "", "secret": "", "events": [], "active": True}


def body_of(form: FormData) -> dict[str, Any]:
    """The API's create body from the form: a blank secret is left out (the API makes one),
    no event ticked means the API's default (all)."""
    config: dict[str, Any] = {"url": str(form.get("config.url") or "")}
    secret = str(form.get("config.secret") or "")
    if secret:
        config["secret"] = secret
    events = [str(event) for event in form.getlist("events")]
    if events:
        config["events"] = events
    return {"name": str(form.get("name") or ""), "config": config, "active": form.get("active") == "on"}


def shown(hook: dict[str, Any]) -> dict[str, Any]:
    """A hook as the list shows it: without its secret."""
    return {**hook, "config": {k: v for k, v in hook["config"].items() if k != "secret"}}


def routes(pages: AdminPages) -> list[BaseRoute]:
    async def listing(request: Request, who: SignedIn, *, status: int = 200, form: dict[str, Any] | None = None,
                      problem: Problem | None = None, created: dict[str, Any] | None = None,
                      rotated: bool = False) -> Response:
        hooks = [shown(hook) for hook in (await pages.call(who, "hooks"))["records"]]
        return pages.page(request, who, "hooks.html", status, section="hooks", hooks=hooks, form=form or EMPTY,
                          problem=problem, created=created, rotated=rotated, names=NAMES, events=WEBHOOK_EVENTS)

    async def show(request: Request, who: SignedIn) -> Response:
        return await listing(request, who)

    async def create(request: Request, who: SignedIn) -> Response:
        body = body_of(await request.form())
        try:
            created = await pages.call(who, "hooks/create", body)
        except DomainError as exc:
            form = {"name": body["name"], "active": body["active"], **body["config"]}
            return await listing(request, who, status=400, form={**EMPTY, **form}, problem=Problem.of(exc))
        return await listing(request, who, created=created)  # its secret, this once (no redirect)

    async def switch(request: Request, who: SignedIn) -> Response:
        active = (await request.form()).get("active") == "true"
        await pages.call(who, f"hooks/{item_id(request)}/update", {"active": active})
        return pages.done(request, HOME, "admin.saved")

    async def delete(request: Request, who: SignedIn) -> Response:
        await pages.call(who, f"hooks/{item_id(request)}/delete")
        return pages.done(request, HOME, "admin.hooks.deleted")

    async def test(request: Request, who: SignedIn) -> Response:
        hook_id = item_id(request)
        await pages.call(who, f"hooks/{hook_id}/test", {})
        return pages.done(request, f"{HOME}/{hook_id}/deliveries", "admin.hooks.testQueued")

    async def rotate(request: Request, who: SignedIn) -> Response:
        rotated = await pages.call(who, f"hooks/{item_id(request)}/rotate-secret", {})
        return await listing(request, who, created=rotated, rotated=True)

    async def deliveries(request: Request, who: SignedIn) -> Response:
        hook_id = item_id(request)
        hook = shown(await pages.call(who, f"hooks/{hook_id}/get"))
        after = request.query_params.get("after", "")
        query = "limit=50" + (f"&after={after}" if re.fullmatch(CURSOR_PATTERN, after) else "")
        page = await pages.call(who, f"hooks/{hook_id}/deliveries", query=query)
        return pages.page(request, who, "deliveries.html", section="hooks", hook=hook, deliveries=page["records"],
                          next=page["next"])

    async def retry(request: Request, who: SignedIn) -> Response:
        hook_id, delivery_id = item_id(request), item_id(request, "did")
        await pages.call(who, f"hooks/{hook_id}/deliveries/{delivery_id}/retry", {})
        return pages.done(request, f"{HOME}/{hook_id}/deliveries", "admin.hooks.retryQueued")

    guard = pages.admin_only
    return [
        Route(HOME, guard(show), methods=["GET"]),
        Route(HOME, guard(create), methods=["POST"]),
        Route(HOME + "/{id:int}/active", guard(switch), methods=["POST"]),
        Route(HOME + "/{id:int}/delete", guard(delete), methods=["POST"]),
        Route(HOME + "/{id:int}/test", guard(test), methods=["POST"]),
        Route(HOME + "/{id:int}/rotate", guard(rotate), methods=["POST"]),
        Route(HOME + "/{id:int}/deliveries", guard(deliveries), methods=["GET"]),
        Route(HOME + "/{id:int}/deliveries/{did:int}/retry", guard(retry), methods=["POST"]),
    ]
