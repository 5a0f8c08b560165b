"""HTTP routes for triggers: /accounts/:aid/triggers/..."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, WithJsonSchema

from opensupp.db import Row
from opensupp.errors import FieldError
from opensupp.triggers import service
from opensupp.triggers.catalogue import (
    ACTIONS, CONDITIONS, MAX_ACTIONS, MAX_CONDITIONS, MAX_STRING, ConditionSpec, validate_actions, validate_conditions,
)
from opensupp.web.crud import Crud, register, table_service
from opensupp.web.fields import Body, Bool, Text
from opensupp.web.resources import Out, ReadOnly, ReadOnlyId
from opensupp.web.routing import Router

router = Router()
_TEXT = "^[^\\x00-\\x1f\\x7f]*$"


def _condition_schema(spec: ConditionSpec) -> dict[str, Any]:
    if spec.type == "number":
        value: dict[str, Any] = {"type": "integer", "minimum": spec.min if spec.min is not None else -(10**18) + 1,
                                 "maximum": spec.max if spec.max is not None else 10**18 - 1}
    elif spec.type == "boolean":
        value = {"type": "boolean"}
    elif spec.type == "enum":
        value = {"type": "string", "enum": list(spec.values)}
    else:
        value = {"type": "string", "maxLength": MAX_STRING, "pattern": _TEXT}
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
    "description": "A string condition compared with a regular expression (RE2 syntax: linear time, no backreferences).",
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
                         "pattern": "^[^\\x00-\\x08\\x0b-\\x1f\\x7f]*[^\\s\\x00-\\x1f\\x7f][^\\x00-\\x08\\x0b-\\x1f\\x7f]*$"
                         if f.multiline else "^[^\\x00-\\x1f\\x7f]*[^\\s\\x00-\\x1f\\x7f][^\\x00-\\x1f\\x7f]*$"}
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


class TriggerCreate(Body):
    name: Text(255)
    actions: Actions
    active: Bool = True
    description: Text(1000, multiline=True, required=False) = ""
    event: Event = Field("onload", description="onload and onmessage are Smartsupp's; onopen is ours.")
    only_once: Bool = Field(True, description="At most once per visitor.")
    constraints: Constraints = "all"
    conditions: Conditions = []

    @classmethod
    def check_raw(cls, data: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
        return _catalogue(data)


class TriggerUpdate(Body):
    name: Text(255) = None
    actions: Actions = None
    active: Bool = None
    description: Text(1000, multiline=True, required=False) = None
    event: Event = None
    only_once: Bool = None
    constraints: Constraints = None
    conditions: Conditions = None
    id: ReadOnlyId = ReadOnly()

    @classmethod
    def check_raw(cls, data: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
        return _catalogue(data)


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


def trigger_json(row: Row) -> dict[str, Any]:
    return {
        "id": str(row[0]), "active": bool(row[1]), "name": row[2], "description": row[3], "event": row[4],
        "only_once": bool(row[5]), "constraints": row[6],
        "conditions": orjson.loads(row[7]), "actions": orjson.loads(row[8]),
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
