"""A hook's delivery log in a real browser (Debian's Chromium, driven by Playwright; skipped
without it unless OPENSUPP_REQUIRE_BROWSER=1), against the real server and its own outbox
worker, delivering to a real receiver: the admin sends test events, sees one refused and one
delivered with their answers, and sends the refused one again."""

from __future__ import annotations

import os
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
from standardwebhooks import Webhook
from test_chat_box import browser as browser  # noqa: F401 (the fixture: Debian's Chromium)

from conftest import opensupp, start_server, stop_server
from opensupp.migrate import migrate

PICTURE = Path(__file__).resolve().parent.parent / "docs" / "images" / "admin-hooks.png"


class Receiver(ThreadingHTTPServer):
    """A partner's endpoint: answers 503 (retry in an hour) to the first delivery, then 200; keeps what it got."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.refuse = 1
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802  (the stdlib's name)
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
        refused = self.server.refuse > 0
        self.server.refuse -= 1
        answer = b"maintenance, try later" if refused else b'{"received": true}'
        self.send_response(503 if refused else 200)
        if refused:  # the outbox's own retry (5 s by the schedule) is an hour away: the admin sends it again
            self.send_header("retry-after", "3600")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_delivery_log_shows_each_attempt_and_sends_again(browser, tmp_path):
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"sqlite:///{tmp_path / 'opensupp.db'}"
    migrate(url)
    env = {**os.environ, "OPENSUPP_DATABASE_URL": url, "OPENSUPP_DATA_DIR": str(tmp_path)}
    key = opensupp("keys", "create", "--name", "ui", env=env).stdout.strip().splitlines()[-1]
    server = start_server(url, tmp_path, env={"OPENSUPP_DATA_DIR": str(tmp_path),
                                              "OPENSUPP_HOOK_ALLOW_NETWORKS": "127.0.0.1/32"})
    try:
        api = httpx.Client(base_url=server.url, headers={"apiKey": key})
        aid = api.post("/accounts/create", json={"title": "Acme", "lang": "en"}).json()["id"]
        uid = api.post(f"/accounts/{aid}/users/create", json={
            "email": "ada@example.com", "password": "secret-123", "fullname": "Ada", "role": "admin"}).json()["id"]
        hook = api.post(f"/accounts/{aid}/hooks/create", json={
            "name": "webhook", "config": {"url": "https://crm.example.com/smartsupp"}}).json()
        with sqlite3.connect(tmp_path / "opensupp.db") as db:  # the API refuses the receiver's loopback address
            config = {**hook["config"], "url": f"http://127.0.0.1:{receiver.server_port}/smartsupp"}
            db.execute("UPDATE hooks SET config = ? WHERE id = ?", (orjson.dumps(config).decode(), int(hook["id"])))

        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(f"{server.url}/sign/in?apiKey={key}&uid={uid}")
        page.goto(f"{server.url}/admin/hooks")
        page.get_by_role("button", name="Send a test event").click()  # refused: 503
        page.wait_for_url(f"**/admin/hooks/{hook['id']}/deliveries")
        assert "A test event is on its way" in page.inner_text(".flash")
        with page.expect_navigation():  # the form's answer (a redirect back here) before any reload
            page.get_by_role("button", name="Send a test event").click()  # delivered
        for _ in range(50):
            page.reload()
            rows = page.locator("tr.delivery")
            if rows.count() == 2 and "HTTP 503" in rows.nth(0).inner_text() and "Delivered" in rows.nth(1).inner_text():
                break
            page.wait_for_timeout(100)
        assert "HTTP 503" in rows.nth(0).inner_text() and "Pending" in rows.nth(0).inner_text()
        assert "Delivered" in rows.nth(1).inner_text() and "HTTP 200" in rows.nth(1).inner_text()
        rows.nth(1).locator("summary").click()
        assert '{"received": true}' in rows.nth(1).inner_text()
        if not PICTURE.exists() or os.environ.get("OPENSUPP_UPDATE_SCREENSHOTS") == "1":
            page.screenshot(path=str(PICTURE))  # the README's picture of the delivery log

        with page.expect_navigation():
            rows.nth(0).get_by_role("button", name="Send again").click()
        for _ in range(50):
            page.reload()
            if "Delivered" in page.locator("tr.delivery").nth(0).inner_text():
                break
            page.wait_for_timeout(100)
        assert [page.locator("tr.delivery").nth(n).inner_text().split("\t")[1] for n in (0, 1)] == [
            "Delivered", "Delivered"]
        # what the receiver got: two events, each verified with the hook's secret, the first one twice
        ids = [headers["webhook-id"] for headers, _ in receiver.got]
        assert len(ids) == 3 and ids[0] == ids[2] != ids[1]
        for headers, body in receiver.got:
            assert Webhook(hook["config"]["secret"]).verify(body, headers)["event"] == "hook.test"
        context.close()
    finally:
        stop_server(server)
        receiver.shutdown()
