"""/admin/users: the account's agents and admins: list, create, edit, delete.

The forms send the API's body (users/api.py UserCreate, UserUpdate) to the API's routes. A
blank nickname or language is left out (the API's defaults: the full name, the account's
language); a blank password on the edit form keeps the password. An admin cannot delete
their own user, or make it an agent, while they are the account's only admin.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from opensupp.errors import DomainError
from opensupp.langs import LANGS
from opensupp.site.adminkit import AdminPages, Problem, form_of, item_id
from opensupp.site.auth import SignedIn, restart_session
from opensupp.site.i18n import text

HOME = "/admin/users"
FIELDS = ("email", "password", "fullname", "role", "nickname", "avatar", "note", "lang")
#: left out of the body when blank: the API then keeps or defaults them
BLANK_OMITTED = ("nickname", "lang")
LANG_OPTIONS = [(code, code) for code in LANGS]
EMPTY = {"email": "", "fullname": "", "role": "agent", "nickname": "", "avatar": "", "note": "", "lang": ""}


def body_of(form: dict[str, str], *, update: bool) -> dict[str, Any]:
    """The API's body from the form: the known fields sent, blanks that mean "default" left out."""
    omitted = BLANK_OMITTED + (("password",) if update else ())
    return {name: form[name] for name in FIELDS if name in form and not (name in omitted and not form[name].strip())}


def routes(pages: AdminPages) -> list[BaseRoute]:
    async def listing(request: Request, who: SignedIn, *, status: int = 200, form: dict[str, str] | None = None,
                      problem: Problem | None = None) -> Response:
        users = (await pages.call(who, "users"))["records"]
        return pages.page(request, who, "users.html", status, section="users", users=users,
                          form={**EMPTY, **(form or {})}, problem=problem, langs=LANG_OPTIONS)

    async def show(request: Request, who: SignedIn) -> Response:
        return await listing(request, who)

    async def create(request: Request, who: SignedIn) -> Response:
        form = await form_of(request)
        try:
            await pages.call(who, "users/create", body_of(form, update=False))
        except DomainError as exc:
            return await listing(request, who, status=400, form=form, problem=Problem.of(exc, "email"))
        return pages.done(request, HOME, "admin.users.created")

    async def edit_page(request: Request, who: SignedIn, *, status: int = 200, form: dict[str, str] | None = None,
                        problem: Problem | None = None, delete_problem: Problem | None = None) -> Response:
        user = await pages.call(who, f"users/{item_id(request)}/get")
        return pages.page(request, who, "user.html", status, section="users", user=user,
                          form={**EMPTY, **user, **(form or {})}, problem=problem, langs=LANG_OPTIONS,
                          delete_problem=delete_problem)

    async def edit(request: Request, who: SignedIn) -> Response:
        return await edit_page(request, who)

    async def update(request: Request, who: SignedIn) -> Response:
        uid = item_id(request)
        form = await form_of(request)
        body = body_of(form, update=True)
        try:
            if uid == who.user_id and body.get("role") == "agent":
                await _not_the_last_admin(pages, who)
            await pages.call(who, f"users/{uid}/update", body)
        except DomainError as exc:
            return await edit_page(request, who, status=400, form=form, problem=Problem.of(exc, "email"))
        if uid == who.user_id and body.get("password"):
            # their own new password ends their other sessions; this browser stays signed in
            await restart_session(pages.site, request, who)
        return pages.done(request, HOME, "admin.users.saved")

    async def delete(request: Request, who: SignedIn) -> Response:
        uid = item_id(request)
        try:
            if uid == who.user_id:
                await _not_the_last_admin(pages, who)
            await pages.call(who, f"users/{uid}/delete")
        except LastAdmin as exc:
            return await edit_page(request, who, status=400, delete_problem=Problem(exc.message))
        return pages.done(request, HOME, "admin.users.deleted")

    guard = pages.admin_only
    return [
        Route(HOME, guard(show), methods=["GET"]),
        Route(HOME, guard(create), methods=["POST"]),
        Route(HOME + "/{id:int}", guard(edit), methods=["GET"]),
        Route(HOME + "/{id:int}", guard(update), methods=["POST"]),
        Route(HOME + "/{id:int}/delete", guard(delete), methods=["POST"]),
    ]


class LastAdmin(DomainError):
    code = "LastAdmin"


async def _not_the_last_admin(pages: AdminPages, who: SignedIn) -> None:
    """LastAdmin when ``who`` is the account's only admin (their user must stay an admin)."""
    users = (await pages.call(who, "users"))["records"]
    if sum(1 for user in users if user["role"] == "admin" and user["id"] != str(who.user_id)) == 0:
        raise LastAdmin(text(who.lang, "admin.users.lastAdmin"))
