"""Office hours: one document per account, the default until the first update."""

from __future__ import annotations

from typing import Any

import orjson

from opensupp.accounts.service import not_found as account_not_found
from opensupp.db import Session
from opensupp.errors import ValidationFailed
from opensupp.officehours.rules import DEFAULT, merge, validate_office_hours
from opensupp.timeutil import now

_DEFAULT_JSON = orjson.dumps(DEFAULT).decode()


async def get_office_hours(session: Session, *, partner_id: int, account_id: int) -> dict[str, Any]:
    row = await session.fetchrow(
        "SELECT a.id, o.document FROM accounts a LEFT JOIN office_hours o ON o.account_id = a.id"
        " WHERE a.id = $1 AND a.partner_id = $2",
        account_id, partner_id,
    )
    if row is None:
        raise account_not_found(account_id)
    return orjson.loads(row[1]) if row[1] else dict(DEFAULT)


async def update_office_hours(
    session: Session, *, partner_id: int, account_id: int, patch: dict[str, Any]
) -> dict[str, Any]:
    """Merge ``patch`` onto the stored document, validate the whole, store it."""
    # One statement creates the row if needed, locks it against concurrent updates
    # (lost updates otherwise) and answers the stored document.
    stored = await session.fetchval(
        "INSERT INTO office_hours (account_id, document, updated_at)"
        " SELECT a.id, $3, $4 FROM accounts a WHERE a.id = $1 AND a.partner_id = $2"
        " ON CONFLICT (account_id) DO UPDATE SET updated_at = office_hours.updated_at RETURNING document",
        account_id, partner_id, _DEFAULT_JSON, now(),
    )
    if stored is None:
        raise account_not_found(account_id)
    document, errors = validate_office_hours(merge(orjson.loads(stored), patch))
    if errors:
        raise ValidationFailed(errors)
    await session.execute(
        "UPDATE office_hours SET document = $1, updated_at = $2 WHERE account_id = $3",
        orjson.dumps(document).decode(), now(), account_id,
    )
    return document
