"""The box look's live preview in a real browser (Debian's Chromium, driven by Playwright;
skipped without it unless OPENSUPP_REQUIRE_BROWSER=1): as the admin types, the preview frame
shows the box with the look asked for, and nothing is saved until Save."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from test_chat_box import browser as browser  # noqa: F401 (the fixture: Debian's Chromium)

from conftest import opensupp, start_server, stop_server
from opensupp.migrate import migrate

PICTURE = Path(__file__).resolve().parent.parent / "docs" / "images" / "admin-box.png"


def test_the_preview_follows_the_form_and_save_stores_it(browser, tmp_path):
    url = f"sqlite:///{tmp_path / 'opensupp.db'}"
    migrate(url)
    env = {**os.environ, "OPENSUPP_DATABASE_URL": url, "OPENSUPP_DATA_DIR": str(tmp_path)}
    key = opensupp("keys", "create", "--name", "ui", env=env).stdout.strip().splitlines()[-1]
    server = start_server(url, tmp_path, env={"OPENSUPP_DATA_DIR": str(tmp_path)})
    try:
        api = httpx.Client(base_url=server.url, headers={"apiKey": key})
        aid = api.post("/accounts/create", json={"title": "Acme", "lang": "en"}).json()["id"]
        uid = api.post(f"/accounts/{aid}/users/create", json={
            "email": "ada@example.com", "password": "secret-123", "fullname": "Ada", "role": "admin"}).json()["id"]
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(f"{server.url}/sign/in?apiKey={key}&uid={uid}")
        page.goto(f"{server.url}/admin/box")
        frame = page.frame_locator("#look-preview")
        assert frame.locator("#agent-name").inner_text() == "Acme"

        page.fill("#b-title", "Ask us anything")
        page.fill("#b-welcome", "Hello from the preview")
        page.locator("#b-color").evaluate("(el) => { el.value = '#aa0000'; el.dispatchEvent(new Event('input', "
                                          "{bubbles: true})); }")
        page.select_option("#b-position", "left")
        frame.locator("text=Hello from the preview").wait_for(timeout=5000)
        # the preview reloads 250 ms after the last change: wait for the one with all four
        frame.locator("html.left").wait_for(state="attached", timeout=5000)
        assert frame.locator("#agent-name").inner_text() == "Ask us anything"
        head = frame.locator(".head").evaluate("(el) => getComputedStyle(el).backgroundColor")
        assert head == "rgb(170, 0, 0)"
        assert frame.locator("html").evaluate("(el) => el.classList.contains('left')")
        assert api.get(f"/accounts/{aid}/box/get").json()["title"] == ""  # a preview saves nothing
        if not PICTURE.exists() or os.environ.get("OPENSUPP_UPDATE_SCREENSHOTS") == "1":
            page.screenshot(path=str(PICTURE))  # the README's picture of an admin page

        page.click("button:has-text('Save')")
        page.locator(".flash").wait_for(timeout=5000)  # "Saved.", back on the page
        assert api.get(f"/accounts/{aid}/box/get").json() == {
            "color": "#aa0000", "position": "left", "title": "Ask us anything", "welcome": "Hello from the preview"}
        context.close()
    finally:
        stop_server(server)
