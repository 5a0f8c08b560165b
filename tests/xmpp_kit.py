"""What the XMPP tests and bench/xmpp.py start: Debian's Prosody with the config `opensupp xmpp
setup` writes (as the prosody user, on free ports, with a self-signed certificate), and an
agent's XMPP client (slixmpp) in a thread of its own, for tests written without asyncio (the
browser's API is synchronous)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import pwd
import queue
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from slixmpp import ClientXMPP

from opensupp.config import Settings
from opensupp.xmpp.config import write_setup

PROSODY = Path("/usr/bin/prosody")
DOMAIN = "chat.test"


def prosody_missing() -> str | None:
    """Why Prosody cannot be started here, or None."""
    if not PROSODY.exists():
        return f"no Prosody at {PROSODY} (apt-get install prosody prosody-modules)"
    if not Path("/usr/lib/prosody/modules/mod_privilege").exists():
        return "no mod_privilege (apt-get install prosody-modules)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Prosody:
    """Prosody run as its own user (it refuses root) with the generated config; ``restart()``."""

    def __init__(self, settings: Settings, opensupp_url: str) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="opensupp-prosody-"))
        self.directory.chmod(0o755)  # the prosody user reads its config and certificate here
        self.c2s_port, self.component_port = _free_port(), _free_port()
        self.certificate, self.key = self.directory / "cert.pem", self.directory / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.certificate), "-days", "2", "-subj", f"/CN={DOMAIN}",
                        "-addext", f"subjectAltName=DNS:{DOMAIN},DNS:*.{DOMAIN}"],
                       check=True, capture_output=True)
        self.data = self.directory / "data"
        self.data.mkdir()
        self.as_prosody = os.geteuid() == 0
        if self.as_prosody:
            user = pwd.getpwnam("prosody")
            os.chown(self.data, user.pw_uid, user.pw_gid)
            os.chown(self.key, 0, user.pw_gid)
            self.key.chmod(0o640)
        self.log = self.data / "prosody.log"
        self.config, _, self.opensupp_file = write_setup(
            settings, domain=DOMAIN, out=self.directory / "etc", opensupp_url=opensupp_url, c2s_port=self.c2s_port,
            c2s_interfaces=("127.0.0.1",), component_port=self.component_port, data_path=self.data,
            log_file=self.log, certificate=self.certificate, key=self.key)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        command = [str(PROSODY), "--config", str(self.config)]
        if self.as_prosody:
            command = ["setpriv", "--reuid=prosody", "--regid=prosody", "--init-groups", *command]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.starts += 1
        deadline = time.monotonic() + 20
        while not (_listening(self.c2s_port) and _listening(self.component_port)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Prosody did not start: {self.log_text()[-3000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        try:
            return self.log.read_text()
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class XmppAgent:
    """An agent's XMPP client (slixmpp, STARTTLS with the test certificate as its CA) on a loop in
    a thread of its own: ``login()``, ``send()``, ``message()``, ``roster()``, ``status()``."""

    def __init__(self, prosody: Prosody, user: str, password: str, resource: str = "laptop") -> None:
        self.prosody = prosody
        self.jid = f"{user}@{DOMAIN}/{resource}"
        self.password = password
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client: ClientXMPP | None = None

    def _call(self, coroutine: Any, timeout: float = 20) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def login(self, timeout: float = 15) -> bool:
        """True once the session started; False when the server refused the password."""
        return bool(self._call(self._login(timeout), timeout + 5))

    async def _login(self, timeout: float) -> bool:
        client = ClientXMPP(self.jid, self.password)
        client.register_plugin("xep_0085")  # chat states (typing)
        client.enable_direct_tls = False  # STARTTLS on the c2s port, as Prosody offers it
        client.ssl_context = ssl.create_default_context(cafile=str(self.prosody.certificate))
        started, refused = asyncio.Event(), asyncio.Event()

        async def session_start(_: Any) -> None:
            client.send_presence()
            await client.get_roster()
            started.set()

        seen: list[Any] = []  # slixmpp may hand one error stanza to both events

        def message(stanza: Any) -> None:
            if any(stanza.xml is xml for xml in seen):
                return
            seen[:] = [*seen[-20:], stanza.xml]
            error = stanza["error"] if stanza["type"] == "error" else None
            self.messages.put({"type": stanza["type"], "from": str(stanza["from"]), "to": str(stanza["to"]),
                               "body": stanza["body"], "id": stanza["id"], "state": stanza["chat_state"] or None,
                               "condition": error["condition"] if error is not None else None,
                               "text": error["text"] if error is not None else None, "at": time.monotonic()})

        client.add_event_handler("session_start", session_start)
        client.add_event_handler("failed_all_auth", lambda _: refused.set())
        client.add_event_handler("message", message)
        client.add_event_handler("message_error", message)
        client.add_event_handler("chatstate", message)
        self.client = client
        client.connect("127.0.0.1", self.prosody.c2s_port)
        waits = [asyncio.ensure_future(started.wait()), asyncio.ensure_future(refused.wait())]
        done, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if not done:
            raise AssertionError(f"{self.jid}: neither logged in nor refused in {timeout} s")
        if not started.is_set():
            client.disconnect(wait=0)
            self.client = None
            return False
        return True

    def send(self, to: str, body: str, stanza_id: str | None = None) -> None:
        async def send() -> None:
            assert self.client is not None
            stanza = self.client.make_message(mto=to, mbody=body, mtype="chat")
            if stanza_id:
                stanza["id"] = stanza_id
            stanza.send()

        self._call(send())

    def typing(self, to: str, state: str) -> None:
        """A chat state alone (XEP-0085): composing, paused, active."""
        async def typing() -> None:
            assert self.client is not None
            stanza = self.client.make_message(mto=to, mtype="chat")
            stanza["chat_state"] = state
            stanza.send()

        self._call(typing())

    def status(self, show: str | None) -> None:
        """Presence: None (available), away, xa, dnd, chat."""
        async def status() -> None:
            assert self.client is not None
            self.client.send_presence(pshow=show) if show else self.client.send_presence()

        self._call(status())

    def roster(self) -> dict[str, dict[str, Any]]:
        async def roster() -> dict[str, dict[str, Any]]:
            assert self.client is not None
            items = self.client.client_roster
            return {str(jid): {"name": items[jid]["name"], "subscription": items[jid]["subscription"],
                               "groups": list(items[jid]["groups"])} for jid in items if str(jid) != self.jid}

        return dict(self._call(roster()))

    def message(self, timeout: float = 15, pump: Any = None, **fields: Any) -> dict[str, Any]:
        """The next message (or error) matching ``fields``; those skipped are dropped. ``pump``:
        called while waiting (a browser's sync API handles its pages' requests only then)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = self.messages.get(timeout=0.05 if pump else max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    raise AssertionError(f"{self.jid} got no message {fields} in {timeout} s") from None
                if pump:
                    pump()
                continue
            if all(got.get(k) == v for k, v in fields.items()):
                return got

    def nothing(self, seconds: float) -> list[dict[str, Any]]:
        """What arrived within ``seconds`` (a check that nothing did)."""
        time.sleep(seconds)
        got = []
        with contextlib.suppress(queue.Empty):
            while True:
                got.append(self.messages.get_nowait())
        return got

    def logout(self) -> None:
        async def logout() -> None:
            if self.client is not None:
                await self.client.disconnect(wait=2)
                self.client = None

        with contextlib.suppress(Exception):
            self._call(logout(), 10)

    def close(self) -> None:
        self.logout()

        async def settle() -> None:  # slixmpp's tasks end on this loop, not when it is gone
            current = asyncio.current_task()
            tasks = [task for task in asyncio.all_tasks() if task is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            gc.collect()

        with contextlib.suppress(Exception):
            self._call(settle(), 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
