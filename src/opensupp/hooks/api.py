"""HTTP routes for hooks: /accounts/:aid/hooks/..."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from opensupp.db import Session
from opensupp.hooks import service
from opensupp.hooks.models import Hook
from opensupp.hooks.validation import MAX_SECRET_LENGTH, MAX_URL_LENGTH, MIN_SECRET_LENGTH, WEBHOOK_EVENTS
from opensupp.timeutil import iso, now
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
    disabledReason: str | None = ReadOnly()
    previousSecretExpiresAt: str | None = ReadOnly()


class HookOut(Out):
    id: str
    name: HookName
    config: Config
    active: bool
    createdAt: str
    disabledReason: str | None = Field(
        description="Why deliveries deactivated the hook (they failed for days), or null; "
                    "setting active to true clears it.")
    previousSecretExpiresAt: str | None = Field(
        description="After a secret's rotation, until when the old secret signs deliveries too, or null.")


def hook_json(hook: Hook) -> dict[str, Any]:
    grace = hook.previous_secret_until
    return {
        "id": str(hook.id), "name": hook.name, "config": hook.config, "active": hook.active,
        "createdAt": iso(hook.created_at), "disabledReason": hook.disabled_reason,
        "previousSecretExpiresAt": iso(grace) if grace is not None and grace > now() else None,
    }


register(
    router,
    Crud(
        plural="hooks", noun="hook", tag="Hooks",
        create=HookCreate, update=HookUpdate, out=HookOut, to_json=hook_json,
        service=table_service(service.HOOKS, create=service.create_hook, update=service.update_hook),
        writable=("name", "config", "active"),
        read_only=("id", "createdAt", "disabledReason", "previousSecretExpiresAt"),
    ),
    extra_doc={
        "create": "`config.url` must be http(s) and not a literal internal address; `config.secret` "
        "is generated when not given and answered on create and get.",
        "update": "A new `config` replaces the old one but keeps its `secret` unless one is given.",
    },
)


class SecretRotation(Body):
    secret: Omittable[Annotated[str, Field(min_length=MIN_SECRET_LENGTH, max_length=MAX_SECRET_LENGTH,
                                           pattern="^[\\x21-\\x7e]+$")]] = Field(
        None, description="The new secret; generated (whsec_ + base64 of 32 random bytes) when not given.")


@router.add("action", "/accounts/{aid}/hooks/{hid}/rotate-secret", body=SecretRotation, response=HookOut,
            tag="Hooks")
async def rotate_secret(req: Any, session: Session, body: SecretRotation) -> dict[str, Any]:
    """Rotate a hook's secret

    The new secret (given, or generated) signs every delivery from now on; the old one signs
    them too for 24 hours (a second `v1,` signature in `webhook-signature`, and
    `X-Smartsupp-Hmac-Previous`), so a receiver can switch to the new one without refusing any.
    Answers the hook with its new secret.
    """
    account_id, hook_id = req.ids
    hook = await service.rotate_secret(session, partner_id=req.partner_id, account_id=account_id, item_id=hook_id,
                                       secret=body.secret)
    return hook_json(hook)
