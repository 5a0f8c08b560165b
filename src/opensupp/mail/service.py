"""Mails written to the outbox (opensupp.outbox) in the caller's transaction: an offline
message to each offline e-mail of the account, a visitor's transcript to the visitor; and the
operator's list of the mails in the outbox.

A mail is a delivery without a hook; its payload holds what the mail says (``compose``
renders it when it is sent), so the mail says what was true when it was asked for.

A transcript goes to an address the visitor typed, so it is limited: at most one per
conversation, ``TRANSCRIPTS_PER_HOUR`` per visitor and ``ACCOUNT_TRANSCRIPTS_PER_HOUR`` per
account, counted in the outbox itself (its key is ``tr-<account>-<visitor>-<conversation>``), so
every server process counts the same; and only of a conversation an agent or a trigger wrote in
(the visitor's own words alone are nothing worth mailing, and would make the chat box a relay
for any text to any address).

The counts read the unique index on ``deliveries.webhook_id`` with a key range
(``>= 'tr-<account>-<visitor>-'``, ``< 'tr-<account>-<visitor>.'``: '.' follows '-'), never the
account's whole delivery log. The range holds because the column compares byte by byte
(``COLLATE "C"`` on PostgreSQL, migration 0010; SQLite's BINARY), whatever the database's own
collation (one that ignores punctuation, such as glibc's en_US.UTF-8, would break it).
"""

from __future__ import annotations

from typing import Any

from opensupp import values
from opensupp.chat import service as chat
from opensupp.db import Session
from opensupp.errors import Conflict, NotFound, RateLimited, ValidationFailed, invalid
from opensupp.mail.compose import EVENTS, OFFLINE_MESSAGE, TRANSCRIPT
from opensupp.outbox import service as outbox
from opensupp.outbox.models import COLUMNS, Delivery
from opensupp.timeutil import now as clock

TRANSCRIPTS_PER_HOUR = 3  # per visitor
ACCOUNT_TRANSCRIPTS_PER_HOUR = 20  # per account: every visitor's together
TRANSCRIPT_MESSAGES = 500  # the latest ones of a longer conversation
LIST_MAX = 1000


class TranscriptSent(Conflict):
    """A transcript refused: the conversation's was sent already."""


class TranscriptLimited(RateLimited):
    """A transcript refused: the visitor asked for ``TRANSCRIPTS_PER_HOUR`` this hour already,
    or the account's visitors for ``ACCOUNT_TRANSCRIPTS_PER_HOUR``."""


class NothingToSend(NotFound):
    """A transcript refused: nobody but the visitor wrote in the conversation."""


async def _account(session: Session, account_id: int) -> tuple[str, str]:
    row = await session.fetchrow("SELECT title, lang FROM accounts WHERE id = $1", account_id)
    if row is None:
        raise NotFound(f"No account {account_id}.")
    return row[0], row[1]


async def enqueue_offline_mails(
    session: Session, *, account_id: int, visitor_id: int, conversation_id: int, name: str, email: str, text: str,
) -> list[Delivery]:
    """One mail per offline e-mail of the account (one per recipient: a refused address is not
    retried at the others' expense), Reply-To the visitor."""
    site, lang = await _account(session, account_id)
    page = await session.fetchval("SELECT last_url FROM visitors WHERE id = $1 AND account_id = $2",
                                  visitor_id, account_id)
    recipients = await session.fetch("SELECT email FROM offline_emails WHERE account_id = $1 ORDER BY id", account_id)
    payload: dict[str, Any] = {
        "kind": OFFLINE_MESSAGE, "lang": lang, "site": site, "conversation_id": conversation_id,
        "visitor": {"name": name, "email": email}, "reply_to": {"name": name, "email": email},
        "text": text, "page": page or "",
    }
    return [await outbox.enqueue(session, account_id=account_id, hook_id=None, event=EVENTS[OFFLINE_MESSAGE],
                                 payload={**payload, "to": row[0]}) for row in recipients]


def transcript_key(account_id: int, visitor_id: int, conversation_id: int) -> str:
    return f"tr-{account_id}-{visitor_id}-{conversation_id}"


def key_range(*ids: int) -> tuple[str, str]:
    """The keys that start ``tr-<ids>-``: from that (inclusive) to ``tr-<ids>.`` (exclusive)."""
    prefix = "tr-" + "-".join(str(i) for i in ids)
    return prefix + "-", prefix + "."


async def enqueue_transcript(
    session: Session, *, account_id: int, visitor_id: int, email: str | None = None, lang: str | None = None,
    now: int | None = None,
) -> Delivery:
    """The visitor's latest conversation mailed to ``email`` (then kept as the visitor's) or to
    the visitor's e-mail on file. NotFound: no conversation with messages; ValidationFailed: no
    or a bad e-mail; TranscriptSent, TranscriptLimited: see the module's docstring."""
    t = clock() if now is None else now
    await _lock_visitor(session, account_id, visitor_id)
    conversation = await chat.latest_conversation(session, account_id=account_id, visitor_id=visitor_id)
    shown = [] if conversation is None else await _shown_messages(session, account_id, conversation.id)
    if conversation is None or not shown:
        raise NotFound("The visitor has no conversation with messages to send.")
    if not any(m["kind"] in ("agent", "trigger") for m in shown) and not await _answered(
            session, account_id, conversation.id):
        raise NothingToSend("Nobody but the visitor wrote in this conversation: there is nothing to send.")
    to = await _recipient(session, account_id, visitor_id, email)
    key = transcript_key(account_id, visitor_id, conversation.id)
    await _check_limits(session, account_id, visitor_id, key, t)
    site, account_lang = await _account(session, account_id)
    payload = {"kind": TRANSCRIPT, "to": to, "lang": lang or account_lang, "site": site,
               "conversation_id": conversation.id, "messages": shown}
    delivery = await outbox.enqueue_once(session, account_id=account_id, hook_id=None, event=EVENTS[TRANSCRIPT],
                                         payload=payload, webhook_id=key)
    if delivery is None:  # another process's request for it committed meanwhile (SQLite's one writer aside)
        raise TranscriptSent("This conversation's transcript was sent already.")
    return delivery


async def _answered(session: Session, account_id: int, conversation_id: int) -> bool:
    """Whether an agent or a trigger wrote in the conversation (before its latest messages too)."""
    return await session.fetchval(
        "SELECT 1 FROM messages WHERE conversation_id = $1 AND account_id = $2 AND kind IN ('agent', 'trigger')"
        " LIMIT 1", conversation_id, account_id) is not None


async def _lock_visitor(session: Session, account_id: int, visitor_id: int) -> None:
    """The account's row, then the visitor's, held to the end of the transaction: the account's
    transcript requests take turns, so the limits' counts hold on PostgreSQL too (SQLite has one
    writer)."""
    await session.fetchval(f"SELECT id FROM accounts WHERE id = $1{chat.LOCK_VISITOR[session.dialect]}", account_id)
    found = await session.fetchval(f"SELECT id FROM visitors WHERE id = $1 AND account_id = $2"
                                   f"{chat.LOCK_VISITOR[session.dialect]}", visitor_id, account_id)
    if found is None:
        raise chat.visitor_not_found(visitor_id, account_id)


async def _shown_messages(session: Session, account_id: int, conversation_id: int) -> list[dict[str, Any]]:
    """The conversation's latest ``TRANSCRIPT_MESSAGES`` messages but the system ones, oldest first."""
    rows = await session.fetch(
        "SELECT kind, agent_nick, text, created_at FROM messages WHERE conversation_id = $1 AND account_id = $2"
        " AND kind <> 'system' ORDER BY id DESC LIMIT $3",
        conversation_id, account_id, TRANSCRIPT_MESSAGES,
    )
    return [{"kind": kind, "nick": nick, "text": text, "at": at} for kind, nick, text, at in reversed(rows)]


async def _recipient(session: Session, account_id: int, visitor_id: int, email: str | None) -> str:
    if email is None:
        visitor = await chat.get_visitor(session, account_id=account_id, visitor_id=visitor_id)
        if not visitor.email:
            raise ValidationFailed([], "No e-mail: give one (email) or set the visitor's first.")
        return visitor.email
    problem = values.email_problem(email)
    if problem is not None:
        raise invalid("email", problem)
    await chat.update_visitor(session, account_id=account_id, visitor_id=visitor_id, changes={"email": email})
    return email


async def _check_limits(session: Session, account_id: int, visitor_id: int, key: str, t: int) -> None:
    if await session.fetchval("SELECT 1 FROM deliveries WHERE webhook_id = $1", key) is not None:
        raise TranscriptSent("This conversation's transcript was sent already.")
    for ids, most, whose in (((account_id, visitor_id), TRANSCRIPTS_PER_HOUR, "a visitor"),
                             ((account_id,), ACCOUNT_TRANSCRIPTS_PER_HOUR, "an account")):
        recent = await _recent(session, ids, most, t - 3600)
        if len(recent) >= most:
            wait = max(1, recent[-1] + 3600 - t)
            raise TranscriptLimited(f"At most {most} transcripts an hour for {whose}; retry in {wait} s.", wait)


async def _recent(session: Session, ids: tuple[int, ...], most: int, since: int) -> list[int]:
    """When the latest ``most`` transcripts with keys ``tr-<ids>-...`` created after ``since``
    were created, newest first (by the key range: the unique index on webhook_id)."""
    low, high = key_range(*ids)
    rows = await session.fetch(RECENT_SQL, low, high, since, most)
    return [row[0] for row in rows]


RECENT_SQL = ("SELECT created_at FROM deliveries WHERE webhook_id >= $1 AND webhook_id < $2 AND created_at > $3"
              " ORDER BY created_at DESC LIMIT $4")


async def list_mails(session: Session, *, status: str | None = None, limit: int = LIST_MAX) -> list[Delivery]:
    """The mails in the outbox (every account's), oldest first; of one ``status`` if given."""
    where = "hook_id IS NULL" + ("" if status is None else " AND status = $2")
    rows = await session.fetch(f"SELECT {COLUMNS} FROM deliveries WHERE {where} ORDER BY id LIMIT $1",
                               limit, *(() if status is None else (status,)))
    return [Delivery(*row) for row in rows]
