"""The signed-in pages in a real browser: axe-core (from npm: tests/a11y, installed by ``make
test``) finds no serious or critical problem on the sign-in page, the inbox and a conversation;
the guide's fast-login link and a one-time link sign in (the second use of a link does not).

The server is the real one (tests/test_chat_box_live.py's ``Server``: create_app under uvicorn
on SQLite, a partner's account with an agent, Anna). axe runs in the page with its CSP bypassed
(the pages allow only their own scripts).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from test_chat_box import browser as browser  # noqa: F401 (the fixture: Debian's Chromium)
from test_chat_box_live import Server
from test_chat_box_live import server as server  # noqa: F401 (the fixture: the served app, Acme and Anna)

AXE = Path(__file__).parent / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
#: what a page must not have (axe's impacts are minor, moderate, serious, critical)
BLOCKING = ("serious", "critical")


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        message = f"no axe-core at {AXE} (make test installs it: npm ci --prefix tests/a11y)"
        if os.environ.get("OPENSUPP_REQUIRE_BROWSER") == "1":
            pytest.fail(message + "; OPENSUPP_REQUIRE_BROWSER=1 requires it", pytrace=False)
        pytest.skip(message)
    return AXE.read_text("utf-8")


def problems(page: Any, axe_source: str) -> list[str]:
    """axe's serious and critical violations on the page as it is now, one line each."""
    page.add_script_tag(content=axe_source)
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
    }""")
    return [f"{v['impact']}: {v['id']} ({v['help']}) at {v['nodes']}" for v in result if v["impact"] in BLOCKING]


def fast_login(server: Server) -> str:
    return f"{server.url}/sign/in?apiKey={server.api.headers['apiKey']}&uid={server.agent_id}&lang=en&status=online"


def test_the_sign_in_page_has_no_serious_accessibility_problem(browser, server, axe_source):  # noqa: F811
    context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.goto(f"{server.url}/sign/in")
        assert page.get_by_label("E-mail").is_visible() and page.get_by_label("Password").is_visible()
        assert problems(page, axe_source) == []
        # with a message shown (a failed sign-in), and in Czech
        page.get_by_label("E-mail").fill("anna@acme.example")
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("[role=alert]")
        assert "wrong" in page.inner_text("[role=alert]")
        assert problems(page, axe_source) == []
        page.goto(f"{server.url}/sign/in?lang=cs")
        assert page.get_by_label("Heslo").is_visible()
        assert problems(page, axe_source) == []
    finally:
        context.close()


def test_a_password_signs_in_in_the_browser(browser, server):  # noqa: F811
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{server.url}/dashboard")
        assert "/sign/in?next=%2Fdashboard" in page.url  # the sign-in page, coming back afterwards
        page.get_by_label("E-mail").fill("ANNA@acme.example")
        page.get_by_label("Password").fill("secret-pass")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{server.url}/dashboard")
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["opensupp_session"]["httpOnly"] and cookies["opensupp_session"]["sameSite"] == "Lax"
    finally:
        context.close()


def test_the_guides_fast_login_and_a_one_time_link_in_the_browser(browser, server):  # noqa: F811
    first, second, third = (browser.new_context() for _ in range(3))
    try:
        page = first.new_page()
        page.goto(fast_login(server))
        assert page.url == f"{server.url}/dashboard"  # the key is not in the address bar
        assert "apiKey" not in page.evaluate("document.referrer + location.href")
        link = server.api.post(f"/accounts/{server.account_id}/users/{server.agent_id}/login-link", json={})
        assert link.status_code == 200, link.text
        url = link.json()["url"].replace("http://127.0.0.1:8000", server.url)
        once = second.new_page()
        once.goto(url)
        assert once.url == f"{server.url}/dashboard"
        twice = third.new_page()
        twice.goto(url)
        assert "/sign/" in twice.url
        assert "it was used already" in twice.inner_text("[role=alert]")
        twice.goto(f"{server.url}/dashboard")
        assert "/sign/in" in twice.url  # not signed in
    finally:
        for context in (first, second, third):
            context.close()


ADMIN_PAGES = ("/admin/users", "/admin/triggers", "/admin/officehours", "/admin/offlineemails", "/admin/hooks",
               "/admin/box")


@pytest.mark.parametrize("width, height", [(1280, 800), (390, 844)])
def test_the_admin_pages_have_no_serious_accessibility_problem(browser, server, axe_source, width, height):  # noqa: F811
    made = server.api.post(f"/accounts/{server.account_id}/users/create", json={
        "email": f"boss-{width}@acme.example", "password": "secret-pass", "fullname": "Bea Boss", "role": "admin"})
    assert made.status_code == 200, made.text
    context = browser.new_context(bypass_csp=True, viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        page.goto(f"{server.url}/sign/in?apiKey={server.api.headers['apiKey']}&uid={made.json()['id']}")
        found = {}
        for path in ADMIN_PAGES:
            answer = page.goto(server.url + path)
            assert answer is not None and answer.status == 200, path
            found[path] = problems(page, axe_source)
        # a hook with its actions, and its delivery log with a delivery in it
        hook = server.api.post(f"/accounts/{server.account_id}/hooks/create",
                               json={"name": "webhook", "config": {"url": f"https://crm.example/{width}"}}).json()
        assert server.api.post(f"/accounts/{server.account_id}/hooks/{hook['id']}/test", json={}).status_code == 200
        for path in ("/admin/hooks", f"/admin/hooks/{hook['id']}/deliveries"):
            answer = page.goto(server.url + path)
            assert answer is not None and answer.status == 200, path
            found[f"{path}, with a hook"] = problems(page, axe_source)
        # a refused form: the API's message shown beside it
        page.goto(server.url + "/admin/users")
        page.locator("form[action='/admin/users#new-user'] input[name=email]").fill("not an e-mail")
        page.locator("form[action='/admin/users#new-user'] input[name=password]").fill("secret-pass")
        page.locator("form[action='/admin/users#new-user'] input[name=fullname]").fill("Carl")
        page.locator("form[action='/admin/users#new-user'] [type=submit]").click()
        page.locator(".problem[role=alert]").wait_for()
        assert page.locator("[aria-invalid=true]").count() >= 1
        found["/admin/users, refused"] = problems(page, axe_source)
        assert found == {path: [] for path in found}
    finally:
        context.close()


def test_an_agent_cannot_open_the_admin_pages(browser, server):  # noqa: F811
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(fast_login(server))
        assert page.url == f"{server.url}/dashboard"
        assert page.get_by_role("link", name="Admin").count() == 0  # no way there in the bar
        answer = page.goto(f"{server.url}/admin/users")
        assert answer is not None and answer.status == 403
        assert "Only the account's admins" in page.content()
    finally:
        context.close()
