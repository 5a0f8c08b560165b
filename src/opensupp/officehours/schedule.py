"""Office hours as time: open or closed at an instant, since when, until when, and the open
intervals over a window. Pure: a validated document and instants in, values out; nothing
here reads the clock.

Instants are integer Unix seconds (UTC), as everywhere in opensupp. Local days are
proleptic Gregorian ordinals (``date.toordinal()``) in the document's time zone.

The rules:

- ``active: false`` is always open; ``since`` and ``next_change`` are then None.
- A local day's open times are its exception's ``times`` when its date has an exception
  (empty: closed all day, whatever ``days`` says), else its weekday's ``config`` times,
  all day when the weekday is in ``days`` without a ``config`` entry, and nothing when it
  is not in ``days``. Intervals are half-open: open at ``from``, closed again at ``to``.
- Local minute ``m`` of day ``d`` happens at the first instant at which the local clock
  reads ``d m`` or later. So:

  - minute 1440 is minute 0 of the next day: an interval ending at 1440 joins the next
    day's interval that starts at 0, and an overnight shift is one open period;
  - a time in a spring-forward gap (02:30 in Europe/Prague on 2026-03-29) happens when
    the clocks jump (03:00 CEST, 01:00Z): an interval inside the gap is empty that day,
    one across it is shorter by the gap;
  - a time in the repeated autumn hour (02:30 in Europe/Prague on 2026-10-25) happens at
    its first occurrence (zoneinfo's ``fold=0``, still summer time): an interval from
    01:00 to 03:00 that night is open three hours.

  This mapping never goes backwards, so a day's intervals stay sorted and disjoint in UTC
  and every day's intervals come before the next day's. Fixed offsets never change.
- Touching intervals, within a day, across midnight or across a gap that has closed up,
  are one open period: ``since`` and ``next_change`` see through them and the schedule
  lists them as one interval.

Searches are bounded. Runs of days without an exception where every weekday is open all
day, or every weekday is closed, are passed over in one step; any other day is looked at
on its own, at most ``MAX_SCAN_DAYS`` (3,660, ten years) per search, and the search answers
None ("no change") when it has not found one by then, or at the calendar's ends. That is
always enough: a weekly pattern that is not the same all week changes within 8 days, and
each of at most 366 exceptions (and each daylight-saving jump that swallows an interval)
can hide a change for at most a week.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opensupp.officehours.validation import MINUTES_PER_DAY, tzinfo_of

Minutes = tuple[tuple[int, int], ...]  # a local day's open intervals, minutes after midnight
Interval = tuple[int, int]  # [start, end) in Unix seconds
Piece = tuple[int | None, int | None]  # an interval that may be open-ended (None)

ALL_DAY: Minutes = ((0, MINUTES_PER_DAY),)
CLOSED: Minutes = ()
MAX_SCAN_DAYS = 3660
# The calendar's ends, with two days of room for "the day before", minute 1440 and offsets.
FIRST_DAY = dt.date.min.toordinal() + 2
LAST_DAY = dt.date.max.toordinal() - 2
EPOCH_DAY = dt.date(1970, 1, 1).toordinal()
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
HORIZON = None  # the last item of a search's stream when it stopped looking


@dataclass(frozen=True, slots=True)
class Schedule:
    """A validated office-hours document, made ready for the questions below."""

    active: bool
    tz: dt.tzinfo
    week: tuple[Minutes, ...]  # by dow, 0 is Sunday
    exceptions: Mapping[int, Minutes]  # by local day
    exception_days: tuple[int, ...]  # sorted
    uniform: Minutes | None  # ALL_DAY or CLOSED when every weekday is that, else None


@dataclass(frozen=True, slots=True)
class Status:
    open: bool
    since: int | None  # when the current state began; None: always (or not within the search)
    next_change: int | None  # when it flips next; None: never (or not within the search)


def compile_schedule(document: Mapping[str, Any]) -> Schedule:
    """The ``Schedule`` of a document that ``validation.validate_office_hours`` accepted."""
    days = set(document["days"])
    config = {entry["dow"]: joined_minutes(entry["times"]) for entry in document["config"]}
    week = tuple(config.get(dow, ALL_DAY) if dow in days else CLOSED for dow in range(7))
    exceptions = {
        dt.date.fromisoformat(entry["date"]).toordinal(): joined_minutes(entry["times"])
        for entry in document.get("exceptions", ())
    }
    uniform = week[0] if week[0] in (ALL_DAY, CLOSED) and len(set(week)) == 1 else None
    return Schedule(
        document["active"], tzinfo_of(document["timezone"]), week, exceptions, tuple(sorted(exceptions)), uniform
    )


def joined_minutes(times: Iterable[Mapping[str, int]]) -> Minutes:
    """Sorted, disjoint ``{"from", "to"}`` intervals with the touching ones made one."""
    return tuple(join((t["from"], t["to"]) for t in times))


def join(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint intervals with the touching ones made one."""
    out: list[Interval] = []
    for start, end in intervals:
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


# ----------------------------------------------------------------------------- local days and instants


def local_times(schedule: Schedule, day: int) -> Minutes:
    """The open minutes of local ``day``: its exception's, else its weekday's."""
    found = schedule.exceptions.get(day)
    return found if found is not None else schedule.week[day % 7]  # ordinal 7 is a Sunday


def local_day(schedule: Schedule, t: int) -> int:
    """The local day on the clock at instant ``t``."""
    return (_EPOCH + dt.timedelta(seconds=t)).astimezone(schedule.tz).toordinal()


def day_start(schedule: Schedule, day: int) -> int:
    """The instant local ``day`` begins (its first instant at or after 00:00)."""
    return instant(schedule.tz, day, 0)


def instant(tz: dt.tzinfo, day: int, minute: int) -> int:
    """The first instant at which the clock in ``tz`` reads local ``day`` and ``minute``
    (0 to 1440) or later: a repeated time's first occurrence, a skipped time's jump."""
    day, minute = day + minute // MINUTES_PER_DAY, minute % MINUTES_PER_DAY
    wall = (day - EPOCH_DAY) * 86400 + minute * 60  # the clock's reading, counted as if UTC
    if isinstance(tz, dt.timezone):
        return wall - _seconds(tz.utcoffset(None))
    naive = dt.datetime.fromordinal(day) + dt.timedelta(minutes=minute)
    first = wall - _seconds(tz.utcoffset(naive))  # fold=0: the earlier of two readings
    if first + _offset_at(tz, first) == wall:
        return first
    # In a gap: fold=1 reads the time with the offset after the jump, which puts it before the jump.
    return _jump(tz, wall - _seconds(tz.utcoffset(naive.replace(fold=1))), first)


def _jump(tz: dt.tzinfo, before: int, after: int) -> int:
    """The instant the offset changes, between ``before`` (old offset) and ``after`` (new)."""
    new = _offset_at(tz, after)
    while after - before > 1:  # at most log2 of the gap's seconds steps
        middle = (before + after) // 2
        if _offset_at(tz, middle) == new:
            after = middle
        else:
            before = middle
    return after


def _offset_at(tz: dt.tzinfo, t: int) -> int:
    return _seconds((_EPOCH + dt.timedelta(seconds=t)).astimezone(tz).utcoffset())


def _seconds(delta: dt.timedelta | None) -> int:
    return int(delta.total_seconds()) if delta is not None else 0


def day_intervals(schedule: Schedule, day: int) -> list[Interval]:
    """Local ``day``'s open intervals as instants, leaving out those a gap swallowed."""
    times = local_times(schedule, day)
    if not times:
        return []
    tz = schedule.tz
    begin = instant(tz, day, 0)
    if instant(tz, day + 1, 0) - begin == 86400 and _offset_at(tz, begin) == _offset_at(tz, begin + 86399):
        # The offset holds all day (no zone changes it twice within a day): a minute of the
        # day is 60 s after its start. Two conversions for the day, not two per interval.
        return [(begin + start * 60, begin + end * 60) for start, end in times]
    out = []
    for start, end in times:
        interval = (instant(schedule.tz, day, start), instant(schedule.tz, day, end))
        if interval[0] < interval[1]:
            out.append(interval)
    return out


# ----------------------------------------------------------------------------- the questions


def is_open(schedule: Schedule, t: int) -> bool:
    if not schedule.active:
        return True
    day = local_day(schedule, t)
    return any(start <= t < end for d in (day - 1, day, day + 1) for start, end in day_intervals(schedule, d))


def status(schedule: Schedule, t: int) -> Status:
    """Open or not at ``t``, since when, and when that changes next."""
    return Status(is_open(schedule, t), since(schedule, t), next_change(schedule, t))


def next_change(schedule: Schedule, t: int) -> int | None:
    """The first instant after ``t`` whose state differs from ``t``'s; None when there is none."""
    if not schedule.active:
        return None
    open_until: int | None = None  # open at t: where the open period found so far ends
    for piece in _forward(schedule, local_day(schedule, t) - 1):
        if piece is HORIZON:
            return None
        start, end = piece
        if open_until is not None:
            if start != open_until:
                return open_until
            if end is None:
                return None
            open_until = end
        elif end is None or end > t:  # the first piece not over by t
            if start is not None and start > t:
                return start  # closed at t until it
            if end is None:
                return None
            open_until = end
    return open_until


def since(schedule: Schedule, t: int) -> int | None:
    """The instant ``t``'s state began (at or before ``t``); None when it always was."""
    if not schedule.active:
        return None
    open_from: int | None = None  # open at t: where the open period found so far begins
    for piece in _backward(schedule, local_day(schedule, t) + 1):
        if piece is HORIZON:
            return None
        start, end = piece
        if open_from is not None:
            if end != open_from:
                return open_from
            if start is None:
                return None
            open_from = start
        elif start is None or start <= t:  # the last piece begun by t
            if end is not None and end <= t:
                return end  # closed at t since it
            if start is None:
                return None
            open_from = start
    return open_from


def open_intervals(schedule: Schedule, start: int, end: int) -> list[Interval]:
    """The open periods within ``[start, end)``, clipped to it, touching ones made one.
    Meant for windows of days (the API allows 31): every day in it is looked at."""
    if start >= end:
        return []
    if not schedule.active:
        return [(start, end)]
    days = range(local_day(schedule, start) - 1, local_day(schedule, end) + 2)
    pieces = join(interval for day in days for interval in day_intervals(schedule, day))
    return [(max(a, start), min(b, end)) for a, b in pieces if a < end and b > start]


# ----------------------------------------------------------------------------- bounded streams


def _forward(schedule: Schedule, day: int) -> Iterator[Piece | None]:
    """The open pieces from local ``day`` on, in order (touching ones not yet joined);
    ends with HORIZON when the search stops looking."""
    looked = 0
    while day <= LAST_DAY:
        if schedule.uniform is not None and day not in schedule.exceptions:
            following = bisect.bisect_right(schedule.exception_days, day)
            if following == len(schedule.exception_days):
                if schedule.uniform:
                    yield day_start(schedule, day), None
                return
            next_day = schedule.exception_days[following]
            if schedule.uniform:
                yield day_start(schedule, day), day_start(schedule, next_day)
            day = next_day
            continue
        if looked == MAX_SCAN_DAYS:
            break
        looked += 1
        yield from day_intervals(schedule, day)
        day += 1
    yield HORIZON


def _backward(schedule: Schedule, day: int) -> Iterator[Piece | None]:
    """``_forward`` in reverse: the open pieces up to the end of local ``day``, latest first."""
    looked = 0
    while day >= FIRST_DAY:
        if schedule.uniform is not None and day not in schedule.exceptions:
            preceding = bisect.bisect_left(schedule.exception_days, day)
            if preceding == 0:
                if schedule.uniform:
                    yield None, day_start(schedule, day + 1)
                return
            previous_day = schedule.exception_days[preceding - 1]
            if schedule.uniform:
                yield day_start(schedule, previous_day + 1), day_start(schedule, day + 1)
            day = previous_day
            continue
        if looked == MAX_SCAN_DAYS:
            break
        looked += 1
        yield from reversed(day_intervals(schedule, day))
        day -= 1
    yield HORIZON
