"""/admin/officehours: the office hours (officehours/api.py), edited as a week's form (one
period a day; a document the form cannot show, with several periods a day, is edited as
JSON only) or as the API's JSON document, both checked by the API's own route; beside them,
whether the account is open now and the open hours of the next 7 days, both the API's
reads, shown in the account's time zone."""

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


@dataclass(frozen=True, slots=True)
class WeekDay:
    """A row of the week's form: a weekday (0 is Sunday), open or not, its one period ("" and "": all day)."""

    dow: int
    open: bool
    start: str
    end: str


#: the week's form, Monday first
WEEK_ORDER = (1, 2, 3, 4, 5, 6, 0)


def _clock(minutes: int) -> str:
    return "00:00" if minutes == 1440 else f"{minutes // 60:02d}:{minutes % 60:02d}"


def week_of(document: dict[str, Any]) -> list[WeekDay] | None:
    """The stored document as the week's form, or None when the form cannot show it (a day
    with several periods: that document is edited as JSON)."""
    times = {entry["dow"]: entry["times"] for entry in document["config"]}
    if any(len(t) != 1 for t in times.values()):
        return None
    return [WeekDay(dow, dow in document["days"], _clock(times[dow][0]["from"]) if dow in times else "",
                    _clock(times[dow][0]["to"]) if dow in times else "") for dow in WEEK_ORDER]


def week_from_form(form: dict[str, str]) -> list[WeekDay]:
    """The week's form as sent (shown again with the API's refusal)."""
    return [WeekDay(dow, form.get(f"open{dow}") == "on", form.get(f"from{dow}", ""), form.get(f"to{dow}", ""))
            for dow in WEEK_ORDER]


def _minutes(clock: str, *, end: bool) -> int | str:
    """"09:30" -> 570 ("00:00" as an end: 1440, midnight); anything else is sent as it is, for the API to refuse."""
    hours, _, minutes = clock.partition(":")
    if not (hours.isascii() and minutes.isascii() and hours.isdigit() and minutes.isdigit()):
        return clock
    value = int(hours) * 60 + int(minutes)
    return 1440 if end and value == 0 else value


def _timezone(text: str) -> float | int | str:
    try:
        number = float(text)
    except ValueError:
        return text.strip()
    return int(number) if number.is_integer() else number


def week_patch(form: dict[str, str]) -> dict[str, Any]:
    """The API's update from the week's form: active, timezone, the open days and their
    periods (a day without times is open all day). Exceptions are not sent: they stay."""
    days = [dow for dow in WEEK_ORDER if form.get(f"open{dow}") == "on"]
    config = [{"dow": dow, "times": [{"from": _minutes(form[f"from{dow}"], end=False),
                                      "to": _minutes(form.get(f"to{dow}", ""), end=True)}]}
              for dow in days if form.get(f"from{dow}") or form.get(f"to{dow}")]
    return {"active": form.get("active") == "on", "timezone": _timezone(form.get("timezone", "")), "days": days,
            "config": config}


def routes(pages: AdminPages) -> list[BaseRoute]:
    async def page(request: Request, who: SignedIn, *, status: int = 200, document: str | None = None,
                   problem: Problem | None = None, week_problem: Problem | None = None,
                   week_form: dict[str, str] | None = None) -> Response:
        stored = await pages.call(who, "officehours/get")
        now = await pages.call(who, "officehours/status")
        window = await pages.call(who, "officehours/schedule", query=f"days={WEEK}")
        tz = now["timezone"]
        return pages.page(
            request, who, "officehours.html", status, section="officehours", problem=problem,
            document=document if document is not None else orjson.dumps(stored, option=orjson.OPT_INDENT_2).decode(),
            now=now, since=local_time(now["since"], tz), next_change=local_time(now["next_change"], tz),
            days=local_days(window), timezone=tz, week_problem=week_problem,
            week=week_from_form(week_form) if week_form is not None else week_of(stored),
            active=week_form.get("active") == "on" if week_form is not None else stored["active"],
            zone=week_form.get("timezone", "") if week_form is not None else stored["timezone"],
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

    async def update_week(request: Request, who: SignedIn) -> Response:
        form = await form_of(request)
        try:
            await pages.call(who, "officehours/update", week_patch(form))
        except DomainError as exc:
            return await page(request, who, status=400, week_problem=Problem.of(exc), week_form=form)
        return pages.done(request, HOME, "admin.saved")

    guard = pages.admin_only
    return [Route(HOME, guard(show), methods=["GET"]), Route(HOME, guard(update), methods=["POST"]),
            Route(HOME + "/week", guard(update_week), methods=["POST"])]
