"""/admin/triggers: the account's triggers as the API's JSON body (triggers/api.py
TriggerCreate, TriggerUpdate: checked by the API's route, its catalogue and regex rules
included), listed, created, edited and deleted; and "test this trigger on a visitor": the
API's dry run (``triggers/evaluate``) for a visitor written as its ``visitor`` object,
showing this trigger's decision with a reason per condition."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from opensupp.errors import DomainError
from opensupp.site.adminkit import AdminPages, Problem, form_of, item_id
from opensupp.site.auth import SignedIn
from opensupp.web.asgi import parse_object

HOME = "/admin/triggers"
EVENTS = ("onload", "onmessage", "onopen")
#: the create form's starting point: a greeting for a visitor's second page
SAMPLE = {
    "name": "Greeting", "event": "onload", "active": True, "only_once": True, "constraints": "all",
    "conditions": [{"name": "number_of_pages", "value": 2, "cmp": "gte"}],
    "actions": [{"name": "message", "agent_nick": "Support", "message": "Hello! Can we help?"}],
}
VISITOR_SAMPLE = {"number_of_pages": 2, "visitor_page_url": "https://example.com/pricing"}


def pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def routes(pages: AdminPages) -> list[BaseRoute]:
    async def listing(request: Request, who: SignedIn, *, status: int = 200, document: str | None = None,
                      problem: Problem | None = None) -> Response:
        triggers = (await pages.call(who, "triggers"))["records"]
        return pages.page(request, who, "triggers.html", status, section="triggers", triggers=triggers,
                          document=pretty(SAMPLE) if document is None else document, problem=problem)

    async def show(request: Request, who: SignedIn) -> Response:
        return await listing(request, who)

    async def create(request: Request, who: SignedIn) -> Response:
        document = (await form_of(request)).get("document", "")
        try:
            await pages.call(who, "triggers/create", parse_object(document.encode()))
        except DomainError as exc:
            return await listing(request, who, status=400, document=document, problem=Problem.of(exc))
        return pages.done(request, HOME, "admin.triggers.created")

    async def one(request: Request, who: SignedIn, *, status: int = 200, **context: Any) -> Response:
        trigger = await pages.call(who, f"triggers/{item_id(request)}/get")
        editable = {key: value for key, value in trigger.items() if key != "id"}
        values = {"document": pretty(editable), "problem": None, "event": trigger["event"],
                  "visitor": pretty(VISITOR_SAMPLE), "at": "", "tested": None, "test_problem": None, **context}
        return pages.page(request, who, "trigger.html", status, section="triggers", trigger=trigger,
                          events=EVENTS, **values)

    async def edit(request: Request, who: SignedIn) -> Response:
        return await one(request, who)

    async def update(request: Request, who: SignedIn) -> Response:
        document = (await form_of(request)).get("document", "")
        try:
            await pages.call(who, f"triggers/{item_id(request)}/update", parse_object(document.encode()))
        except DomainError as exc:
            return await one(request, who, status=400, document=document, problem=Problem.of(exc))
        return pages.done(request, HOME, "admin.triggers.saved")

    async def delete(request: Request, who: SignedIn) -> Response:
        await pages.call(who, f"triggers/{item_id(request)}/delete")
        return pages.done(request, HOME, "admin.triggers.deleted")

    async def test(request: Request, who: SignedIn) -> Response:
        tid = str(item_id(request))
        form = await form_of(request)
        asked: dict[str, Any] = {name: form.get(name, "") for name in ("event", "visitor", "at")}
        try:
            body: dict[str, Any] = {"event": asked["event"], "visitor": parse_object(asked["visitor"].encode())}
            if asked["at"].strip():
                body["at"] = asked["at"].strip()
            answer = await pages.call(who, "triggers/evaluate", body)
        except DomainError as exc:
            return await one(request, who, status=400, test_problem=Problem.of(exc), **asked)
        decision = next((d for d in answer["triggers"] if d["id"] == tid), None)
        return await one(request, who, tested={"decision": decision, "answer": answer}, **asked)

    guard = pages.admin_only
    return [
        Route(HOME, guard(show), methods=["GET"]),
        Route(HOME, guard(create), methods=["POST"]),
        Route(HOME + "/{id:int}", guard(edit), methods=["GET"]),
        Route(HOME + "/{id:int}", guard(update), methods=["POST"]),
        Route(HOME + "/{id:int}/delete", guard(delete), methods=["POST"]),
        Route(HOME + "/{id:int}/test", guard(test), methods=["POST"]),
    ]
