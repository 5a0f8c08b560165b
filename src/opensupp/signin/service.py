"""Who may sign in to the dashboard, and how often one may try.

One-time links: ``create_link`` keeps the SHA-256 of a 256-bit random token (the token itself
exists only in the URL it answers); ``use_link`` spends it in one conditional UPDATE, so two
browsers racing with one link sign in once.

Failed password attempts are counted in ``sign_in_attempts`` under two keys, so that every
process of a server sees the same counts:

- ``address:<ip>``: ADDRESS_FAILURES failures within ADDRESS_WINDOW seconds lock that address
  out until the window ends (a password guesser from one place);
- ``email:<e-mail>``: after USER_FREE failures in a row, each further failure locks the login
  for USER_FIRST_LOCK seconds, doubled per failure and at most USER_MAX_LOCK. A lock always
  ends by itself, and an attempt made while locked is refused without being counted, so it
  never lengthens the lock: an attacker can delay a user, never shut them out for good. The
  browser a user signed in from before carries a signed device cookie (site/auth.py) that the
  e-mail lock does not apply to, and the partner's fast login and one-time links never do.

Unknown e-mails are counted like known ones (the answers do not tell who has an account).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from opensupp.db import Session
from opensupp.timeutil import now

ADDRESS_FAILURES = 20
ADDRESS_WINDOW = 15 * 60
USER_FREE = 5
USER_FIRST_LOCK = 30
USER_MAX_LOCK = 15 * 60
#: a count of failures older than this (and no lock) starts again from nothing
USER_WINDOW = 24 * 3600
#: one-time links kept after they expired or were used (then purged on the next mint)
LINK_KEEP = 24 * 3600


@dataclass(frozen=True, slots=True)
class LinkUser:
    """The user a link or a key signs in: ids and the fields a session keeps."""

    user_id: int
    account_id: int
    partner_id: int


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


async def create_link(session: Session, *, account_id: int, user_id: int, seconds: int) -> tuple[str, int]:
    """A new one-time token for the user, valid ``seconds``: (token, expires at)."""
    token = secrets.token_urlsafe(32)
    at = now()
    await session.execute("DELETE FROM login_links WHERE expires_at < $1", at - LINK_KEEP)
    await session.execute(
        "INSERT INTO login_links (token_hash, account_id, user_id, created_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5)", _digest(token), account_id, user_id, at, at + seconds)
    return token, at + seconds


async def use_link(session: Session, token: str) -> LinkUser | None:
    """Spends the token: the user it signs in, or None (unknown, expired, or used before)."""
    if not token or len(token) > 100:
        return None
    at = now()
    row = await session.fetchrow(
        "UPDATE login_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at >= $2"
        " RETURNING user_id, account_id", _digest(token), at)
    if row is None:
        return None
    partner_id = await session.fetchval("SELECT partner_id FROM accounts WHERE id = $1", row[1])
    return None if partner_id is None else LinkUser(row[0], row[1], partner_id)


async def partner_user(session: Session, *, partner_id: int, user_id: int) -> LinkUser | None:
    """The user ``user_id`` if an account of ``partner_id`` holds it (the fast login's check)."""
    row = await session.fetchrow(
        "SELECT u.id, u.account_id FROM users u JOIN accounts a ON a.id = u.account_id"
        " WHERE u.id = $1 AND a.partner_id = $2", user_id, partner_id)
    return None if row is None else LinkUser(row[0], row[1], partner_id)


# --------------------------------------------------------------------------- failed attempts


async def locked_for(session: Session, key: str) -> int:
    """Seconds until ``key`` may try again (0: now)."""
    until = await session.fetchval("SELECT locked_until FROM sign_in_attempts WHERE key = $1", key)
    return max(0, (until or 0) - now())


async def failed(session: Session, key: str, *, per_address: bool) -> int:
    """Counts a failure of ``key``; answers the lock it now has (seconds, 0: none)."""
    at = now()
    row = await session.fetchrow("SELECT failures, window_start FROM sign_in_attempts WHERE key = $1", key)
    window = ADDRESS_WINDOW if per_address else USER_WINDOW
    failures, start = (0, at) if row is None or at - row[1] >= window else (row[0], row[1])
    failures += 1
    if per_address:
        locked_until = start + ADDRESS_WINDOW if failures >= ADDRESS_FAILURES else 0
    else:
        over = failures - USER_FREE
        locked_until = at + min(USER_MAX_LOCK, USER_FIRST_LOCK * 2 ** min(over - 1, 20)) if over > 0 else 0
    await session.execute(
        "INSERT INTO sign_in_attempts (key, failures, window_start, locked_until) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (key) DO UPDATE SET failures = $2, window_start = $3, locked_until = $4",
        key, failures, start, locked_until)
    return max(0, locked_until - at)


async def succeeded(session: Session, key: str) -> None:
    await session.execute("DELETE FROM sign_in_attempts WHERE key = $1", key)


# --------------------------------------------------------------------------- signed-out sessions


def sid_digest(sid: str) -> bytes:
    return hashlib.sha256(sid.encode("utf-8", "surrogateescape")).digest()


async def end_session(session: Session, sid: str, expires_at: int) -> None:
    """Remembers that the session ``sid`` was signed out, until its cookie would have expired."""
    at = now()
    await session.execute("DELETE FROM ended_sessions WHERE expires_at < $1", at)
    await session.execute("INSERT INTO ended_sessions (sid_hash, expires_at) VALUES ($1, $2)"
                          " ON CONFLICT (sid_hash) DO NOTHING", sid_digest(sid), max(expires_at, at))


# --------------------------------------------------------------------------- a sign-in, as agent tokens carry it


def fingerprint(password_hash: str) -> str:
    """What a session keeps of the password hash: a changed password ends the session."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def signin_of(sid: str, password_fingerprint: str) -> str:
    """A dashboard sign-in as an agent token carries it (chat/protocol.py agent_token)."""
    return f"{sid}.{password_fingerprint}"


async def holds(session: Session, *, account_id: int, user_id: int, signin: str) -> bool:
    """Whether the sign-in still holds: the user is the account's, its password unchanged since,
    and the session not signed out."""
    sid, _, password_fingerprint = signin.rpartition(".")
    if not sid:
        return False
    row = await session.fetchrow(
        "SELECT password_hash, EXISTS (SELECT 1 FROM ended_sessions WHERE sid_hash = $3)"
        " FROM users WHERE id = $1 AND account_id = $2", user_id, account_id, sid_digest(sid))
    return row is not None and not row[1] and fingerprint(row[0]) == password_fingerprint
