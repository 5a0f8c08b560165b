"""Office hours: one document per account, the default until the first update; its
status and schedule are read from it by the pure ``schedule`` engine."""

from __future__ import annotations

import datetime
from typing import Any

import orjson

from opensupp import lane
from opensupp.db import ForeignKeyViolation, Session
from opensupp.db.children import LOCK_ACCOUNT, account_not_found
from opensupp.errors import ValidationFailed
from opensupp.officehours import schedule
from opensupp.officehours.models import OfficeHoursStatus, OpenIntervals
from opensupp.officehours.validation import DEFAULT, merge, validate_office_hours
from opensupp.timeutil import now

_DEFAULT_JSON = orjson.dumps(DEFAULT).decode()
#: Intervals a document may have for it to be checked on the event loop (the check's time grows with them);
#: a larger one (up to 7 x 48 + 366 x 48) is checked in the lane (``opensupp.lane``).
LOOP_INTERVALS = 2000


def _intervals(document: dict[str, Any]) -> int:
    """How many intervals ``document`` holds (whatever its shape: it is not checked yet)."""
    count = 0
    for key in ("config", "exceptions"):
        entries = document.get(key)
        if isinstance(entries, list):
            count += sum(len(e["times"]) for e in entries if isinstance(e, dict) and isinstance(e.get("times"), list))
    return count


# Locks the account row (before the office hours: see LOCK_ACCOUNT), creates the office-hours
# row if needed, locks it against concurrent updates (lost updates otherwise) and answers the
# stored document, in one statement.
_UPSERT = {
    dialect: "INSERT INTO office_hours (account_id, document, updated_at)"
             f" SELECT a.id, $3, $4 FROM accounts a WHERE a.id = $1 AND a.partner_id = $2{lock}"
             " ON CONFLICT (account_id) DO UPDATE SET updated_at = office_hours.updated_at RETURNING document"
    for dialect, lock in LOCK_ACCOUNT.items()
}


async def get_office_hours(session: Session, *, partner_id: int, account_id: int) -> dict[str, Any]:
    row = await session.fetchrow(
        "SELECT a.id, o.document AS document FROM accounts a LEFT JOIN office_hours o ON o.account_id = a.id"
        " WHERE a.id = $1 AND a.partner_id = $2",
        account_id, partner_id,
    )
    if row is None:
        raise account_not_found(account_id)
    document: str | None = row["document"]
    return orjson.loads(document) if document else dict(DEFAULT)


async def update_office_hours(
    session: Session, *, partner_id: int, account_id: int, patch: dict[str, Any]
) -> dict[str, Any]:
    """Merge ``patch`` onto the stored document, validate the whole, store it."""
    try:
        stored = await session.fetchval(_UPSERT[session.dialect], account_id, partner_id, _DEFAULT_JSON, now())
    except ForeignKeyViolation:  # the account was deleted meanwhile
        stored = None
    if stored is None:
        raise account_not_found(account_id)
    merged = merge(orjson.loads(stored), patch)
    if _intervals(merged) > LOOP_INTERVALS:
        document, errors = await lane.run(validate_office_hours, merged)
    else:
        document, errors = validate_office_hours(merged)
    if errors:
        raise ValidationFailed(errors)
    await session.execute(
        "UPDATE office_hours SET document = $1, updated_at = $2 WHERE account_id = $3",
        orjson.dumps(document).decode(), now(), account_id,
    )
    return document


async def get_office_hours_status(
    session: Session, *, partner_id: int, account_id: int, at: int
) -> OfficeHoursStatus:
    """Open or closed at ``at``, since when and until when."""
    document = await get_office_hours(session, partner_id=partner_id, account_id=account_id)
    state = schedule.status(schedule.compile_schedule(document), at)
    return OfficeHoursStatus(state.open, state.since, state.next_change, document["timezone"])


async def office_hours_open_at(session: Session, *, account_id: int, at: int) -> bool:
    """Whether the account's office hours are open at ``at`` (the chat box's online state needs
    it; an account without office hours is open, as ``DEFAULT`` says)."""
    document = await session.fetchval("SELECT document FROM office_hours WHERE account_id = $1", account_id)
    hours = schedule.compile_schedule(orjson.loads(document) if document else DEFAULT)
    return schedule.is_open(hours, at)


async def get_office_hours_schedule(
    session: Session, *, partner_id: int, account_id: int, start: datetime.date | int | None, days: int, now: int
) -> OpenIntervals:
    """The open intervals of ``days`` days from ``start``: an instant (then ``days`` x 24 h),
    a local date (then ``days`` local days from its start), or None (today, local)."""
    document = await get_office_hours(session, partner_id=partner_id, account_id=account_id)
    hours = schedule.compile_schedule(document)
    if isinstance(start, int):
        begin, end = start, start + days * 86400
    else:
        day = start.toordinal() if start is not None else schedule.local_day(hours, now)
        begin, end = schedule.day_start(hours, day), schedule.day_start(hours, day + days)
    return OpenIntervals(document["timezone"], begin, end, schedule.open_intervals(hours, begin, end))
