"""SMTP: ``OPENSUPP_SMTP_URL`` parsed, and ``SmtpMailer``, the outbox worker's ``Mailer``
(opensupp.outbox.worker) over aiosmtplib.

Schemes: ``smtp://`` (port 25; STARTTLS when the server offers it; no user or password: a
network attacker could strip the STARTTLS offer and read them, so such a URL is refused at
startup), ``smtp+starttls://`` (587; STARTTLS required), ``smtps://`` (465; TLS from the start).
Certificates are verified. User and password are percent-decoded; neither is ever in a log line
or an error (``SmtpTarget.__repr__``). A target made in code with ``plain`` and a user logs in
only after STARTTLS all the same.

A mail is composed under ``email.policy.SMTPUTF8``: an address with a non-ASCII local part
(``ü@example.com``) in To or Reply-To is sent with SMTPUTF8 when the server offers it.

What a send's outcome means to the outbox: a recipient refused for good (5xx to RCPT), a
message refused for good (5xx to DATA), a mail that cannot be composed, or one that needs
SMTPUTF8 from a server without it fails the delivery at once; anything else (a 4xx, a
connection that fails or times out, a refused login or sender, which are the operator's to fix)
is retried on the outbox's schedule.
"""

from __future__ import annotations

import email.generator
import io
import ssl
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import aiosmtplib
import orjson

from opensupp.mail import compose
from opensupp.outbox.models import Delivery
from opensupp.outbox.sending import Outcome

if TYPE_CHECKING:
    from opensupp.config import Settings

Security = Literal["plain", "starttls", "tls"]
SCHEMES: dict[str, tuple[Security, int]] = {
    "smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)
}
TIMEOUT = 30.0  # seconds for each step of a send (connect, each command)


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    security: Security
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_smtp_url(url: str) -> SmtpTarget:
    """The target of an SMTP URL; ValueError says what is wrong (never repeating the URL, which
    may hold a password)."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in SCHEMES:
        raise ValueError("must start with smtp://, smtp+starttls:// or smtps://, like smtp+starttls://user:"
                         "password@mail.example.com:587")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValueError("has no host, like smtp://mail.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must have nothing after the host and port (no path or query)")
    security, default_port = SCHEMES[parts.scheme]
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    if password is not None and username is None:
        raise ValueError("has a password but no user")
    if username is not None and security == "plain":
        raise ValueError("has a user with smtp://, which logs in in clear if STARTTLS is not offered (a network"
                         " attacker can strip it): use smtp+starttls:// (STARTTLS required) or smtps://")
    return SmtpTarget(parts.hostname, port or default_port, security, username, password)


class SmtpMailer:
    """Sends mail deliveries (their payload: opensupp.mail.compose) through one SMTP server."""

    def __init__(self, target: SmtpTarget, *, mail_from: str, public_url: str, timeout: float = TIMEOUT,
                 tls_context: ssl.SSLContext | None = None) -> None:
        self.target = target
        self.mail_from = mail_from
        self.public_url = public_url
        self.timeout = timeout
        self.tls_context = tls_context

    async def send(self, delivery: Delivery) -> Outcome:
        try:
            message = compose.message(orjson.loads(delivery.payload), mail_from=self.mail_from,
                                      public_url=self.public_url, message_id=delivery.webhook_id)
        except Exception as exc:  # the payload cannot make a mail: no retry would
            return Outcome(False, error=f"not composed: {type(exc).__name__}: {exc}", permanent=True)
        t = self.target
        client = aiosmtplib.SMTP(
            hostname=t.host, port=t.port, username=t.username, password=t.password, use_tls=t.security == "tls",
            start_tls=True if t.security == "starttls" or t.username is not None and t.security == "plain" else None,
            timeout=self.timeout, tls_context=self.tls_context,
        )
        try:
            async with client:
                return await _send(client, message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return _refused(exc.recipients)
        except aiosmtplib.SMTPDataError as exc:
            return _answered(exc.code, exc.message, permanent=exc.code >= 500)
        except aiosmtplib.SMTPResponseException as exc:  # a refused login or sender, a 4xx: retried
            return _answered(exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError) as exc:  # no connection, a timeout, TLS that fails
            return Outcome(False, error=f"{type(exc).__name__}: {exc}")


def needs_smtputf8(message: compose.EmailMessage) -> bool:
    """Whether an address of the mail (From, To, Reply-To) is not ASCII (a name is no matter:
    it goes as an encoded word)."""
    return any(not address.addr_spec.isascii() for name in ("From", "To", "Reply-To") if name in message
               for address in message[name].addresses)


async def _send(client: aiosmtplib.SMTP, message: compose.EmailMessage) -> Outcome:
    """``message`` sent on the connected ``client``: with SMTPUTF8 when an address needs it (a
    server without it fails the mail for good), 8BITMIME when offered."""
    utf8 = needs_smtputf8(message)
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    if utf8 and not client.supports_extension("smtputf8"):
        return Outcome(False, error="SMTPUTF8 not supported: the SMTP server cannot take an address that is not"
                                    " ASCII (a recipient's or the Reply-To's)", permanent=True)
    options = ["SMTPUTF8"] if utf8 else []
    cte = "7bit"
    if client.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")
        cte = "8bit"
    data = io.BytesIO()
    policy = compose.POLICY.clone(utf8=utf8, cte_type=cte, linesep="\r\n")
    email.generator.BytesGenerator(data, policy=policy).flatten(message)
    sender = message["From"].addresses[0].addr_spec
    recipients = [a.addr_spec for a in message["To"].addresses]
    _, answer = await client.sendmail(sender, recipients, data.getvalue(), mail_options=options)
    return Outcome(True, 250, response=answer)


def _refused(recipients: list[aiosmtplib.SMTPRecipientRefused]) -> Outcome:
    code = max(r.code for r in recipients)
    text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in recipients)
    return Outcome(False, code, f"SMTP {code}: recipient refused", text, permanent=code >= 500)


def _answered(code: int, text: str, *, permanent: bool = False) -> Outcome:
    return Outcome(False, code, f"SMTP {code}", f"{code} {text}", permanent=permanent)


def mailer_for(settings: Settings) -> SmtpMailer | None:
    """The worker's mailer when ``OPENSUPP_SMTP_URL`` is set; None (mails wait in the outbox) when not."""
    if settings.smtp_url is None:
        return None
    return SmtpMailer(parse_smtp_url(settings.smtp_url.get_secret_value()), mail_from=settings.resolved_mail_from(),
                      public_url=settings.public_url)
