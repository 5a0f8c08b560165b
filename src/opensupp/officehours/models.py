"""Office hours: the table (one JSON document per account) and what the status and schedule
reads answer, in Unix seconds (the api writes them as ISO 8601)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, ForeignKey, Table, Text

from opensupp.db import metadata

office_hours = Table(
    "office_hours",
    metadata,
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("document", Text, nullable=False),  # JSON, as answered
    Column("updated_at", BigInteger, nullable=False),
)


@dataclass(slots=True)
class OfficeHoursStatus:
    """Open or closed at an instant, since when and until when (None: always, never)."""

    open: bool
    since: int | None
    next_change: int | None
    timezone: float | str  # as the document holds it: an offset in hours, or an IANA name


@dataclass(slots=True)
class OpenIntervals:
    """The open periods within [start, end), clipped to it."""

    timezone: float | str
    start: int
    end: int
    intervals: list[tuple[int, int]]
