/* The agent dashboard (site/templates/dashboard.html, docs/dashboard.md): the agent side of the
   chat protocol (docs/chat-protocol.md 7) over a WebSocket, the inbox and a conversation read
   from /dashboard/*. Plain script, no build step. Everything a visitor sent is shown with
   textContent, never as HTML. */
(() => {
  'use strict';

  const boot = JSON.parse(document.getElementById('boot').textContent);
  const S = boot.strings;
  const $ = (id) => document.getElementById(id);
  const GROUPS = ['pending', 'open', 'closed'];
  const CLOSED_SHOWN = 50;
  const TYPING_EVERY = 2000;
  const TYPING_SHOWN = 10000;

  function t(key, params) {
    let text = Object.prototype.hasOwnProperty.call(S, key) ? S[key] : key;
    for (const name of Object.keys(params || {})) text = text.split('{' + name + '}').join(String(params[name]));
    return text;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  const state = {
    conversations: new Map(), // id -> the inbox's summary (chat/inbox.py)
    fetching: new Set(), // conversation ids whose summary is on its way
    early: new Map(), // conversation id -> its messages that came while its summary was on its way
    selected: null, // the open conversation's id
    target: null, // the vid of a visitor the agent is starting a chat with (no conversation yet)
    detail: null, // {conversation, visitor}
    messages: new Map(), // the open conversation's messages by id
    outbox: new Map(), // clientId -> {conversationId, text}: sent, not yet acked
    agents: new Map(boot.agents.map((a) => [a.id, Object.assign({}, a, { status: 'offline' })])),
    visitors: new Map(), // vid -> what visitor.connected / visitor.updated said
    status: boot.status,
    account: 'offline',
    connected: false,
    typingSince: 0,
    alerts: localStorage.getItem('opensupp.alerts') === '1',
  };

  // ------------------------------------------------------------------ the connection

  // A WebSocket, or the long-poll fallback (docs/chat-protocol.md 1.2) when a WebSocket cannot
  // open or closes before its first frame is answered (a proxy that blocks Upgrade). A failed
  // attempt that got no answer tries the other way next time; one that worked keeps its way.
  const conn = {
    ws: null, mode: window.WebSocket ? 'ws' : 'poll', answered: false, refs: 0, replies: new Map(),
    backoff: 1000, ping: null, pong: null, sid: null, queue: [], sending: false, gen: 0,

    open() {
      setConnection('connecting');
      this.answered = false;
      const hello = { type: 'agent.connect', token: boot.token, status: state.status, deviceType: 'browser' };
      if (this.mode === 'poll') { this.openPoll(hello); return; }
      const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
      const ws = new WebSocket(scheme + location.host + boot.ws);
      this.ws = ws;
      ws.onopen = () => this.send(hello, connected);
      ws.onmessage = (event) => {
        this.answered = true;
        try { this.receive(JSON.parse(event.data)); } catch (e) { console.error(e); }
      };
      ws.onclose = (event) => { if (ws === this.ws) { this.ws = null; this.lost(event.code); } };
    },

    send(frame, reply) {
      if (this.mode === 'ws' && (!this.ws || this.ws.readyState !== WebSocket.OPEN)) return false;
      if (this.mode === 'poll' && !this.sid && frame.type !== 'agent.connect') return false;
      frame.ref = 'd' + (++this.refs);
      if (reply) this.replies.set(frame.ref, reply);
      if (this.mode === 'ws') this.ws.send(JSON.stringify(frame));
      else { this.queue.push(frame); this.flush(); }
      return true;
    },

    receive(frame) {
      if (frame.ref && this.replies.has(frame.ref)) {
        const reply = this.replies.get(frame.ref);
        this.replies.delete(frame.ref);
        reply(frame);
        return;
      }
      if (frame.type === 'server.error') { notice(frame.message); return; }
      const handler = EVENTS[frame.type];
      if (handler) handler(frame);
    },

    lost(code) {
      clearInterval(this.ping);
      clearTimeout(this.pong);
      this.replies.clear();
      state.connected = false;
      setConnection('offline');
      if (!this.answered && code !== 4001 && window.WebSocket) this.mode = this.mode === 'ws' ? 'poll' : 'ws';
      const wait = code === 4001 ? 0 : this.backoff * (0.5 + Math.random());
      this.backoff = Math.min(this.backoff * 2, 30000);
      setTimeout(() => (code === 4001 ? renewToken() : Promise.resolve()).then(() => this.open()), wait);
    },

    heartbeat() {
      clearInterval(this.ping);
      if (this.mode !== 'ws') return; // each poll request counts as activity
      this.ping = setInterval(() => {
        this.send({ type: 'ping' }, () => clearTimeout(this.pong));
        this.pong = setTimeout(() => this.ws && this.ws.close(), 10000);
      }, 25000);
    },

    // ---------------------------------------------------------------- the long-poll
    openPoll(hello) {
      const gen = ++this.gen;
      this.sid = null;
      this.queue = [];
      this.sending = false;
      this.send(hello, (frame) => {
        if (frame.type === 'server.error' && frame.code === 'auth_failed') return;
        connected(frame);
      });
      this.loop(gen);
    },

    post(frames, gen) {
      return fetch(boot.poll, { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ sid: this.sid, frames }) }).then((r) => {
        if (!r.ok) throw new Error('poll ' + r.status);
        return r.json();
      }).then((answer) => {
        if (gen !== this.gen) return;
        if (answer.sid) { this.sid = answer.sid; this.answered = true; }
        for (const frame of answer.frames) this.receive(frame);
        if (!answer.sid) {
          const refused = answer.frames.some((f) => f.code === 'auth_failed');
          throw new Error(refused ? 'auth' : 'expired');
        }
      });
    },

    flush() {
      if (this.sending || !this.queue.length) return;
      const gen = this.gen;
      this.sending = true;
      this.post(this.queue.splice(0, 16), gen).then(() => {
        this.sending = false;
        this.flush();
      }, (error) => this.pollLost(gen, error));
    },

    loop(gen) {
      const next = () => {
        if (gen !== this.gen) return;
        if (!this.sid) { setTimeout(next, 50); return; } // the connect's answer first
        this.post([], gen).then(next, (error) => this.pollLost(gen, error));
      };
      next();
    },

    pollLost(gen, error) {
      if (gen !== this.gen) return;
      this.gen++;
      this.sid = null;
      this.lost(error && error.message === 'auth' ? 4001 : 0);
    },
  };

  function renewToken() {
    return fetch('/dashboard/token', { credentials: 'same-origin' }).then((r) => {
      if (r.status === 401) { location.reload(); throw new Error('signed out'); }
      return r.json();
    }).then((data) => { boot.token = data.token; }).catch(() => {});
  }

  function connected(frame) {
    if (frame.type !== 'ack') { notice(frame.message); return; }
    state.connected = true;
    conn.backoff = 1000;
    conn.heartbeat();
    const data = frame.data;
    state.account = data.account.status;
    for (const agent of state.agents.values()) agent.status = 'offline';
    for (const agent of data.account.agents) {
      const known = state.agents.get(agent.id);
      if (known) known.status = agent.status;
      else state.agents.set(agent.id, Object.assign({}, agent));
    }
    state.visitors.clear(); // the roll call that follows the ack lists them again
    setConnection('online');
    renderAgents();
    renderVisitors();
    loadInbox();
    for (const [clientId, pending] of state.outbox) sendMessage(pending.conversationId, pending.text, clientId);
  }

  // ------------------------------------------------------------------ events from the server

  const EVENTS = {
    'chat.message_received': (f) => messageArrived(f.conversationId, f.message),
    'chat.closed': (f) => changeConversation(f.conversationId, { status: 'closed', closedAt: f.closedAt }),
    'chat.assigned': (f) => changeConversation(f.conversationId, { assignedUserId: f.agent ? f.agent.id : null }),
    'chat.rated': (f) => changeConversation(f.conversationId, { rating: f.rating }),
    'chat.contact_read': (f) => {
      if (f.by && f.by.type === 'agent' && state.conversations.has(f.conversationId)) {
        changeConversation(f.conversationId, { unreadByAgents: 0 }); // another agent (or tab) read it
      }
    },
    'chat.contact_typing': (f) => visitorTyping(f),
    'visitor.connected': (f) => {
      const v = f.visitor;
      state.visitors.set(v.vid, Object.assign(state.visitors.get(v.vid) || {}, v));
      renderVisitors();
    },
    'visitor.disconnected': (f) => { state.visitors.delete(f.vid); renderVisitors(); },
    'visitor.updated': (f) => visitorUpdated(f.vid, f.changes || {}),
    'agent.updated': (f) => {
      const agent = state.agents.get(f.id);
      if (agent) Object.assign(agent, f.changes || {});
      renderAgents();
      if (state.detail) renderAssign();
    },
    'account.updated': (f) => { state.account = f.status; setConnection(state.connected ? 'online' : 'offline'); },
  };

  function messageArrived(conversationId, message) {
    const summary = state.conversations.get(conversationId);
    if (!summary) {
      const early = state.early.get(conversationId) || [];
      state.early.set(conversationId, early.concat([message]).slice(-100));
      fetchSummary(conversationId, message);
      return;
    }
    const last = summary.lastMessage;
    if (!last || message.id > last.id) {
      summary.lastMessage = message;
      summary.lastMessageAt = message.createdAt;
      if (message.kind === 'agent') summary.status = 'open';
      if (message.kind === 'visitor' && !(conversationId === state.selected && !document.hidden)) {
        summary.unreadByAgents = (summary.unreadByAgents || 0) + 1;
      }
    }
    if (conversationId === state.selected) {
      showMessage(message);
      if (message.kind === 'visitor' && !document.hidden) markRead(conversationId, message.id);
      if (message.kind === 'visitor') setTyping(false);
    }
    renderList();
    if (message.kind === 'visitor') alertAbout(summary, message);
  }

  function fetchSummary(conversationId, message) {
    if (state.fetching.has(conversationId)) return;
    state.fetching.add(conversationId);
    getJSON('/dashboard/conversations/' + conversationId + '?summary=1').then((summary) => {
      state.fetching.delete(conversationId);
      if (!summary) return;
      const known = state.conversations.get(conversationId);
      state.conversations.set(conversationId, merge(summary, known));
      const early = state.early.get(conversationId) || [];
      state.early.delete(conversationId);
      for (const m of early) if (!summary.lastMessage || m.id > summary.lastMessage.id) messageArrived(conversationId, m);
      renderList();
      if (message && message.kind === 'visitor') alertAbout(summary, message, true);
    });
  }

  function merge(fresh, known) {
    if (!known) return fresh;
    if (known.lastMessage && (!fresh.lastMessage || known.lastMessage.id > fresh.lastMessage.id)) {
      fresh.lastMessage = known.lastMessage;
    }
    return fresh;
  }

  function changeConversation(conversationId, changes) {
    const summary = state.conversations.get(conversationId);
    if (summary) Object.assign(summary, changes);
    else fetchSummary(conversationId);
    if (state.detail && state.detail.conversation.id === conversationId) {
      Object.assign(state.detail.conversation, changes);
      renderHead();
    }
    renderList();
  }

  function visitorUpdated(vid, changes) {
    const live = state.visitors.get(vid);
    if (live) { Object.assign(live, changes); renderVisitors(); }
    let listed = false;
    for (const summary of state.conversations.values()) {
      if (summary.vid !== vid) continue;
      for (const name of ['name', 'email']) if (name in changes) summary.visitor[name] = changes[name];
      listed = true;
    }
    if (listed) renderList();
    if (state.detail && state.detail.visitor.vid === vid) {
      Object.assign(state.detail.visitor, changes);
      renderVisitor();
      renderHead();
    }
  }

  let typingTimer = null;

  function visitorTyping(frame) {
    if (!state.detail || state.detail.visitor.vid !== frame.vid) return;
    setTyping(frame.is, frame.text);
  }

  function setTyping(on, text) {
    clearTimeout(typingTimer);
    const name = on ? visitorName(state.detail.visitor) : '';
    $('typing').textContent = !on ? '' : text ? t('dash.visitorTypingText', { name, text: text.slice(0, 200) })
      : t('dash.visitorTyping', { name });
    if (on) typingTimer = setTimeout(() => setTyping(false), TYPING_SHOWN);
  }

  // ------------------------------------------------------------------ reads

  function getJSON(url) {
    return fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } }).then((r) => {
      if (r.status === 401) { location.reload(); return null; }
      if (!r.ok) return r.json().then((e) => { notice(e.message); return null; }, () => null);
      return r.json();
    }).catch(() => { notice(t('dash.networkError')); return null; });
  }

  function loadInbox() {
    getJSON('/dashboard/conversations').then((data) => {
      if (!data) return;
      const fresh = new Map();
      for (const summary of data.conversations) fresh.set(summary.id, merge(summary, state.conversations.get(summary.id)));
      state.conversations = fresh;
      renderList();
      const wanted = state.selected || idFromHash();
      if (wanted) select(wanted, false);
    });
  }

  function idFromHash() {
    const found = /^#conversation-(\d{1,15})$/.exec(location.hash);
    return found ? Number(found[1]) : null;
  }

  // ------------------------------------------------------------------ the inbox

  function visitorName(visitor) {
    return (visitor && (visitor.name || visitor.email)) || t('dash.anonymous', { id: visitor ? visitor.vid.slice(0, 6) : '' });
  }

  function sortKey(summary) {
    return summary.status === 'closed' ? (summary.closedAt || '') : (summary.lastMessageAt || '');
  }

  // a re-rendered list keeps the keyboard's place: the element with the focused one's key gets it back
  function keepingFocus(render) {
    const active = document.activeElement;
    const key = active && active.dataset ? active.dataset.focusKey : null;
    render();
    if (key && document.activeElement !== active) {
      const same = document.querySelectorAll('[data-focus-key="' + CSS.escape(key) + '"]');
      const again = [...same].find((node) => node.offsetParent !== null);
      if (again) again.focus();
    }
  }

  function renderList() {
    keepingFocus(renderLists);
  }

  function renderLists() {
    const groups = { pending: [], open: [], closed: [] };
    for (const summary of state.conversations.values()) (groups[summary.status] || groups.open).push(summary);
    for (const name of GROUPS) {
      const items = groups[name].sort((a, b) => (sortKey(b) > sortKey(a) ? 1 : sortKey(b) < sortKey(a) ? -1 : b.id - a.id));
      const shown = name === 'closed' ? items.slice(0, CLOSED_SHOWN) : items;
      place($('list-' + name), shown.map(itemOf));
      $('n-' + name).textContent = String(items.length);
      $('none-' + name).hidden = items.length > 0;
    }
    for (const id of rendered.keys()) if (!state.conversations.has(id)) rendered.delete(id);
    const unread = [...state.conversations.values()].reduce((n, s) => n + (s.status === 'closed' ? 0 : s.unreadByAgents || 0), 0);
    document.title = (unread ? '(' + unread + ') ' : '') + t('dash.title') + ' · opensupp';
    renderVisitors(); // their buttons: start a chat, or go to the current one
  }

  // An inbox of hundreds: a line is drawn again only when what it shows changed, and moved
  // only when its place did (a new message touches one line, not the whole list).
  const rendered = new Map(); // conversation id -> { node, sig }

  function signature(summary) {
    const agent = summary.assignedUserId ? state.agents.get(summary.assignedUserId) : null;
    const last = summary.lastMessage;
    return [visitorName(summary.visitor), when(summary.lastMessageAt), last ? preview(last) : '',
      summary.status === 'closed' ? 0 : summary.unreadByAgents || 0, summary.assignedUserId || '',
      agent ? agent.nickname : '', summary.id === state.selected].join('\u0001');
  }

  function itemOf(summary) {
    const sig = signature(summary);
    const known = rendered.get(summary.id);
    if (known && known.sig === sig) return known.node;
    const node = item(summary);
    if (known && known.node.parentNode) known.node.replaceWith(node); // in its place: the others stay put
    rendered.set(summary.id, { node, sig });
    return node;
  }

  // makes the list's children exactly ``nodes``, in their order, moving only those out of place
  function place(list, nodes) {
    let cursor = list.firstChild;
    for (const node of nodes) {
      if (node === cursor) { cursor = cursor.nextSibling; continue; }
      list.insertBefore(node, cursor);
    }
    while (cursor) { const next = cursor.nextSibling; cursor.remove(); cursor = next; }
  }

  function item(summary) {
    const li = el('li');
    const button = el('button', 'conv-item');
    button.type = 'button';
    button.dataset.id = String(summary.id);
    button.dataset.focusKey = 'c' + summary.id;
    if (summary.id === state.selected) button.setAttribute('aria-current', 'true');
    const top = el('span', 'line');
    top.append(el('span', 'name', visitorName(summary.visitor)));
    top.append(el('span', 'time', when(summary.lastMessageAt)));
    button.append(top);
    const last = summary.lastMessage;
    const bottom = el('span', 'line');
    bottom.append(el('span', 'preview', last ? preview(last) : t('dash.noMessages')));
    const unread = summary.status === 'closed' ? 0 : summary.unreadByAgents || 0;
    if (unread) {
      const badge = el('span', 'unread', unread);
      badge.setAttribute('aria-label', t('dash.unread', { count: unread }));
      bottom.append(badge);
    }
    button.append(bottom);
    if (summary.assignedUserId) {
      const agent = state.agents.get(summary.assignedUserId);
      button.append(el('span', 'assigned', t('dash.assignedShort', { name: agent ? agent.nickname : '#' + summary.assignedUserId })));
    }
    button.addEventListener('click', () => select(summary.id, true));
    li.append(button);
    return li;
  }

  function preview(message) {
    const text = message.kind === 'system' ? systemText(message.text) : message.text;
    const prefix = message.kind === 'agent' || message.kind === 'trigger' ? (message.agentNick || '') + ': ' : '';
    const whole = prefix + text;
    return whole.length > 80 ? whole.slice(0, 79) + '…' : whole;
  }

  function systemText(code) {
    return Object.prototype.hasOwnProperty.call(S, 'system.' + code) ? S['system.' + code] : code;
  }

  // made once: toLocaleTimeString builds a formatter on every call, which an inbox of hundreds feels
  const TIME = new Intl.DateTimeFormat(boot.lang, { hour: '2-digit', minute: '2-digit' });
  const DAY = new Intl.DateTimeFormat(boot.lang, { day: 'numeric', month: 'short' });

  function when(iso) {
    if (!iso) return '';
    const date = new Date(iso);
    const today = new Date();
    const sameDay = date.getFullYear() === today.getFullYear() && date.getMonth() === today.getMonth()
      && date.getDate() === today.getDate();
    return (sameDay ? TIME : DAY).format(date);
  }

  // ------------------------------------------------------------------ a conversation

  function select(conversationId, userChose) {
    state.selected = conversationId;
    state.target = null;
    if (location.hash !== '#conversation-' + conversationId) history.replaceState(null, '', '#conversation-' + conversationId);
    if (userChose || !state.detail) $('dash').dataset.view = 'conversation'; // (not on a reconnect's reload)
    state.detail = null; // until it is read: what arrives meanwhile is kept in state.messages
    state.messages = new Map();
    renderList();
    getJSON('/dashboard/conversations/' + conversationId).then((data) => {
      if (!data || state.selected !== conversationId) return;
      state.detail = { conversation: data.conversation, visitor: data.visitor };
      for (const message of data.messages) state.messages.set(message.id, message);
      $('empty').hidden = true;
      $('conv').hidden = false;
      renderHead();
      renderVisitor();
      renderLog();
      setTyping(false);
      const summary = state.conversations.get(conversationId);
      if (summary) { summary.unreadByAgents = 0; renderList(); }
      if (data.conversation.unreadByAgents) markRead(conversationId);
      if (userChose) $('reply').focus();
    });
  }

  function markRead(conversationId, lastMessageId) {
    conn.send({ type: 'chat.read', conversationId, lastMessageId: lastMessageId || null });
  }

  function renderHead() {
    const { conversation, visitor } = state.detail;
    $('conv-title').textContent = visitorName(visitor);
    const status = $('conv-status');
    status.textContent = t('group.' + conversation.status + 'One');
    status.dataset.status = conversation.status;
    const notes = [];
    if (conversation.offline) notes.push(t('dash.offlineMessage'));
    if (conversation.rating) {
      notes.push(t('dash.rated', { value: conversation.rating.value }) + (conversation.rating.text ? ': ' + conversation.rating.text : ''));
    }
    $('conv-notes').textContent = notes.join(' · ');
    $('close-conv').hidden = conversation.status === 'closed' || conversation.status === 'new';
    $('assign').disabled = conversation.status === 'new';
    renderAssign();
  }

  function renderAssign() {
    const select = $('assign');
    const current = state.detail.conversation.assignedUserId;
    const options = [new Option(t('dash.nobody'), '')];
    for (const agent of state.agents.values()) {
      const label = agent.nickname + (agent.id === boot.user.id ? ' ' + t('dash.you') : '') + ' · ' + t('status.' + (agent.status || 'offline'));
      options.push(new Option(label, String(agent.id)));
    }
    select.replaceChildren(...options);
    select.value = current ? String(current) : '';
  }

  function renderVisitor() {
    const v = state.detail.visitor;
    const details = $('visitor-details');
    const rows = [['name', v.name], ['email', v.email], ['phone', v.phone], ['lang', v.lang], ['group', v.group],
      ['page', v.pageUrl], ['referrer', v.referrer], ['visits', v.visits], ['chats', v.chats],
      ['firstSeen', v.firstSeenAt && new Date(v.firstSeenAt).toLocaleString(boot.lang)],
      ['browser', v.userAgent]];
    details.replaceChildren();
    for (const [key, value] of rows) {
      if (value === null || value === undefined || value === '') continue;
      details.append(el('dt', '', t('visitor.' + key)), el('dd', '', value));
    }
    const variables = $('variables');
    variables.replaceChildren();
    const entries = Object.entries(v.variables || {});
    if (!entries.length) variables.append(el('dd', 'none', t('dash.noVariables')));
    for (const [key, value] of entries) {
      const labelled = value && typeof value === 'object';
      variables.append(el('dt', '', labelled && value.label ? value.label : key),
        el('dd', '', labelled ? String(value.value ?? '') : String(value)));
    }
  }

  function renderLog() {
    if (!state.detail) return;
    const log = $('log');
    const messages = [...state.messages.values()].sort((a, b) => a.id - b.id);
    log.replaceChildren(...messages.map(bubble));
    // a reply still waiting for its ack, unless the log already holds it (a fetch can bring it first)
    const stored = new Set(messages.map((m) => m.clientId).filter(Boolean));
    for (const [clientId, pending] of state.outbox) {
      if (pending.conversationId === state.selected && !stored.has(clientId)) {
        log.append(pendingBubble(clientId, pending.text));
      }
    }
    log.scrollTop = log.scrollHeight;
  }

  function bubble(message) {
    const li = el('div', 'msg ' + message.kind);
    li.dataset.id = String(message.id);
    if (message.kind === 'system') {
      li.textContent = systemText(message.text);
      return li;
    }
    const from = message.kind === 'visitor' ? visitorName(state.detail.visitor) : message.agentNick || t('dash.agent');
    const head = el('span', 'from', from);
    head.append(el('span', 'time', ' · ' + when(message.createdAt)));
    li.append(head, el('span', 'text', message.text));
    return li;
  }

  function pendingBubble(clientId, text) {
    const li = el('div', 'msg agent pending');
    li.dataset.client = clientId;
    li.append(el('span', 'from', boot.user.nickname), el('span', 'text', text));
    return li;
  }

  function showMessage(message) {
    const log = $('log');
    // the reply's pending bubble goes even when the message is known already (a fetch brought it first)
    const pending = message.clientId && log.querySelector('.pending[data-client="' + CSS.escape(message.clientId) + '"]');
    if (pending) pending.remove();
    if (state.messages.has(message.id)) return;
    state.messages.set(message.id, message);
    if (!state.detail) return; // being read: renderLog shows it
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 40;
    const newest = Math.max(0, ...[...state.messages.keys()].filter((id) => id !== message.id));
    if (message.id > newest) {
      const before = log.querySelector('.pending');
      log.insertBefore(bubble(message), before);
    } else {
      renderLog();
    }
    if (atEnd) log.scrollTop = log.scrollHeight;
  }

  // ------------------------------------------------------------------ the agent's actions

  let sent = 0;

  function sendMessage(conversationId, text, clientId) {
    state.outbox.set(clientId, { conversationId, text });
    conn.send({ type: 'chat.message', conversationId, clientId, text }, (reply) => {
      if (reply.type !== 'ack') {
        if (reply.code !== 'unavailable' && reply.code !== 'rate_limited') state.outbox.delete(clientId);
        notice(reply.message);
        if (conversationId === state.selected) renderLog();
        return;
      }
      state.outbox.delete(clientId);
      const { message, conversation } = reply.data;
      if (conversationId === state.selected && state.detail) {
        Object.assign(state.detail.conversation, conversation);
        renderHead();
      }
      messageArrived(conversationId, message);
      changeConversation(conversationId, { status: conversation.status, assignedUserId: conversation.assignedUserId });
    });
  }

  function composerSubmit(event) {
    event.preventDefault();
    const input = $('reply');
    const text = input.value.trim();
    if (!text || !(state.selected || state.target)) return;
    const clientId = 'd-' + Date.now() + '-' + (++sent);
    input.value = '';
    stopTyping();
    $('log').append(pendingBubble(clientId, text));
    $('log').scrollTop = $('log').scrollHeight;
    if (state.selected) sendMessage(state.selected, text, clientId);
    else startWith(state.target, text, clientId);
  }

  // a proactive chat: the agent writes first to a visitor on the site (chat.message with vid)
  function startChat(visitor) {
    const current = currentOf(visitor.vid);
    if (current) { select(current.id, true); return; }
    state.selected = null;
    state.target = visitor.vid;
    state.detail = { conversation: { id: null, status: 'new', assignedUserId: null },
      visitor: Object.assign({ variables: {} }, visitor) };
    state.messages = new Map();
    history.replaceState(null, '', location.pathname);
    $('dash').dataset.view = 'conversation';
    $('empty').hidden = true;
    $('conv').hidden = false;
    renderHead();
    renderVisitor();
    renderLog();
    renderList();
    $('reply').focus();
  }

  function currentOf(vid) {
    return [...state.conversations.values()].find((s) => s.vid === vid && s.status !== 'closed') || null;
  }

  function startWith(vid, text, clientId) {
    const sentTo = conn.send({ type: 'chat.message', vid, clientId, text }, (reply) => {
      if (reply.type !== 'ack') { notice(reply.message); renderLog(); return; }
      const { message, conversation } = reply.data;
      if (state.target === vid) state.target = null;
      messageArrived(conversation.id, message);
      select(conversation.id, true);
    });
    if (!sentTo) { notice(t('dash.disconnected')); renderLog(); }
  }

  function typing() {
    if (!state.selected) return;
    if (!$('reply').value.trim()) { stopTyping(); return; }
    const now = Date.now();
    if (now - state.typingSince < TYPING_EVERY) return;
    state.typingSince = now;
    conn.send({ type: 'chat.typing', conversationId: state.selected, is: true });
  }

  function stopTyping() {
    if (!state.typingSince || !state.selected) return;
    state.typingSince = 0;
    conn.send({ type: 'chat.typing', conversationId: state.selected, is: false });
  }

  function closeConversation() {
    const conversationId = state.selected;
    conn.send({ type: 'chat.close', conversationId }, (reply) => {
      if (reply.type !== 'ack') { notice(reply.message); return; }
      changeConversation(conversationId, reply.data.conversation);
    });
  }

  function assign() {
    const conversationId = state.selected;
    const value = $('assign').value;
    conn.send({ type: 'chat.assign', conversationId, userId: value ? Number(value) : null }, (reply) => {
      if (reply.type !== 'ack') { notice(reply.message); renderAssign(); return; }
      changeConversation(conversationId, { assignedUserId: reply.data.conversation.assignedUserId });
    });
  }

  function setStatus() {
    const status = $('presence').value;
    state.status = status;
    conn.send({ type: 'agent.update', status });
    const me = state.agents.get(boot.user.id);
    if (me) me.status = status;
    renderAgents();
    fetch('/dashboard/status', { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': boot.csrf },
      body: JSON.stringify({ status }) }).catch(() => {});
  }

  // ------------------------------------------------------------------ people

  function renderAgents() {
    const list = $('agents');
    list.replaceChildren(...[...state.agents.values()].map((agent) => {
      const li = el('li', 'person');
      const dot = el('span', 'dot ' + (agent.status || 'offline'));
      dot.setAttribute('aria-hidden', 'true');
      li.append(dot, el('span', 'name', agent.nickname + (agent.id === boot.user.id ? ' ' + t('dash.you') : '')),
        el('span', 'state', t('status.' + (agent.status || 'offline'))));
      return li;
    }));
  }

  function renderVisitors() {
    keepingFocus(renderVisitorList);
  }

  function renderVisitorList() {
    const list = $('visitors');
    const visitors = [...state.visitors.values()].slice(0, 200);
    $('n-visitors').textContent = String(state.visitors.size);
    if (!visitors.length) { list.replaceChildren(el('li', 'none', t('dash.noVisitors'))); return; }
    list.replaceChildren(...visitors.map((v) => {
      const li = el('li', 'person visitor-now');
      li.append(el('span', 'name', visitorName(v)));
      const where = v.pageTitle || v.pageUrl;
      if (where) li.append(el('span', 'where', where));
      const facts = [];
      if (v.referrer) facts.push(t('visitor.from', { referrer: v.referrer }));
      if (v.visits) facts.push(t('visitor.visitsN', { count: v.visits }));
      if (v.lang) facts.push(v.lang);
      if (facts.length) li.append(el('span', 'facts', facts.join(' · ')));
      const chatting = currentOf(v.vid);
      const start = el('button', 'quiet start', t(chatting ? 'dash.goToChat' : 'dash.startChat'));
      start.type = 'button';
      start.dataset.focusKey = 'v' + v.vid;
      start.setAttribute('aria-label', t(chatting ? 'dash.goToChatWith' : 'dash.startChatWith', { name: visitorName(v) }));
      start.addEventListener('click', () => startChat(v));
      li.append(start);
      return li;
    }));
  }

  // ------------------------------------------------------------------ status line, alerts

  function setConnection(which) {
    const node = $('connection');
    node.dataset.state = which;
    node.textContent = which === 'online'
      ? t(state.account === 'online' ? 'dash.accountOnline' : 'dash.accountOffline')
      : t(which === 'connecting' ? 'dash.connecting' : 'dash.disconnected');
  }

  let noticeTimer = null;

  function notice(message) {
    if (!message) return;
    const node = $('connection');
    node.dataset.state = 'error';
    node.textContent = message;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => setConnection(state.connected ? 'online' : 'offline'), 6000);
  }

  let audio = null;

  function renderAlerts() {
    const button = $('alerts');
    button.setAttribute('aria-pressed', state.alerts ? 'true' : 'false');
    button.textContent = t(state.alerts ? 'dash.alertsOn' : 'dash.alertsOff');
  }

  function toggleAlerts() {
    state.alerts = !state.alerts;
    localStorage.setItem('opensupp.alerts', state.alerts ? '1' : '0');
    if (state.alerts) {
      const Context = window.AudioContext || window.webkitAudioContext;
      if (Context && !audio) audio = new Context();
      if (audio) audio.resume();
      if ('Notification' in window && Notification.permission === 'default') Notification.requestPermission();
    }
    renderAlerts();
  }

  function beep() {
    if (!audio || audio.state !== 'running') return;
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.3);
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start();
    oscillator.stop(audio.currentTime + 0.3);
  }

  function alertAbout(summary, message, isNew) {
    if (!state.alerts || !document.hidden) return;
    beep();
    if (!('Notification' in window) || Notification.permission !== 'granted') return;
    const title = isNew ? t('dash.newConversation', { name: visitorName(summary.visitor) })
      : t('dash.newMessage', { name: visitorName(summary.visitor) });
    const note = new Notification(title, { body: message.text.slice(0, 200), tag: 'conversation-' + summary.id });
    note.onclick = () => { window.focus(); select(summary.id, true); note.close(); };
  }

  // ------------------------------------------------------------------ search

  // Each search (and Clear) takes a new number; an answer shows only if it is
  // still the latest one, so a slow answer to an older query never replaces a
  // newer one's, nor reopens the results after Clear.
  let searchSeq = 0;

  function search(event) {
    event.preventDefault();
    const q = $('search').value.trim();
    if (q.length < 2) { $('search').focus(); return; }
    const seq = ++searchSeq;
    getJSON('/dashboard/search?q=' + encodeURIComponent(q)).then((data) => {
      if (!data || seq !== searchSeq) return;
      $('results').hidden = false;
      $('groups').hidden = true;
      $('results-note').textContent = t('dash.resultsN', { count: data.conversations.length, q: data.q });
      $('list-results').replaceChildren(...data.conversations.map(item));
    });
  }

  function clearSearch() {
    searchSeq += 1;
    $('search').value = '';
    $('results').hidden = true;
    $('groups').hidden = false;
    $('search').focus();
  }

  // ------------------------------------------------------------------ start

  function start() {
    $('composer').addEventListener('submit', composerSubmit);
    $('reply').addEventListener('input', typing);
    $('reply').addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) composerSubmit(event);
    });
    $('reply').addEventListener('blur', stopTyping);
    $('close-conv').addEventListener('click', closeConversation);
    $('assign').addEventListener('change', assign);
    $('presence').addEventListener('change', setStatus);
    $('alerts').addEventListener('click', toggleAlerts);
    $('search-form').addEventListener('submit', search);
    $('results-clear').addEventListener('click', clearSearch);
    $('back').addEventListener('click', () => {
      $('dash').dataset.view = 'list';
      const current = document.querySelector('.conv-item[aria-current="true"]');
      if (current) current.focus();
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && state.selected) {
        const summary = state.conversations.get(state.selected);
        if (summary && summary.unreadByAgents) { summary.unreadByAgents = 0; markRead(state.selected); renderList(); }
      }
    });
    renderAlerts();
    renderAgents();
    renderVisitors();
    conn.open();
  }

  window.opensuppDashboard = { state, conn, select, audioState: () => (audio ? audio.state : null) };
  start();
})();
