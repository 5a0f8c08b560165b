"""The agent dashboard in a real browser (Debian's Chromium, Playwright) against the real server
(create_app under uvicorn, on SQLite), with a visitor in the chat box in another browser context:
the guide's fast login signs the agent in, the visitor's conversation appears without a reload,
the agent reads and answers it, typing shows both ways, what the visitor wrote stays text, the
presence switch takes the box offline; the conversation is usable on a phone's width.

The README's picture, ``docs/images/dashboard-inbox.png`` (the inbox with a conversation open,
1280x800), is this file's screenshot: written when missing, or again with
OPENSUPP_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from test_accessibility import axe_source as axe_source  # noqa: F401 (the fixture: axe-core from tests/a11y)
from test_chat_box import SCREENSHOT, Live, Visit
from test_chat_box import browser as browser  # noqa: F401 (the fixture: Chromium, a skip, or a failure)
from test_chat_box_live import Server, connected
from test_chat_box_live import server as server  # noqa: F401 (the fixture: the served app, Acme and Anna)
from test_chat_box_live import site as site  # noqa: F401 (the fixture: the host site with the snippet)

PICTURE = SCREENSHOT.with_name("dashboard-inbox.png")
HOSTILE = "<img src=x onerror=alert(1)>"


def _update_screenshot() -> bool:
    return not PICTURE.exists() or os.environ.get("OPENSUPP_UPDATE_SCREENSHOTS") == "1"


def say(box: Any, text: str) -> None:
    """The visitor writes ``text`` in the chat box and sends it (Enter)."""
    box.locator("#input").fill(text)
    box.locator("#input").press("Enter")


def writes(v: Visit, site: Live, text: str, head: str = "") -> Any:
    """The visitor opens the host page (with ``head`` after the snippet), opens the box once it is
    connected, and writes ``text``; the box's frame."""
    v.open(site.snippet() + head)
    box = connected(v)
    v.click_launcher(box)
    say(box, text)
    return box


class Dashboard:
    """The agent's browser context, signed in by the guide's fast login."""

    def __init__(self, browser: Any, server: Server, viewport: dict[str, int] | None = None,
                 storage: Any = None, bypass_csp: bool = False) -> None:
        self.server = server
        self.context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800},
                                           storage_state=storage, bypass_csp=bypass_csp)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))

    def sign_in(self) -> None:
        key = self.server.api.headers["apiKey"]
        self.page.goto(f"{self.server.url}/sign/in?apiKey={key}&uid={self.server.agent_id}&lang=en&status=online")
        assert self.page.url == f"{self.server.url}/dashboard"  # the key is not left in the address bar
        self.ready()

    def ready(self) -> None:
        self.page.wait_for_function("() => window.opensuppDashboard && window.opensuppDashboard.state.connected",
                                    timeout=15_000)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def dashboard(browser, server) -> Iterator[Dashboard]:
    d = Dashboard(browser, server)
    try:
        yield d
    finally:
        d.close()
    assert d.errors == [], d.errors
    assert d.dialogs == [], d.dialogs


def test_an_agent_answers_a_visitor_live_and_goes_away(browser, server, site: Live, dashboard: Dashboard, tmp_path):
    dashboard.sign_in()
    page = dashboard.page
    assert page.locator("#connection").text_content() == "Chat is online"
    assert page.locator("#none-pending").is_visible()

    v = Visit(browser, site)
    try:
        v.open(site.snippet() + "<script>smartsupp('name', 'Jane Novak'); smartsupp('email', 'jane@example.com');"
               " smartsupp('phone', '+420 601 234 567');"
               " smartsupp('variables', {orderId: {label: 'Order', value: 'A-1017'}, plan: 'gold'});</script>",
               "<h1>Acme Shop</h1><p>Bicycles, parts and repairs.</p>")
        box = connected(v)
        page.locator("#visitors .visitor-now").first.wait_for()  # on the site now, without a reload
        v.click_launcher(box)
        say(box, "Hello! Where is my order? " + HOSTILE)

        item = page.locator("#list-pending .conv-item")
        item.wait_for()  # the conversation appears without a reload
        assert "Jane Novak" in item.text_content() and item.locator(".unread").text_content() == "1"
        item.click()
        page.locator("#log .msg.visitor").wait_for()
        assert page.locator("#log .msg.visitor .text").text_content() == "Hello! Where is my order? " + HOSTILE
        assert page.locator("#log img, .inbox img").count() == 0  # shown as text: no element made of it
        assert page.locator("#conv-title").text_content() == "Jane Novak"
        details = page.locator("#visitor-details").text_content()
        assert "jane@example.com" in details and "+420 601 234 567" in details
        assert page.locator("#variables").text_content() == "OrderA-1017plangold"
        assert page.locator(".conv-item .unread").count() == 0  # read once opened

        box.locator("#input").fill("Are you th")  # the visitor types: the agent sees it
        page.wait_for_function("() => document.getElementById('typing').textContent"
                               " === 'Jane Novak is typing: Are you th'")
        box.locator("#input").fill("")
        page.locator("#reply").fill("Hi Jane, I'm Anna.")  # the agent types: the visitor sees it
        box.wait_for_function("() => document.getElementById('typing').textContent.includes('Anna')")
        page.locator("#reply").press("Enter")
        box.locator(".msg.agent").wait_for()
        assert box.locator(".msg.agent .text, .msg.agent").last.text_content().endswith("Hi Jane, I'm Anna.")
        page.locator("#list-open .conv-item").wait_for()  # answered: open, no longer waiting
        assert page.locator("#list-pending .conv-item").count() == 0
        page.locator("#reply").fill("It ships today; you will get the tracking link by e-mail.")
        page.locator("#composer button").click()
        box.locator(".msg.agent >> nth=1").wait_for()
        page.wait_for_function("() => !document.querySelector('#log .pending')")
        assert page.locator("#log .msg.agent").count() == 2
        assert page.locator("#assign").input_value() == str(server.agent_id)  # the first to answer has it

        say(box, "Great, thank you!")
        page.locator("#log .msg.visitor >> nth=1").wait_for()
        assert dashboard.errors == [] and dashboard.dialogs == []

        picture = PICTURE if _update_screenshot() else tmp_path / PICTURE.name
        page.evaluate("() => document.fonts.ready")
        page.screenshot(path=str(picture))
        assert picture.stat().st_size > 20_000

        # away: no one else is online, so the visitor's box goes offline
        with page.expect_response(lambda r: r.url.endswith("/dashboard/status")):
            page.select_option("#presence", "away")
        box.wait_for_function("() => window.opensuppBox.state.online === false", timeout=15_000)
        assert box.locator("#status").text_content() == "We are offline"
        page.wait_for_function("() => document.getElementById('connection').textContent.includes('offline')")
        page.reload()  # the choice is kept in the session
        dashboard.ready()
        assert page.locator("#presence").input_value() == "away"
        page.select_option("#presence", "online")
        box.wait_for_function("() => window.opensuppBox.state.online === true", timeout=15_000)

        # closing: the visitor sees it, the conversation moves to the closed ones
        page.locator("#close-conv").click()
        page.locator("#list-closed .conv-item").wait_for()
        assert page.locator("#conv-status").text_content() == "Closed"
        assert v.errors == []
    finally:
        v.close()


def test_the_conversation_is_usable_at_a_phones_width(browser, server, site: Live, dashboard: Dashboard):
    dashboard.sign_in()
    phone = Dashboard(browser, server, viewport={"width": 390, "height": 844},
                      storage=dashboard.context.storage_state())
    v = Visit(browser, site)
    try:
        phone.page.goto(f"{server.url}/dashboard")
        phone.ready()
        box = writes(v, site, "Hi from the visitor")
        page = phone.page
        item = page.locator("#list-pending .conv-item")
        item.wait_for()
        assert not page.locator("#pane").is_visible()  # the list alone
        item.click()
        page.locator("#log .msg.visitor").wait_for()
        assert not page.locator(".inbox").is_visible()  # the conversation alone
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways: {width}px"
        for selector in ("#reply", "#composer button", "#back", "#close-conv"):
            page.locator(selector).scroll_into_view_if_needed()
            box_of = page.locator(selector).bounding_box()
            assert box_of is not None and box_of["x"] >= 0 and box_of["x"] + box_of["width"] <= 390, selector
        page.locator("#reply").fill("Hello from a phone")
        page.locator("#composer button").click()
        box.locator(".msg.agent").wait_for()
        page.locator("#back").click()
        page.locator("#list-open .conv-item").wait_for(state="visible")
        assert phone.errors == [] and phone.dialogs == []
    finally:
        v.close()
        phone.close()


def test_an_agent_starts_a_chat_with_a_visitor_on_the_site(browser, server, site: Live, dashboard: Dashboard):
    dashboard.sign_in()
    page = dashboard.page
    v = Visit(browser, site)
    try:
        v.open(site.snippet() + "<script>smartsupp('name', 'Karel');</script>", "<h1>Bikes</h1>")
        box = connected(v)
        start = page.get_by_role("button", name="Start a chat with Karel")
        start.wait_for()
        assert "Shop" in page.locator("#visitors").text_content()  # the page's title
        start.click()
        assert page.locator("#conv-title").text_content() == "Karel"
        assert page.locator("#conv-status").text_content() == "New chat"
        page.locator("#reply").fill("Hello Karel, looking for a bike?")
        page.locator("#reply").press("Enter")
        box.locator(".msg.agent").wait_for(state="attached")  # the box has it (and badges it while closed)
        assert "Hello Karel, looking for a bike?" in box.locator(".msg.agent").text_content()
        page.locator("#list-open .conv-item").wait_for()
        page.wait_for_function("() => !document.querySelector('#log .pending')")
        assert page.locator("#conv-status").text_content() == "Open"
        assert page.locator("#log .msg.agent").count() == 1
        v.click_launcher(box)
        say(box, "Yes, a gravel one")
        page.locator("#log .msg.visitor").wait_for()  # the visitor answers in the same conversation
        assert page.locator("#list-open .conv-item").count() == 1
        # the live list's button now leads to that conversation
        page.get_by_role("button", name="Go to the chat with Karel").click()
        page.wait_for_function("() => window.opensuppDashboard.state.detail !== null")  # read again
        assert page.locator("#log .msg").count() == 2
    finally:
        v.close()


def test_the_dashboard_works_over_the_long_poll(browser, server, site: Live, dashboard: Dashboard):
    """No WebSocket (a proxy that blocks Upgrade): the dashboard long-polls /chat/poll/agent."""
    dashboard.context.add_init_script("delete window.WebSocket;")
    dashboard.sign_in()
    page = dashboard.page
    assert page.evaluate("() => window.opensuppDashboard.conn.mode") == "poll"
    v = Visit(browser, site)
    try:
        v.open(site.snippet())
        box = connected(v)
        assert box.locator("#status").text_content() == "We are online"  # the polling agent is online
        v.click_launcher(box)
        say(box, "Anyone there?")
        page.locator("#list-pending .conv-item").click()
        page.locator("#log .msg.visitor").wait_for()
        page.locator("#reply").fill("Yes, over the long-poll.")
        page.locator("#reply").press("Enter")
        box.locator(".msg.agent").wait_for()
        page.wait_for_function("() => !document.querySelector('#log .pending')")
        say(box, "Thanks")
        page.locator("#log .msg.visitor >> nth=1").wait_for()
        assert page.locator("#log .msg").count() == 3
    finally:
        page.close()  # then the visitor's leaving answers the poll the server holds (the server stops sooner)
        v.close()


ALERTS = """(() => {
  window.notes = []; window.asked = 0; window.beeps = 0;
  window.Notification = class {
    constructor(title, options) { window.notes.push([title, options.body]); }
    static get permission() { return window.asked ? 'granted' : 'default'; }
    static requestPermission() { window.asked += 1; return Promise.resolve('granted'); }
    close() {}
  };
  const oscillator = AudioContext.prototype.createOscillator;
  AudioContext.prototype.createOscillator = function () { window.beeps += 1; return oscillator.call(this); };
  Object.defineProperty(document, 'hidden', { get: () => window.away === true, configurable: true });
})()"""


def test_alerts_beep_and_notify_while_the_tab_is_hidden(browser, server, site: Live, dashboard: Dashboard):
    dashboard.context.add_init_script(ALERTS)
    dashboard.sign_in()
    page = dashboard.page
    alerts = page.locator("#alerts")
    assert alerts.get_attribute("aria-pressed") == "false"
    alerts.click()  # the user's gesture: permission asked once, sound allowed
    assert alerts.get_attribute("aria-pressed") == "true" and alerts.text_content() == "Alerts on"
    assert page.evaluate("() => [window.asked, localStorage.getItem('opensupp.alerts')]") == [1, "1"]
    v = Visit(browser, site)
    try:
        v.open(site.snippet() + "<script>smartsupp('name', 'Eva');</script>")
        box = connected(v)
        page.evaluate("() => { window.away = false; }")
        v.click_launcher(box)
        say(box, "Seen while you look")
        page.locator("#list-pending .conv-item").wait_for()
        assert page.evaluate("() => window.notes") == []  # the tab is shown: no alert
        page.evaluate("() => { window.away = true; }")
        say(box, "A second one, hidden")
        page.wait_for_function("() => window.notes.length === 1")
        assert page.evaluate("() => window.notes") == [["New message from Eva", "A second one, hidden"]]
        running = page.evaluate("() => window.opensuppDashboard.audioState()")
        if running == "running":  # a headless browser may keep audio suspended
            assert page.evaluate("() => window.beeps") == 1
    finally:
        v.close()
    page.reload()  # remembered
    dashboard.ready()
    assert page.locator("#alerts").get_attribute("aria-pressed") == "true"


def test_search_finds_a_conversation_by_text_or_e_mail(browser, server, site: Live, dashboard: Dashboard):
    dashboard.sign_in()
    page = dashboard.page
    v = Visit(browser, site)
    try:
        writes(v, site, "Do you repair carbon frames?", "<script>smartsupp('email', 'lukas@example.com');</script>")
        page.locator("#list-pending .conv-item").wait_for()
    finally:
        v.close()
    for query in ("CARBON", "lukas@example"):
        page.locator("#search").fill(query)
        page.locator("#search").press("Enter")
        # The first query's item is still listed while the second is asked: wait for this query's note.
        note = f"Conversations matching “{query}”: 1"
        page.wait_for_function("note => document.querySelector('#results-note').textContent === note", arg=note)
        assert page.locator("#list-results .conv-item").count() == 1
        assert not page.locator("#groups").is_visible()
    page.locator("#search").fill("no such words")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_function("() => document.querySelectorAll('#list-results .conv-item').length === 0")
    page.locator("#search").fill("carbon")
    page.locator("#search").press("Enter")
    page.locator("#list-results .conv-item").click()
    page.locator("#log .msg.visitor").wait_for()
    assert page.locator("#log .msg.visitor .text").text_content() == "Do you repair carbon frames?"
    page.locator("#results-clear").click()
    assert page.locator("#groups").is_visible() and not page.locator("#results").is_visible()

    # A slow answer to an older search neither replaces a newer one's nor reopens the results after Clear.
    def late(query: str, then: Any) -> None:
        held: list[Any] = []
        pattern = "**/dashboard/search?q=" + query
        page.route(pattern, lambda route: held.append(route))
        page.locator("#search").fill(query)
        page.locator("#search").press("Enter")
        for _ in range(250):
            if held:
                break
            page.wait_for_timeout(20)
        assert len(held) == 1, "the search was not asked"
        then()
        with page.expect_response(lambda r: r.url.endswith("q=" + query)) as answer:
            held[0].continue_()
        page.unroute(pattern)
        answer.value.finished()
        page.evaluate("() => new Promise(done => setTimeout(done, 200))")

    def newer() -> None:
        page.locator("#search").fill("lukas@example")
        page.locator("#search").press("Enter")
        page.wait_for_function("() => document.querySelector('#results-note').textContent.includes('lukas@example')")

    late("frames", newer)
    assert page.locator("#results-note").text_content() == "Conversations matching “lukas@example”: 1"
    late("frames", lambda: page.locator("#results-clear").click())
    assert page.locator("#groups").is_visible() and not page.locator("#results").is_visible()


@pytest.mark.parametrize("width, height", [(1280, 800), (390, 844)])
def test_axe_finds_no_serious_issue_in_the_inbox_or_a_conversation(browser, server, site: Live, width, height,
                                                                   axe_source):
    script = axe_source
    d = Dashboard(browser, server, viewport={"width": width, "height": height}, bypass_csp=True)
    v = Visit(browser, site)
    try:
        d.sign_in()
        writes(v, site, "Hello", "<script>smartsupp('name', 'Jane'); smartsupp('variables', {plan: 'gold'});</script>")
        d.page.locator("#list-pending .conv-item").wait_for()
        d.page.add_script_tag(content=script)
        run = "() => axe.run(document).then(r => r.violations.filter(v => ['serious', 'critical'].includes(v.impact))" \
              ".map(v => v.id + ': ' + v.nodes.map(n => n.html).join(' | ')))"
        assert d.page.evaluate(run) == [], "the inbox"
        d.page.locator("#list-pending .conv-item").click()
        d.page.locator("#reply").fill("Hi Jane")
        d.page.locator("#reply").press("Enter")
        d.page.locator("#log .msg.agent:not(.pending)").wait_for()
        assert d.page.evaluate(run) == [], "a conversation"
    finally:
        v.close()
        d.close()


def test_the_keyboard_keeps_its_place_when_the_inbox_changes(browser, server, site: Live, dashboard: Dashboard):
    dashboard.sign_in()
    page = dashboard.page
    v = Visit(browser, site)
    try:
        box = writes(v, site, "First")
        item = page.locator("#list-pending .conv-item")
        item.focus()
        say(box, "Second")
        page.wait_for_function("() => document.querySelector('#list-pending .unread').textContent === '2'")
        assert page.evaluate("() => document.activeElement.classList.contains('conv-item')")
        page.keyboard.press("Enter")  # opens it: the composer has the focus
        page.locator("#log .msg.visitor >> nth=1").wait_for()
        assert page.evaluate("() => document.activeElement.id") == "reply"
    finally:
        v.close()


def test_a_cut_socket_loses_nothing_either_way(browser, server, site: Live, dashboard: Dashboard):
    dashboard.sign_in()
    page = dashboard.page
    v = Visit(browser, site)
    try:
        box = writes(v, site, "Before the cut")
        page.locator("#list-pending .conv-item").click()
        page.locator("#log .msg.visitor").wait_for()
        # the socket drops; the dashboard waits 1.5 to 4.5 s before it reconnects
        page.evaluate("() => { const c = window.opensuppDashboard.conn; c.backoff = 3000; c.ws.close(); }")
        page.wait_for_function("() => !window.opensuppDashboard.state.connected")
        say(box, "During the cut")
        page.locator("#reply").fill("Written during the cut")
        page.locator("#reply").press("Enter")
        assert page.locator("#log .msg.pending").count() == 1  # kept, to be sent once connected
        dashboard.ready()
        page.locator("#log .msg.visitor >> nth=1").wait_for()  # read again after the reconnect
        page.wait_for_function("() => !document.querySelector('#log .pending')")
        box.locator(".msg.agent").wait_for()
        assert box.locator(".msg.agent").count() == 1  # delivered once
        texts = page.locator("#log .msg .text").all_text_contents()
        assert texts == ["Before the cut", "During the cut", "Written during the cut"]
    finally:
        v.close()


def test_a_reply_read_back_before_its_ack_shows_once(browser, server, site: Live, dashboard: Dashboard):
    """The conversation read again (a click, a reconnect) between a reply's sending and its ack:
    the read brings the stored reply, and the ack, when it comes, leaves no pending copy behind."""
    page = dashboard.page
    held: list[str | bytes] = []
    holding = [False]
    sockets: list[Any] = []

    def through(ws: Any) -> None:  # the agent's socket, with the server's frames held back on demand
        upstream = ws.connect_to_server()
        sockets.append(ws)
        ws.on_message(upstream.send)
        upstream.on_message(lambda frame: held.append(frame) if holding[0] else ws.send(frame))

    page.route_web_socket("**/chat/ws/agent", through)
    dashboard.sign_in()
    v = Visit(browser, site)
    try:
        box = writes(v, site, "Anyone there?")
        item = page.locator("#list-pending .conv-item")
        item.click()
        page.locator("#log .msg.visitor").wait_for()
        holding[0] = True
        page.locator("#reply").fill("Yes, right here")
        page.locator("#reply").press("Enter")
        box.locator(".msg.agent").wait_for(state="attached")  # stored and sent on; the dashboard has no ack yet
        assert page.locator("#log .msg.pending").count() == 1
        item.click()  # read again: the stored reply comes with the conversation
        page.wait_for_function("() => window.opensuppDashboard.state.detail !== null")
        page.locator("#log .msg.agent:not(.pending)").wait_for()
        assert page.locator("#log .msg.agent").count() == 1  # not also as pending
        assert any(b'"ack"' in (f if isinstance(f, bytes) else f.encode()) for f in held), held
        for frame in held:  # the ack (and the events) arrive now, in order (what comes meanwhile is held too)
            sockets[-1].send(frame)
        holding[0] = False
        page.wait_for_function("() => !document.querySelector('#log .pending')")
        page.wait_for_function("() => document.querySelector('#conv-status').textContent === 'Open'")  # the ack's
        assert page.locator("#log .msg.agent .text").all_text_contents() == ["Yes, right here"]
    finally:
        v.close()
