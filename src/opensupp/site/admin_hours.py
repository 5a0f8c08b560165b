"""/admin/officehours: the office hours as the API's document (officehours/api.py), edited as
JSON and checked by the API's own route; beside it, whether the account is open now and the
open hours of the next 7 days, both the API's reads, shown in the account's time zone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from opensupp.errors import DomainError
from opensupp.officehours.validation import tzinfo_of
from opensupp.site.adminkit import AdminPages, Problem, form_of
from opensupp.site.auth import SignedIn
from opensupp.web.asgi import parse_object

HOME = "/admin/officehours"
WEEK = 7


@dataclass(frozen=True, slots=True)
class Day:
    """A local day of the schedule: its date, weekday (0 is Sunday) and open periods ("09:00", "17:00")."""

    date: str
    dow: int
    periods: list[tuple[str, str]]


def _parse(instant: str) -> dt.datetime:
    return dt.datetime.fromisoformat(instant.replace("Z", "+00:00"))


def local_time(instant: str | None, timezone: int | float | str) -> str | None:
    """An instant of the API's answers as the account's local date and time, or None."""
    if instant is None:
        return None
    return _parse(instant).astimezone(tzinfo_of(timezone)).strftime("%Y-%m-%d %H:%M")


def local_days(window: dict[str, Any]) -> list[Day]:
    """The API's schedule (UTC intervals) as local days, each with its open periods; a period
    that runs past midnight is cut there (it ends at 24:00, the next day begins at 00:00)."""
    tz = tzinfo_of(window["timezone"])
    first = _parse(window["from"]).astimezone(tz).date()
    intervals = [(_parse(i["from"]), _parse(i["to"])) for i in window["intervals"]]
    days = []
    for n in range(WEEK):
        date = first + dt.timedelta(days=n)
        start = dt.datetime.combine(date, dt.time(), tz)
        end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), tz)
        periods = [(max(a, start).astimezone(tz).strftime("%H:%M"),
                    "24:00" if b >= end else b.astimezone(tz).strftime("%H:%M"))
                   for a, b in intervals if a < end and b > start]
        days.append(Day(date.isoformat(), (date.weekday() + 1) % 7, periods))
    return days


def routes(pages: AdminPages) -> list[BaseRoute]:
    async def page(request: Request, who: SignedIn, *, status: int = 200, document: str | None = None,
                   problem: Problem | None = None) -> Response:
        stored = await pages.call(who, "officehours/get")
        now = await pages.call(who, "officehours/status")
        window = await pages.call(who, "officehours/schedule", query=f"days={WEEK}")
        tz = now["timezone"]
        return pages.page(
            request, who, "officehours.html", status, section="officehours", problem=problem,
            document=document if document is not None else orjson.dumps(stored, option=orjson.OPT_INDENT_2).decode(),
            now=now, since=local_time(now["since"], tz), next_change=local_time(now["next_change"], tz),
            days=local_days(window), timezone=tz,
        )

    async def show(request: Request, who: SignedIn) -> Response:
        return await page(request, who)

    async def update(request: Request, who: SignedIn) -> Response:
        document = (await form_of(request)).get("document", "")
        try:
            await pages.call(who, "officehours/update", parse_object(document.encode()))
        except DomainError as exc:
            return await page(request, who, status=400, document=document, problem=Problem.of(exc))
        return pages.done(request, HOME, "admin.saved")

    guard = pages.admin_only
    return [Route(HOME, guard(show), methods=["GET"]), Route(HOME, guard(update), methods=["POST"])]
