"""HTTP routes for office hours: one per account, so get and update, and two reads of
what it means in time: the status at an instant and the schedule over days."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import Field, WithJsonSchema

from opensupp.db import Session
from opensupp.errors import invalid
from opensupp.officehours import service
from opensupp.officehours.validation import (
    MAX_CONFIG,
    MAX_EXCEPTIONS,
    MAX_SCHEDULE_DAYS,
    MAX_TIMES,
    parse_days,
    parse_instant,
    parse_start,
)
from opensupp.timeutil import iso, now
from opensupp.web.fields import Body
from opensupp.web.request import Caller
from opensupp.web.resources import Out
from opensupp.web.routing import Router

router = Router()
TAG = "Office hours"
T = TypeVar("T")

_DAY = {"type": "integer", "minimum": 0, "maximum": 6, "description": "0 is Sunday"}
_MINUTE = {"type": "integer", "minimum": 0, "maximum": 1440}
_INTERVAL = {
    "type": "object", "required": ["from", "to"], "additionalProperties": False,
    "properties": {"from": _MINUTE, "to": _MINUTE},
    "description": "Minutes after midnight; from < to; sorted, not overlapping (they may touch).",
}
# The years of FIRST_DATE to LAST_DATE (1970 to 9998), as the date is written.
YEAR_PATTERN = "(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
_DATE = {
    "type": "string", "format": "date", "pattern": f"^{YEAR_PATTERN}-[0-9]{{2}}-[0-9]{{2}}$", "example": "2026-12-24",
}
_INSTANT_IN = {
    "type": "string", "format": "date-time", "pattern": f"^{YEAR_PATTERN}-", "example": "2026-12-24T16:00:00Z",
}
_EXCEPTIONS = {
    "type": "array", "maxItems": MAX_EXCEPTIONS,
    "description": "Special days, each date once: the times replace that local date's regular hours, "
                   "whether or not its weekday is in `days`; empty times: closed all day. "
                   "Answered only when not empty; `[]` removes them.",
    "items": {
        "type": "object", "required": ["date", "times"], "additionalProperties": False,
        "properties": {"date": _DATE, "times": {"type": "array", "maxItems": MAX_TIMES, "items": _INTERVAL}},
    },
}
_CONFIG = {
    "type": "array", "maxItems": MAX_CONFIG,
    "description": "Open intervals per day; a day in `days` without an entry is open all day.",
    "items": {
        "type": "object", "required": ["dow", "times"], "additionalProperties": False,
        "properties": {
            "dow": _DAY,
            "times": {"type": "array", "minItems": 1, "maxItems": MAX_TIMES, "items": _INTERVAL},
        },
    },
}
_TIMEZONE = {
    "anyOf": [
        {"type": "number", "minimum": -12, "maximum": 14, "multipleOf": 0.25},
        {"type": "string", "example": "Europe/Prague"},
    ],
    "description": "An offset in hours (1, -5, 5.5), answered as sent, or an IANA name that follows daylight saving.",
}
_DAYS = {
    "type": "array", "maxItems": 7, "uniqueItems": True, "items": _DAY, "description": "Open days, in the order sent.",
}

Active = Annotated[Any, WithJsonSchema({"type": "boolean"})]
Days = Annotated[Any, WithJsonSchema(_DAYS)]
Timezone = Annotated[Any, WithJsonSchema(_TIMEZONE)]
Config = Annotated[Any, WithJsonSchema(_CONFIG)]
Exceptions = Annotated[Any, WithJsonSchema(_EXCEPTIONS)]
_INSTANT_OUT = {"type": "string", "format": "date-time", "example": "2026-12-24T16:00:00Z"}
Instant = Annotated[str, WithJsonSchema(_INSTANT_OUT)]
Intervals = Annotated[Any, WithJsonSchema({
    "type": "array",
    "description": "Open periods in UTC, clipped to the window; one that goes on across midnight is one item.",
    "items": {"type": "object", "required": ["from", "to"], "additionalProperties": False,
              "properties": {"from": _INSTANT_OUT, "to": _INSTANT_OUT}},
})]


class OfficeHoursUpdate(Body):
    """Partial: only the fields sent change; the merged whole is validated."""

    active: Active = Field(None, description="false: always open")
    days: Days = None
    timezone: Timezone = None
    config: Config = None
    exceptions: Exceptions = None


class OfficeHoursOut(Out):
    active: Active
    days: Days
    timezone: Timezone
    config: Config
    exceptions: Exceptions = Field(None, description="Present only when not empty.")


class OfficeHoursStatusOut(Out):
    open: bool
    since: Instant | None = Field(
        description="When the current state began; null when it always was (or `active` is false)."
    )
    next_change: Instant | None = Field(
        description="When it changes next; null when it never does (or `active` is false)."
    )
    timezone: Timezone


class OfficeHoursScheduleOut(Out):
    timezone: Timezone
    from_: Instant = Field(alias="from")
    to: Instant
    intervals: Intervals


_AT = {"name": "at", "in": "query", "required": False, "schema": _INSTANT_IN,
       "description": "The instant to answer for (default: now). An offset (Z or like +01:00) is required."}
_FROM = {"name": "from", "in": "query", "required": False,
         "schema": {"type": "string", "pattern": f"^{YEAR_PATTERN}-",
                    "anyOf": [{"format": "date"}, {"format": "date-time"}], "example": "2026-12-24"},
         "description": "A local date of the account's time zone (the window starts at its midnight) or an "
                        "instant with an offset. Default: today, local."}
_DAYS_PARAM = {"name": "days", "in": "query", "required": False,
               "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SCHEDULE_DAYS, "default": 7}}


@router.get("/accounts/{aid}/officehours/get", response=OfficeHoursOut, tag=TAG)
async def get_office_hours(req: Caller, session: Session) -> dict[str, Any]:
    """Get the office hours

    Before any update: `{"active": false, "days": [], "timezone": 0, "config": []}`.
    """
    return await service.get_office_hours(session, partner_id=req.partner_id, account_id=req.ids[0])


@router.update("/accounts/{aid}/officehours/update", body=OfficeHoursUpdate, response=OfficeHoursOut, tag=TAG)
async def update_office_hours(req: Caller, session: Session, body: OfficeHoursUpdate) -> dict[str, Any]:
    """Update the office hours

    Partial: the fields sent replace the stored ones (`config` and `exceptions` as a
    whole), and the result is validated as a whole: `dow` and `days` 0 (Sunday) to 6, each
    day once, a `config` entry only for a day in `days`, `0 <= from < to <= 1440`,
    intervals sorted and not overlapping, `timezone` an offset from -12 to 14 in quarter
    hours or an IANA name, `exceptions` at most 366 dates (YYYY-MM-DD, 1970 to 9998), each
    once, with 0 to 48 intervals (none: closed that day).
    """
    return await service.update_office_hours(
        session, partner_id=req.partner_id, account_id=req.ids[0], patch=body.model_dump(exclude_unset=True)
    )


@router.get("/accounts/{aid}/officehours/status", response=OfficeHoursStatusOut, tag=TAG, query=(_AT,))
async def get_office_hours_status(req: Caller, session: Session) -> dict[str, Any]:
    """Open or closed now (or at `at`)

    `since` is when the current state began and `next_change` when it flips next (UTC;
    null when it never did or never will). Intervals that touch, across midnight too, are
    one open period. A local time skipped by daylight saving happens when the clocks jump;
    a repeated one at its first occurrence. Inactive office hours are always open.
    """
    at = _query(req.query, "at", parse_instant)
    state = await service.get_office_hours_status(
        session, partner_id=req.partner_id, account_id=req.ids[0], at=now() if at is None else at
    )
    return {"open": state.open, "since": _iso(state.since), "next_change": _iso(state.next_change),
            "timezone": state.timezone}


@router.get(
    "/accounts/{aid}/officehours/schedule", response=OfficeHoursScheduleOut, tag=TAG, query=(_FROM, _DAYS_PARAM)
)
async def get_office_hours_schedule(req: Caller, session: Session) -> dict[str, Any]:
    """List the open intervals

    The open periods in UTC over `days` days (1 to 31, default 7) from `from`: an instant
    (the window is `days` x 24 hours) or a local date (the window is `days` local days from
    its midnight, 23 or 25 hours long on daylight-saving days); default today, local.
    Periods are clipped to the window; one that goes on across midnight is one interval.
    """
    start = _query(req.query, "from", parse_start)
    days = _query(req.query, "days", parse_days)
    window = await service.get_office_hours_schedule(
        session, partner_id=req.partner_id, account_id=req.ids[0], start=start,
        days=7 if days is None else days, now=now(),
    )
    return {"timezone": window.timezone, "from": iso(window.start), "to": iso(window.end),
            "intervals": [{"from": iso(a), "to": iso(b)} for a, b in window.intervals]}


def _iso(t: int | None) -> str | None:
    return iso(t) if t is not None else None


def _query(query: dict[str, str], name: str, parse: Callable[[str], tuple[T, str | None]]) -> T | None:
    """The parsed value of query parameter ``name``, None when absent; a 400 naming it when bad."""
    text = query.get(name)
    if text is None:
        return None
    value, message = parse(text)
    if message is not None:
        raise invalid(name, message)
    return value
