"""HTTP routes for office hours: one per account, so get and update only."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, WithJsonSchema

from opensupp.db import Session
from opensupp.officehours import service
from opensupp.officehours.rules import MAX_CONFIG, MAX_TIMES
from opensupp.web.fields import Body
from opensupp.web.resources import Out
from opensupp.web.routing import Router

router = Router()
TAG = "Office hours"

_DAY = {"type": "integer", "minimum": 0, "maximum": 6, "description": "0 is Sunday"}
_MINUTE = {"type": "integer", "minimum": 0, "maximum": 1440}
_CONFIG = {
    "type": "array", "maxItems": MAX_CONFIG,
    "description": "Open intervals per day; a day in `days` without an entry is open all day.",
    "items": {
        "type": "object", "required": ["dow", "times"], "additionalProperties": False,
        "properties": {
            "dow": _DAY,
            "times": {"type": "array", "maxItems": MAX_TIMES, "items": {
                "type": "object", "required": ["from", "to"], "additionalProperties": False,
                "properties": {"from": _MINUTE, "to": _MINUTE},
                "description": "Minutes after midnight; from < to; sorted, not overlapping (they may touch).",
            }},
        },
    },
}
_TIMEZONE = {
    "anyOf": [{"type": "number", "minimum": -12, "maximum": 14, "multipleOf": 0.25}, {"type": "string", "example": "Europe/Prague"}],
    "description": "An offset in hours (1, -5, 5.5), answered as sent, or an IANA name that follows daylight saving.",
}
_DAYS = {"type": "array", "maxItems": 7, "uniqueItems": True, "items": _DAY, "description": "Open days, in the order sent."}

Active = Annotated[Any, WithJsonSchema({"type": "boolean"})]
Days = Annotated[Any, WithJsonSchema(_DAYS)]
Timezone = Annotated[Any, WithJsonSchema(_TIMEZONE)]
Config = Annotated[Any, WithJsonSchema(_CONFIG)]


class OfficeHoursUpdate(Body):
    """Partial: only the fields sent change; the merged whole is validated."""

    active: Active = Field(None, description="false: always open")
    days: Days = None
    timezone: Timezone = None
    config: Config = None


class OfficeHoursOut(Out):
    active: Active
    days: Days
    timezone: Timezone
    config: Config


@router.get("/accounts/{aid}/officehours/get", response=OfficeHoursOut, tag=TAG)
async def get_office_hours(req, session: Session) -> dict[str, Any]:
    """Get the office hours

    Before any update: `{"active": false, "days": [], "timezone": 0, "config": []}`.
    """
    return await service.get_office_hours(session, partner_id=req.partner_id, account_id=req.ids[0])


@router.update("/accounts/{aid}/officehours/update", body=OfficeHoursUpdate, response=OfficeHoursOut, tag=TAG)
async def update_office_hours(req, session: Session, body: OfficeHoursUpdate) -> dict[str, Any]:
    """Update the office hours

    Partial: the fields sent replace the stored ones (`config` as a whole), and the result
    is validated as a whole: `dow` and `days` 0 (Sunday) to 6, each day once, a `config`
    entry only for a day in `days`, `0 <= from < to <= 1440`, intervals sorted and not
    overlapping, `timezone` an offset from -12 to 14 in quarter hours or an IANA name.
    """
    return await service.update_office_hours(
        session, partner_id=req.partner_id, account_id=req.ids[0], patch=body.model_dump(exclude_unset=True)
    )
