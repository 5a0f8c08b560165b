"""Benchmark the agent dashboard's inbox: a busy inbox against an empty one, in one run.

    python bench/dashboard.py [--conversations 500] [--rounds 5]

One server (the real app, ``opensupp.app.create_app`` under uvicorn with ``opensupp serve``'s
settings, in a child process, on a fresh SQLite) holds two accounts, each with one agent:
"empty" with no conversation but the measuring visitor's, "busy" with ``--conversations``
open ones (each a visitor who wrote one message, stored through the chat's own
``DatabaseCore`` before the server starts; the measuring visitor's is one of them).
In Debian's Chromium (Playwright), for each account in turn, ``--rounds`` times:

1. **Render**: a fresh browser context opens the guide's fast-login link; the time until the
   inbox shows every open conversation (the busy one: the oldest visitor's name is there)
   and the agent's connection is live.
2. **Update**: a visitor who is already in the inbox writes a new message over the visitor
   WebSocket; the time from the send until the dashboard's DOM holds that text (taken in the
   page by a MutationObserver, on the machine's one clock).

It prints the medians and the worst of each, and the busy/empty ratios, and the page's JS
heap and DOM size once rendered. A measurement, not a test: the exit code is 0 whatever the
figures say. Everything it starts is stopped at the end, also on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chat import free_port, stop  # bench/chat.py: the same child-process handling

BENCH_DIR = Path(__file__).resolve().parent
SRC_DIR = BENCH_DIR.parent / "src"
CHROMIUM = "/usr/bin/chromium"
SECRET = "bench-dashboard-" + "k" * 40


# --------------------------------------------------------------------------- the data, and the server


async def provision(url: str, conversations: int) -> dict[str, Any]:
    """The partner, its key, the two accounts with an agent each, and the busy one's conversations."""
    from opensupp.accounts import service as accounts
    from opensupp.chat.core import DatabaseCore
    from opensupp.chat.transport import Page
    from opensupp.db import open_database
    from opensupp.partners import service as partners
    from opensupp.passwords import hash_password
    from opensupp.users.service import create_user

    db = open_database(url)
    await db.open()
    try:
        password_hash = await hash_password(secrets.token_urlsafe(12))
        made: dict[str, Any] = {}
        async with db.transaction() as session:
            partner_id = await partners.create_partner(session, name="bench")
            made["key"] = await partners.create_key(session, partner_id=partner_id, name="bench")
            for name in ("empty", "busy"):
                account = await accounts.create_account(session, partner_id=partner_id, title=name, lang="en")
                user = await create_user(session, partner_id=partner_id, account_id=account.id,
                                         email=f"{name}@bench.example", password_hash=password_hash,
                                         fullname=f"Agent {name}")
                made[name] = {"account_id": account.id, "account_key": account.account_key, "user_id": user.id}
        core = DatabaseCore(db)
        busy = made["busy"]["account_id"]
        made["vids"] = []
        for n in range(max(0, conversations - 1)):  # the measuring visitor's makes it ``conversations``
            vid = secrets.token_urlsafe(16)
            await core.connect_visitor(busy, vid, {"name": f"Visitor {n:04d}"},
                                       Page(url=f"https://shop.example/p/{n}", title=f"Product {n}"))
            await core.post_visitor_message(busy, vid, f"Question number {n}", f"seed-{n}", False)
            made["vids"].append(vid)
        return made
    finally:
        await db.close()


def serve(port: int) -> None:
    """The real server, as ``opensupp serve`` runs it (in the child process)."""
    import uvicorn

    from opensupp.app import create_app
    from opensupp.config import settings_from_environment
    from opensupp.logs import setup_logging
    from opensupp.web.server import uvicorn_options

    settings = settings_from_environment()
    setup_logging(settings.log_level, settings.log_format)
    uvicorn.run(create_app(settings), **uvicorn_options(settings), host="127.0.0.1", port=port)


def start(temp: Path, url: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSUPP_")}
    env.update({"PYTHONPATH": str(SRC_DIR), "OPENSUPP_SECRET_KEY": SECRET, "OPENSUPP_DATA_DIR": str(temp),
                "OPENSUPP_DATABASE_URL": url, "OPENSUPP_LOG_LEVEL": "warning",
                "OPENSUPP_PUBLIC_URL": f"http://127.0.0.1:{port}"})
    log = open(temp / "server.log", "wb")  # noqa: SIM115  (closed with the process)
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {(temp / 'server.log').read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return process
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


# --------------------------------------------------------------------------- the browser


class Visitor:
    """A visitor of the busy account on the visitor WebSocket (docs/chat-protocol.md)."""

    def __init__(self, base: str, account_key: str, name: str) -> None:
        from websockets.sync.client import connect

        self.stack = contextlib.ExitStack()  # websockets wants its connect used as a context manager
        self.ws = self.stack.enter_context(connect(base.replace("http", "ws") + f"/chat/ws/visitor?key={account_key}",
                                                   origin="https://shop.example"))  # type: ignore[arg-type]
        self.ws.send(json.dumps({"type": "visitor.connect", "ref": "c", "name": name,
                                 "pageUrl": "https://shop.example/"}))
        self._wait_ack("c")
        self.sent = 0

    def _wait_ack(self, ref: str) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            frame = json.loads(self.ws.recv(timeout=20))
            if frame.get("ref") == ref:
                assert frame["type"] == "ack", frame
                return
        raise RuntimeError("the visitor got no ack")

    def say(self, text: str) -> None:
        self.sent += 1
        self.ws.send(json.dumps({"type": "chat.message", "ref": f"m{self.sent}", "clientId": f"bench-{self.sent}",
                                 "text": text}))

    def close(self) -> None:
        self.stack.close()


def measure(browser: Any, base: str, key: str, account: dict[str, Any], expect: str | None,
            rounds: int) -> dict[str, Any]:
    """Render and update times (ms) of one account's inbox, ``rounds`` times each."""
    render: list[float] = []
    update: list[float] = []
    size: dict[str, Any] = {}
    link = f"{base}/sign/in?apiKey={key}&uid={account['user_id']}&lang=en&status=online"
    visitor = Visitor(base, account["account_key"], "Bench visitor")
    try:
        visitor.say("hello, first")  # the visitor is in the inbox before the agent looks
        time.sleep(0.3)
        for round_ in range(rounds):
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_init_script(PROBE)
            try:
                page = context.new_page()
                started = time.perf_counter()
                page.goto(link)
                page.wait_for_function(READY, arg={"expect": expect or "Bench visitor"}, timeout=60_000, polling="raf")
                render.append((time.perf_counter() - started) * 1000)
                if round_ == 0:
                    size = page.evaluate("""() => ({nodes: document.getElementsByTagName('*').length,
                        heapMB: performance.memory ? performance.memory.usedJSHeapSize / 1048576 : null})""")
                text = f"update {round_} {secrets.token_hex(4)}"
                page.evaluate("t => { window.__probe = {text: t}; }", text)
                sent = time.time() * 1000
                visitor.say(text)
                page.wait_for_function("() => window.__probe.shown", timeout=30_000)
                update.append(page.evaluate("() => window.__probe.shown") - sent)
            finally:
                context.close()
    finally:
        visitor.close()
    return {"render": render, "update": update, **size}


#: in the page before its scripts: the wall-clock time (ms, the same clock as the bench's) at which
#: the DOM first holds the armed text, taken by a MutationObserver (waiting for the text by
#: polling from the bench would add the polls' own delay, which grows with the page)
PROBE = """window.__probe = {};
new MutationObserver(() => {
  const p = window.__probe;
  if (p.text && !p.shown && document.body && document.body.textContent.includes(p.text)) {
    p.shown = performance.timeOrigin + performance.now();
  }
}).observe(document, {subtree: true, childList: true, characterData: true});"""

#: the inbox is rendered and live: the expected visitor's name is on the page, and the agent's socket said hello
READY = """({expect}) => document.body.textContent.includes(expect)
    && window.opensuppDashboard && window.opensuppDashboard.state.connected"""


def report(empty: dict[str, Any], busy: dict[str, Any], conversations: int) -> None:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):8.1f} {max(values):8.1f}"

    print(f"\ninbox of 0 vs {conversations} open conversations (ms: median, worst of {len(empty['render'])})")
    print(f"{'':24}{'empty':>17}{'busy':>18}   busy/empty (medians)")
    for what in ("render", "update"):
        ratio = statistics.median(busy[what]) / statistics.median(empty[what])
        print(f"{what:24}{cell(empty[what])}  {cell(busy[what])}   {ratio:5.2f}x")
    for what in ("nodes", "heapMB"):
        if empty.get(what) is not None:
            print(f"{what:24}{empty[what]:>17.1f}{busy[what]:>18.1f}   {busy[what] / max(empty[what], 1e-9):5.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.port)
        return 0
    sys.path.insert(0, str(SRC_DIR))
    from playwright.sync_api import sync_playwright

    from opensupp.migrate import migrate

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as name:
        temp = Path(name)
        url = f"sqlite:///{temp / 'opensupp.db'}"
        migrate(url)
        started = time.perf_counter()
        made = asyncio.run(provision(url, args.conversations))
        print(f"stored {max(0, args.conversations - 1)} conversations in {time.perf_counter() - started:.1f} s")
        port = free_port()
        server = start(temp, url, port)
        base = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    empty = measure(browser, base, made["key"], made["empty"], None, args.rounds)
                    oldest = "Visitor 0000" if args.conversations else None
                    busy = measure(browser, base, made["key"], made["busy"], oldest, args.rounds)
                finally:
                    browser.close()
        finally:
            stop(server)
    report(empty, busy, args.conversations)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
