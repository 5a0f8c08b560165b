"""The XMPP bridge: an XEP-0114 component (slixmpp) for ``visitors.<domain>`` that carries the
chat between the visitors and the agents' XMPP clients, through the same chat core as the
dashboard.

- **Visitors as contacts.** An account's visitor who writes becomes ``<visitor>@visitors.<domain>``
  (xmpp/jids.py) in the roster of each of the account's XMPP agents (those who ever logged in
  with XMPP: ``users.xmpp_login_at``), named after the visitor, in the group "Visitors", with a
  mutual subscription: added by the component through Prosody's privileged roster access
  (XEP-0356), so the agent approves nothing. The component answers presence probes itself
  (available while the visitor is on the site), never ``unsubscribed``.
- **Visitor to agent.** The bridge holds the hub topic ``agents:<account>`` of those accounts (as
  a dashboard does) and writes each visitor message to the agents' bare JIDs: Prosody delivers it
  to their clients, or keeps it (mod_offline) for the next login.
- **Agent to visitor.** A chat message from ``uid<ID>@<domain>`` to a visitor's address is the
  agent's answer in the visitor's conversation (ChatCore.reply_to_visitor, then the hub, exactly
  as from the dashboard). A visitor of another account, a conversation that ended, an empty or
  too long text get an XMPP error naming the reason, never silence.
- **Presence.** Prosody forwards the agents' presence to the component (XEP-0356
  ``managed_entity``): an agent with an available resource counts as an online (or away: show
  away/xa/dnd) agent device of type ``xmpp`` in the chat's Presence, so the chat box shows the
  account online.
- **Prosody restarts.** The component connects again by itself (every 1 to 5 seconds). Messages
  the bridge could not hand to Prosody (or handed in the last moments before the connection
  was lost) are written again after the reconnect, from the database (each account's last
  message written): nothing is lost, a message may arrive twice, with the same stanza id.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from typing import Any

import orjson
from slixmpp import JID
from slixmpp.componentxmpp import ComponentXMPP
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.stanza import Message, Presence

from opensupp.chat import service
from opensupp.chat.hub import Subscription, agents_topic
from opensupp.chat.transport import ChatEvents, ChatTransport, batch_frames
from opensupp.db import Database
from opensupp.errors import Conflict, NotFound, ValidationFailed
from opensupp.xmpp.config import XmppConfig
from opensupp.xmpp.jids import agent_local, user_of, vid_of, visitor_local

log = logging.getLogger("opensupp.xmpp")
# slixmpp says "connection_lost" at INFO on every connection's end (a standby's every 5 s): the
# bridge says what matters itself
logging.getLogger("slixmpp").setLevel(logging.WARNING)

GROUP = "Visitors"
#: a reconnect waits at most this long (slixmpp's own back-off grows to 300 s)
MAX_RETRY_SECONDS = 5
#: messages written this long before the connection was found lost are written again after it
UNSURE_SECONDS = 2.0
#: a process taking the component over from another writes again what came in this long before
TAKEOVER_SECONDS = 10.0
#: how often the list of XMPP agents is read again (new logins are also seen by their presence)
AGENTS_SECONDS = 60.0
#: (agent, visitor) pairs known to be in the roster, kept by this process
ROSTERED = 100_000
SHOW_AWAY = {"away", "xa", "dnd"}
#: agents who have not logged in with XMPP for this long get no more visitors written to them
AGENT_DAYS = 30


class Component(ComponentXMPP):
    """slixmpp's component, connecting again within MAX_RETRY_SECONDS, answering probes through
    the bridge (its default roster would answer ``unsubscribed`` and wipe the subscription)."""

    def __init__(self, bridge: Bridge, config: XmppConfig) -> None:
        super().__init__(config.component, config.component_secret, config.component_host, config.component_port)
        self.bridge = bridge
        self.auto_authorize = None  # subscription requests are the bridge's to answer (_subscribe)
        self.auto_subscribe = False
        self.del_event_handler("presence_probe", self._handle_probe)
        self.del_event_handler("presence_subscribe", self._handle_subscribe)
        self.register_plugin("xep_0356")
        self.register_plugin("xep_0085")  # chat states: typing, both ways

    def reschedule_connection_attempt(self) -> Any:
        attempt = super().reschedule_connection_attempt()
        self._connect_loop_wait = min(self._connect_loop_wait, MAX_RETRY_SECONDS)
        return attempt


class Bridge:
    """One per process that runs it (``opensupp serve``, or ``opensupp xmpp run``)."""

    def __init__(self, config: XmppConfig, db: Database, transport: ChatTransport) -> None:
        self.config = config
        self.db = db
        self.transport = transport
        self.xmpp: Component | None = None
        self.connected = asyncio.Event()
        self.stopping = False
        self.connects = 0  # sessions started (tests, metrics)
        self._standing_by = False
        self._last_conflict = 0.0  # when another process last held the component (monotonic)
        self._in_flight: dict[int, int] = {}  # account -> the message id being written now
        self.relayed = 0  # visitor messages written to agents
        #: account -> its XMPP agents' user ids
        self.agents: dict[int, set[int]] = {}
        self._account_of: dict[int, int] = {}  # user -> account, for the XMPP agents
        self._subscriptions: dict[int, Subscription] = {}
        #: account -> the last message id written to its agents while connected
        self._cursor: dict[int, int] = {}
        #: (account, message id, monotonic time) of the last messages written
        self._recent: collections.deque[tuple[int, int, float]] = collections.deque(maxlen=10_000)
        self._replay_from: dict[int, int] = {}  # account -> message id to write again from, after a reconnect
        self._rostered: collections.OrderedDict[tuple[int, str], None] = collections.OrderedDict()
        self._online_vids: dict[int, set[str]] = {}
        self._resources: dict[int, dict[str, str]] = {}  # user -> resource -> online/away
        self._visitors: dict[tuple[int, int], tuple[str, str]] = {}  # (account, conversation) -> (vid, name)
        self._queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        #: set while no replay runs: the relay of live events waits for it (no reordering, no doubles)
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._replays = 0
        self._holding: set[int] = set()  # accounts whose topic is being subscribed to
        self._presence_account: dict[int, int] = {}  # user -> the account its xmpp device counts in
        self._writing: dict[int, asyncio.Lock] = {}  # user -> one reply stored at a time, in order (agents: few)
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ life

    async def run(self) -> None:
        """Connects, serves, connects again, until cancelled (the server's background task)."""
        # the hub's database or Redis, the database: not reachable yet perhaps; the bridge waits for them
        await _until_done(self.transport.start, "the chat's hub could not start")
        await _until_done(self._load_agents, "the XMPP agents could not be read")
        xmpp = self.xmpp = Component(self, self.config)
        xmpp.add_event_handler("session_start", self._session_start)
        xmpp.add_event_handler("disconnected", self._disconnected)
        xmpp.add_event_handler("stream_error", self._stream_error)
        xmpp.add_event_handler("message", self._message)
        xmpp.add_event_handler("chatstate", self._chat_state)
        xmpp.add_event_handler("presence", self._presence)
        xmpp.add_event_handler("presence_probe", self._probe)
        xmpp.add_event_handler("presence_subscribe", self._subscribe)
        self._spawn(self._relay_loop())
        self._spawn(self._reload_agents())
        log.info("XMPP bridge: connecting to Prosody at %s:%d as %s", self.config.component_host,
                 self.config.component_port, self.config.component)
        xmpp.connect()
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    async def run_logged(self) -> None:
        """``run``, its failure logged (a background task's error would be lost), then tried again."""
        while True:
            try:
                await self.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("XMPP bridge: stopped by an error; starting again in 5 s")
                await self.close()
                self.stopping = False
                await asyncio.sleep(5)

    async def close(self) -> None:
        self.stopping = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        for subscription in self._subscriptions.values():
            subscription.close()
        self._subscriptions.clear()
        await self._drop_all_presence()
        xmpp = self.xmpp
        if xmpp is not None:
            xmpp.cancel_connection_attempt()
            if xmpp.transport is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(xmpp.disconnect(wait=1), 2)

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _session_start(self, _: Any) -> None:
        self.connects += 1
        if self._standing_by:  # taking over: what the process that held it may not have written (since
            # it was last seen holding it, Prosody down meanwhile perhaps, and a little before)
            self._mark_unsure(time.monotonic() - self._last_conflict + TAKEOVER_SECONDS)
            self._standing_by = False
        self.connected.set()
        log.info("XMPP bridge: connected to Prosody as %s", self.config.component)
        # what could not be written while away (or may have been lost with the connection), before
        # anything live: the relay waits meanwhile
        replay, self._replay_from = self._replay_from, {}
        for account_id, after in replay.items():
            try:
                await self._replay(account_id, after)
            except Exception:
                log.warning("XMPP bridge: account %d's messages could not be written again; trying at the next "
                            "connection", account_id, exc_info=True)
                self._owe(account_id, after)

    async def _disconnected(self, reason: Any) -> None:
        lost = self.connected.is_set()
        self.connected.clear()
        if lost:
            log.warning("XMPP bridge: the connection to Prosody was lost (%s); connecting again", reason or "closed")
            self._mark_unsure(lost=True)
        await self._drop_all_presence()  # the agents' clients were connected through it
        if not self.stopping and self.xmpp is not None:
            await asyncio.sleep(MAX_RETRY_SECONDS if self._standing_by else 1)
            if not self.stopping:
                self.xmpp.connect()

    def _stream_error(self, error: Any) -> None:
        condition = error["condition"] if error is not None else "?"
        if condition == "conflict":  # another process (a worker of this server) holds the component
            self._last_conflict = time.monotonic()
            if not self._standing_by:
                self._standing_by = True
                self._replay_from.clear()
                log.info("XMPP bridge: another process is connected as %s; this one stands by and takes over "
                         "when it goes", self.config.component)
            return
        log.error("XMPP bridge: Prosody refused the component (%s): are component_secret in its config and "
                  "the setup's xmpp.json from the same `opensupp xmpp setup`?", condition)

    def _owe(self, account_id: int, after: int) -> None:
        """The account's messages after ``after`` are to be written after the (re)connect."""
        previous = self._replay_from.get(account_id)
        self._replay_from[account_id] = after if previous is None else min(previous, after)

    def _mark_unsure(self, seconds: float = UNSURE_SECONDS, lost: bool = False) -> None:
        """Messages written in the last ``seconds`` are written again after the reconnect; ``lost``:
        and every account's from its cursor (what the relay had not written yet)."""
        cutoff = time.monotonic() - seconds
        for account_id, message_id, at in self._recent:
            if at >= cutoff:
                self._owe(account_id, message_id - 1)
        if lost:
            for account_id, cursor in self._cursor.items():
                self._owe(account_id, cursor)
            for account_id, message_id in self._in_flight.items():  # (its roster round trip, or its sends)
                self._owe(account_id, message_id - 1)

    # ------------------------------------------------------------------ agents and accounts

    async def _load_agents(self) -> None:
        async with self.db.read() as session:
            rows = await session.fetch("SELECT id, account_id FROM users WHERE xmpp_login_at IS NOT NULL"
                                       " AND xmpp_login_at >= $1", int(time.time()) - AGENT_DAYS * 86400)
        agents: dict[int, set[int]] = {}
        for user_id, account_id in rows:
            agents.setdefault(account_id, set()).add(user_id)
        for user_id in self._resources:  # connected now, however long ago it logged in: kept
            if user_id in self._account_of:
                agents.setdefault(self._account_of[user_id], set()).add(user_id)
        gone = set(self.agents) - set(agents)
        self.agents = agents
        self._account_of = {user_id: account_id for account_id, users in agents.items() for user_id in users}
        for account_id in gone:
            subscription = self._subscriptions.pop(account_id, None)
            if subscription is not None:
                subscription.close()
        for account_id in agents:
            await self._hold(account_id)
        # an agent deleted (or gone from XMPP) while its client is still connected no longer counts
        for user_id in [u for u in self._resources if u not in self._account_of]:
            if await self._agent_account(user_id) is None:
                self._resources.pop(user_id, None)
                await self._set_presence(user_id)

    async def _reload_agents(self) -> None:
        while True:
            await asyncio.sleep(AGENTS_SECONDS)
            try:
                await self._load_agents()
            except Exception:
                log.warning("XMPP bridge: the list of XMPP agents could not be read", exc_info=True)

    async def _hold(self, account_id: int, since: int | None = None) -> None:
        """The account's agents topic. Its messages are written from the last one stored before
        ``since`` (a new XMPP agent's login: what visitors wrote while the bridge learnt of the
        agent is not skipped), or before now; those stored until the subscription took are
        written first."""
        if account_id in self._subscriptions or account_id in self._holding:
            return
        self._holding.add(account_id)
        try:
            async with self.db.read() as session:
                if since is None:
                    last = await session.fetchval("SELECT MAX(id) FROM messages WHERE account_id = $1", account_id)
                else:
                    last = await session.fetchval("SELECT MAX(id) FROM messages WHERE account_id = $1"
                                                  " AND created_at < $2", account_id, since)
            cursor = int(last or 0)
            self._cursor.setdefault(account_id, cursor)
            hub = self.transport.hub
            assert hub is not None
            self._subscriptions[account_id] = await hub.subscribe(
                agents_topic(account_id), lambda data: self._queue.put_nowait((account_id, data)))
        finally:
            self._holding.discard(account_id)
        if self.connected.is_set():
            await self._replay(account_id, cursor, catch_up=True)
        elif not self._standing_by:  # (a standby owes nothing: another process writes them)
            self._owe(account_id, cursor)
        await ChatEvents(hub).rollcall(account_id)  # the visitors on the site now

    async def _agent_account(self, user_id: int) -> int | None:
        """The account of an agent who writes or shows presence (a new XMPP agent is held)."""
        account_id = self._account_of.get(user_id)
        if account_id is not None:
            return account_id
        async with self.db.read() as session:
            row = await session.fetchrow("SELECT account_id, xmpp_login_at FROM users WHERE id = $1", user_id)
        if row is None:
            return None
        account_id = int(row[0])
        self._account_of[user_id] = account_id
        self.agents.setdefault(account_id, set()).add(user_id)
        # from a little before the login (its second), so that a visitor who wrote meanwhile is not skipped
        await self._hold(account_id, since=int(row[1]) - 1 if row[1] is not None else None)
        return account_id

    def _agent_of(self, jid: JID) -> int | None:
        return user_of(jid.user) if jid.domain == self.config.domain else None

    def _agent_jid(self, user_id: int) -> JID:
        return JID(f"{agent_local(user_id)}@{self.config.domain}")

    def _visitor_jid(self, vid: str) -> JID | None:
        local = visitor_local(vid)
        return None if local is None else JID(f"{local}@{self.config.component}")

    # ------------------------------------------------------------------ visitor to agents

    async def _relay_loop(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            account_id, data = item
            await self._quiet.wait()
            try:
                await self._relay(account_id, data)
            except Exception:
                log.exception("XMPP bridge: an event of account %d could not be written to its agents", account_id)

    async def _relay(self, account_id: int, data: bytes) -> None:
        for raw in batch_frames(data):
            try:
                frame = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            kind = frame.get("type")
            if kind == "chat.message_received":
                await self._write_message(account_id, frame.get("message") or {})
            elif kind == "visitor.connected":
                vid = str((frame.get("visitor") or {}).get("vid") or "")
                if vid:
                    self._online_vids.setdefault(account_id, set()).add(vid)
                    self._visitor_presence(account_id, vid, True)
            elif kind == "chat.contact_typing":
                self._visitor_typing(account_id, str(frame.get("vid") or ""), bool(frame.get("is")))
            elif kind == "chat.closed" and isinstance(frame.get("conversationId"), int):
                await self._unroster(account_id, frame["conversationId"])
            elif kind == "visitor.disconnected":
                vid = str(frame.get("vid") or "")
                self._online_vids.get(account_id, set()).discard(vid)
                self._visitor_presence(account_id, vid, False)

    async def _write_message(self, account_id: int, message: dict[str, Any], replay: bool = False) -> None:
        message_id = message.get("id")
        if not isinstance(message_id, int):
            return
        if self._standing_by:  # another process holds the component and writes it: nothing is owed
            self._cursor[account_id] = max(message_id, self._cursor.get(account_id, 0))
            self._recent.append((account_id, message_id, time.monotonic()))  # (but for a takeover's moment)
            return
        if not self.connected.is_set():  # written from the database after the reconnect
            self._owe(account_id, min(self._cursor.get(account_id, message_id - 1), message_id - 1))
            return
        if message_id <= self._cursor.get(account_id, 0) and not replay:
            return
        self._cursor[account_id] = max(message_id, self._cursor.get(account_id, 0))
        if message.get("kind") != "visitor":
            return
        agents = self.agents.get(account_id)
        if not agents:
            return
        found = await self._visitor_of(account_id, int(message["conversationId"]))
        if found is None:
            return
        vid, name = found
        sender = self._visitor_jid(vid)
        if sender is None:
            return
        self._in_flight[account_id] = message_id
        try:
            await self._write_to_agents(account_id, message_id, agents, vid, sender, name,
                                        str(message.get("text") or ""))
        finally:
            self._in_flight.pop(account_id, None)

    async def _write_to_agents(self, account_id: int, message_id: int, agents: set[int], vid: str, sender: JID,
                               name: str, text: str) -> None:
        for user_id in sorted(agents):
            await self._ensure_rostered(user_id, vid, sender, name)
            self._recent.append((account_id, message_id, time.monotonic()))  # (after the roster's round trip)
            xmpp = self.xmpp
            if xmpp is None or not self.connected.is_set():
                self._owe(account_id, message_id - 1)
                return
            stanza = xmpp.make_message(mto=self._agent_jid(user_id), mfrom=sender,
                                       mbody=text, mtype="chat")
            stanza["id"] = f"opensupp-m{message_id}"
            stanza.send()
        self.relayed += 1

    async def _replay(self, account_id: int, after: int, catch_up: bool = False) -> None:
        """The account's messages after ``after``, from the database, while the live relay waits.
        ``catch_up``: only those the live relay has not written (a new subscription's gap)."""
        core = self.transport.core
        if core is None:
            return
        self._replays += 1
        self._quiet.clear()
        try:
            while True:
                messages = await core.messages_after(account_id, after, 500)
                for message in messages:
                    await self._write_message(account_id, message, replay=not catch_up)
                if len(messages) < 500:
                    return
                after = int(messages[-1]["id"])
        finally:
            self._replays -= 1
            if not self._replays:
                self._quiet.set()

    async def _visitor_of(self, account_id: int, conversation_id: int) -> tuple[str, str] | None:
        key = (account_id, conversation_id)
        found = self._visitors.get(key)
        if found is None:
            async with self.db.read() as session:
                row = await session.fetchrow(
                    "SELECT v.vid, v.name, v.email FROM conversations c JOIN visitors v ON v.id = c.visitor_id"
                    " WHERE c.id = $1 AND c.account_id = $2 AND v.account_id = $2", conversation_id, account_id)
            if row is None:
                return None
            vid, name, email = str(row[0]), str(row[1] or ""), str(row[2] or "")
            local = visitor_local(vid) or vid
            found = (vid, name or email or f"Visitor {local[:6]}")
            if len(self._visitors) > 10_000:
                self._visitors.pop(next(iter(self._visitors)))
            self._visitors[key] = found
        return found

    async def _ensure_rostered(self, user_id: int, vid: str, contact: JID, name: str) -> None:
        key = (user_id, vid)
        if key in self._rostered:
            self._rostered.move_to_end(key)
            return
        xmpp = self.xmpp
        assert xmpp is not None
        agent = self._agent_jid(user_id)
        try:
            await xmpp.plugin["xep_0356"].set_roster(
                agent, {contact.bare: {"name": name[:100], "subscription": "both", "groups": [GROUP]}}, timeout=3)
        except PermissionError:
            log.warning("XMPP bridge: Prosody gave the component no roster privilege (mod_privilege and "
                        "privileged_entities, as `opensupp xmpp setup` writes them): %s is not added to %s's "
                        "contacts", contact.bare, agent.bare)
            return
        except (IqError, IqTimeout) as exc:
            log.warning("XMPP bridge: adding %s to %s's contacts failed: %s", contact.bare, agent.bare, exc)
            return
        self._rostered[key] = None
        if len(self._rostered) > ROSTERED:
            self._rostered.popitem(last=False)
        online = vid in self._online_vids.get(self._account_of.get(user_id, -1), set())
        self._send_presence(contact, agent, online)

    async def _unroster(self, account_id: int, conversation_id: int) -> None:
        """A conversation ended: its visitor leaves the contacts of the account's XMPP agents (a
        roster holds the conversations in progress, not every visitor ever)."""
        xmpp = self.xmpp
        found = await self._visitor_of(account_id, conversation_id)
        if found is None or xmpp is None or not self.connected.is_set():
            return
        vid = found[0]
        contact = self._visitor_jid(vid)
        if contact is None:
            return
        for user_id in sorted(self.agents.get(account_id, ())):
            agent = self._agent_jid(user_id)
            self._send_presence(contact, agent, False)
            with contextlib.suppress(PermissionError, IqError, IqTimeout):
                await xmpp.plugin["xep_0356"].set_roster(agent, {contact.bare: {"subscription": "remove"}},
                                                         timeout=3)
            self._rostered.pop((user_id, vid), None)

    def _visitor_typing(self, account_id: int, vid: str, typing: bool) -> None:
        """A chat state (XEP-0085) from the visitor to the account's agents who chat with it and
        are connected now (one to an offline agent would be kept for its next login, for nothing)."""
        contact = self._visitor_jid(vid)
        xmpp = self.xmpp
        if contact is None or xmpp is None or not self.connected.is_set():
            return
        for user_id in self.agents.get(account_id, ()):
            if (user_id, vid) in self._rostered and self._resources.get(user_id):
                state = xmpp.make_message(mto=self._agent_jid(user_id), mfrom=contact, mtype="chat")
                state["chat_state"] = "composing" if typing else "paused"
                state.send()

    def _visitor_presence(self, account_id: int, vid: str, online: bool) -> None:
        contact = self._visitor_jid(vid)
        if contact is None or not self.connected.is_set():
            return
        for user_id in self.agents.get(account_id, ()):
            if (user_id, vid) in self._rostered:
                self._send_presence(contact, self._agent_jid(user_id), online)

    def _send_presence(self, contact: JID, to: JID, online: bool) -> None:
        xmpp = self.xmpp
        if xmpp is None or not self.connected.is_set():
            return
        presence = xmpp.make_presence(pto=to.bare, pfrom=contact.bare,
                                      ptype=None if online else "unavailable")
        presence.send()

    # ------------------------------------------------------------------ agents to visitors

    async def _message(self, message: Message) -> None:
        if message["type"] not in ("chat", "normal"):
            return  # errors (a bounce of ours), groupchat, headline: nothing to answer
        sender = message["from"]
        user_id = self._agent_of(sender)
        if user_id is None:
            self._error(message, "auth", "forbidden", "Only the agents of this server write to its visitors.")
            return
        text = message["body"]
        vid = vid_of(message["to"].user)
        account_id = await self._agent_account(user_id)
        if vid is None or account_id is None:
            self._error(message, "cancel", "item-not-found", "No such visitor.")
            return
        core = self.transport.core
        if core is None:
            self._error(message, "wait", "service-unavailable", "The chat service is not configured.")
            return
        # slixmpp runs each stanza's handler as a task: one agent's replies are stored one at a time,
        # in the order they came (a lock hands over in order). No client id: Prosody hands the
        # component each stanza once, and XMPP clients' stanza ids are not unique enough to key on.
        lock = self._writing.setdefault(user_id, asyncio.Lock())
        try:
            async with lock:
                posted, conversation = await core.reply_to_visitor(account_id, user_id, vid, text, None)
        except NotFound:
            log.info("XMPP: agent %d of account %d wrote to a visitor who is not the account's", user_id, account_id)
            self._error(message, "cancel", "item-not-found", "No such visitor in your account.")
            return
        except Conflict as exc:
            self._error(message, "cancel", "not-allowed", exc.message)
            return
        except ValidationFailed as exc:  # (its message names each field's problem)
            self._error(message, "modify", "not-acceptable", exc.message)
            return
        hub = self.transport.hub
        assert hub is not None
        await ChatEvents(hub).message(account_id, str(conversation["vid"]), posted)

    async def _chat_state(self, message: Message) -> None:
        """A chat state alone (XEP-0085; slixmpp's "message" event is for messages with a body):
        the agent types, or stopped."""
        if message["body"] or message["type"] not in ("chat", "normal"):
            return
        user_id = self._agent_of(message["from"])
        vid = vid_of(message["to"].user)
        if user_id is None or vid is None:
            return
        account_id = await self._agent_account(user_id)
        if account_id is not None:
            await self._agent_typing(account_id, user_id, vid, message["chat_state"] == "composing")

    async def _agent_typing(self, account_id: int, user_id: int, vid: str, typing: bool) -> None:
        """chat.agent_typing to the visitor and the account's agents, as the dashboard's typing is."""
        async with self.db.read() as session:
            visitor = await service.visitor_by_vid(session, account_id=account_id, vid=vid)
            card = await service.agent_card(session, account_id=account_id, user_id=user_id)
            conversation = None if visitor is None or card is None else await service.current_conversation(
                session, account_id=account_id, visitor_id=visitor.id)
        hub = self.transport.hub
        if conversation is not None and card is not None and hub is not None:
            await ChatEvents(hub).agent_typing(account_id, vid, conversation.id,
                                               {"id": user_id, "nickname": card["nickname"]}, typing)

    def _error(self, message: Message, kind: str, condition: str, text: str) -> None:
        reply = message.reply(clear=False)
        reply["type"] = "error"
        reply["error"]["type"] = kind
        reply["error"]["condition"] = condition
        reply["error"]["text"] = text
        reply.send()

    # ------------------------------------------------------------------ presence

    async def _presence(self, presence: Presence) -> None:
        kind = presence["type"]
        if kind not in ("available", "unavailable", "away", "xa", "dnd", "chat"):
            return
        sender = presence["from"]
        user_id = self._agent_of(sender)
        if user_id is None or not sender.resource:
            return
        resources = self._resources.setdefault(user_id, {})
        if kind == "unavailable":
            resources.pop(sender.resource, None)
        else:
            resources[sender.resource] = "away" if presence["show"] in SHOW_AWAY else "online"
        if await self._agent_account(user_id) is None:
            self._resources.pop(user_id, None)  # deleted: whatever its client says, it counts no more
        await self._set_presence(user_id)

    async def _set_presence(self, user_id: int) -> None:
        """The agent's xmpp device in the chat's Presence: its resources' best status, or none."""
        presence = self.transport.presence
        if presence is None:
            return
        statuses = set(self._resources.get(user_id, {}).values())
        device = ("xmpp", user_id)
        counted_in = self._presence_account.get(user_id)
        if not statuses:
            self._resources.pop(user_id, None)
            if counted_in is not None:
                del self._presence_account[user_id]
                await presence.drop(counted_in, device)
            return
        account_id = self._account_of.get(user_id)
        if account_id is None:
            return
        self._presence_account[user_id] = account_id
        await presence.set(account_id, device, user_id, "online" if "online" in statuses else "away")

    async def _drop_all_presence(self) -> None:
        self._resources = {}
        counted, self._presence_account = self._presence_account, {}
        presence = self.transport.presence
        for user_id, account_id in counted.items():
            if presence is not None:
                with contextlib.suppress(Exception):
                    await presence.drop(account_id, ("xmpp", user_id))

    async def _probe(self, presence: Presence) -> None:
        user_id = self._agent_of(presence["from"])
        vid = vid_of(presence["to"].user)
        if user_id is None or vid is None:
            return
        account_id = await self._agent_account(user_id)
        online = account_id is not None and vid in self._online_vids.get(account_id, set())
        self._send_presence(presence["to"], presence["from"], online)

    async def _subscribe(self, presence: Presence) -> None:
        """An agent's client asks to see a visitor (re-adding a contact): granted, for the account's own."""
        user_id = self._agent_of(presence["from"])
        vid = vid_of(presence["to"].user)
        xmpp = self.xmpp
        if user_id is None or vid is None or xmpp is None:
            return
        account_id = await self._agent_account(user_id)
        if account_id is None or not await self._visitor_exists(account_id, vid):
            xmpp.send_presence(pto=presence["from"].bare, pfrom=presence["to"].bare, ptype="unsubscribed")
            return
        xmpp.send_presence(pto=presence["from"].bare, pfrom=presence["to"].bare, ptype="subscribed")
        self._send_presence(presence["to"], presence["from"], vid in self._online_vids.get(account_id, set()))

    async def _visitor_exists(self, account_id: int, vid: str) -> bool:
        async with self.db.read() as session:
            return await service.visitor_by_vid(session, account_id=account_id, vid=vid) is not None


async def _until_done(action: Any, failure: str) -> None:
    """``await action()`` until it works, backing off from 1 to 30 s, each failure logged."""
    for attempt in itertools.count():
        try:
            await action()
            return
        except Exception as exc:
            log.warning("XMPP bridge: %s (%s); trying again", failure, exc)
            await asyncio.sleep(min(30, 2 ** attempt))
