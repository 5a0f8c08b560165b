"""Mails composed: a mail delivery's payload (what ``opensupp.mail.service`` enqueues) turned
into its subject, text and HTML parts in the payload's language (en, cs; anything else: en),
and into an ``email.message.EmailMessage``.

Pure functions of their arguments. Whatever a visitor wrote is HTML-escaped in the HTML part;
headers are set through the ``email`` package's objects (``Address``), never by concatenating
strings, and a name or subject loses its control characters first, so a CR/LF in a visitor's
name cannot add a header.
"""

from __future__ import annotations

import email.policy
import html
import re
import time
import unicodedata
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

OFFLINE_MESSAGE = "offline_message"
TRANSCRIPT = "transcript"
EVENTS = {OFFLINE_MESSAGE: "mail.offline_message", TRANSCRIPT: "mail.transcript"}
HEADER_TEXT_MAX = 120  # characters of a name or site title in a header
#: the policy mails are made with: an address may have a non-ASCII local part (``ü@example.com``,
#: which our e-mail check lets through); sent with SMTPUTF8 (opensupp.mail.smtp)
POLICY = email.policy.SMTPUTF8

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "offline.subject": "Message from {visitor} on {site}",
        "offline.intro": "{visitor} ({email}) left a message on {site} while nobody was online:",
        "offline.page": "Page: {page}",
        "offline.open": "Open the conversation: {url}",
        "offline.reply": "Reply to this e-mail to answer {visitor}.",
        "transcript.subject": "Your conversation on {site}",
        "transcript.intro": "Here is the transcript of your conversation on {site}, as asked for in its chat.",
        "transcript.you": "You",
        "transcript.agent": "Agent",
        "transcript.footer": "You receive this e-mail because it was asked for in the chat on {site}.",
        "noName": "A visitor",
    },
    "cs": {
        "offline.subject": "Zpráva od {visitor} z webu {site}",
        "offline.intro": "{visitor} ({email}) zanechal(a) na webu {site} zprávu, když nikdo nebyl online:",
        "offline.page": "Stránka: {page}",
        "offline.open": "Otevřít konverzaci: {url}",
        "offline.reply": "Odpovědí na tento e-mail odpovíte návštěvníkovi {visitor}.",
        "transcript.subject": "Vaše konverzace na webu {site}",
        "transcript.intro": "Zde je přepis vaší konverzace na webu {site}, o který jste v chatu požádali.",
        "transcript.you": "Vy",
        "transcript.agent": "Operátor",
        "transcript.footer": "Tento e-mail dostáváte, protože o něj někdo požádal v chatu na webu {site}.",
        "noName": "Návštěvník",
    },
}


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


def lang_of(lang: str | None) -> str:
    """The mail's language: ``lang``'s primary subtag when there are strings for it, else en."""
    primary = (lang or "").replace("_", "-").split("-")[0].lower()
    return primary if primary in STRINGS else "en"


def one_line(text: str, limit: int = HEADER_TEXT_MAX) -> str:
    """``text`` fit for a header: control characters (CR, LF, ...) as spaces, runs of spaces as
    one, at most ``limit`` characters."""
    cleaned = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text)
    return re.sub(r"\s+", " ", cleaned).strip()[:limit]


def check_address(text: str) -> str:
    """A From address (``chat@acme.example`` or ``Acme Chat <chat@acme.example>``); ValueError if not one."""
    if one_line(text, len(text)) != text.strip():
        raise ValueError("must be one line without control characters")
    name, addr = parseaddr(text)
    local, _, domain = addr.rpartition("@")
    if not local or "." not in domain and domain != "localhost":
        raise ValueError("must be an e-mail address, like chat@acme.example or `Acme Chat <chat@acme.example>`")
    return text.strip()


def _t(lang: str, key: str, **values: str) -> str:
    return STRINGS[lang][key].format(**values)


def render(payload: dict[str, Any], *, public_url: str) -> Rendered:
    """The subject and both parts of a mail delivery's payload."""
    if payload["kind"] == TRANSCRIPT:
        return _transcript(payload)
    return _offline_message(payload, public_url)


def subject_of(payload: dict[str, Any]) -> str:
    return render(payload, public_url="").subject


def _visitor_name(payload: dict[str, Any], lang: str) -> str:
    return one_line(payload["visitor"]["name"]) or _t(lang, "noName")


def _offline_message(payload: dict[str, Any], public_url: str) -> Rendered:
    lang = lang_of(payload["lang"])
    visitor, site, email = _visitor_name(payload, lang), one_line(payload["site"]), payload["visitor"]["email"]
    url = f"{public_url}/dashboard/conversations/{int(payload['conversation_id'])}"
    lines = [_t(lang, "offline.intro", visitor=visitor, email=email, site=site), "", payload["text"], ""]
    if payload.get("page"):
        lines.append(_t(lang, "offline.page", page=payload["page"]))
    lines += [_t(lang, "offline.open", url=url), "", _t(lang, "offline.reply", visitor=visitor)]
    e = html.escape
    parts = [f"<p>{e(_t(lang, 'offline.intro', visitor=visitor, email=email, site=site))}</p>",
             f"<blockquote style=\"white-space: pre-wrap\">{e(payload['text'])}</blockquote>"]
    if payload.get("page"):  # the page is the visitor's word: shown, never a link
        parts.append(f"<p>{e(_t(lang, 'offline.page', page=payload['page']))}</p>")
    label = _t(lang, "offline.open", url="").rstrip(": ")
    parts += [f"<p><a href=\"{e(url)}\">{e(label)}</a></p>", f"<p>{e(_t(lang, 'offline.reply', visitor=visitor))}</p>"]
    return Rendered(_t(lang, "offline.subject", visitor=visitor, site=site), "\n".join(lines) + "\n",
                    _page(lang, parts))


def _when(at: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))


def _speaker(item: dict[str, Any], lang: str) -> str:
    if item["kind"] == "visitor":
        return _t(lang, "transcript.you")
    return one_line(item.get("nick") or "") or _t(lang, "transcript.agent")


def _transcript(payload: dict[str, Any]) -> Rendered:
    lang = lang_of(payload["lang"])
    site = one_line(payload["site"])
    items = [(_when(m["at"]), _speaker(m, lang), m["text"]) for m in payload["messages"]]
    text = [_t(lang, "transcript.intro", site=site), ""]
    text += [f"[{when}] {who}: {said}" for when, who, said in items]
    text += ["", _t(lang, "transcript.footer", site=site)]
    e = html.escape
    rows = "".join(f"<tr><td style=\"color:#666;white-space:nowrap\">{e(when)}</td><th scope=\"row\" "
                   f"style=\"text-align:left\">{e(who)}</th><td style=\"white-space:pre-wrap\">{e(said)}</td></tr>"
                   for when, who, said in items)
    parts = [f"<p>{e(_t(lang, 'transcript.intro', site=site))}</p>", f"<table>{rows}</table>",
             f"<p style=\"color:#666\">{e(_t(lang, 'transcript.footer', site=site))}</p>"]
    return Rendered(_t(lang, "transcript.subject", site=site), "\n".join(text) + "\n", _page(lang, parts))


def _page(lang: str, parts: list[str]) -> str:
    body = "\n".join(parts)
    head = f"<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"></head>"
    return f"{head}<body>\n{body}\n</body></html>\n"


def address(addr_spec: str, display_name: str = "") -> Address:
    """An ``Address`` of ``local@domain`` made from its parts: ``Address(addr_spec=...)`` refuses
    a non-ASCII local part under any policy. ValueError for a text without ``@`` or with a line
    break."""
    local, at, domain = addr_spec.strip().rpartition("@")
    if not at or not local or not domain or one_line(addr_spec, len(addr_spec)) != addr_spec.strip():
        raise ValueError(f"not an e-mail address: {addr_spec!r}")
    return Address(display_name=display_name, username=local, domain=domain)


def message(payload: dict[str, Any], *, mail_from: str, public_url: str, message_id: str | None = None) -> EmailMessage:
    """The mail to send (``POLICY``): From ``mail_from`` (never the visitor), To the payload's
    recipient, Reply-To the visitor (an offline message's), a text and an HTML part. Any error
    means the payload cannot make a mail (opensupp.mail.smtp fails it for good)."""
    rendered = render(payload, public_url=public_url)
    msg = EmailMessage(policy=POLICY)
    msg["From"] = mail_from
    msg["To"] = address(payload["to"])
    reply_to = payload.get("reply_to")
    if reply_to:
        msg["Reply-To"] = address(reply_to["email"], one_line(reply_to["name"]))
    msg["Subject"] = one_line(rendered.subject, 250)
    msg["Date"] = formatdate(usegmt=True)
    if message_id:
        domain = parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"
        msg["Message-ID"] = f"<{one_line(message_id, 64).replace(' ', '')}@{domain}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(rendered.text)  # (clears the Content-* headers: Content-Language comes after)
    msg.add_alternative(rendered.html, subtype="html")
    msg["Content-Language"] = lang_of(payload["lang"])
    return msg
