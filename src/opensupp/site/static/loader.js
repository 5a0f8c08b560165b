/* opensupp chat loader: the host page's half of the chat box (served as GET /loader.js).
 *
 * Runs the Smartsupp chat code: reads window._smartsupp when it executes, drains the
 * smartsupp._ queue in order, replaces the stub with the real smartsupp(cmd, ...) function,
 * and puts the chat box on the page as one iframe from opensupp's own origin (the origin
 * this script was loaded from), inside a closed shadow root whose host element carries
 * only inline !important styles, so no host CSS reaches the box. Host and box talk over
 * postMessage; both sides check the other's origin, window and a per-load nonce.
 *
 * Nothing here may throw into the host page: every entry point (the load itself, the
 * smartsupp() function, message and resize listeners, host callbacks) is wrapped. No
 * Array.prototype method is called (a host may have patched them), no global is set but
 * smartsupp (and _smartsupp, which the host made), and no request goes anywhere but to
 * opensupp's origin.
 */
(function () {
  'use strict';
  var w = window, d = document;
  var COOKIE = 'ssupp.vid';       // the visitor's token (the server's signed vid)
  var SEEN_COOKIE = 'ssupp.seen'; // "<last message id shown>.<last read>": no event or badge twice
  var OPENED_COOKIE = 'ssupp.opened'; // the box stays open from page to page (a session cookie)
  var COOKIE_DAYS = 183;
  var CURRENT_OPTIONS = ' key zIndex cookiePath cookieDomain hideWidget hideMobileWidget hideOfflineChat requireLogin ' +
    'privacyNoticeEnabled privacyNoticeUrl privacyNoticeCheckRequired orientation offsetX offsetY color ratingEnabled ' +
    'gaName gaKey gaOptions _loaderUrl pluginVersion sitePlatform _ ';
  var LEGACY_OPTIONS = ' writable triggerable soundMuted hideBanner smallDeviceMinWidth alignX alignY sendEmailTanscript ' +
    'ratingComment ratingType widget loginNameControl loginEmailControl loginControls offlineNameControl ' +
    'offlineControls baseUrl staticUrl recordingDisable visitortraceDisable disableInternalApi cookieSecure ';
  var LEGACY_COMMANDS = ' chat:avatar chat:translate translate theme:colors theme:options banner:set banner:update ' +
    'status api ';
  var QUIET_COMMANDS = ' analyticsConsent marketingConsent recording:disable recording:off ';
  var EVENTS = ' message_sent message_received messenger_close ';
  var LEGACY_EVENTS = ' agent.join agent.leave event login message render rendered sent status startup ';
  var MOBILE_WIDTH = 640;

  function has(list, name) { return typeof name === 'string' && name.indexOf(' ') < 0 && list.indexOf(' ' + name + ' ') >= 0; }
  function own(o, k) { return Object.prototype.hasOwnProperty.call(o, k); }
  function add(list, item) { list[list.length] = item; }

  var warned = false;
  function legacy(what) {
    if (warned) { return; }
    warned = true;
    try { w.console.warn('opensupp: ' + what + ' is a legacy Smartsupp option or command; it is accepted and ignored.'); } catch (e) { /* no console */ }
  }

  function scriptOrigin() {
    var s = d.currentScript, i, list;
    if (!s || !/\/loader\.js(\?|#|$)/.test(s.src || '')) {
      s = null;
      list = d.getElementsByTagName('script');
      for (i = list.length - 1; i >= 0; i--) {
        if (/\/loader\.js(\?|#|$)/.test(list[i].src || '')) { s = list[i]; break; }
      }
    }
    if (!s) { return null; }
    var a = d.createElement('a');
    a.href = s.src; // resolves protocol-relative and relative addresses against the page
    // opensupp's origin (what postMessage checks) and its base address (a path prefix kept)
    return { origin: a.protocol + '//' + a.host, base: a.protocol + '//' + a.host + a.pathname.replace(/\/loader\.js$/, '') };
  }

  function randomHex(bytes) {
    var out = '', buf = new Uint8Array(bytes), i;
    (w.crypto || w.msCrypto).getRandomValues(buf);
    for (i = 0; i < buf.length; i++) { out += (buf[i] < 16 ? '0' : '') + buf[i].toString(16); }
    return out;
  }

  // ------------------------------------------------------------------ cookies

  function readCookie(name) {
    var parts = (d.cookie || '').split(';'), i, p;
    for (i = 0; i < parts.length; i++) {
      p = parts[i].replace(/^\s+/, '');
      if (p.indexOf(name + '=') === 0) {
        try { return decodeURIComponent(p.substring(name.length + 1)); } catch (e) { return null; }
      }
    }
    return null;
  }

  function writeCookie(name, value, opts, days) {
    var c = name + '=' + encodeURIComponent(value) + '; Path=' + (opts.cookiePath || '/') +
      (days == null ? '' : '; Max-Age=' + Math.round(days * 86400)) + '; SameSite=Lax';
    if (opts.cookieDomain) { c += '; Domain=' + String(opts.cookieDomain); }
    if (w.location.protocol === 'https:') { c += '; Secure'; }
    d.cookie = c;
  }

  // ------------------------------------------------------------------ colours

  function hexColor(value) {
    var m = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(String(value || '').replace(/\s+/g, ''));
    if (!m) { return null; }
    var h = m[1];
    if (h.length === 3) { h = h.charAt(0) + h.charAt(0) + h.charAt(1) + h.charAt(1) + h.charAt(2) + h.charAt(2); }
    return '#' + h.toLowerCase();
  }

  // ------------------------------------------------------------------ the loader

  function start() {
    var existing = w.smartsupp;
    if (existing && existing.__opensupp) { return; } // loaded twice: the first one runs the box
    var options = w._smartsupp;
    if (!options || typeof options !== 'object') { options = {}; }
    var where = scriptOrigin();
    var origin = where && where.origin;
    var queue = [];
    var i, k, q;
    // the queue: the stub's (smartsupp._), and _smartsupp._ of the variant without a stub
    q = existing && existing._;
    if (q && typeof q.length === 'number') { for (i = 0; i < q.length; i++) { add(queue, q[i]); } }
    q = options._;
    if (q && typeof q.length === 'number' && q !== (existing && existing._)) { for (i = 0; i < q.length; i++) { add(queue, q[i]); } }

    var state = {
      nonce: randomHex(16),
      frame: null,
      ready: false,
      pending: [],     // messages for the box before it said "ready"
      sticky: [],      // what the visitor's details and the box's look are made of: sent again to a reloaded box
      everReady: false,
      open: false,
      shown: true,      // chat:show / chat:hide
      online: true,
      unread: 0,
      handlers: { message_sent: [], message_received: [], messenger_close: [] }
    };

    for (k in options) {
      if (own(options, k) && !has(CURRENT_OPTIONS, k)) {
        if (has(LEGACY_OPTIONS, k)) { legacy('_smartsupp.' + k); }
      }
    }

    var opts = {
      key: options.key != null ? String(options.key) : '',
      // (a value that would add a cookie attribute of its own is not used)
      cookieDomain: typeof options.cookieDomain === 'string' && /^\.?[A-Za-z0-9.-]+$/.test(options.cookieDomain) ? options.cookieDomain : '',
      cookiePath: typeof options.cookiePath === 'string' && /^\/[^;,\s]*$/.test(options.cookiePath) ? options.cookiePath : '/',
      orientation: (options.orientation || options.alignX) === 'left' ? 'left' : 'right',
      offsetX: number(options.offsetX, 10),
      offsetY: number(options.offsetY, 10),
      zIndex: Math.floor(number(options.zIndex, 2147483000)),
      hideWidget: options.hideWidget === true || options.hideWidget === 'true',
      hideMobileWidget: options.hideMobileWidget === true || options.hideMobileWidget === 'true',
      hideOfflineChat: options.hideOfflineChat === true || options.hideOfflineChat === 'true'
    };
    var orientationSet = options.orientation != null || options.alignX != null;
    var boxOptions = {
      color: hexColor(options.color),
      requireLogin: options.requireLogin === true,
      privacyNoticeEnabled: options.privacyNoticeEnabled === true,
      privacyNoticeUrl: typeof options.privacyNoticeUrl === 'string' && /^https?:\/\//i.test(options.privacyNoticeUrl) ? options.privacyNoticeUrl : '',
      privacyNoticeCheckRequired: options.privacyNoticeCheckRequired === true,
      ratingEnabled: options.ratingEnabled !== false,
      orientation: opts.orientation
    };

    function number(v, dflt) {
      var n = typeof v === 'number' ? v : parseFloat(v);
      return isFinite(n) ? n : dflt;
    }

    var host = null, root = null;

    function style(el, css) {
      var parts = css.split(';'), j, c;
      for (j = 0; j < parts.length; j++) {
        c = parts[j].indexOf(':');
        if (c > 0) { el.style.setProperty(parts[j].substring(0, c).replace(/\s+/g, ''), parts[j].substring(c + 1).replace(/^\s+|\s+$/g, ''), 'important'); }
      }
    }

    function mobile() { return (w.innerWidth || d.documentElement.clientWidth || 1024) < MOBILE_WIDTH; }

    // where the frame is and how big: the launcher alone, the open box, or nothing
    function layout() {
      if (!state.frame) { return; }
      var visible = state.shown && !(opts.hideWidget && !state.open) && !(opts.hideMobileWidget && mobile()) &&
        !(opts.hideOfflineChat && !state.online);
      var f = state.frame;
      var side = opts.orientation;
      var css;
      if (!visible) {
        css = 'display:none';
      } else if (state.open && mobile()) {
        css = 'display:block;position:fixed;top:0;left:0;right:auto;bottom:auto;width:100%;height:100%;max-width:100vw;max-height:100vh';
      } else if (state.open) {
        var h = Math.min(600, Math.max(240, (w.innerHeight || 700) - opts.offsetY - 16));
        css = 'display:block;position:fixed;bottom:' + opts.offsetY + 'px;' + side + ':' + opts.offsetX + 'px;' +
          (side === 'left' ? 'right' : 'left') + ':auto;top:auto;width:380px;height:' + h + 'px;max-width:calc(100vw - ' + (2 * Math.max(0, opts.offsetX)) + 'px)';
      } else {
        css = 'display:block;position:fixed;bottom:' + opts.offsetY + 'px;' + side + ':' + opts.offsetX + 'px;' +
          (side === 'left' ? 'right' : 'left') + ':auto;top:auto;width:88px;height:88px';
      }
      f.style.cssText = '';
      style(f, 'all:initial;border:0;margin:0;padding:0;background:transparent;color-scheme:normal;visibility:visible;opacity:1;' +
        'pointer-events:auto;transform:none;filter:none;min-width:0;min-height:0;overflow:hidden;box-sizing:border-box;' +
        'z-index:' + opts.zIndex + ';' + css + (state.ready ? '' : ';opacity:0;pointer-events:none'));
    }

    function post(message) {
      message.opensupp = 1;
      message.nonce = state.nonce;
      if (!state.ready || !state.frame) { add(state.pending, message); return; }
      try { state.frame.contentWindow.postMessage(message, origin); } catch (e) { /* a closed frame */ }
    }

    // a message that stays true (details, language, colour): a box that loads again gets it again
    function keep(message) {
      message.sticky = true;
      if (state.sticky.length < 200) { add(state.sticky, message); }
      post(message);
    }

    function emit(name, arg) {
      var list = state.handlers[name] || [], j;
      for (j = 0; j < list.length; j++) {
        try { list[j](arg); } catch (e) { try { w.console.error(e); } catch (e2) { /* no console */ } }
      }
    }

    function build() {
      if (state.frame || !origin || !opts.key) { return; }
      var parent = d.body || d.documentElement;
      if (!parent) { return; }
      host = d.createElement('opensupp-chat');
      style(host, 'all:initial;display:block;position:static;width:0;height:0;margin:0;padding:0;border:0;overflow:visible;' +
        'visibility:visible;opacity:1;transform:none;filter:none;contain:none');
      try { root = host.attachShadow({ mode: 'closed' }); } catch (e) { root = host; }
      var f = d.createElement('iframe');
      f.setAttribute('title', 'Chat');
      f.setAttribute('allow', 'clipboard-write');
      f.setAttribute('referrerpolicy', 'origin');
      var src = where.base + '/chat/box?key=' + encodeURIComponent(opts.key) + '&embed=1';
      f.src = src + '#nonce=' + state.nonce + '&host=' + encodeURIComponent(w.location.origin || (w.location.protocol + '//' + w.location.host));
      state.frame = f;
      layout();
      root.appendChild(f);
      parent.appendChild(host);
    }

    function onMessage(event) {
      try {
        var m = event.data;
        if (!state.frame || event.source !== state.frame.contentWindow || event.origin !== origin) { return; }
        if (!m || typeof m !== 'object' || m.opensupp !== 1 || m.nonce !== state.nonce) { return; }
        switch (m.type) {
          case 'ready':
            state.ready = true;
            // the account's side (its box look), unless the page's options chose one
            if (!orientationSet && (m.position === 'left' || m.position === 'right')) {
              opts.orientation = boxOptions.orientation = m.position;
            }
            layout();
            var queued = [], j;
            if (state.everReady) { // the frame loaded again (the host page moved it): what stays true, then the rest
              for (j = 0; j < state.sticky.length; j++) { add(queued, state.sticky[j]); }
              for (j = 0; j < state.pending.length; j++) { if (!state.pending[j].sticky) { add(queued, state.pending[j]); } }
            } else {
              queued = state.pending;
            }
            state.everReady = true;
            state.pending = [];
            post({ type: 'init', token: readCookie(COOKIE), seen: readCookie(SEEN_COOKIE), options: boxOptions,
              page: pageInfo(), mobile: mobile(), open: state.open });
            for (j = 0; j < queued.length; j++) { post(queued[j]); }
            break;
          case 'visitor':
            if (typeof m.token === 'string' && m.token) {
              writeCookie(COOKIE, m.token, opts, COOKIE_DAYS);
            }
            if (typeof m.vid === 'string') { api.vid = m.vid; }
            break;
          case 'open':
            setOpen(!!m.open, true);
            break;
          case 'seen':
            if (/^\d{1,16}\.\d{1,16}$/.test(String(m.seen))) { writeCookie(SEEN_COOKIE, String(m.seen), opts, COOKIE_DAYS); }
            break;
          case 'status':
            state.online = !!m.online;
            layout();
            break;
          case 'message_sent':
          case 'message_received':
            emit(m.type, m.message);
            break;
        }
      } catch (e) { /* never into the host page */ }
    }

    function pageInfo() {
      return { url: String(w.location.href).substring(0, 2000), title: String(d.title || '').substring(0, 255),
        referrer: String(d.referrer || '').substring(0, 2000) };
    }

    function setOpen(open, fromBox) {
      var was = state.open;
      state.open = open;
      layout();
      if (open !== was) { writeCookie(OPENED_COOKIE, open ? '1' : '', opts, open ? null : -1); }
      if (!fromBox) { post({ type: 'open', open: open }); }
      if (was && !open) { emit('messenger_close'); }
    }

    var commands = {
      'name': function (v) { keep({ type: 'visitor.update', values: { name: v == null ? '' : String(v) } }); },
      'email': function (v) { keep({ type: 'visitor.update', values: { email: v == null ? '' : String(v) } }); },
      'phone': function (v) { keep({ type: 'visitor.update', values: { phone: v == null ? '' : String(v) } }); },
      'group': function (v) { keep({ type: 'visitor.update', values: { group: v == null ? '' : String(v) } }); },
      'variables': function (v) {
        if (!v || typeof v !== 'object') { return; }
        var out = {}, key, val;
        for (key in v) {
          if (own(v, key)) {
            val = v[key];
            if (val && typeof val === 'object') { // the labelled form {key: {label, value}}
              out[key] = { label: val.label == null ? String(key) : String(val.label), value: scalar(val.value) };
            } else {
              out[key] = scalar(val);
            }
          }
        }
        keep({ type: 'visitor.update', values: { variables: out } });
      },
      'language': function (v) { if (typeof v === 'string') { keep({ type: 'language', lang: v.toLowerCase() }); } },
      'chat:open': function () { state.shown = true; setOpen(true, false); },
      'chat:close': function () { setOpen(false, false); },
      'chat:show': function () { state.shown = true; opts.hideWidget = false; layout(); },
      'chat:hide': function () { state.shown = false; layout(); },
      'chat:message': function (v) { post({ type: 'prefill', text: v == null ? '' : String(v) }); },
      'chat:send': function (v) { if (v != null && String(v)) { post({ type: 'send', text: String(v) }); } },
      'theme:color': function (v) {
        var c = hexColor(v);
        if (c) { boxOptions.color = c; keep({ type: 'color', color: c }); }
      },
      'logout': function () {
        writeCookie(COOKIE, '', opts, -1);
        writeCookie(SEEN_COOKIE, '', opts, -1);
        api.vid = null;
        state.sticky = [];
        post({ type: 'logout' });
      },
      'on': function (name, callback) {
        if (typeof callback !== 'function') { return; }
        if (has(EVENTS, name)) { add(state.handlers[name], callback); } else { legacy("smartsupp('on', '" + name + "')"); }
      }
    };

    function scalar(v) { return typeof v === 'number' || typeof v === 'boolean' ? v : (v == null ? '' : String(v)); }

    function run(args) {
      try {
        if (!args || typeof args.length !== 'number' || !args.length) { return; }
        var name = args[0];
        if (typeof name !== 'string') { return; }
        if (own(commands, name)) {
          commands[name](args[1], args[2], args[3]);
        } else if (has(LEGACY_COMMANDS, name)) {
          legacy("smartsupp('" + name + "')");
        } else if (!has(QUIET_COMMANDS, name)) {
          legacy("smartsupp('" + name + "')");
        }
      } catch (e) { /* never into the host page */ }
    }

    var api = function () { run(arguments); };
    api.__opensupp = true;
    api.vid = null;
    api._ = { length: 0 }; // a stub's queue, now empty: code that pushes to it directly gets no error
    api._.push = function () { var j; for (j = 0; j < arguments.length; j++) { run(arguments[j]); } return 0; };
    w.smartsupp = api;

    if (!origin) { return; }
    state.open = readCookie(OPENED_COOKIE) === '1';
    if (!opts.key) {
      try { w.console.warn('opensupp: _smartsupp.key is not set; the chat box is not shown.'); } catch (e) { /* no console */ }
    }

    w.addEventListener('message', onMessage, false);
    w.addEventListener('resize', function () { try { layout(); post({ type: 'viewport', mobile: mobile() }); } catch (e) { /* never */ } }, false);

    // a single-page app's navigation: a page view for the box (no host function is wrapped)
    var lastUrl = String(w.location.href);
    w.setInterval(function () {
      try {
        if (String(w.location.href) !== lastUrl) { lastUrl = String(w.location.href); post({ type: 'page', page: pageInfo() }); }
        // a framework that re-renders the whole body took the box with it: put it back (it loads again)
        var parent = d.body || d.documentElement;
        if (host && !host.isConnected && parent) { state.ready = false; parent.appendChild(host); layout(); }
      } catch (e) { /* never */ }
    }, 1000);

    // the queue, in order, then the box (commands before it loads are kept for it)
    for (i = 0; i < queue.length; i++) { run(queue[i]); }
    if (d.body) {
      build();
    } else {
      d.addEventListener('DOMContentLoaded', function () { try { build(); } catch (e) { /* never */ } }, false);
    }
  }

  try { start(); } catch (e) {
    try { w.console.error('opensupp: the chat box could not start', e); } catch (e2) { /* no console */ }
  }
})();
