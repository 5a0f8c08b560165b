"""Triggers fire: the trigger engine decides with a visitor's live context, and the decided
messages are written into the visitor's conversation and sent to its box and the agents.

The transport tells ``Firing`` what the visitor does (``page``: a connect or ``page.view``,
the ``onload`` event; ``opened``: the visitor opened the chat box, ``onopen``; ``message``: a
visitor's message, ``onmessage``; ``left``: its last connection on this process ended). Each
is evaluated off the frame's path (a task), with:

- the clocks: ``seconds_on_site`` from the visit's start (stored to the millisecond,
  ``visit_started_ms``: a new page or a reload keeps counting), ``seconds_on_page`` from this
  page's start (in memory: a new page restarts it); whole seconds, as the engine counts;
- the visitor's stored details (visits, chats, group, language, page, referrer), its pages in
  this visit, its address, the account's online state and the triggers that have written to
  it (``fired_triggers``, for ``only_once``).

A decision ``now`` writes the trigger's messages; ``later`` sets a timer on this process for
that trigger, which evaluates it again when it rings (and fires only if it still decides
``now``, or times it again). The engine counts whole seconds; the timer rings when the clock
the wait counts on reaches the waited value exactly (less the fraction of a second it had run
when evaluated), so a wait is never early and not late by that fraction. A new page cancels
the visitor's timers and evaluates again: a ``delay_page`` wait starts over, a ``delay_site``
wait goes on with what is left of it. Leaving cancels them.

Nothing fires while the account is offline (office hours closed, or no agent online). An
``onload`` or ``onopen`` trigger writes at most once per visit (its message's ``clientId`` is
``trigger-<id>-<visit start>``, unique in the conversation, so two tabs or two processes that
race store it once); an ``onmessage`` one at most once per visitor message.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from opensupp.chat import service
from opensupp.triggers import service as triggers
from opensupp.triggers.plan import MAX_CLOCK

if TYPE_CHECKING:
    from opensupp.chat.core import DatabaseCore
    from opensupp.chat.transport import ChatTransport, Page

log = logging.getLogger("opensupp.chat.triggers")

#: a wait longer than this is not timed (a visitor stays that long on one page rarely; the
#: next page evaluates again)
LONGEST_WAIT = 6 * 3600


#: the shortest timer set (a wait that the clocks' fractions shorten to nearly nothing)
SHORTEST_WAIT = 0.05
_CLOCK_OF = {"delay_site": "site", "delay_page": "page"}


@dataclass(slots=True)
class Watched:
    """A visitor this process holds: its page, since when, and its timers by trigger id."""

    page: Page
    page_started: float
    timers: dict[int, asyncio.TimerHandle] = field(default_factory=dict)

    def cancel(self) -> None:
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()


class Firing:
    def __init__(self, core: DatabaseCore, transport: ChatTransport, cache_bytes: int) -> None:
        self.core = core
        self.transport = transport
        self.plans = triggers.plans_of(core.db, cache_bytes)
        self.watched: dict[tuple[int, str], Watched] = {}

    # ------------------------------------------------------------------ what the visitor does

    def page(self, account_id: int, vid: str, page: Page) -> None:
        """A page opened (connect, ``page.view``): ``onload``, its page clock from now."""
        key = (account_id, vid)
        watched = self.watched.get(key)
        if watched is None:
            watched = self.watched[key] = Watched(page, time.time())
        else:
            watched.cancel()
            watched.page, watched.page_started = page, time.time()
        self.transport._spawn(self._evaluate(account_id, vid, "onload", None, None))

    def opened(self, account_id: int, vid: str) -> None:
        """The visitor opened the box: ``onopen``."""
        if (account_id, vid) in self.watched:
            self.transport._spawn(self._evaluate(account_id, vid, "onopen", None, None))

    def message(self, account_id: int, vid: str, message_id: int) -> None:
        """The visitor wrote: ``onmessage``."""
        if (account_id, vid) in self.watched:
            self.transport._spawn(self._evaluate(account_id, vid, "onmessage", None, message_id))

    def left(self, account_id: int, vid: str) -> None:
        watched = self.watched.pop((account_id, vid), None)
        if watched is not None:
            watched.cancel()

    # ------------------------------------------------------------------ deciding

    async def _evaluate(self, account_id: int, vid: str, event: str, only: int | None,
                        message_id: int | None) -> None:
        """Evaluates the account's triggers for the visitor (``only``: that trigger, its timer
        rang) and fires or times what they decide."""
        try:
            watched = self.watched.get((account_id, vid))
            if watched is None:
                return
            status = await self.transport._status_of(account_id)
            if status != "online":
                return
            db = self.core.db
            async with db.read() as session:
                if not await triggers.listens(session, plans=self.plans, account_id=account_id, event=event):
                    return
                visitor = await service.visitor_by_vid(session, account_id=account_id, vid=vid)
                if visitor is None:
                    return
                fired = await service.fired_triggers(session, account_id=account_id, visitor_id=visitor.id)
                pages = await service.pages_since(session, account_id=account_id, visitor_id=visitor.id,
                                                  since=visitor.visit_started_ms // 1000)
                now = time.time()
                page = watched.page
                clocks = {"site": max(0.0, now - visitor.visit_started_ms / 1000),
                          "page": max(0.0, now - watched.page_started)}
                context = {
                    "seconds_on_site": min(MAX_CLOCK, int(clocks["site"])),
                    "seconds_on_page": min(MAX_CLOCK, int(clocks["page"])),
                    "number_of_visits": visitor.visits, "number_of_pages": max(1, pages),
                    "number_of_chats": visitor.chats, "is_triggered": bool(fired),
                    "visitor_group": visitor.group, "visitor_ip": page.address or "",
                    "visitor_page_url": page.url or visitor.last_url, "visitor_page_title": page.title or "",
                    "visitor_referer": page.referrer or visitor.referrer, "visitor_language": visitor.lang,
                    "account_status": status, "fired_triggers": fired,
                }
                answer = await triggers.evaluate_triggers(
                    session, plans=self.plans, partner_id=None, account_id=account_id, event=event,
                    at=datetime.datetime.fromtimestamp(int(now), datetime.UTC), visitor=context)
            for decision in orjson.loads(answer)["triggers"]:
                trigger_id = int(decision["id"])
                if only is not None and trigger_id != only:
                    continue
                if decision["fires"] == "now":
                    client_id = (f"trigger-{trigger_id}-m{message_id}" if message_id is not None
                                 else f"trigger-{trigger_id}-{visitor.visit_started_ms}")
                    await self._fire(account_id, vid, trigger_id, client_id)
                elif decision["fires"] == "later" and 0 < decision["after"] <= LONGEST_WAIT:
                    waited = [_CLOCK_OF[r["name"]] for r in decision["reasons"]
                              if r.get("wait") and r["name"] in _CLOCK_OF]
                    fraction = clocks[waited[-1]] % 1 if waited else 0.0  # of the clock the last wait counts on
                    self._time(account_id, vid, event, trigger_id,
                               max(SHORTEST_WAIT, decision["after"] - fraction), watched)
        except Exception:
            log.exception("evaluating the triggers of account %s for a visitor failed", account_id)

    def _time(self, account_id: int, vid: str, event: str, trigger_id: int, after: float, watched: Watched) -> None:
        previous = watched.timers.pop(trigger_id, None)
        if previous is not None:
            previous.cancel()

        def ring() -> None:
            if self.watched.get((account_id, vid)) is watched:
                watched.timers.pop(trigger_id, None)
                self.transport._spawn(self._evaluate(account_id, vid, event, trigger_id, None))

        watched.timers[trigger_id] = asyncio.get_running_loop().call_later(after, ring)

    async def _fire(self, account_id: int, vid: str, trigger_id: int, client_id: str) -> None:
        async with self.core.db.read() as session:
            actions = await triggers.trigger_actions(session, account_id=account_id, trigger_id=trigger_id)
        for n, action in enumerate(actions or ()):
            if action.get("name") != "message":
                continue
            message, _, created = await self.core.post_trigger_message(
                account_id, vid, trigger_id, str(action.get("agent_nick") or ""), str(action.get("message") or ""),
                client_id if n == 0 else f"{client_id}-{n}")
            if created:
                await (await self.transport.events()).message(account_id, vid, message)
                log.info("trigger %s of account %s wrote to a visitor (message %s)", trigger_id, account_id,
                         message["id"])
