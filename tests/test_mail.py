"""Mail: offline messages to the account's offline e-mails and transcripts to visitors, written
to the outbox with their change and sent by the real worker through aiosmtplib to a real SMTP
server (aiosmtpd, started by each test on a free port): what a recipient gets (parts, language,
From, Reply-To, escaping), the retries on a 4xx, a 5xx failing at once, login, STARTTLS, the
mails waiting without SMTP (and `opensupp mail list` showing them), the transcript frame over a
real websocket and its limits."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import secrets
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
import test_chat_box_live as live
import test_chat_transport
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from test_chat_box import browser as browser  # noqa: F401 (the fixture: Chromium, or a skip)
from test_chat_box_live import agent as agent  # noqa: F401 (fixtures: an agent online, ...)
from test_chat_box_live import server as server  # noqa: F401 (... the real server on SQLite, ...)
from test_chat_box_live import site as site  # noqa: F401 (... and a host page with the chat code)
from websockets.asyncio.client import connect

from conftest import free_port, new_key
from opensupp.accounts import service as accounts
from opensupp.app import create_app
from opensupp.chat import protocol as p
from opensupp.chat import service as chat
from opensupp.cli import main as cli
from opensupp.config import BadSettings, Settings, settings_from_environment
from opensupp.db import open_database
from opensupp.errors import ValidationFailed
from opensupp.mail import compose
from opensupp.mail import service as mail
from opensupp.mail.smtp import SmtpMailer, SmtpTarget, parse_smtp_url
from opensupp.offlineemails import service as offline_emails
from opensupp.outbox.worker import Worker
from opensupp.partners import service as partners

pytestmark = pytest.mark.anyio
FROM = "Acme Chat <chat@acme.example>"
PUBLIC = "https://chat.acme.example"


# --------------------------------------------------------------------------- a real SMTP server


class Recorder:
    """An aiosmtpd handler: records each mail; ``answers[address]`` are what RCPT TO answers that
    address, one per attempt (then 250)."""

    def __init__(self, answers: dict[str, list[str]] | None = None) -> None:
        self.answers = answers or {}
        self.envelopes: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        queued = self.answers.get(address)
        if queued:
            return queued.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        """The mails received for ``address`` (the database is shared with other tests: mails
        they left pending may reach this server too)."""
        return [email.message_from_bytes(e.content, policy=email.policy.default)  # type: ignore[misc]
                for e in self.envelopes if address in e.rcpt_tos]


@pytest.fixture
async def smtp() -> AsyncIterator[Any]:
    started: list[Controller] = []

    def start(handler: Recorder, **kw: Any) -> int:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kw)
        controller.start()
        started.append(controller)
        return port

    yield start
    for controller in started:
        controller.stop()


def mailer(port: int, security: str = "plain", **kw: Any) -> SmtpMailer:
    target = SmtpTarget("127.0.0.1", port, security, kw.pop("username", None), kw.pop("password", None))  # type: ignore[arg-type]
    return SmtpMailer(target, mail_from=FROM, public_url=PUBLIC, timeout=5, **kw)


# --------------------------------------------------------------------------- data made by the services


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Any]:
    database = open_database(database_url, pool_size=5)
    await database.open()
    yield database
    await database.close()


def address(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}@example.com"


async def account_with(db: Any, lang: str, recipients: list[str]) -> int:
    async with db.transaction() as session:
        partner_id = await partners.create_partner(session, name=f"mail-{secrets.token_hex(6)}")
        account = await accounts.create_account(session, partner_id=partner_id, title="Acme Shop", lang=lang)
        for to in recipients:
            await offline_emails.create_offline_email(session, partner_id=partner_id, account_id=account.id, email=to)
    return account.id


async def visitor_of(db: Any, account_id: int) -> int:
    async with db.transaction() as session:
        visitor, _ = await chat.connect_visitor(session, account_id=account_id, vid=p.new_vid(),
                                                details={"url": "https://shop.example/cart?x=<b>"})
    return visitor.id


async def leave_message(db: Any, account_id: int, visitor_id: int, **kw: Any) -> Any:
    fields = {"name": "Jana Nováková", "email": "jana@shop.example", "text": "Dobrý den <script>alert(1)</script>"}
    async with db.transaction() as session:
        return await chat.store_offline_message(session, account_id=account_id, visitor_id=visitor_id,
                                                **(fields | kw))


async def mails_to(db: Any, to: str) -> list[Any]:
    async with db.read() as session:
        return [d for d in await mail.list_mails(session) if orjson.loads(d.payload)["to"] == to]


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


# --------------------------------------------------------------------------- offline messages


async def test_an_offline_message_is_mailed_to_each_offline_email_in_the_accounts_language(db, smtp):
    first, second = address("owner"), address("support")
    server = Recorder()
    port = smtp(server)
    aid = await account_with(db, "cs", [first, second])
    vid = await visitor_of(db, aid)
    posted = await leave_message(db, aid, vid, client_id="form-1")
    again = await leave_message(db, aid, vid, client_id="form-1")  # the form's retry: stored and mailed once
    assert not again.created and again.message.id == posted.message.id
    assert len(await mails_to(db, first)) == len(await mails_to(db, second)) == 1
    await Worker(db, mailer=mailer(port)).run_once()
    [to_first], [to_second] = server.to(first), server.to(second)
    for got, to in ((to_first, first), (to_second, second)):
        assert got["To"] == to and got["From"] == FROM  # one mail per recipient; the visitor is never the From
        assert got["Reply-To"] == "Jana Nováková <jana@shop.example>"
        assert got["Subject"] == "Zpráva od Jana Nováková z webu Acme Shop"
        assert got["Content-Language"] == "cs" and got["Auto-Submitted"] == "auto-generated"
        text, html = parts(got)
        assert "zanechal(a) na webu Acme Shop zprávu" in text and "Dobrý den <script>alert(1)</script>" in text
        link = f"{PUBLIC}/dashboard/conversations/{posted.conversation.id}"
        assert link in text and f'href="{link}"' in html
        assert "Stránka: https://shop.example/cart?x=<b>" in text
        assert "<script>" not in html and "Dobrý den &lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "x=&lt;b&gt;" in html and 'href="https://shop.example' not in html  # the page: shown, not a link
    [sent] = await mails_to(db, first)
    assert (sent.status, sent.attempts, sent.last_status_code) == ("delivered", 1, 250)


async def test_an_english_or_unknown_language_account_gets_english(db, smtp):
    to = address("owner")
    server = Recorder()
    port = smtp(server)
    aid = await account_with(db, "de", [to])
    await leave_message(db, aid, await visitor_of(db, aid), name="Ann", email="ann@shop.example", text="Hi")
    await Worker(db, mailer=mailer(port)).run_once()
    [got] = server.to(to)
    assert got["Subject"] == "Message from Ann on Acme Shop"
    assert "Reply to this e-mail to answer Ann." in parts(got)[0]


async def test_a_name_cannot_add_a_header(db):
    aid = await account_with(db, "en", [address("owner")])
    with pytest.raises(ValidationFailed):  # the service refuses a name with a line break ...
        await leave_message(db, aid, await visitor_of(db, aid), name="Eve\r\nBcc: victim@evil.example")
    # ... and a mail made of one anyway (a payload written before, a name set elsewhere) stays one header
    payload = {"kind": compose.OFFLINE_MESSAGE, "to": "owner@acme.example", "lang": "en", "site": "Acme\r\nX-Evil: 1",
               "conversation_id": 7, "text": "hi", "page": "",
               "visitor": {"name": "Eve\r\nBcc: victim@evil.example", "email": "eve@evil.example"},
               "reply_to": {"name": "Eve\r\nBcc: victim@evil.example", "email": "eve@evil.example"}}
    raw = compose.message(payload, mail_from=FROM, public_url=PUBLIC, message_id="msg_1").as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    assert b"\nBcc:" not in raw and b"\nX-Evil:" not in raw
    assert parsed["Reply-To"].addresses[0].addr_spec == "eve@evil.example"


async def test_without_smtp_mails_wait_and_mail_list_shows_them(db, database_url):
    to = address("waiting")
    aid = await account_with(db, "en", [to])
    await leave_message(db, aid, await visitor_of(db, aid), name="Ann", email="ann@shop.example", text="Call me")
    await Worker(db).run_once()  # no mailer: mails are not claimed
    [waiting] = await mails_to(db, to)
    assert (waiting.status, waiting.attempts) == ("pending", 0)

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["mail", "list", *args], env={"OPENSUPP_DATABASE_URL": database_url})

    table = await anyio.to_thread.run_sync(run, "--status", "pending")
    assert table.exit_code == 0, table.output
    header, *rows = table.output.splitlines()
    assert header.split() == ["ID", "TO", "SUBJECT", "STATUS", "ATTEMPTS", "CREATED"]
    [row] = [r for r in rows if to in r]
    assert "Message from Ann on Acme Shop" in row and " pending " in row
    listed = await anyio.to_thread.run_sync(run, "--json")
    [item] = [json.loads(line) for line in listed.output.splitlines() if to in line]
    assert (item["to"], item["status"], item["attempts"]) == (to, "pending", 0) and "Call me" in item["text"]
    sent = await anyio.to_thread.run_sync(run, "--status", "sent")
    assert to not in sent.output


# --------------------------------------------------------------------------- SMTP's answers


async def test_a_451_is_retried_on_the_schedule(db, smtp):
    to = address("busy")
    server = Recorder({to: ["451 4.3.0 Try again later"]})
    port = smtp(server)
    aid = await account_with(db, "en", [to])
    await leave_message(db, aid, await visitor_of(db, aid), name="Ann", email="ann@shop.example", text="Hi")
    worker = Worker(db, mailer=mailer(port), schedule=(0, 300))
    started = int(time.time())
    await worker.run_once()
    [first] = await mails_to(db, to)
    assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 451)
    assert first.next_attempt_at <= started + 1 and "451" in (first.response or "")
    await worker.run_once()  # due again at once (the schedule's first wait is 0): accepted this time
    [second] = await mails_to(db, to)
    assert (second.status, second.attempts, second.last_status_code) == ("delivered", 2, 250)
    assert len(server.to(to)) == 1


async def test_a_550_fails_at_once(db, smtp):
    to = address("gone")
    server = Recorder({to: ["550 5.1.1 No such user"]})
    port = smtp(server)
    aid = await account_with(db, "en", [to])
    await leave_message(db, aid, await visitor_of(db, aid), name="Ann", email="ann@shop.example", text="Hi")
    await Worker(db, mailer=mailer(port)).run_once()
    [failed] = await mails_to(db, to)
    assert (failed.status, failed.attempts, failed.last_status_code) == ("failed", 1, 550)
    assert "No such user" in (failed.response or "") and not server.to(to)


async def test_a_server_that_is_not_there_is_retried(db):
    to = address("later")
    aid = await account_with(db, "en", [to])
    await leave_message(db, aid, await visitor_of(db, aid), name="Ann", email="ann@shop.example", text="Hi")
    await Worker(db, mailer=mailer(free_port())).run_once()
    [waiting] = await mails_to(db, to)
    assert (waiting.status, waiting.attempts, waiting.last_status_code) == ("pending", 1, None)
    assert waiting.next_attempt_at >= int(time.time()) + 4 and waiting.last_error


class Login:
    def __init__(self, user: str, password: str) -> None:
        self.expected = LoginPassword(user.encode(), password.encode())

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        return AuthResult(success=auth_data == self.expected, handled=False)  # not handled: 535 on a failure


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # aiosmtpd's, about the test's server
async def test_login_from_the_url_is_checked(db, smtp):
    server = Recorder()
    port = smtp(server, authenticator=Login("mailer", "p@ss:w/rd"), auth_required=True, auth_require_tls=False)
    good, bad = address("auth"), address("noauth")
    aid = await account_with(db, "en", [good])
    await leave_message(db, aid, await visitor_of(db, aid), name="Ann", email="ann@shop.example", text="Hi")
    target = parse_smtp_url(f"smtp://mailer:p%40ss%3Aw%2Frd@127.0.0.1:{port}")
    assert (target.username, target.password, target.security) == ("mailer", "p@ss:w/rd", "plain")
    assert "p@ss" not in repr(target)
    await Worker(db, mailer=SmtpMailer(target, mail_from=FROM, public_url=PUBLIC, timeout=5)).run_once()
    assert len(server.to(good)) == 1
    aid = await account_with(db, "en", [bad])
    await leave_message(db, aid, await visitor_of(db, aid), name="Ann", email="ann@shop.example", text="Hi")
    await Worker(db, mailer=mailer(port, username="mailer", password="wrong")).run_once()
    [refused] = await mails_to(db, bad)  # a refused login is the operator's to fix: retried, not failed
    assert (refused.status, refused.last_status_code) == ("pending", 535) and "wrong" not in str(refused)


def self_signed(directory: Path) -> tuple[str, str]:
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no openssl to make a certificate with: {exc}")
    return cert, key


async def test_starttls_when_required(db, smtp, tmp_path):
    cert, key = self_signed(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    server = Recorder()
    port = smtp(server, tls_context=served, require_starttls=True)
    to = address("tls")
    aid = await account_with(db, "en", [to])
    await leave_message(db, aid, await visitor_of(db, aid), name="Ann", email="ann@shop.example", text="Hi")
    trusting = ssl.create_default_context(cafile=cert)
    await Worker(db, mailer=mailer(port, "starttls", tls_context=trusting)).run_once()
    assert len(server.to(to)) == 1
    to = address("untrusted")
    aid = await account_with(db, "en", [to])
    await leave_message(db, aid, await visitor_of(db, aid), name="Ann", email="ann@shop.example", text="Hi")
    await Worker(db, mailer=mailer(port, "starttls")).run_once()  # the system's CAs do not know this certificate
    [refused] = await mails_to(db, to)
    assert refused.status == "pending" and "CERTIFICATE" in (refused.last_error or "").upper()


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://mail.example.com", ("mail.example.com", 25, "plain", None, None)),
    ("smtp+starttls://u%40x:p%2Fw@mail.example.com", ("mail.example.com", 587, "starttls", "u@x", "p/w")),
    ("smtps://u:@mail.example.com:2465", ("mail.example.com", 2465, "tls", "u", "")),
])
def test_smtp_urls(url, expected):
    t = parse_smtp_url(url)
    assert (t.host, t.port, t.security, t.username, t.password) == expected


@pytest.mark.parametrize(("url", "says"), [
    ("http://u:hunter2@mail.example.com", "must start with smtp://"),
    ("smtp://u:hunter2@:25", "has no host"),
    ("smtp://u:hunter2@mail.example.com:99999", "port"),
    ("smtp://u:hunter2@mail.example.com/x", "nothing after"),
    ("smtp://:hunter2@mail.example.com", "no user"),
])
def test_a_bad_smtp_url_is_refused_at_startup_without_its_password(monkeypatch, url, says):
    monkeypatch.setenv("OPENSUPP_SMTP_URL", url)
    with pytest.raises(BadSettings) as caught:
        settings_from_environment()
    assert str(caught.value).startswith("OPENSUPP_SMTP_URL: ") and says in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_from_address():
    assert Settings(public_url="https://chat.acme.example").resolved_mail_from() == "opensupp@chat.acme.example"
    assert Settings(public_url="http://127.0.0.1:8000").resolved_mail_from() == "opensupp@localhost"
    assert Settings(mail_from=FROM).resolved_mail_from() == FROM
    for bad in ("nobody", "a@b\r\nBcc: x@y.example"):
        with pytest.raises(ValueError):
            Settings(mail_from=bad)


# --------------------------------------------------------------------------- transcripts


async def conversation_with(db: Any, aid: int, visitor_id: int, text: str, *, close: bool = True) -> int:
    async with db.transaction() as session:
        posted = await chat.post_visitor_message(session, account_id=aid, visitor_id=visitor_id, text=text)
        if close:
            await chat.close_conversation(session, account_id=aid, conversation_id=posted.conversation.id,
                                          by="visitor", visitor_id=visitor_id)
    return posted.conversation.id


async def test_transcripts_are_limited_per_conversation_and_per_visitor(db):
    aid = await account_with(db, "en", [])
    visitor_id = await visitor_of(db, aid)
    to = address("visitor")

    async def ask(**kw: Any) -> Any:
        async with db.transaction() as session:
            return await mail.enqueue_transcript(session, account_id=aid, visitor_id=visitor_id, **kw)

    for n in range(mail.TRANSCRIPTS_PER_HOUR):
        await conversation_with(db, aid, visitor_id, f"question {n}")
        await ask(email=to)
        with pytest.raises(mail.TranscriptSent):
            await ask()
    await conversation_with(db, aid, visitor_id, "one more")
    with pytest.raises(mail.TranscriptLimited) as limited:
        await ask()
    assert 0 < limited.value.retry_after <= 3600
    await ask(now=int(time.time()) + 3601)  # an hour on, the visitor may ask again
    assert len(await mails_to(db, to)) == mail.TRANSCRIPTS_PER_HOUR + 1


class Client(test_chat_transport.Client):
    pass


@pytest.fixture
async def served(database_url: str, smtp: Any) -> AsyncIterator[tuple[str, dict[str, Any], Recorder]]:
    """The app as `opensupp serve` runs it, with OPENSUPP_SMTP_URL: its own outbox worker mails."""
    server = Recorder()
    port = smtp(server)
    settings = Settings(database_url=database_url, key_cache_seconds=0, secret_key="mail-test-" + "k" * 40,
                        smtp_url=f"smtp://127.0.0.1:{port}", mail_from=FROM, public_url=PUBLIC)
    app = create_app(settings)
    http_port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=http_port, log_level="warning"))
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        await asyncio.sleep(0.02)
        if task.done():
            task.result()
    url = f"http://127.0.0.1:{http_port}"
    try:
        key = await new_key(app)
        async with httpx.AsyncClient(base_url=url, headers={"apiKey": key}, timeout=20) as api:
            account = (await api.post("/accounts/create", json={"title": "Acme <Shop>", "lang": "en"})).json()
        yield url, account, server
    finally:
        uv.should_exit = True
        await asyncio.wait_for(task, 20)


async def wait_for(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_visitor_asks_for_the_transcript_over_the_websocket(served):
    url, account, server = served
    ws_url = url.replace("http", "ws", 1) + f"/chat/ws/visitor?key={account['accountKey']}"
    to = address("visitor")
    async with connect(ws_url, origin="https://shop.example") as ws:  # type: ignore[arg-type]
        visitor = Client(ws)
        assert (await visitor.call("visitor.connect", pageUrl="https://shop.example/"))["type"] == "ack"
        nothing = await visitor.call("chat.transcript", email=to)
        assert (nothing["type"], nothing["code"]) == ("server.error", "not_found")  # no conversation yet
        sent = await visitor.call("chat.message", clientId="m-1", text="Where is <my> order?")
        conversation_id = sent["data"]["conversation"]["id"]
        no_email = await visitor.call("chat.transcript")
        assert (no_email["type"], no_email["code"]) == ("server.error", "invalid_frame")
        bad = await visitor.call("chat.transcript", email="not an address")
        assert (bad["type"], bad["code"]) == ("server.error", "invalid_frame")
        ok = await visitor.call("chat.transcript", email=to, lang="cs")
        assert ok["type"] == "ack" and ok["data"] == {"conversationId": conversation_id, "email": to}
        again = await visitor.call("chat.transcript")
        assert (again["type"], again["code"]) == ("server.error", "transcript_sent")
        flood = await visitor.call("chat.transcript")  # the 6th from this address within a minute
        assert (flood["type"], flood["code"]) == ("server.error", "rate_limited")
    await wait_for(lambda: server.to(to))  # sent by the server's own outbox worker
    [got] = server.to(to)
    assert got["Subject"] == "Vaše konverzace na webu Acme <Shop>" and got["From"] == FROM
    assert got["Reply-To"] is None
    text, html = parts(got)
    assert "Vy: Where is <my> order?" in text and "Where is &lt;my&gt; order?" in html and "<my>" not in html


def test_the_box_mails_the_conversation(browser, server, site, agent):
    """The chat box's "E-mail me this conversation", in Chromium, against the real server
    (without SMTP: the transcript waits in the outbox)."""
    v = live.visitor(browser, site, "ws")
    try:
        v.open(site.snippet())
        box = live.connected(v)
        v.click_launcher(box)
        assert box.locator("#transcript").is_hidden()  # nothing to send yet
        box.locator("#input").fill("Where is my order?")
        box.locator("#input").press("Enter")
        agent.wait("chat.message_received")
        box.get_by_role("button", name="E-mail me this conversation").click()
        box.get_by_label("Your e-mail").fill("not-an-address")
        box.get_by_role("button", name="Send the conversation").click()
        assert box.locator("#transcript-form .error").is_visible()
        box.get_by_label("Your e-mail").fill("ann@shop.example")
        box.get_by_role("button", name="Send the conversation").click()
        box.get_by_text("The conversation was sent to ann@shop.example.").wait_for(timeout=10_000)
        assert box.locator("#transcript").is_hidden() and box.locator("#transcript-form").is_hidden()
        [(event, status, payload)] = server.query("SELECT event, status, payload FROM deliveries WHERE hook_id IS NULL")
        assert (event, status, json.loads(payload)["to"]) == ("mail.transcript", "pending", "ann@shop.example")
        assert v.errors == [] and v.elsewhere == []
    finally:
        v.close()
