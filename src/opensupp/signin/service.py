"""Who may sign in to the dashboard, and how often one may try.

One-time links: ``create_link`` keeps the SHA-256 of a 256-bit random token (the token itself
exists only in the URL it answers); ``use_link`` spends it in one conditional UPDATE, so two
browsers racing with one link sign in once.

Password attempts are counted in ``sign_in_attempts`` before the password is checked, each in
one statement, so that concurrent attempts are all counted and every process of a server sees
the same counts. An attempt at a locked key is refused without being counted, so it never
lengthens the lock, and every lock ends by itself. The keys (``Limit``):

- ``ADDRESS``, per client address: ADDRESS_FAILURES attempts within ADDRESS_WINDOW seconds, then
  the address waits for the window's end (a guesser in one place; a right password gives its
  attempt back, so many users behind one address do not lock it);
- ``LOGIN_HERE``, per login and address: after USER_FREE attempts without success, each further
  one locks for USER_FIRST_LOCK seconds, doubled each time, at most USER_MAX_LOCK;
- ``LOGIN``, per login from anywhere: the same after LOGIN_FREE (a guesser with many addresses).

A guesser can thus delay a user's password sign-in, from one address only that address's. Only
one with many addresses can hold the login's lock, and even then the browsers the user signed
in from before (a signed device cookie, site/auth.py: counted under ``DEVICE`` instead), the
partner's one-time links and the guide's fast login still sign the user in.

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
#: attempts at one login from all addresses together before it locks (a guesser with many addresses)
LOGIN_FREE = 50
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


# --------------------------------------------------------------------------- attempts


@dataclass(frozen=True, slots=True)
class Limit:
    """A key's rule: ``free`` attempts within ``window`` seconds; then each further attempt locks
    the key (``growing``: for LOCKS seconds by the attempts over, else until the window ends)."""

    prefix: str
    free: int
    window: int
    growing: bool


#: per client address: a password guesser in one place, whatever logins it tries
ADDRESS = Limit("address", ADDRESS_FAILURES, ADDRESS_WINDOW, growing=False)
#: per login and address: the user's own typos, and a guesser at one login from one place
LOGIN_HERE = Limit("login", USER_FREE, USER_WINDOW, growing=True)
#: per login from anywhere: a guesser with many addresses (a browser the user signed in from skips it)
LOGIN = Limit("login-anywhere", LOGIN_FREE, USER_WINDOW, growing=True)
#: per browser the user signed in from (its device cookie): only the growing lock
DEVICE = Limit("device", USER_FREE, USER_WINDOW, growing=True)


def _lock_seconds_sql(over: str) -> str:
    """A CASE giving the lock of the ``over``-th attempt over the free ones: 30 s, doubled each, at most 15 min."""
    steps, seconds, n = [], USER_FIRST_LOCK, 1
    while seconds < USER_MAX_LOCK:
        steps.append(f"WHEN {n} THEN {seconds}")
        seconds, n = seconds * 2, n + 1
    return f"CASE {over} {' '.join(steps)} ELSE {USER_MAX_LOCK} END"


def _attempt_sql(limit: Limit) -> str:
    """One statement: counts an attempt unless the key is locked (then it answers no row)."""
    fresh = "$2 - sign_in_attempts.window_start >= $3"
    count = f"(CASE WHEN {fresh} THEN 1 ELSE sign_in_attempts.failures + 1 END)"
    start = f"(CASE WHEN {fresh} THEN $2 ELSE sign_in_attempts.window_start END)"
    if limit.growing:
        lock = f"CASE WHEN {count} > {limit.free} THEN $2 + {_lock_seconds_sql(f'{count} - {limit.free}')} ELSE 0 END"
    else:
        lock = f"CASE WHEN {count} >= {limit.free} THEN {start} + $3 ELSE 0 END"
    return (
        "INSERT INTO sign_in_attempts (key, failures, window_start, locked_until) VALUES ($1, 1, $2, 0)"
        f" ON CONFLICT (key) DO UPDATE SET failures = {count}, window_start = {start}, locked_until = {lock}"
        " WHERE sign_in_attempts.locked_until <= $2 RETURNING failures")


_ATTEMPT = {limit.prefix: _attempt_sql(limit) for limit in (ADDRESS, LOGIN_HERE, LOGIN, DEVICE)}


def key_of(limit: Limit, *parts: str) -> str:
    return ":".join((limit.prefix, *parts))[:320]


async def attempt(session: Session, limit: Limit, key: str) -> int:
    """Counts an attempt at ``key`` before its password is checked, in one statement (so that
    concurrent attempts are each counted); answers the seconds to wait instead (0: go on). An
    attempt at a locked key is refused uncounted: it never lengthens the lock."""
    at = now()
    if await session.fetchval(_ATTEMPT[limit.prefix], key, at, limit.window) is not None:
        return 0
    until = await session.fetchval("SELECT locked_until FROM sign_in_attempts WHERE key = $1", key)
    return max(1, (until or 0) - at)


def password_keys(login: str, address: str) -> list[tuple[Limit, str]]:
    """The keys a password attempt is counted on: the address, the login at that address, the
    login from anywhere (the dashboard's sign-in and an XMPP login alike: one budget)."""
    return [(ADDRESS, key_of(ADDRESS, address)), (LOGIN_HERE, key_of(LOGIN_HERE, login, address)),
            (LOGIN, key_of(LOGIN, login))]


async def attempt_all(session: Session, keys: list[tuple[Limit, str]]) -> tuple[int, Limit | None]:
    """Counts an attempt on each key in turn, stopping at the first that is locked: (seconds to
    wait, its limit), or (0, None) to go on and check the password."""
    for limit, key in keys:
        wait = await attempt(session, limit, key)
        if wait:
            return wait, limit
    return 0, None


async def succeeded(session: Session, *, forget: list[str], address_key: str) -> None:
    """A right password: the login's counts start again; the address's attempt is given back
    (many users signing in behind one address do not lock it)."""
    for key in forget:
        await session.execute("DELETE FROM sign_in_attempts WHERE key = $1", key)
    await session.execute(
        "UPDATE sign_in_attempts SET failures = failures - 1, locked_until = CASE WHEN failures - 1 >= $2"
        " THEN locked_until ELSE 0 END WHERE key = $1 AND failures > 0", address_key, ADDRESS.free)


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


#: how long a dashboard session lasts from its sign-in
SESSION_SECONDS = 14 * 86400


def signin_of(sid: str, password_fingerprint: str, since: int) -> str:
    """A dashboard sign-in as an agent token carries it (chat/protocol.py agent_token)."""
    return f"{sid}.{password_fingerprint}.{since}"


def still_holds(*, password_hash: str, ended: bool, password_fingerprint: object, since: object) -> bool:
    """The rule of a sign-in, for the session cookie (site/auth.py) and the agent tokens alike:
    its password unchanged since, not signed out, not older than SESSION_SECONDS."""
    return (not ended and fingerprint(password_hash) == password_fingerprint and isinstance(since, int)
            and now() - since <= SESSION_SECONDS)


async def holds(session: Session, *, account_id: int, user_id: int, signin: str) -> bool:
    """Whether the sign-in (as an agent token carries it) still holds for the account's user."""
    sid, password_fingerprint, since = (signin.split(".") + ["", "", ""])[:3]
    if not sid or not since.isascii() or not since.isdigit():
        return False
    row = await session.fetchrow(
        "SELECT password_hash, EXISTS (SELECT 1 FROM ended_sessions WHERE sid_hash = $3)"
        " FROM users WHERE id = $1 AND account_id = $2", user_id, account_id, sid_digest(sid))
    return row is not None and still_holds(password_hash=row[0], ended=row[1],
                                           password_fingerprint=password_fingerprint, since=int(since))
