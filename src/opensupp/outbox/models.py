"""Deliveries: one row per event to send, under its account (and its hook, when it is one)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Text

from opensupp.accounts.models import child_table

deliveries = child_table(
    "deliveries",
    Column("hook_id", BigInteger, ForeignKey("hooks.id", ondelete="CASCADE"), nullable=True),
    Column("event", String(64), nullable=False),
    Column("payload", Text, nullable=False),  # the body sent, as JSON text
    # msg_...: the same on every attempt; compared byte by byte whatever the database's collation,
    # so that a key's prefix is a range of its index
    Column("webhook_id", String(40).with_variant(String(40, collation="C"), "postgresql"), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("status", String(9), nullable=False),  # pending, delivered, failed
    Column("next_attempt_at", BigInteger, nullable=False),  # when due; moved forward as a claim's lease
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("response", Text, nullable=True),  # the start of the last response's body
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
# the worker's claim (the due pending ones) and a hook's delivery log
Index("ix_deliveries_status_next_attempt_at", deliveries.c.status, deliveries.c.next_attempt_at)
Index("ix_deliveries_hook_id_id", deliveries.c.hook_id, deliveries.c.id)
# an event with a key of its own (a hook's stats for one hour) is enqueued once
Index("ix_deliveries_webhook_id", deliveries.c.webhook_id, unique=True)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(slots=True)
class Delivery:
    """A delivery as the services answer it; the fields are ``COLUMNS``, in order."""

    id: int
    hook_id: int | None
    event: str
    payload: str
    webhook_id: str
    attempts: int
    status: str
    next_attempt_at: int
    last_status_code: int | None
    last_error: str | None
    response: str | None
    created_at: int
    updated_at: int


COLUMNS = ("id, hook_id, event, payload, webhook_id, attempts, status, next_attempt_at, last_status_code, "
           "last_error, response, created_at, updated_at")
