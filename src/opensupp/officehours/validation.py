"""Office hours: the shape, the rules and the partial update, as pure functions.

``{"active", "days", "timezone", "config": [{"dow", "times": [{"from", "to"}]}],
"exceptions": [{"date", "times": [{"from", "to"}]}]}`` (API.md, "Office hours" and its
fine print):

- ``active``: a boolean.
- ``days``: the open days, distinct integers 0 (Sunday) to 6 (Saturday), kept in the order
  sent. A day in ``days`` with no ``config`` entry is open all day; a day not in ``days``
  is closed.
- ``timezone``: an offset in hours from -12 to 14 in steps of 0.25, answered exactly as
  sent (``1`` stays ``1``, ``5.5`` stays ``5.5``; ``"5.5"`` becomes ``5.5``), or an IANA
  zone name (``"Europe/Prague"``) that follows daylight saving.
- ``config``: at most 7 entries, at most one per ``dow``, each for a day in ``days``;
  ``times`` holds 1 to 48 intervals of minutes after midnight, ``0 <= from < to <= 1440``,
  sorted by ``from``, not overlapping (touching, ``705``/``705``, is fine). An entry with
  no intervals is refused: leave the day out of ``days`` to close it, or out of
  ``config`` to keep it open all day.
- ``exceptions`` (optional): holidays and other special days, at most 366 entries, each
  ``date`` at most once. ``date`` is a local calendar date ``YYYY-MM-DD`` from 1970-01-01
  to 9998-12-31; its ``times`` replace that day's regular hours whether or not its weekday
  is in ``days``. ``times`` follow the rules of ``config`` but may be empty: closed all
  day. The key is kept only when it holds entries, so ``"exceptions": []`` removes it and
  a document that never had any answers exactly as before exceptions existed. Entries
  keep the order sent.

As everywhere in the API, numbers may come as decimal strings and booleans as
``"true"``/``"false"``/``"1"``/``"0"``; nothing else is coerced, and a boolean is never a
number. Every problem is reported at once, each at its exact path
(``config[1].times[0].to``, ``exceptions[2].date``). A list that is longer than allowed is
reported as such and its items are not looked into, so the error list stays short
whatever the body holds.

The query parameters of the status and schedule reads are checked here too
(``parse_instant``, ``parse_start``, ``parse_days``): pure text in, a value or a message out.
"""

from __future__ import annotations

import copy
import datetime
import functools
import math
import re
import zoneinfo
from typing import Any

import orjson

from opensupp.errors import FieldError, unknown_fields
from opensupp.values import NUMBER, as_bool, as_int

DEFAULT: dict[str, Any] = {"active": False, "days": [], "timezone": 0, "config": []}

FIELDS = ("active", "days", "timezone", "config", "exceptions")
ENTRY_FIELDS = ("dow", "times")
EXCEPTION_FIELDS = ("date", "times")
INTERVAL_FIELDS = ("from", "to")
MAX_CONFIG = 7
MAX_TIMES = 48
MAX_EXCEPTIONS = 366
MINUTES_PER_DAY = 1440
MIN_OFFSET = -12
MAX_OFFSET = 14
# Dates (exceptions, the schedule's ``from``) and the dates written in instants (``at``,
# ``from``): a year of room is left before the calendar ends for the schedule's searches.
FIRST_DATE = datetime.date(1970, 1, 1)
LAST_DATE = datetime.date(9998, 12, 31)
MAX_SCHEDULE_DAYS = 31

# the same spellings as opensupp.web.fields (which this module may not import)

_MISSING = object()

DAY_MESSAGE = "must be an integer from 0 to 6 (0 is Sunday)"
MINUTE_MESSAGE = f"must be an integer from 0 to {MINUTES_PER_DAY}"
TIMEZONE_MESSAGE = (
    f"must be an offset in hours from {MIN_OFFSET} to {MAX_OFFSET} in steps of 0.25 (like 1, -5 or 5.5) "
    'or an IANA time zone name (like "Europe/Prague", "America/New_York" or "UTC")'
)
DATE_RANGE = f"from {FIRST_DATE} to {LAST_DATE}"
DATE_MESSAGE = f'must be a date written YYYY-MM-DD (like "2026-12-24"), {DATE_RANGE}'
INSTANT_MESSAGE = (
    'must be a date and time with an offset, like "2026-12-24T16:00:00Z" or "2026-12-24T17:00:00+01:00" '
    "(in a URL, write + as %2B)"
)
START_MESSAGE = (
    'must be a date (like "2026-12-24") or a date and time with an offset (like "2026-12-24T16:00:00Z"; '
    "in a URL, write + as %2B)"
)
DAYS_MESSAGE = f"must be an integer from 1 to {MAX_SCHEDULE_DAYS}"
_EPOCH_DAY = datetime.date(1970, 1, 1).toordinal()

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# RFC 3339: seconds and a fraction are optional here, the offset is not. A space before
# the offset's digits is a "+" that the query string decoded as a space.
_INSTANT = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt](?P<h>[0-9]{2}):(?P<m>[0-9]{2})(?::(?P<s>[0-9]{2})(?:\.[0-9]+)?)?"
    r"(?:(?P<z>[Zz])|(?P<sign>[-+ ])(?P<oh>[0-9]{2}):(?P<om>[0-9]{2}))?"
)
_DAYS = re.compile(r"[0-9]{1,2}")


@functools.cache
def zone_names() -> frozenset[str]:
    """Every IANA zone name this machine knows (system zoneinfo and the tzdata package)."""
    return frozenset(zoneinfo.available_timezones())


@functools.cache
def _zone_names_folded() -> dict[str, str]:
    return {name.casefold(): name for name in sorted(zone_names())}


def _unknown(keys: Any, allowed: tuple[str, ...], path: str) -> list[FieldError]:
    if all(key in allowed for key in keys):  # (the usual case: no message to build)
        return []
    return unknown_fields(keys, allowed, path, f"is not a known field (allowed: {', '.join(allowed)})")


def _is_object(value: Any, path: str, allowed: tuple[str, ...], errors: list[FieldError]) -> bool:
    """Whether ``value`` is an object; its unknown keys are reported either way."""
    if not isinstance(value, dict):
        errors.append(FieldError(path, "must be an object"))
        return False
    errors.extend(_unknown(value, allowed, path))
    return True


def _in_range(value: Any, low: int, high: int) -> int | None:
    number = as_int(value)
    return number if number is not None and low <= number <= high else None


def check_timezone(value: Any) -> tuple[int | float | str | None, str | None]:
    """``(normalized, None)`` for a valid ``timezone``, else ``(None, message)``."""
    number: int | float | None = None
    if type(value) in (int, float):
        number = value
    elif type(value) is str and NUMBER.fullmatch(value):
        number = float(value) if "." in value else int(value)
    elif type(value) is str:
        if value in zone_names():
            return value, None
        suggestion = _zone_names_folded().get(value.casefold())
        if suggestion is not None:
            return None, f'is not a known IANA time zone name (did you mean "{suggestion}"?)'
        return None, TIMEZONE_MESSAGE
    else:
        return None, TIMEZONE_MESSAGE
    if not math.isfinite(number) or not MIN_OFFSET <= number <= MAX_OFFSET:
        return None, f"must be from {MIN_OFFSET} to {MAX_OFFSET} hours (or an IANA time zone name)"
    if not float(number * 4).is_integer():
        return None, "must be a whole number of quarter hours (like 5.5 or 5.75)"
    return number, None


@functools.lru_cache(maxsize=1024)
def tzinfo_of(timezone: int | float | str) -> datetime.tzinfo:
    """The tzinfo of a valid (normalized) ``timezone``: a fixed offset in hours, or an IANA zone
    that follows daylight saving. Triggers' ``hour_of_day`` and the schedule both use this."""
    if isinstance(timezone, str):
        return zoneinfo.ZoneInfo(timezone)
    return datetime.timezone(datetime.timedelta(hours=timezone))


def merge(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The partial update: the keys in ``patch`` replace the stored ones, the others stay.

    ``config`` and ``exceptions`` (like every key) are replaced as a whole, never merged
    entry by entry.
    Unknown keys are carried over so that ``validate_office_hours`` names them. Neither
    argument is modified (both are JSON values: a JSON round trip copies them, far faster
    than copy.deepcopy on a large document).
    """
    return orjson.loads(orjson.dumps({**DEFAULT, **stored, **patch}))


def validate_office_hours(doc: object) -> tuple[dict[str, Any], list[FieldError]]:
    """Check a complete office-hours object; return it normalized and every problem found.

    A missing key takes its value from ``DEFAULT``. The returned document has the keys in
    the order of ``FIELDS``, with strings coerced to numbers and booleans where allowed,
    and ``exceptions`` only when it has entries; it is meaningful only when the error list
    is empty (invalid values are passed through).
    """
    errors: list[FieldError] = []
    if not isinstance(doc, dict):
        return copy.deepcopy(DEFAULT), [FieldError("", "must be an object")]
    errors.extend(_unknown(doc, FIELDS, ""))

    out: dict[str, Any] = {}

    active = doc.get("active", DEFAULT["active"])
    flag = as_bool(active)
    if flag is None:
        errors.append(FieldError("active", "must be true or false"))
        out["active"] = active
    else:
        out["active"] = flag

    days, days_ok = _validate_days(doc.get("days", _MISSING), errors)
    out["days"] = days

    timezone, message = check_timezone(doc.get("timezone", DEFAULT["timezone"]))
    if message is not None:
        errors.append(FieldError("timezone", message))
        out["timezone"] = doc.get("timezone")
    else:
        out["timezone"] = timezone

    out["config"] = _validate_config(doc.get("config", _MISSING), set(days) if days_ok else None, errors)

    exceptions = _validate_exceptions(doc.get("exceptions", []), errors)
    if exceptions != []:
        out["exceptions"] = exceptions
    return out, errors


def _bounded_list(value: Any, path: str, most: int, why: str, errors: list[FieldError]) -> bool:
    """Whether ``value`` is a list of at most ``most`` items; the error added when not (a
    list that is too long is not looked into, so the error list stays short)."""
    if not isinstance(value, list):
        errors.append(FieldError(path, "must be a list"))
        return False
    if len(value) > most:
        errors.append(FieldError(path, f"must have at most {most} items{why}"))
        return False
    return True


def _validate_days(value: Any, errors: list[FieldError]) -> tuple[list[Any], bool]:
    if value is _MISSING:
        return [], True
    if not _bounded_list(value, "days", 7, "", errors):
        return value, False
    days: list[Any] = []
    seen: dict[int, int] = {}
    ok = True
    for i, item in enumerate(value):
        day = _in_range(item, 0, 6)
        if day is None:
            errors.append(FieldError(f"days[{i}]", DAY_MESSAGE))
            days.append(item)
            ok = False
        elif day in seen:
            errors.append(FieldError(f"days[{i}]", f"day {day} is listed twice (also days[{seen[day]}])"))
            days.append(day)
            ok = False
        else:
            seen[day] = i
            days.append(day)
    return days, ok


def _validate_config(value: Any, days: set[int] | None, errors: list[FieldError]) -> Any:
    if value is _MISSING:
        return []
    if not _bounded_list(value, "config", MAX_CONFIG, " (one per day)", errors):
        return value
    out: list[Any] = []
    seen: dict[int, int] = {}
    for i, entry in enumerate(value):
        path = f"config[{i}]"
        if not _is_object(entry, path, ENTRY_FIELDS, errors):
            out.append(entry)
            continue
        normalized: dict[str, Any] = {}

        if "dow" not in entry:
            errors.append(FieldError(f"{path}.dow", "is required"))
        else:
            dow = _in_range(entry["dow"], 0, 6)
            if dow is None:
                errors.append(FieldError(f"{path}.dow", DAY_MESSAGE))
                normalized["dow"] = entry["dow"]
            else:
                normalized["dow"] = dow
                if dow in seen:
                    errors.append(FieldError(f"{path}.dow", f"dow {dow} already has an entry (config[{seen[dow]}])"))
                else:
                    seen[dow] = i
                    if days is not None and dow not in days:
                        errors.append(FieldError(f"{path}.dow", f"dow {dow} is not in days"))

        if "times" not in entry:
            errors.append(FieldError(f"{path}.times", "is required"))
        else:
            normalized["times"] = _validate_times(entry["times"], f"{path}.times", errors)
        out.append(normalized)
    return out


def _validate_exceptions(value: Any, errors: list[FieldError]) -> Any:
    if not _bounded_list(value, "exceptions", MAX_EXCEPTIONS, " (one per date)", errors):
        return value
    out: list[Any] = []
    seen: dict[datetime.date, int] = {}
    for i, entry in enumerate(value):
        path = f"exceptions[{i}]"
        if not _is_object(entry, path, EXCEPTION_FIELDS, errors):
            out.append(entry)
            continue
        normalized: dict[str, Any] = {}
        if "date" not in entry:
            errors.append(FieldError(f"{path}.date", "is required"))
        else:
            normalized["date"] = entry["date"]
            day, message = check_date(entry["date"])
            if day is None:
                errors.append(FieldError(f"{path}.date", message or DATE_MESSAGE))
            elif day in seen:
                errors.append(FieldError(f"{path}.date", f"date {day} already has an entry (exceptions[{seen[day]}])"))
            else:
                seen[day] = i
        if "times" not in entry:
            errors.append(FieldError(f"{path}.times", "is required (an empty list closes the day)"))
        else:
            normalized["times"] = _validate_times(entry["times"], f"{path}.times", errors, empty_ok=True)
        out.append(normalized)
    return out


def _validate_times(value: Any, path: str, errors: list[FieldError], *, empty_ok: bool = False) -> Any:
    """Intervals of one day: ``0 <= from < to <= 1440``, sorted, not overlapping; empty only
    when ``empty_ok`` (an exception's closed day)."""
    if not _bounded_list(value, path, MAX_TIMES, "", errors):
        return value
    if not value and not empty_ok:
        errors.append(
            FieldError(
                path,
                "must have at least one interval (leave the day out of days to close it, "
                "or out of config to open it all day)",
            )
        )
        return value
    out: list[Any] = []
    previous: tuple[int, int, int] | None = None  # (index, from, to) of the last valid interval
    latest: tuple[int, int] | None = None  # (index, to) of the valid interval that ends last
    for j, interval in enumerate(value):
        if type(interval) is dict and len(interval) == 2:  # the usual interval, checked at once
            start, end = interval.get("from"), interval.get("to")
            if (type(start) is int and type(end) is int and 0 <= start < end <= MINUTES_PER_DAY
                    and (latest is None or start >= latest[1])):
                out.append({"from": start, "to": end})
                previous, latest = (j, start, end), (j, end)
                continue
        here = f"{path}[{j}]"
        if not _is_object(interval, here, INTERVAL_FIELDS, errors):
            out.append(interval)
            continue
        normalized: dict[str, Any] = {}
        bounds: dict[str, int] = {}
        for key in INTERVAL_FIELDS:
            if key not in interval:
                errors.append(FieldError(f"{here}.{key}", "is required"))
                continue
            minute = _in_range(interval[key], 0, MINUTES_PER_DAY)
            if minute is None:
                errors.append(FieldError(f"{here}.{key}", MINUTE_MESSAGE))
                normalized[key] = interval[key]
            else:
                normalized[key] = bounds[key] = minute
        out.append(normalized)
        if len(bounds) != 2:
            continue
        start, end = bounds["from"], bounds["to"]
        if start >= end:
            errors.append(FieldError(f"{here}.to", "must be after from"))
            continue
        if previous is not None and start < previous[1]:
            errors.append(
                FieldError(
                    f"{here}.from",
                    f"must not be before the previous interval's from ({previous[1]}): sort the intervals by from",
                )
            )
        elif latest is not None and start < latest[1]:
            which = "the previous interval" if previous and latest[0] == previous[0] else f"{path}[{latest[0]}]"
            errors.append(FieldError(f"{here}.from", f"overlaps {which} (ends at {latest[1]})"))
        previous = (j, start, end)
        if latest is None or end > latest[1]:
            latest = (j, end)
    return out


# ----------------------------------------------------------------------------- dates and query parameters


def check_date(value: Any) -> tuple[datetime.date | None, str | None]:
    """``(date, None)`` for a calendar date written ``YYYY-MM-DD`` within ``DATE_RANGE``,
    else ``(None, message)``. Only a string is a date."""
    if type(value) is not str or not _DATE.fullmatch(value):
        return None, DATE_MESSAGE
    try:
        day = datetime.date.fromisoformat(value)
    except ValueError:
        return None, f"{value} is not a date of the calendar"
    if not FIRST_DATE <= day <= LAST_DATE:
        return None, f"must be {DATE_RANGE}"
    return day, None


def parse_instant(text: str) -> tuple[int | None, str | None]:
    """``(unix seconds, None)`` for an RFC 3339 date and time with an offset, else
    ``(None, message)``.

    ``2026-12-24T16:00:00Z``, ``2026-12-24T17:00:00+01:00``; seconds may be left out and a
    fraction of a second is dropped (every office-hours boundary is a whole second). The
    offset is required: a wall-clock time alone could be any instant. The date as written
    must be within ``DATE_RANGE``.
    """
    match = _INSTANT.fullmatch(text)
    if match is None:
        return None, INSTANT_MESSAGE
    if match["z"] is None and match["sign"] is None:
        return None, "needs an offset: end it with Z (UTC) or like +01:00 (a time alone could be any instant)"
    day, message = check_date(match["date"])
    if day is None:
        return None, message
    hour, minute, second = int(match["h"]), int(match["m"]), int(match["s"] or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None, f"{text} is not a time of day (00:00:00 to 23:59:59)"
    offset = 0
    if match["sign"] is not None:
        if int(match["oh"]) > 23 or int(match["om"]) > 59:
            return None, f"{text} has no valid offset (-23:59 to +23:59)"
        offset = (-1 if match["sign"] == "-" else 1) * (int(match["oh"]) * 3600 + int(match["om"]) * 60)
    return (day.toordinal() - _EPOCH_DAY) * 86400 + hour * 3600 + minute * 60 + second - offset, None


def parse_start(text: str) -> tuple[datetime.date | int | None, str | None]:
    """The schedule's ``from``: a date (``YYYY-MM-DD``, a local day of the account's time
    zone) or an instant (as ``parse_instant``); ``(None, message)`` for anything else."""
    if _DATE.fullmatch(text):
        return check_date(text)
    instant, message = parse_instant(text)
    return instant, START_MESSAGE if message == INSTANT_MESSAGE else message


def parse_days(text: str) -> tuple[int | None, str | None]:
    """The schedule's ``days``: an integer from 1 to ``MAX_SCHEDULE_DAYS``."""
    if _DAYS.fullmatch(text) and 1 <= int(text) <= MAX_SCHEDULE_DAYS:
        return int(text), None
    return None, DAYS_MESSAGE

