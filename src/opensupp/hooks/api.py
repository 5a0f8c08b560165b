"""HTTP routes for hooks: /accounts/:aid/hooks/..."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from opensupp.hooks import service
from opensupp.hooks.models import Hook
from opensupp.hooks.validation import MAX_URL_LENGTH, WEBHOOK_EVENTS
from opensupp.timeutil import iso
from opensupp.web.crud import Crud, register, table_service
from opensupp.web.fields import Body, Bool, Omittable
from opensupp.web.resources import Out, ReadOnly, ReadOnlyId
from opensupp.web.routing import Router

router = Router()

HookName = Literal["domain-stats-report", "conversation-export", "webhook"]
Config = Annotated[
    dict[str, Any],
    WithJsonSchema({
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {
            "url": {"type": "string", "format": "uri", "maxLength": MAX_URL_LENGTH, "pattern": "^https?://",
                    "description": "http(s); never a loopback, private or link-local address."},
            "secret": {"type": "string", "minLength": 16, "maxLength": 256, "pattern": "^[\\x21-\\x7e]+$",
                       "description": "Signs every delivery; generated (whsec_ + base64 of 32 random bytes)"
                                      " when not given."},
            "events": {"type": "array", "minItems": 1, "uniqueItems": True,
                       "items": {"type": "string", "enum": list(WEBHOOK_EVENTS)},
                       "description": "webhook only; default: all."},
        },
    }),
]


class HookCreate(Body):
    name: HookName = Field(
        description="What is sent: domain-stats-report, conversation-export (Smartsupp's) or webhook (ours)."
    )
    config: Config
    active: Bool = True


class HookUpdate(Body):
    name: Omittable[HookName] = None
    config: Omittable[Config] = None
    active: Omittable[Bool] = None
    id: ReadOnlyId = ReadOnly()
    createdAt: str = ReadOnly()


class HookOut(Out):
    id: str
    name: HookName
    config: Config
    active: bool
    createdAt: str


def hook_json(hook: Hook) -> dict[str, Any]:
    return {
        "id": str(hook.id), "name": hook.name, "config": hook.config, "active": hook.active,
        "createdAt": iso(hook.created_at),
    }


register(
    router,
    Crud(
        plural="hooks", noun="hook", tag="Hooks",
        create=HookCreate, update=HookUpdate, out=HookOut, to_json=hook_json,
        service=table_service(service.HOOKS, create=service.create_hook, update=service.update_hook),
        writable=("name", "config", "active"),
    ),
    extra_doc={
        "create": "`config.url` must be http(s) and not a literal internal address; `config.secret` "
        "is generated when not given and answered on create and get.",
        "update": "A new `config` replaces the old one but keeps its `secret` unless one is given.",
    },
)
