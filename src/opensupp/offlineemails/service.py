"""The addresses that receive the messages visitors leave while nobody is online."""

from __future__ import annotations

from typing import Any

from opensupp.db import Session, UniqueViolation
from opensupp.db.children import ChildTable
from opensupp.errors import Conflict
from opensupp.offlineemails.models import OfflineEmail
from opensupp.timeutil import now
from opensupp.users.service import with_email_key

OFFLINE_EMAILS = ChildTable("offline_emails", "offline email", ("id", "email"), record=OfflineEmail)


def _taken(email: str) -> Conflict:
    return Conflict(f"{email} is already an offline email of this account.")


async def create_offline_email(session: Session, *, partner_id: int, account_id: int, email: str) -> OfflineEmail:
    values = with_email_key({"email": email, "created_at": now()})
    try:
        return await OFFLINE_EMAILS.insert(session, partner_id=partner_id, account_id=account_id, values=values)
    except UniqueViolation:
        raise _taken(email) from None


async def update_offline_email(
    session: Session, *, partner_id: int, account_id: int, item_id: int, changes: dict[str, Any]
) -> OfflineEmail:
    values = with_email_key(changes)
    try:
        return await OFFLINE_EMAILS.update(
            session, partner_id=partner_id, account_id=account_id, item_id=item_id, values=values
        )
    except UniqueViolation:
        raise _taken(values["email"]) from None
