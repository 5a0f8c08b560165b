"""Users of an account: agents and admins. The e-mail is the login, unique server-wide."""

from __future__ import annotations

from typing import Any

from opensupp.db import Database, Session, UniqueViolation
from opensupp.db.children import ChildTable
from opensupp.errors import Conflict
from opensupp.passwords import hash_password, verify_password
from opensupp.timeutil import now
from opensupp.users.models import User

USERS = ChildTable(
    "users", "user", ("id", "role", "email", "fullname", "nickname", "avatar", "note", "lang", "created_at"),
    record=User,
)


def email_key(email: str) -> str:
    return email.casefold()


def with_email_key(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` plus the case-insensitive ``email_key`` a unique index checks, when an
    ``email`` is among them."""
    return {**values, "email_key": email_key(values["email"])} if "email" in values else dict(values)


def _taken(email: str) -> Conflict:
    return Conflict(f"The email {email} is already used by another user.")


async def hashed(fields: dict[str, Any]) -> dict[str, Any]:
    """Replace a clear ``password`` with its argon2id ``password_hash`` (off the event loop)."""
    if fields.get("password") is not None:
        fields = dict(fields)
        fields["password_hash"] = await hash_password(fields.pop("password"))
    return fields


async def create_user(
    session: Session, *, partner_id: int, account_id: int, email: str, password_hash: str, fullname: str,
    role: str = "agent", nickname: str | None = None, avatar: str = "", note: str = "", lang: str | None = None,
) -> User:
    values = {
        "role": role, "email": email, "fullname": fullname,
        "nickname": nickname or fullname, "avatar": avatar, "note": note, "lang": lang,
        "password_hash": password_hash, "created_at": now(),
    }
    try:
        return await USERS.insert(
            session, partner_id=partner_id, account_id=account_id, values=with_email_key(values),
            defaults={"lang": "a.lang"},
        )
    except UniqueViolation:
        raise _taken(email) from None


async def update_user(
    session: Session, *, partner_id: int, account_id: int, item_id: int, changes: dict[str, Any]
) -> User:
    values = with_email_key(changes)
    try:
        return await USERS.update(session, partner_id=partner_id, account_id=account_id, item_id=item_id, values=values)
    except UniqueViolation:
        raise _taken(values["email"]) from None


async def verify_user_password(db: Database, *, user_id: int, password: str) -> bool:
    """For the dashboard's and the XMPP bridge's logins: does ``password`` match?

    Takes the database, not a session: the slow hash runs between two short units of
    work, never inside one. A hash made with weaker parameters than today's is replaced.
    """
    async with db.read() as session:
        stored = await session.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
    if stored is None:
        return False
    matches, stale = await verify_password(stored, password)
    if matches and stale:
        fresh = await hash_password(password)
        async with db.single() as session:
            await session.execute("UPDATE users SET password_hash = $1 WHERE id = $2", fresh, user_id)
    return matches
