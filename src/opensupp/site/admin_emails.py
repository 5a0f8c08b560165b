"""/admin/offlineemails: where the messages visitors leave while no one is online are sent:
list, add, delete (offlineemails/api.py's routes and rules: an address once per account)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from opensupp.errors import DomainError
from opensupp.site.adminkit import AdminPages, Problem, form_of, item_id
from opensupp.site.auth import SignedIn

HOME = "/admin/offlineemails"


def routes(pages: AdminPages) -> list[BaseRoute]:
    async def listing(request: Request, who: SignedIn, *, status: int = 200, email: str = "",
                      problem: Problem | None = None) -> Response:
        emails = (await pages.call(who, "offlineemails"))["records"]
        return pages.page(request, who, "offlineemails.html", status, section="offlineemails", emails=emails,
                          email=email, problem=problem)

    async def show(request: Request, who: SignedIn) -> Response:
        return await listing(request, who)

    async def create(request: Request, who: SignedIn) -> Response:
        email = (await form_of(request)).get("email", "")
        try:
            await pages.call(who, "offlineemails/create", {"email": email})
        except DomainError as exc:
            return await listing(request, who, status=400, email=email, problem=Problem.of(exc, "email"))
        return pages.done(request, HOME, "admin.offlineemails.created")

    async def delete(request: Request, who: SignedIn) -> Response:
        await pages.call(who, f"offlineemails/{item_id(request)}/delete")
        return pages.done(request, HOME, "admin.offlineemails.deleted")

    guard = pages.admin_only
    return [
        Route(HOME, guard(show), methods=["GET"]),
        Route(HOME, guard(create), methods=["POST"]),
        Route(HOME + "/{id:int}/delete", guard(delete), methods=["POST"]),
    ]
