"""HTTP routes for triggers: /accounts/:aid/triggers/..."""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, WithJsonSchema, with_config
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from opensupp.db import Session
from opensupp.errors import FieldError
from opensupp.triggers import engine, service
from opensupp.triggers.catalogue import (
    ACTIONS,
    CONDITIONS,
    MAX_ACTIONS,
    MAX_CONDITIONS,
    MAX_MAGNITUDE,
    MAX_STRING,
    ConditionSpec,
    validate_actions,
    validate_conditions,
)
from opensupp.triggers.models import Trigger
from opensupp.web.crud import Crud, register, table_service
from opensupp.web.fields import AS_INT, Body, Bool, Omittable, TextRules, text_pattern
from opensupp.web.resources import Out, ReadOnly, ReadOnlyId
from opensupp.web.routing import Router

router = Router()


def _condition_schema(spec: ConditionSpec) -> dict[str, Any]:
    if spec.type == "number":
        value: dict[str, Any] = {"type": "integer", "minimum": spec.min if spec.min is not None else -(10**18) + 1,
                                 "maximum": spec.max if spec.max is not None else 10**18 - 1}
    elif spec.type == "boolean":
        value = {"type": "boolean"}
    elif spec.type == "enum":
        value = {"type": "string", "enum": list(spec.values)}
    else:
        value = {"type": "string", "maxLength": MAX_STRING, "pattern": text_pattern(False, required=False)}
    comparators = [c for c in spec.comparators if c != "regex"]
    return {
        "type": "object",
        "description": f"{spec.description} ({spec.origin})" + (" A wait, not a filter." if spec.delay else ""),
        "required": ["name", "value"],
        "additionalProperties": False,
        "properties": {"name": {"type": "string", "enum": [spec.name]}, "value": value,
                       "cmp": {"type": "string", "enum": comparators}},
    }


_REGEX_CONDITION = {
    "type": "object",
    "description": "A string condition compared with a regular expression "
                   "(RE2 syntax: linear time, no backreferences).",
    "required": ["name", "value", "cmp"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "enum": [n for n, s in CONDITIONS.items() if s.type == "string"]},
        "value": {"type": "string", "maxLength": 500, "pattern": "^[A-Za-z0-9/._-]*$"},
        "cmp": {"type": "string", "enum": ["regex"]},
    },
}
CONDITION_SCHEMA = {"anyOf": [_condition_schema(s) for s in CONDITIONS.values()] + [_REGEX_CONDITION]}
ACTION_SCHEMA = {
    "anyOf": [
        {
            "type": "object", "description": spec.description, "additionalProperties": False,
            "required": list(spec.field_names),
            "properties": {"name": {"type": "string", "enum": [spec.name]}} | {
                f.name: {"type": "string", "minLength": 1, "maxLength": f.max_length, "description": f.description,
                         "pattern": text_pattern(f.multiline, required=True)}
                for f in spec.fields
            },
        }
        for spec in ACTIONS.values()
    ]
}
Conditions = Annotated[
    list[dict[str, Any]],
    WithJsonSchema({"type": "array", "maxItems": MAX_CONDITIONS, "items": CONDITION_SCHEMA,
                    "description": "All (or any) must hold; delays are waits, in order. Empty: fires for everyone."}),
]
Actions = Annotated[
    list[dict[str, Any]],
    WithJsonSchema({"type": "array", "minItems": 1, "maxItems": MAX_ACTIONS, "items": ACTION_SCHEMA}),
]
Event = Literal["onload", "onmessage", "onopen"]
Constraints = Literal["all", "any"]
Name = Annotated[str, TextRules(255)]
Description = Annotated[str, TextRules(1000, multiline=True, required=False)]


def _catalogue(data: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    """Conditions and actions as the catalogue checks and normalizes them ("60" -> 60,
    cmp kept only when sent), once per request."""
    normalized: dict[str, Any] = {}
    errors: list[FieldError] = []
    for name, check in (("conditions", validate_conditions), ("actions", validate_actions)):
        if name in data:
            normalized[name], problems = check(data[name])
            errors += problems
    return normalized, errors


#: The most microseconds checking one regular expression is taken to take (RE2 compiles it,
#: which for a long pattern takes long): a body with several is checked off the loop.
REGEX_CHECK_US = 10_000


def _regex_cost(data: dict[str, Any]) -> float:
    conditions = data.get("conditions")
    if type(conditions) is not list:
        return 0.0
    return REGEX_CHECK_US * sum(1 for c in conditions if type(c) is dict and c.get("cmp") == "regex")


class TriggerCreate(Body):
    name: Name
    actions: Actions
    active: Bool = True
    description: Description = ""
    event: Event = Field("onload", description="onload and onmessage are Smartsupp's; onopen is ours.")
    only_once: Bool = Field(True, description="At most once per visitor.")
    constraints: Constraints = "all"
    conditions: Conditions = []

    @classmethod
    def check_raw(cls, data: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
        return _catalogue(data)

    @classmethod
    def validation_cost(cls, data: dict[str, Any]) -> float:
        return _regex_cost(data)


class TriggerUpdate(Body):
    name: Omittable[Name] = None
    actions: Omittable[Actions] = None
    active: Omittable[Bool] = None
    description: Omittable[Description] = None
    event: Omittable[Event] = None
    only_once: Omittable[Bool] = None
    constraints: Omittable[Constraints] = None
    conditions: Omittable[Conditions] = None
    id: ReadOnlyId = ReadOnly()

    @classmethod
    def check_raw(cls, data: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
        return _catalogue(data)

    @classmethod
    def validation_cost(cls, data: dict[str, Any]) -> float:
        return _regex_cost(data)


class TriggerOut(Out):
    id: str
    active: bool
    name: str
    description: str
    event: Event
    only_once: bool
    constraints: Constraints
    conditions: Conditions
    actions: Actions


def trigger_json(trigger: Trigger) -> dict[str, Any]:
    return {
        "id": str(trigger.id), "active": trigger.active, "name": trigger.name, "description": trigger.description,
        "event": trigger.event, "only_once": trigger.only_once, "constraints": trigger.constraints,
        "conditions": trigger.conditions, "actions": trigger.actions,
    }


register(
    router,
    Crud(
        plural="triggers", noun="trigger", tag="Triggers",
        create=TriggerCreate, update=TriggerUpdate, out=TriggerOut, to_json=trigger_json,
        service=table_service(service.TRIGGERS, create=service.create_trigger, update=service.update_trigger),
        writable=("name", "actions", "active", "description", "event", "only_once", "constraints", "conditions"),
        read_only=("id",),
    ),
    extra_doc={
        "create": "Conditions are checked against the catalogue (names, types, comparators); "
        "the answer echoes what was sent, adding `id` and the defaults.",
    },
)


# ----------------------------------------------------------------------------- evaluate (a dry run)

MAX_VISITOR_STRING = 2000  # code points of a visitor's string (URLs run long)
MAX_FIRED = 1000
_ID = re.compile(r"[1-9][0-9]{0,17}")
_INSTANT = re.compile(  # RFC 3339's date-time: date, time, optional fraction, offset
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))"
)
_INSTANT_MESSAGE = (
    "must be a date-time with an offset (RFC 3339), like 2026-05-01T09:00:00+02:00 or 2026-05-01T07:00:00Z"
)


def _instant(value: Any) -> datetime.datetime:
    """RFC 3339's date-time as an aware datetime; a leap second (:60) counts as :59."""
    match = _INSTANT.fullmatch(value) if type(value) is str else None
    if match is None:
        raise PydanticCustomError("instant", _INSTANT_MESSAGE)
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    micro = int((match[7] or "0")[:6].ljust(6, "0"))
    offset = datetime.timedelta(hours=int(match[9] or 0), minutes=int(match[10] or 0))
    try:
        if second > 60:
            raise ValueError("second must be in 0..60")
        tz = datetime.timezone(-offset if match[8] == "-" else offset)
        return datetime.datetime(year, month, day, hour, minute, min(second, 59), micro, tzinfo=tz)
    except ValueError as exc:
        problem = {"problem": str(exc)}
        raise PydanticCustomError("instant", "must be a date and time that exist ({problem})", problem) from None


def _trigger_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise PydanticCustomError("trigger_id", "must be a trigger id (decimal digits, like \"12\")")
    return value


Instant = Annotated[
    datetime.datetime, BeforeValidator(_instant), WithJsonSchema({"type": "string", "format": "date-time"})
]
TriggerId = Annotated[ReadOnlyId, AfterValidator(_trigger_id),
                      WithJsonSchema({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"})]
VisitorText = Annotated[str, TextRules(MAX_VISITOR_STRING, required=False)]
AccountStatus = Literal["online", "offline"]


def _about(name: str, default: str = "") -> str:
    """The field's description: its condition's, from the catalogue."""
    about = CONDITIONS[name].description
    return about[0].upper() + about[1:] + (f". Default: {default}." if default else ".")


def _doc(default: Any = None, **field: Any) -> Any:
    """A visitor field's pydantic constraints and docs; ``default`` is what an absent field
    means, for the docs (the engine fills it in: ``engine.context``). An integer's goes before
    its coercion (``Annotated[int, _doc(...), AS_INT]``): pydantic documents the bounds only
    of constraints that come before a validator."""
    return Field(json_schema_extra={"default": default} if default is not None else None, **field)


def _count(name: str) -> Any:
    spec = CONDITIONS[name]
    high = spec.max if spec.max is not None else MAX_MAGNITUDE
    return _doc(engine.FIRST_VISIT[name], ge=spec.min, le=high, description=_about(name))


def _unknown(name: str) -> Any:
    return _doc(description=_about(name, '"" (null and "" both mean unknown or none)'))


@with_config(ConfigDict(extra="forbid", strict=True))
class Visitor(TypedDict, total=False):
    """The visitor, as the widget would see them; every field is optional, the defaults
    are a first-time visitor who has just opened their first page."""

    # A TypedDict, not a model: validated into a dict of the fields sent, the rest filled in
    # by the engine (engine.context). A model with these 18 defaults cost more to validate
    # than the evaluation's SQL (callgrind).
    seconds_on_site: Annotated[int, _doc(
        engine.FIRST_VISIT[engine.SITE_CLOCK], ge=0, le=MAX_MAGNITUDE,
        description="Seconds on the site so far: the clock `delay_site` waits on.",
    ), AS_INT]
    seconds_on_page: Annotated[int, _doc(
        ge=0, le=MAX_MAGNITUDE,
        description="Seconds on this page so far: the clock `delay_page` waits on. Default: `seconds_on_site`.",
    ), AS_INT]
    number_of_visits: Annotated[int, _count("number_of_visits"), AS_INT]
    number_of_pages: Annotated[int, _count("number_of_pages"), AS_INT]
    number_of_chats: Annotated[int, _count("number_of_chats"), AS_INT]
    is_visitor_send_message: Annotated[
        Bool, _doc(description=_about("is_visitor_send_message", "true on onmessage, else false"))
    ]
    is_visitor_served: Annotated[
        Bool, _doc(engine.FIRST_VISIT["is_visitor_served"], description=_about("is_visitor_served"))
    ]
    is_triggered: Annotated[Bool, _doc(description=_about("is_triggered", "whether `fired_triggers` is non-empty"))]
    visitor_group: Annotated[VisitorText | None, _unknown("visitor_group")]
    visitor_ip: Annotated[VisitorText | None, _unknown("visitor_ip")]
    visitor_city: Annotated[VisitorText | None, _unknown("visitor_city")]
    visitor_country_code: Annotated[VisitorText | None, _unknown("visitor_country_code")]
    visitor_page_url: Annotated[VisitorText | None, _unknown("visitor_page_url")]
    visitor_page_title: Annotated[VisitorText | None, _unknown("visitor_page_title")]
    visitor_referer: Annotated[VisitorText | None, _unknown("visitor_referer")]
    visitor_language: Annotated[VisitorText | None, _unknown("visitor_language")]
    account_status: Annotated[
        AccountStatus, _doc(engine.FIRST_VISIT["account_status"], description=_about("account_status"))
    ]
    fired_triggers: Annotated[list[TriggerId], _doc(
        [], max_length=MAX_FIRED, description="The triggers that have already fired for this visitor (only_once).",
    )]


class TriggerEvaluate(Body):
    event: Event = Field("onload", description="The event to evaluate the triggers on.")
    at: Omittable[Instant] = Field(
        None, description="The instant to evaluate at (RFC 3339, with an offset). Default: now."
    )
    visitor: Visitor = Field(default_factory=Visitor)


class ReasonOut(Out):
    name: str
    cmp: str = Field(description="`eq` when the trigger leaves it out.")
    expected: Any = Field(description="The condition's value.")
    actual: Any = Field(description="The visitor's value when checked (a wait: its clock when it starts).")
    ok: bool
    at: Omittable[int] = Field(None, description="Only on a condition checked after a wait: seconds from now then.")
    wait: Omittable[int] = Field(None, description="Only on a wait (`delay_site`, `delay_page`): the seconds it adds.")


class DecisionOut(Out):
    id: str
    name: str
    fires: Literal["now", "later", "never"] = Field(description="never: not on this event (see `why`).")
    after: int | None = Field(description="Seconds from now when it fires: 0 now, null never.")
    why: str | None = Field(description="Why it does not fire; null when it does.")
    reasons: list[ReasonOut] = Field(description="One per condition, in order.")


class VisitorOut(Out):
    seconds_on_site: int
    seconds_on_page: int
    number_of_visits: int
    number_of_pages: int
    number_of_chats: int
    is_visitor_send_message: bool
    is_visitor_served: bool
    is_triggered: bool
    visitor_group: str
    visitor_ip: str
    visitor_city: str
    visitor_country_code: str
    visitor_page_url: str
    visitor_page_title: str
    visitor_referer: str
    visitor_language: str
    account_status: AccountStatus
    fired_triggers: list[str]


class TriggerEvaluation(Out):
    event: Event
    at: str = Field(description="The instant evaluated, `YYYY-MM-DDTHH:MM:SSZ` (whole seconds).")
    timezone: Annotated[Any, WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}]})] = Field(
        description="The account's office-hours timezone, in which hour_of_day, day_of_week and month_of_year "
                    "are taken."
    )
    visitor: VisitorOut = Field(description="The visitor evaluated, defaults filled in.")
    triggers: list[DecisionOut] = Field(description="Every trigger of the account, by id.")


@router.add("query", "/accounts/{aid}/triggers/evaluate", body=TriggerEvaluate, response=TriggerEvaluation,
            tag="Triggers")
async def evaluate_triggers(req, session: Session, body: TriggerEvaluate) -> bytes:
    """Evaluate the account's triggers (a dry run)

    For a visitor and an event, whether each trigger of the account fires now, after a wait
    (`delay_site`/`delay_page` are waits, walked in order) or not, with one reason per
    condition. Nothing is stored or sent. Time conditions are taken in the office-hours
    timezone. A GET counts as an empty body: `onload`, now, a first-time visitor.
    """
    return await service.evaluate_triggers(
        session, plans=service.plans_of(req.db, req.app.settings.trigger_cache_mb << 20), partner_id=req.partner_id,
        account_id=req.ids[0], event=body.event, at=body.at, visitor=body.visitor,
    )
