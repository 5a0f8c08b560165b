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
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from test_chat_box import browser as browser  # noqa: F401 (the fixture: Chromium, or a skip)
from test_chat_box_live import agent as agent  # noqa: F401 (fixtures: an agent online, ...)
from test_chat_box_live import server as server  # noqa: F401 (... the real server on SQLite, ...)
from test_chat_box_live import site as site  # noqa: F401 (... and a host page with the chat code)
from websockets.asyncio.client import connect

from conftest import free_port, new_key, serving
from opensupp.accounts import service as accounts
from opensupp.app import create_app
from opensupp.chat import protocol as p
from opensupp.chat import service as chat
from opensupp.chat.transport import transcript_bucket_key
from opensupp.cli import main as cli
from opensupp.config import BadSettings, Settings, settings_from_environment
from opensupp.db import open_database
from opensupp.errors import ValidationFailed
from opensupp.mail import compose
from opensupp.mail import service as mail
from opensupp.mail.smtp import SmtpMailer, SmtpTarget, parse_smtp_url
from opensupp.offlineemails import service as offline_emails
from opensupp.outbox import service as outbox
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


async def test_a_non_ascii_local_part_goes_with_smtputf8(db, smtp):
    """``ü@...`` passes the e-mail check: as the To (an offline e-mail) and the Reply-To (the
    visitor) it is sent with SMTPUTF8, and fails at once where the server has no SMTPUTF8."""
    to = f"ü-{secrets.token_hex(4)}@example.com"
    server = Recorder()
    port = smtp(server, enable_SMTPUTF8=True)
    aid = await account_with(db, "en", [to])
    await leave_message(db, aid, await visitor_of(db, aid), name="Jürgen", email="jürgen@shop.example", text="Hi")
    await Worker(db, mailer=mailer(port)).run_once()
    [got] = server.to(to)
    assert got["To"] == to and got["Reply-To"] == "Jürgen <jürgen@shop.example>"
    assert "SMTPUTF8" in [o.upper() for o in server.envelopes[-1].mail_options]
    [sent] = await mails_to(db, to)
    assert (sent.status, sent.attempts) == ("delivered", 1)

    old_server = Recorder()  # no SMTPUTF8: a clear failure at once, not 27 hours of retries
    old_port = smtp(old_server, enable_SMTPUTF8=False)
    reply_to_only, to = address("owner"), f"ü-{secrets.token_hex(4)}@example.com"
    aid = await account_with(db, "en", [to, reply_to_only])
    await leave_message(db, aid, await visitor_of(db, aid), name="Jürgen", email="jürgen@shop.example", text="Hi")
    await Worker(db, mailer=mailer(old_port)).run_once()
    for recipient in (to, reply_to_only):
        [failed] = await mails_to(db, recipient)
        assert (failed.status, failed.attempts) == ("failed", 1) and "SMTPUTF8" in (failed.last_error or "")
    assert not old_server.envelopes
    ascii_only = address("names")  # a non-ASCII name with an ASCII address needs no SMTPUTF8
    aid = await account_with(db, "en", [ascii_only])
    await leave_message(db, aid, await visitor_of(db, aid), name="Jürgen", email="jurgen@shop.example", text="Hi")
    await Worker(db, mailer=mailer(old_port)).run_once()
    [got] = old_server.to(ascii_only)
    assert got["Reply-To"] == "Jürgen <jurgen@shop.example>"
    assert "SMTPUTF8" not in [o.upper() for o in old_server.envelopes[-1].mail_options]


async def test_a_mail_that_cannot_be_composed_fails_at_once(db, smtp):
    server = Recorder()
    port = smtp(server)
    aid = await account_with(db, "en", [])
    async with db.transaction() as session:
        for to in ("no-at-sign", "a@b\r\nBcc: x@evil.example"):
            await outbox.enqueue(session, account_id=aid, hook_id=None, event="mail.offline_message", payload={
                "kind": compose.OFFLINE_MESSAGE, "to": to, "lang": "en", "site": "Acme", "conversation_id": 1,
                "text": "hi", "page": "", "visitor": {"name": "Ann", "email": "ann@shop.example"},
                "reply_to": {"name": "Ann", "email": "ann@shop.example"}})
    await Worker(db, mailer=mailer(port)).run_once()
    for to in ("no-at-sign", "a@b\r\nBcc: x@evil.example"):
        [failed] = await mails_to(db, to)
        assert (failed.status, failed.attempts) == ("failed", 1) and "not composed" in (failed.last_error or "")
    assert not server.envelopes


class Login:
    def __init__(self, user: str, password: str) -> None:
        self.expected = LoginPassword(user.encode(), password.encode())

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        return AuthResult(success=auth_data == self.expected, handled=False)  # not handled: 535 on a failure


async def test_login_from_the_url_is_checked_after_starttls(db, smtp, tmp_path):
    served, trusting = tls_contexts(tmp_path)
    server = Recorder()
    port = smtp(server, authenticator=Login("mailer", "p@ss:w/rd"), auth_required=True, tls_context=served,
                require_starttls=True)
    good, bad = address("auth"), address("noauth")
    aid = await account_with(db, "en", [good])
    await leave_message(db, aid, await visitor_of(db, aid), name="Ann", email="ann@shop.example", text="Hi")
    target = parse_smtp_url(f"smtp+starttls://mailer:p%40ss%3Aw%2Frd@127.0.0.1:{port}")
    assert (target.username, target.password, target.security) == ("mailer", "p@ss:w/rd", "starttls")
    assert "p@ss" not in repr(target)
    await Worker(db, mailer=SmtpMailer(target, mail_from=FROM, public_url=PUBLIC, timeout=5,
                                       tls_context=trusting)).run_once()
    assert len(server.to(good)) == 1
    aid = await account_with(db, "en", [bad])
    await leave_message(db, aid, await visitor_of(db, aid), name="Ann", email="ann@shop.example", text="Hi")
    await Worker(db, mailer=mailer(port, "starttls", username="mailer", password="wrong",
                                   tls_context=trusting)).run_once()
    [refused] = await mails_to(db, bad)  # a refused login is the operator's to fix: retried, not failed
    assert (refused.status, refused.last_status_code) == ("pending", 535) and "wrong" not in str(refused)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # aiosmtpd's, about the test's server
async def test_a_password_never_goes_in_clear_when_starttls_is_stripped(db, smtp):
    """A server that does not offer STARTTLS (as one whose offer a network attacker stripped):
    smtp:// with a user is refused at startup, and a target made in code with "plain" and a
    user does not log in without STARTTLS."""
    with pytest.raises(ValueError, match="smtp\\+starttls://"):
        parse_smtp_url("smtp://mailer:secret@127.0.0.1:25")
    tried: list[Any] = []

    def login(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        tried.append(auth_data)
        return AuthResult(success=True)

    server = Recorder()
    port = smtp(server, authenticator=login, auth_required=True, auth_require_tls=False)
    to = address("stripped")
    aid = await account_with(db, "en", [to])
    await leave_message(db, aid, await visitor_of(db, aid), name="Ann", email="ann@shop.example", text="Hi")
    await Worker(db, mailer=mailer(port, username="mailer", password="secret")).run_once()
    [waiting] = await mails_to(db, to)
    assert waiting.status == "pending" and "STARTTLS" in (waiting.last_error or "").upper()
    assert tried == [] and not server.to(to)


def tls_contexts(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """The server's context (a self-signed certificate for 127.0.0.1) and a client's that trusts it."""
    cert, key = self_signed(directory)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    return served, ssl.create_default_context(cafile=cert)


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
    ("smtp+starttls://u:p@mail.example.com:25", ("mail.example.com", 25, "starttls", "u", "p")),
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
    ("smtp://u:hunter2@mail.example.com", "use smtp+starttls:// (STARTTLS required) or smtps://"),
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


async def conversation_with(db: Any, aid: int, visitor_id: int, text: str, *, close: bool = True,
                            answered: bool = True) -> int:
    """A conversation the visitor wrote in, and a trigger (``answered``) after."""
    async with db.transaction() as session:
        posted = await chat.post_visitor_message(session, account_id=aid, visitor_id=visitor_id, text=text)
        if answered:
            await chat.post_trigger_message(session, account_id=aid, visitor_id=visitor_id, trigger_id=1,
                                            agent_nick="Anna", text="We will answer soon.")
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


async def test_a_conversation_only_the_visitor_wrote_in_is_not_mailed(db):
    aid = await account_with(db, "en", [])
    visitor_id = await visitor_of(db, aid)
    to = address("relay")
    await conversation_with(db, aid, visitor_id, "Buy cheap pills at spam.example", answered=False)
    async with db.transaction() as session:
        with pytest.raises(mail.NothingToSend):
            await mail.enqueue_transcript(session, account_id=aid, visitor_id=visitor_id, email=to)
    assert await mails_to(db, to) == []
    async with db.transaction() as session:
        visitor = await chat.get_visitor(session, account_id=aid, visitor_id=visitor_id)
    assert visitor.email != to  # refused before the address was kept


async def test_transcripts_are_limited_per_account_in_the_database(db):
    aid = await account_with(db, "en", [])
    other = await account_with(db, "en", [])  # another account's transcripts do not count
    t = int(time.time())

    async def ask(account_id: int, **kw: Any) -> Any:
        visitor_id = await visitor_of(db, account_id)
        await conversation_with(db, account_id, visitor_id, "question")
        async with db.transaction() as session:
            return await mail.enqueue_transcript(session, account_id=account_id, visitor_id=visitor_id,
                                                 email=address("v"), **kw)

    await ask(other)
    for _ in range(mail.ACCOUNT_TRANSCRIPTS_PER_HOUR):
        delivery = await ask(aid, now=t)
        assert delivery.webhook_id.startswith(f"tr-{aid}-")
    with pytest.raises(mail.TranscriptLimited) as limited:
        await ask(aid, now=t + 60)
    assert 0 < limited.value.retry_after <= 3600 and "account" in limited.value.message
    await ask(other)
    await ask(aid, now=t + 3601)  # an hour on, the account's visitors may ask again


async def test_the_hourly_counts_read_the_key_index(db):
    """The counts go to the unique index on deliveries.webhook_id by a key range, never the
    account's whole delivery log; and the range of visitor 1 holds no key of visitor 12."""
    aid = await account_with(db, "en", [])
    assert mail.key_range(aid, 1) == (f"tr-{aid}-1-", f"tr-{aid}-1.")
    low, high = mail.key_range(aid, 1)
    keys = [f"tr-{aid}-1-5", f"tr-{aid}-12-5", f"tr-{aid}-1", f"tr-{aid}1-1-5"]
    async with db.transaction() as session:  # stored keys, compared as the column compares them
        for key in keys:
            await outbox.enqueue_once(session, account_id=aid, hook_id=None, event="mail.transcript", payload={},
                                      webhook_id=key)
            await session.execute("UPDATE deliveries SET status = 'failed' WHERE webhook_id = $1", key)  # not sent
        inside = await session.fetch("SELECT webhook_id FROM deliveries WHERE webhook_id >= $1 AND webhook_id < $2",
                                     low, high)
        assert [row[0] for row in inside] == [f"tr-{aid}-1-5"]
        args = (low, high, 0, 3)
        if session.dialect == "sqlite":
            plan = " ".join(str(r[-1]) for r in await session.fetch("EXPLAIN QUERY PLAN " + mail.RECENT_SQL,
                                                                   *args))
        else:
            await session.execute("SET LOCAL enable_seqscan = off")  # a small table: the plan a big one gets
            plan = " ".join(r[0] for r in await session.fetch("EXPLAIN " + mail.RECENT_SQL, *args))
    assert "ix_deliveries_webhook_id" in plan and "ix_deliveries_account_id_id" not in plan, plan


def test_the_transcript_bucket_of_an_ipv6_address_is_its_64():
    """One host commonly holds a whole IPv6 /64: per address, the bucket would be no limit."""
    key = transcript_bucket_key
    assert key("2001:db8:1:2::1") == key("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert key("2001:db8:1:3::1") != key("2001:db8:1:2::1")
    assert key("203.0.113.7") == key("::ffff:203.0.113.7") == "203.0.113.7" != key("203.0.113.8")
    assert key("unknown") == "unknown"


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
    async with serving(app) as http_port:
        url = f"http://127.0.0.1:{http_port}"
        key = await new_key(app)
        async with httpx.AsyncClient(base_url=url, headers={"apiKey": key}, timeout=20) as api:
            account = (await api.post("/accounts/create", json={"title": "Acme <Shop>", "lang": "en"})).json()
        yield url, account, server


async def wait_for(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def answer(db: Any, account_id: int, conversation_id: int) -> None:
    """A trigger writes in the conversation (as the real trigger runner does, through the service)."""
    async with db.transaction() as session:
        visitor_id = await session.fetchval("SELECT visitor_id FROM conversations WHERE id = $1", conversation_id)
        await chat.post_trigger_message(session, account_id=account_id, visitor_id=visitor_id, trigger_id=1,
                                        agent_nick="Anna", text="We will look into it.")


async def test_a_visitor_asks_for_the_transcript_over_the_websocket(served, db):
    url, account, server = served
    ws_url = url.replace("http", "ws", 1) + f"/chat/ws/visitor?key={account['accountKey']}"
    to = address("visitor")
    async with connect(ws_url, origin="https://shop.example") as ws:  # type: ignore[arg-type]
        visitor = Client(ws)
        assert (await visitor.call("visitor.connect", pageUrl="https://shop.example/"))["type"] == "ack"
        sent = await visitor.call("chat.message", clientId="m-1", text="Where is <my> order?")
        conversation_id = sent["data"]["conversation"]["id"]
        alone = await visitor.call("chat.transcript", email=to)  # only the visitor wrote: no relay (not_found)
        assert (alone["type"], alone["code"]) == ("server.error", "not_found") and "nobody" in alone["message"].lower()
        await answer(db, int(account["id"]), conversation_id)
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
        conversation = agent.wait("chat.message_received")["conversationId"]
        agent.send(type="chat.message", conversationId=conversation, clientId="agent-1", text="Shipped today.")
        box.locator(".msg.agent").wait_for()  # a transcript is of a conversation an agent or a trigger wrote in
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
