/* opensupp chat box: the page inside the loader's iframe (/chat/box?key=...&embed=1) or on
 * its own (/widget/KEY). It speaks docs/chat-protocol.md to the server: a WebSocket to
 * /chat/ws/visitor, falling back to long-polling /chat/poll/visitor; every message it sends
 * has a clientId and stays in an outbox until its ack (re-sent with the same clientId after
 * a reconnect); every (re)connect sends "after", the highest message id seen; each id is
 * shown once. Everything a person wrote is put on the page with textContent, never as HTML.
 *
 * In the iframe it talks to the loader with postMessage: only to and from the parent
 * window, the host origin and the nonce the loader put in the frame's #fragment.
 */
(function () {
  'use strict';
  var d = document, w = window;
  var cfg = JSON.parse(d.getElementById('opensupp-config').textContent);
  var $ = function (id) { return d.getElementById(id); };
  var html = d.documentElement;

  // ------------------------------------------------------------------ the host page
  var frag = {};
  (w.location.hash || '').replace(/^#/, '').split('&').forEach(function (part) {
    var i = part.indexOf('=');
    if (i > 0) { try { frag[part.slice(0, i)] = decodeURIComponent(part.slice(i + 1)); } catch (e) { /* ignored */ } }
  });
  var embed = cfg.mode === 'embed' && w.parent !== w && /^[0-9a-f]{32}$/.test(frag.nonce || '') && !!frag.host;
  var hostOrigin = frag.host || '';
  if (cfg.mode === 'embed' && !embed) { cfg.mode = 'page'; }
  html.className = 'mode-' + cfg.mode;
  // the account's look (its admins' choice); the page's options (the loader's init) win over it
  var look = cfg.look || {};
  if (look.position === 'left') { html.classList.add('left'); }

  function toHost(message) {
    if (!embed) { return; }
    message.opensupp = 1;
    message.nonce = frag.nonce;
    try { w.parent.postMessage(message, hostOrigin === 'null' ? '*' : hostOrigin); } catch (e) { /* gone */ }
  }

  // ------------------------------------------------------------------ texts
  var lang = cfg.lang;
  function strings() { return cfg.strings[lang] || cfg.strings[lang.split('-')[0]] || cfg.strings.en; }
  function t(name, values) {
    var s = strings()[name] || cfg.strings.en[name] || name;
    return s.replace(/\{(\w+)\}/g, function (_, k) { return values && values[k] != null ? String(values[k]) : ''; });
  }
  function translate() {
    html.lang = lang;
    d.querySelectorAll('[data-t]').forEach(function (el) { el.textContent = t(el.getAttribute('data-t')); });
    d.querySelectorAll('[data-t-label]').forEach(function (el) { el.setAttribute('aria-label', t(el.getAttribute('data-t-label'))); });
    d.querySelectorAll('[data-t-placeholder]').forEach(function (el) { el.setAttribute('placeholder', t(el.getAttribute('data-t-placeholder'))); });
    renderStatus();
    renderBadge();
    renderPrivacy();
  }

  // ------------------------------------------------------------------ colour (WCAG contrast)
  function luminance(hex) {
    var rgb = [1, 3, 5].map(function (i) {
      var c = parseInt(hex.substr(i, 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
  }
  function setColor(hex) {
    if (!/^#[0-9a-f]{6}$/i.test(hex || '')) { return; }
    var l = luminance(hex);
    // the text colour with the higher contrast ratio: one of the two is always >= 4.58:1 (AA)
    var onWhite = 1.05 / (l + 0.05), onBlack = (l + 0.05) / 0.05;
    html.style.setProperty('--c', hex);
    html.style.setProperty('--ct', onWhite >= onBlack ? '#ffffff' : '#000000');
  }
  if (look.color) { setColor(look.color); }

  // ------------------------------------------------------------------ state
  var launcher = $('launcher'), pane = $('pane'), log = $('log'), input = $('input'), badge = $('badge');
  var state = {
    open: cfg.mode === 'page',
    mobile: false,
    online: null,          // null: not known yet
    connected: false,
    everConnected: false,
    visitor: { name: null, email: null, phone: null, group: null, variables: null },
    conversation: null,
    agents: [],
    agent: null,           // the one shown in the header (assigned, else the first online)
    options: { ratingEnabled: true, requireLogin: false, privacyNoticeEnabled: false, privacyNoticeUrl: '',
      privacyNoticeCheckRequired: false },
    token: null,
    page: { url: '', title: '', referrer: '' },
    shown: {},             // message id -> element
    pending: {},           // clientId -> element of a message not acked yet
    lastId: 0,
    unread: 0,
    offlineSent: false,
    rated: false,
    loggedIn: false,
    talked: {},            // conversation id -> true once a message of it is shown
    transcribed: {}        // conversation id -> true once its transcript was sent
  };
  // the box's memory between pages: on the host page's cookies (through the loader) in the iframe,
  // whose own storage a browser may partition or refuse; in localStorage as a page of its own
  var store = embed ? memory() : storage();
  var SEEN = 'opensupp.seen.' + cfg.key, READ = 'opensupp.read.' + cfg.key, TOKEN = 'opensupp.token.' + cfg.key;
  var seenBefore = Number(store.get(SEEN)) || 0;  // messages up to here were shown on an earlier page
  var readUpTo = Number(store.get(READ)) || 0;

  function memory() {
    var m = {};
    return { get: function (k) { return m[k] == null ? null : m[k]; }, set: function (k, v) { m[k] = String(v); }, del: function (k) { delete m[k]; } };
  }
  function persist() { toHost({ type: 'seen', seen: (Number(store.get(SEEN)) || 0) + '.' + readUpTo }); }

  function storage() {
    try {
      var s = w.localStorage, probe = '__opensupp';
      s.setItem(probe, '1'); s.removeItem(probe);
      return { get: function (k) { return s.getItem(k); }, set: function (k, v) { try { s.setItem(k, String(v)); } catch (e) { /* full */ } },
        del: function (k) { try { s.removeItem(k); } catch (e) { /* blocked */ } } };
    } catch (e) {
      return memory();
    }
  }

  // ------------------------------------------------------------------ the connection
  var conn = (function () {
    // this page's address without /chat/box or /widget[/KEY]: opensupp's base (a path prefix kept)
    var prefix = w.location.pathname.replace(/\/(chat\/box|widget(\/[^/]*)?)\/?$/, '');
    var secure = w.location.protocol === 'https:';
    var wsUrl = (secure ? 'wss://' : 'ws://') + w.location.host + prefix + '/chat/ws/visitor?key=' + encodeURIComponent(cfg.key);
    var pollUrl = prefix + '/chat/poll/visitor?key=' + encodeURIComponent(cfg.key);
    var ws = null, usePoll = false, wsFailures = 0, gotFrame = false, stopped = false;
    var refs = 0, waiting = {}, backoff = 1000, timer = null, heartbeat = null, pongTimer = null, lastSent = 0;
    var sid = null, pollBusy = false, sendQueue = [], sending = false, pollGen = 0;
    var outbox = [];  // [{clientId, text, offline, ref}] until acked
    var connectedCb = null;

    function ref() { refs += 1; return 'r' + refs; }

    function connectFrame() {
      var v = state.visitor;
      return { type: 'visitor.connect', ref: ref(), token: state.token, after: state.lastId || null,
        name: v.name, email: v.email, phone: v.phone, group: v.group, variables: v.variables, lang: lang,
        pageUrl: state.page.url || null, pageTitle: state.page.title || null, referrer: state.page.referrer || null };
    }

    function start(onConnected) {
      connectedCb = onConnected;
      stopped = false;
      open();
    }

    function open() {
      clearTimeout(timer);
      if (stopped) { return; }
      if (usePoll || !('WebSocket' in w)) { usePoll = true; pollConnect(); return; }
      gotFrame = false;
      try { ws = new WebSocket(wsUrl); } catch (e) { wsFailures += 1; usePoll = wsFailures >= 2; later(); return; }
      var sock = ws;
      sock.onopen = function () { if (sock === ws) { rawSend(connectFrame(), true); } };
      sock.onmessage = function (event) {
        if (sock !== ws) { return; }
        var frame;
        try { frame = JSON.parse(event.data); } catch (e) { return; }
        gotFrame = true;
        wsFailures = 0;
        receive(frame);
      };
      sock.onclose = function (event) {
        if (sock !== ws) { return; }
        ws = null;
        lost();
        if (event.code === 4004) { stopped = true; return; }
        if (!gotFrame) {
          wsFailures += 1;
          if (wsFailures >= 2) { usePoll = true; backoff = 0; }
        }
        later(event.code === 1013 ? 30000 : event.code === 1008 ? 5000 : event.code === 1001 ? 100 : null);
      };
      sock.onerror = function () { /* onclose follows */ };
    }

    function lost() {
      clearInterval(heartbeat); clearTimeout(pongTimer);
      if (state.connected) { state.connected = false; renderStatus(); }
      // an unanswered frame will not be answered: its retry comes with the reconnect
      waiting = {};
    }

    function later(ms) {
      clearTimeout(timer);
      if (stopped) { return; }
      var wait = ms != null ? ms : backoff;
      backoff = Math.min(30000, Math.max(1000, backoff * 2));
      timer = setTimeout(open, wait + Math.random() * Math.min(1000, wait / 2));
    }

    function connected(data) {
      backoff = 1000;
      state.connected = true;
      state.everConnected = true;
      if (!usePoll) {
        clearInterval(heartbeat);
        heartbeat = setInterval(function () {
          if (Date.now() - lastSent < 24000) { return; }
          var r = ref();
          rawSend({ type: 'ping', ref: r });
          clearTimeout(pongTimer);
          pongTimer = setTimeout(function () { if (ws) { try { ws.close(); } catch (e) { /* closed */ } } }, 10000);
        }, 5000);
      }
      connectedCb(data);
      // what waited for the connection: the outbox, in order, with the same clientIds
      outbox.forEach(function (item) { sendMessage(item); });
      // a box opened before it was connected (chat:open at load, or open on the last page): onopen
      if (state.open && cfg.mode !== 'page') { request({ type: 'chat.open' }); }
    }

    function receive(frame) {
      if (!frame || typeof frame !== 'object') { return; }
      if (frame.type === 'pong') { clearTimeout(pongTimer); return; }
      if ((frame.type === 'ack' || frame.type === 'server.error') && frame.ref != null && waiting[frame.ref]) {
        var cb = waiting[frame.ref];
        delete waiting[frame.ref];
        cb(frame);
        return;
      }
      if (frame.type === 'server.error') {
        if (frame.code === 'unknown_account') { stopped = true; }
        if (frame.code === 'session_expired') { sid = null; lost(); later(0); }
        return;
      }
      events(frame);
    }

    // one frame; cb gets its ack or error. Frames before the connect's ack wait for it,
    // except the connect itself.
    function rawSend(frame, isConnect) {
      if (isConnect) {
        waiting[frame.ref] = function (reply) {
          if (reply.type === 'ack') { connected(reply.data || {}); } else if (reply.code === 'unknown_account') { stopped = true; }
        };
      }
      lastSent = Date.now();
      if (usePoll) { sendQueue.push(frame); flush(); return true; }
      if (!ws || ws.readyState !== 1) { return false; }
      try { ws.send(JSON.stringify(frame)); return true; } catch (e) { return false; }
    }

    function request(frame, cb) {
      if (!state.connected) { if (cb) { cb({ type: 'server.error', code: 'not_connected' }); } return; }
      frame.ref = ref();
      if (cb) { waiting[frame.ref] = cb; }
      if (!rawSend(frame) && cb) { delete waiting[frame.ref]; cb({ type: 'server.error', code: 'not_connected' }); }
    }

    function sendMessage(item) {
      if (!state.connected) { return; }
      var frame = { type: 'chat.message', clientId: item.clientId, text: item.text };
      if (item.offline) { frame.offline = true; }
      request(frame, function (reply) {
        if (reply.type === 'ack') {
          var i = outbox.indexOf(item);
          if (i >= 0) { outbox.splice(i, 1); }
          if (reply.data && reply.data.conversation) { setConversation(reply.data.conversation); }
          if (reply.data && reply.data.message) { showMessage(reply.data.message, true); }
          if (item.done) { item.done(null); }
        } else if (reply.code === 'rate_limited' || reply.code === 'unavailable') {
          setTimeout(function () { if (outbox.indexOf(item) >= 0) { sendMessage(item); } },
            Math.max(1, Number(reply.retryAfter) || 2) * 1000);
        } else if (reply.code !== 'not_connected') {
          var i2 = outbox.indexOf(item);
          if (i2 >= 0) { outbox.splice(i2, 1); }
          if (item.done) { item.done(reply); }
        }
      });
    }

    function queueMessage(item) {
      outbox.push(item);
      sendMessage(item);
    }

    // ---------------------------------------------------------------- long-poll
    function post(body, cb) {
      var x = new XMLHttpRequest();
      x.open('POST', pollUrl, true);
      x.setRequestHeader('Content-Type', 'application/json');
      x.timeout = 40000;
      x.onload = function () {
        var data = null;
        try { data = JSON.parse(x.responseText); } catch (e) { /* not JSON */ }
        cb(x.status, data, x);
      };
      x.onerror = x.ontimeout = function () { cb(0, null, x); };
      x.send(JSON.stringify(body));
    }

    function answer(status, data, x) {
      if (status === 404) { stopped = true; return false; }
      if (status !== 200 || !data) {
        lost(); sid = null;
        var after = status === 429 ? (Number(x.getResponseHeader('Retry-After')) || 30) * 1000 : null;
        later(after);
        return false;
      }
      if (data.sid) { sid = data.sid; } else if (data.sid === null) { sid = null; }
      (data.frames || []).forEach(receive);
      return true;
    }

    function pollConnect() {
      sid = null; sendQueue = []; sending = false;
      var frame = connectFrame();
      rawSendPoll(frame);
      post({ sid: null, frames: [frame] }, function (status, data, x) {
        // the connect's ack (in this answer) may have queued frames: they go once the sid is known
        if (answer(status, data, x) && sid) { poll(); flush(); } else if (status === 200 && !stopped) { later(); }
      });
    }
    function rawSendPoll(frame) {
      waiting[frame.ref] = function (reply) {
        if (reply.type === 'ack') { connected(reply.data || {}); } else if (reply.code === 'unknown_account') { stopped = true; }
      };
    }

    function poll() {
      if (!sid || stopped) { return; }
      var gen = ++pollGen, mySid = sid;
      post({ sid: sid, frames: [] }, function (status, data, x) {
        if (gen !== pollGen || mySid !== sid) { return; }
        if (answer(status, data, x) && sid) { poll(); }
      });
    }

    function flush() {
      if (sending || !sid || !sendQueue.length) { return; }
      sending = true;
      var frames = sendQueue.splice(0, 16), mySid = sid;
      post({ sid: sid, frames: frames }, function (status, data, x) {
        sending = false;
        if (mySid !== sid) { return; }
        if (answer(status, data, x)) { flush(); }
      });
    }

    function restart() {
      // a new visitor (logout): drop the socket and everything in flight, connect afresh
      outbox = [];
      waiting = {};
      sid = null;
      pollGen += 1;
      if (ws) { var old = ws; ws = null; try { old.close(); } catch (e) { /* closed */ } }
      lost();
      open();
    }

    return { start: start, request: request, queueMessage: queueMessage, restart: restart,
      mode: function () { return usePoll ? 'poll' : 'ws'; } };
  })();

  // ------------------------------------------------------------------ server events
  function events(frame) {
    switch (frame.type) {
      case 'chat.message_received':
        if (frame.message) { showMessage(frame.message, false); }
        break;
      case 'chat.agent_typing':
        showTyping(frame.is ? (frame.agent && frame.agent.nickname) || t('agent') : null);
        break;
      case 'chat.closed':
        if (state.conversation && frame.conversationId === state.conversation.id) {
          state.conversation.status = 'closed';
          state.rated = false;
        }
        showTyping(null);
        system(t('closed'));
        renderForms();
        break;
      case 'chat.contact_read':
        if (frame.by && frame.by.type === 'visitor' && frame.lastMessageId) { markRead(frame.lastMessageId); }
        break;
      case 'chat.assigned':
        state.agent = frame.agent || null;
        renderAgent();
        break;
      case 'account.updated':
        setOnline(frame.status === 'online');
        break;
      case 'agent.updated':
        state.agents.forEach(function (a) {
          if (a.id === frame.id && frame.changes) { Object.keys(frame.changes).forEach(function (k) { a[k] = frame.changes[k]; }); }
        });
        if (state.agent && state.agent.id === frame.id && frame.changes) {
          Object.keys(frame.changes).forEach(function (k) { state.agent[k] = frame.changes[k]; });
        }
        renderAgent();
        break;
      case 'visitor.updated':
        if (frame.changes) { Object.keys(frame.changes).forEach(function (k) { if (k in state.visitor) { state.visitor[k] = frame.changes[k]; } }); }
        break;
    }
  }

  function onConnected(data) {
    if (data.token) {
      state.token = data.token;
      if (embed) { toHost({ type: 'visitor', token: data.token, vid: data.vid }); } else { store.set(TOKEN, data.token); }
    }
    if (data.visitor) {
      ['name', 'email', 'phone', 'group'].forEach(function (k) { if (data.visitor[k] != null) { state.visitor[k] = data.visitor[k]; } });
      state.loggedIn = !!(data.visitor.name && data.visitor.email);
    }
    if (data.account) {
      state.agents = data.account.agents || [];
      setOnline(data.account.status === 'online');
    }
    if (data.conversation) { setConversation(data.conversation); }
    renderAgent();
    renderStatus();
    renderForms();
  }

  function setConversation(c) {
    state.conversation = c;
    if (c.assignedUserId != null) {
      state.agents.forEach(function (a) { if (a.id === c.assignedUserId) { state.agent = a; } });
    }
    renderForms();
  }

  function setOnline(online) {
    if (state.online === online) { return; }
    state.online = online;
    toHost({ type: 'status', online: online });
    renderStatus();
    renderForms();
  }

  // ------------------------------------------------------------------ messages
  function showMessage(m, own) {
    if (!m || typeof m.id !== 'number') { return; }
    if (m.conversationId && !state.talked[m.conversationId]) { state.talked[m.conversationId] = true; renderTranscript(); }
    var el = state.shown[m.id];
    if (!el && m.clientId && state.pending[m.clientId]) {
      el = state.pending[m.clientId];
      delete state.pending[m.clientId];
      el.classList.remove('pending');
      el.parentNode.removeChild(el);
      insert(el, m.id);  // where the server's order puts it (after what others said meanwhile)
      el.setAttribute('data-id', m.id);
      state.shown[m.id] = el;
      toHost({ type: 'message_sent', message: publicMessage(m) });
      remember(m.id);
      return;
    }
    if (el) { return; } // de-duplicated: an ack and its echo, a replay of what is shown
    el = bubble(m);
    state.shown[m.id] = el;
    insert(el, m.id);
    var fresh = m.id > seenBefore;
    remember(m.id);
    if (m.kind === 'visitor') {
      if (fresh && own) { toHost({ type: 'message_sent', message: publicMessage(m) }); }
      return;
    }
    if (m.kind === 'agent' || m.kind === 'trigger') {
      showTyping(null);
      if (fresh) { toHost({ type: 'message_received', message: publicMessage(m) }); }
      if (m.id > readUpTo) {
        if (state.open && !d.hidden) { markRead(m.id, true); } else { state.unread += 1; renderBadge(); }
      }
    }
  }

  function publicMessage(m) {
    return { id: m.id, type: m.kind === 'visitor' ? 'contact' : m.kind, content: { type: 'text', text: m.text },
      agentNick: m.agentNick || null, createdAt: m.createdAt || null };
  }

  function remember(id) {
    if (id > state.lastId) { state.lastId = id; }
    if (id > (Number(store.get(SEEN)) || 0)) { store.set(SEEN, id); persist(); }
  }

  function bubble(m) {
    var p = d.createElement('p');
    var kind = m.kind === 'visitor' || m.kind === 'agent' || m.kind === 'trigger' ? m.kind : 'system';
    p.className = 'msg ' + kind;
    if (m.id != null) { p.setAttribute('data-id', m.id); }
    var from = d.createElement('span');
    from.className = kind === 'visitor' ? 'from sr-only' : 'from';
    from.textContent = kind === 'visitor' ? t('you') : kind === 'system' ? '' : (m.agentNick || agentName(m.userId) || t('agent'));
    if (from.textContent) { p.appendChild(from); }
    p.appendChild(d.createTextNode(String(m.text == null ? '' : m.text)));
    return p;
  }

  function insert(el, id) {
    var items = log.querySelectorAll('[data-id]'), before = null, i;
    for (i = items.length - 1; i >= 0; i--) {
      if (Number(items[i].getAttribute('data-id')) > id) { before = items[i]; } else { break; }
    }
    if (!before) { before = log.querySelector('.msg.pending'); }  // what is still being sent comes last
    if (before && before !== el) { log.insertBefore(el, before); } else { log.appendChild(el); }
    log.scrollTop = log.scrollHeight;
  }

  function system(text) {
    var p = d.createElement('p');
    p.className = 'msg system';
    p.textContent = text;
    log.appendChild(p);
    log.scrollTop = log.scrollHeight;
  }

  function agentName(userId) {
    var name = null;
    state.agents.forEach(function (a) { if (a.id === userId) { name = a.nickname; } });
    return name;
  }

  var clientCounter = 0;
  function send(text, offline, done) {
    text = String(text || '').trim();
    if (!text) { return false; }
    if (Array.from(text).length > 2000) { text = Array.from(text).slice(0, 2000).join(''); }
    clientCounter += 1;
    var clientId = 'c-' + Date.now() + '-' + clientCounter + '-' + Math.random().toString(36).slice(2, 8);
    var el = bubble({ kind: 'visitor', text: text });
    el.classList.add('pending');
    state.pending[clientId] = el;
    log.appendChild(el);
    log.scrollTop = log.scrollHeight;
    conn.queueMessage({ clientId: clientId, text: text, offline: !!offline, done: function (err) {
      if (err) {
        el.classList.add('failed');
        el.appendChild(d.createTextNode(' (' + t('error') + ')'));
      }
      if (done) { done(err); }
    } });
    return true;
  }

  function markRead(id, tell) {
    if (id > readUpTo) { readUpTo = id; store.set(READ, id); persist(); }
    state.unread = 0;
    renderBadge();
    if (tell) { conn.request({ type: 'chat.read', lastMessageId: id }); }
  }

  // ------------------------------------------------------------------ typing
  var typingTimer = null, lastTyping = 0, typingNow = false;
  function showTyping(name) {
    var el = $('typing');
    clearTimeout(typingTimer);
    if (!name) { el.hidden = true; el.textContent = ''; return; }
    el.textContent = t('typing', { name: name });
    el.hidden = false;
    typingTimer = setTimeout(function () { showTyping(null); }, 10000);
  }
  function visitorTyping() {
    var has = input.value.trim() !== '';
    if (has && (!typingNow || Date.now() - lastTyping > 2000)) {
      typingNow = true; lastTyping = Date.now();
      conn.request({ type: 'chat.typing', is: true, text: input.value.slice(0, 200) });
    } else if (!has && typingNow) {
      typingNow = false;
      conn.request({ type: 'chat.typing', is: false });
    }
  }

  // ------------------------------------------------------------------ rendering
  function renderStatus() {
    var el = $('status');
    var key = cfg.preview ? 'online' :  // the admin pages' preview never connects: it shows the usual state
      !state.connected ? (state.everConnected ? 'reconnecting' : 'connecting') : state.online ? 'online' : 'offline';
    el.setAttribute('data-t', key);
    el.textContent = t(key);
  }

  function renderBadge() {
    var n = state.open ? 0 : state.unread;
    badge.hidden = n === 0;
    badge.textContent = n > 99 ? '99+' : String(n);
    var label = t('open') + (n ? ', ' + t('unread', { n: n }) : '');
    launcher.setAttribute('aria-label', label);
  }

  function renderAgent() {
    var a = state.agent;
    if (!a) { state.agents.forEach(function (x) { if (!a && x.status === 'online') { a = x; } }); }
    $('agent-name').textContent = a && a.nickname ? a.nickname : cfg.title;
    var av = $('avatar');
    while (av.firstChild) { av.removeChild(av.firstChild); }
    // only an avatar of this origin: the box asks no other host for anything (the CSP agrees)
    if (a && typeof a.avatar === 'string' && /^\/[^/\\]/.test(a.avatar)) {
      var img = d.createElement('img');
      img.alt = '';
      img.src = a.avatar;
      av.appendChild(img);
    } else {
      av.textContent = (Array.from((a && a.nickname) || cfg.title || '?')[0] || '?').toUpperCase();
    }
  }

  function renderPrivacy() {
    d.querySelectorAll('.privacy').forEach(function (box) {
      while (box.firstChild) { box.removeChild(box.firstChild); }
      if (box.id !== 'compose-privacy') { box.hidden = !state.options.privacyNoticeEnabled; }
      if (!state.options.privacyNoticeEnabled) { return; }
      var p = d.createElement('p');
      p.textContent = t('privacy') + ' ';
      if (state.options.privacyNoticeUrl) {
        var a = d.createElement('a');
        a.href = state.options.privacyNoticeUrl;
        a.target = '_blank';
        a.rel = 'noopener noreferrer';
        a.textContent = t('privacyLink');
        p.appendChild(a);
      }
      box.appendChild(p);
      if (state.options.privacyNoticeCheckRequired) {
        var label = d.createElement('label'), check = d.createElement('input');
        check.type = 'checkbox';
        check.name = 'agree';
        check.required = true;
        label.appendChild(check);
        label.appendChild(d.createTextNode(t('privacyAgree')));
        box.appendChild(label);
      }
    });
  }

  // which of the forms shows: the offline form, the introduction, the rating, or the composer
  function renderForms() {
    var c = state.conversation;
    var active = c && c.status !== 'closed';
    var offline = state.online === false && !active && !state.offlineSent;
    var login = !offline && state.options.requireLogin && !state.loggedIn && !active;
    var rating = !offline && c && c.status === 'closed' && state.options.ratingEnabled && !state.rated && !c.rating;
    $('offline').hidden = !offline;
    $('login').hidden = !login;
    ['offline', 'login'].forEach(function (id) {  // what the host page said of the visitor, as the fields' text
      var form = $(id);
      if (form.hidden) { return; }
      ['name', 'email'].forEach(function (k) {
        if (!form.elements[k].value && state.visitor[k]) { form.elements[k].value = String(state.visitor[k]); }
      });
    });
    $('rating').hidden = !rating;
    $('compose').hidden = offline || login || (state.online === false && !active);
    $('compose-privacy').hidden = $('compose').hidden || !!active || !state.options.privacyNoticeEnabled;
    $('end').hidden = !active;
    renderTranscript();
  }

  // "E-mail me this conversation": once the conversation has messages, until its transcript is sent
  function renderTranscript() {
    var c = state.conversation;
    var can = !!(c && state.talked[c.id] && !state.transcribed[c.id]);
    $('transcript').hidden = !can;
    if (!can) { $('transcript-form').hidden = true; $('transcript').setAttribute('aria-expanded', 'false'); }
  }

  function setOpen(open, fromHost, focus) {
    if (cfg.mode === 'page') { open = true; }
    // the visitor opens the box: the server's onopen triggers (not the preview page, always open)
    if (open && !state.open && cfg.mode !== 'page') { conn.request({ type: 'chat.open' }); }
    state.open = open;
    launcher.hidden = cfg.mode === 'page' || open;
    pane.hidden = !open;
    launcher.setAttribute('aria-expanded', open ? 'true' : 'false');
    if (open) {
      if (state.lastId && state.unread) { markRead(state.lastId, true); }
      state.unread = 0;
      if (focus) { setTimeout(focusFirst, 0); }
    } else if (focus) {
      launcher.focus();
    }
    renderBadge();
    if (!fromHost) { toHost({ type: 'open', open: open }); }
  }

  function focusFirst() {
    var forms = ['offline', 'login', 'rating'], i;
    for (i = 0; i < forms.length; i++) {
      if (!$(forms[i]).hidden) { var f = $(forms[i]).querySelector('input, textarea'); if (f) { f.focus(); return; } }
    }
    if (!$('compose').hidden) { input.focus(); }
  }

  // ------------------------------------------------------------------ forms
  function problem(form, message) {
    var p = form.querySelector('.error');
    p.textContent = message || '';
    p.hidden = !message;
  }
  function checkFields(form, fields) {
    var i, f;
    for (i = 0; i < fields.length; i++) {
      f = form.querySelector('[name=' + fields[i] + ']');
      if (!f) { continue; }
      if (!f.value.trim() || (f.type === 'checkbox' && !f.checked)) { problem(form, t('required')); f.focus(); return false; }
      if (f.type === 'email' && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(f.value.trim())) { problem(form, t('invalidEmail')); f.focus(); return false; }
    }
    var agree = form.querySelector('[name=agree]');
    if (agree && !agree.checked) { problem(form, t('required')); agree.focus(); return false; }
    problem(form, '');
    return true;
  }

  $('compose').addEventListener('submit', function (e) {
    e.preventDefault();
    var agree = $('compose-privacy').querySelector('[name=agree]');
    if (!$('compose-privacy').hidden && agree && !agree.checked) { agree.focus(); return; }
    if (send(input.value)) {
      input.value = '';
      if (typingNow) { typingNow = false; conn.request({ type: 'chat.typing', is: false }); }
      if (state.conversation && state.conversation.status === 'closed') { state.conversation = null; renderForms(); }
    }
    input.focus();
  });
  input.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); $('compose').requestSubmit(); }
  });
  input.addEventListener('input', visitorTyping);

  $('offline').addEventListener('submit', function (e) {
    e.preventDefault();
    var form = $('offline');
    if (!checkFields(form, ['name', 'email', 'text'])) { return; }
    var name = form.elements.name.value.trim(), email = form.elements.email.value.trim();
    state.visitor.name = name;
    state.visitor.email = email;
    conn.request({ type: 'visitor.update', values: { name: name, email: email } });
    var text = form.elements.text.value;
    if (!state.connected) { problem(form, t('reconnecting')); return; }
    state.offlineSent = true;
    send(text, true, function (err) { if (!err) { system(t('offlineThanks')); } });
    form.reset();
    renderForms();
  });

  $('login').addEventListener('submit', function (e) {
    e.preventDefault();
    var form = $('login');
    if (!checkFields(form, ['name', 'email'])) { return; }
    state.visitor.name = form.elements.name.value.trim();
    state.visitor.email = form.elements.email.value.trim();
    conn.request({ type: 'visitor.update', values: { name: state.visitor.name, email: state.visitor.email } });
    state.loggedIn = true;
    renderForms();
    input.focus();
  });

  $('rating').addEventListener('submit', function (e) {
    e.preventDefault();
    var form = $('rating'), chosen = form.querySelector('[name=value]:checked');
    if (!chosen) { form.querySelector('[name=value]').focus(); return; }
    var frame = { type: 'chat.rate', value: Number(chosen.value) };
    var text = form.elements.text.value.trim();
    if (text) { frame.text = text; }
    conn.request(frame);
    state.rated = true;
    system(t('ratingThanks'));
    form.reset();
    renderForms();
  });

  $('transcript').addEventListener('click', function () {
    var form = $('transcript-form'), open = form.hidden;
    form.hidden = !open;
    $('transcript').setAttribute('aria-expanded', open ? 'true' : 'false');
    if (open) {
      if (!form.elements.email.value && state.visitor.email) { form.elements.email.value = String(state.visitor.email); }
      form.elements.email.focus();
    }
  });

  $('transcript-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var form = $('transcript-form'), c = state.conversation;
    if (!c || !checkFields(form, ['email'])) { return; }
    var email = form.elements.email.value.trim();
    conn.request({ type: 'chat.transcript', email: email, lang: lang }, function (reply) {
      if (reply.type !== 'ack') {
        problem(form, t({ transcript_sent: 'transcriptAlready', transcript_limit: 'transcriptLimit', rate_limited: 'transcriptLimit',
          invalid_frame: 'invalidEmail', not_connected: 'reconnecting' }[reply.code] || 'transcriptFailed'));
        return;
      }
      state.visitor.email = email;
      state.transcribed[c.id] = true;
      form.reset();
      system(t('transcriptSent', { email: email }));
      renderTranscript();
      $('log').focus();
    });
  });

  $('end').addEventListener('click', function () { conn.request({ type: 'chat.close' }); });
  launcher.addEventListener('click', function () { setOpen(true, false, true); });
  $('close').addEventListener('click', function () { setOpen(false, false, true); });
  d.addEventListener('keydown', function (e) { if (e.key === 'Escape' && state.open && cfg.mode !== 'page') { setOpen(false, false, true); } });
  d.addEventListener('visibilitychange', function () { if (!d.hidden && state.open && state.unread) { markRead(state.lastId, true); } });

  // ------------------------------------------------------------------ from the loader
  function fromHost(m) {
    switch (m.type) {
      case 'init':
        state.token = typeof m.token === 'string' && m.token ? m.token : null;
        if (m.options) {
          Object.keys(state.options).forEach(function (k) { if (m.options[k] != null) { state.options[k] = m.options[k]; } });
          if (m.options.color) { setColor(m.options.color); }
          html.classList.toggle('left', m.options.orientation === 'left');
        }
        if (m.page) { state.page = m.page; }
        var seen = /^(\d+)\.(\d+)$/.exec(String(m.seen || ''));
        if (seen) {
          seenBefore = Number(seen[1]); readUpTo = Number(seen[2]);
          store.set(SEEN, seenBefore); store.set(READ, readUpTo);
        }
        html.classList.toggle('mobile', !!m.mobile);
        renderPrivacy();
        renderForms();
        setOpen(!!m.open, true, false);
        conn.start(onConnected);
        break;
      case 'visitor.update':
        var values = m.values || {};
        Object.keys(values).forEach(function (k) { if (k in state.visitor) { state.visitor[k] = values[k]; } });
        if (state.visitor.name && state.visitor.email) { state.loggedIn = true; }
        renderForms();
        if (state.connected) { conn.request({ type: 'visitor.update', values: values }); }
        break;
      case 'language':
        lang = /^[a-z]{2}(-[a-z]{2})?$/.test(m.lang || '') ? m.lang : lang;
        translate();
        if (state.connected) { conn.request({ type: 'visitor.update', values: { lang: lang } }); }
        break;
      case 'open':
        setOpen(!!m.open, true, false);
        break;
      case 'prefill':
        input.value = String(m.text || '').slice(0, 2000);
        break;
      case 'send':
        send(m.text);
        break;
      case 'color':
        setColor(m.color);
        break;
      case 'page':
        if (m.page && m.page.url !== state.page.url) {
          state.page = m.page;
          conn.request({ type: 'page.view', url: m.page.url, title: m.page.title || null, referrer: m.page.referrer || null });
        }
        break;
      case 'viewport':
        html.classList.toggle('mobile', !!m.mobile);
        break;
      case 'logout':
        state.token = null;
        state.visitor = { name: null, email: null, phone: null, group: null, variables: null };
        state.conversation = null; state.shown = {}; state.pending = {}; state.lastId = 0; state.unread = 0;
        state.loggedIn = false; state.offlineSent = false;
        store.del(SEEN); store.del(READ); seenBefore = 0; readUpTo = 0;
        d.querySelectorAll('#log [data-id], #log .msg.visitor').forEach(function (el) { el.parentNode.removeChild(el); });
        renderBadge(); renderForms();
        conn.restart();
        break;
    }
  }

  w.addEventListener('message', function (event) {
    if (!embed || event.source !== w.parent) { return; }
    if (hostOrigin !== 'null' && event.origin !== hostOrigin) { return; }
    var m = event.data;
    if (!m || typeof m !== 'object' || m.opensupp !== 1 || m.nonce !== frag.nonce || typeof m.type !== 'string') { return; }
    fromHost(m);
  });

  // ------------------------------------------------------------------ start
  renderAgent();
  renderStatus();
  renderForms();
  if (embed) {
    launcher.hidden = false;
    toHost({ type: 'ready', position: look.position });
  } else if (cfg.preview) {  // the admin pages' preview of a look: shown, never connected
    setOpen(true, true, false);
  } else {
    state.token = store.get(TOKEN);
    state.page = { url: w.location.href, title: d.title, referrer: d.referrer || '' };
    var p = new URLSearchParams(w.location.search);
    if (p.get('color')) { setColor('#' + p.get('color').replace(/^#/, '')); }
    setOpen(true, true, false);
    conn.start(onConnected);
  }
  w.opensuppBox = { state: state, connection: conn };  // read by tests and by the curious
})();
