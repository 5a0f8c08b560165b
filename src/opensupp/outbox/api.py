"""HTTP routes for a hook's deliveries: /accounts/:aid/hooks/:hid/test, .../deliveries, .../retry."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import Field

from opensupp.db import Session
from opensupp.hooks.service import HOOKS
from opensupp.outbox import service
from opensupp.outbox.models import Delivery
from opensupp.timeutil import iso, now
from opensupp.web.fields import Body
from opensupp.web.resources import Out
from opensupp.web.routing import Router

router = Router()
TAG = "Hooks"
TEST_EVENT = "hook.test"


class DeliveryOut(Out):
    id: str
    hookId: str
    event: str
    payload: dict[str, Any] = Field(description="The JSON body sent.")
    webhookId: str = Field(description="The webhook-id header: the same on every attempt (msg_...).")
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    nextAttemptAt: str | None = Field(description="When a pending delivery is sent next; null otherwise.")
    lastStatusCode: int | None
    lastError: str | None
    response: str | None = Field(description="The start (500 characters) of the last response's body.")
    createdAt: str
    updatedAt: str


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": str(delivery.id), "hookId": str(delivery.hook_id), "event": delivery.event,
        "payload": orjson.loads(delivery.payload), "webhookId": delivery.webhook_id, "status": delivery.status,
        "attempts": delivery.attempts,
        "nextAttemptAt": iso(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "lastStatusCode": delivery.last_status_code, "lastError": delivery.last_error,
        "response": delivery.response, "createdAt": iso(delivery.created_at), "updatedAt": iso(delivery.updated_at),
    }


class HookTest(Body):
    """No fields: a test event is sent to the hook of the path."""


class DeliveryRetry(Body):
    """No fields: the delivery of the path is sent again."""


@router.add("action", "/accounts/{aid}/hooks/{hid}/test", body=HookTest, response=DeliveryOut, tag=TAG)
async def test_hook(req: Any, session: Session, body: HookTest) -> dict[str, Any]:
    """Send a test event

    Queues a `hook.test` event to the hook (active or not), signed as every delivery is,
    and answers its delivery: read it back from the hook's deliveries to see the result.
    """
    account_id, hook_id = req.ids
    await HOOKS.get(session, partner_id=req.partner_id, account_id=account_id, item_id=hook_id)
    payload = {"type": "event_callback", "event": TEST_EVENT, "timestamp": now(), "account_id": account_id,
               "data": {"hookId": str(hook_id)}}
    delivery = await service.enqueue(session, account_id=account_id, hook_id=hook_id, event=TEST_EVENT,
                                     payload=payload)
    return delivery_json(delivery)


@router.list("/accounts/{aid}/hooks/{hid}/deliveries", response=DeliveryOut, tag=TAG)
async def list_deliveries(req: Any, session: Session, after: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """List a hook's deliveries

    Oldest first, each with its last attempt's result; a delivery is kept with its hook.
    """
    account_id, hook_id = req.ids
    await HOOKS.get(session, partner_id=req.partner_id, account_id=account_id, item_id=hook_id)
    found, more = await service.list_deliveries(session, account_id=account_id, hook_id=hook_id, after=after,
                                                limit=limit)
    return [delivery_json(d) for d in found], more


@router.add("action", "/accounts/{aid}/hooks/{hid}/deliveries/{did}/retry", body=DeliveryRetry,
            response=DeliveryOut, tag=TAG)
async def retry_delivery(req: Any, session: Session, body: DeliveryRetry) -> dict[str, Any]:
    """Retry a delivery

    Sends it again now, with the same webhook-id, its attempts counted anew (a failed or
    delivered one too).
    """
    account_id, hook_id, delivery_id = req.ids
    await HOOKS.get(session, partner_id=req.partner_id, account_id=account_id, item_id=hook_id)
    delivery = await service.retry_delivery(session, account_id=account_id, hook_id=hook_id, delivery_id=delivery_id)
    return delivery_json(delivery)
