"""The chat code's pages: ``GET /loader.js`` (the script the guide's snippet loads on a host
page), ``GET /chat/box?key=KEY`` (the chat box the loader puts in an iframe), and
``GET /widget?accountKey=KEY`` / ``GET /widget/KEY`` (the same box as a full page, the
guide's preview link). An unknown key gets a friendly 404 page.

The box's pages send a strict Content-Security-Policy: scripts and styles only from this
origin (no inline script), connections only to this origin (http and ws), nothing framed
inside them. The account's look (boxlook/: colour, side, title, greeting) is in the page's
config; the page's own options (the loader's) win over it. Texts are in the account's
language (``chat_strings.json``: every language of ``LANGS`` falls back to English for
what it does not say).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from opensupp.boxlook.models import BoxLook
from opensupp.boxlook.service import box_look_of
from opensupp.langs import LANGS

if TYPE_CHECKING:
    from opensupp.site.app import Site

HERE = Path(__file__).parent
LOADER = HERE / "static" / "loader.js"
STRINGS = HERE / "chat_strings.json"
#: an account key as accounts/service.py makes them (40 lowercase hex); anything else is unknown without a query
ACCOUNT_KEY = re.compile(r"[0-9a-f]{40}")
#: the loader is fetched by every page view of every host site: browsers keep it a few minutes,
#: then revalidate it with its ETag (a new release reaches the sites within that time)
LOADER_CACHE = "public, max-age=300"


@dataclass(frozen=True, slots=True)
class BoxAccount:
    """What the box shows of an account: its key, title and language."""

    id: int
    key: str
    title: str
    lang: str


async def account_by_key(site: Site, key: str) -> BoxAccount | None:
    """The account whose public ``accountKey`` is ``key``, or None (a malformed key included)."""
    if not ACCOUNT_KEY.fullmatch(key):
        return None
    async with site.db.read() as session:
        row = await session.fetchrow("SELECT id, account_key, title, lang FROM accounts WHERE account_key = $1", key)
    return None if row is None else BoxAccount(*row)


async def account_by_id(site: Site, account_id: int) -> BoxAccount | None:
    """The account ``account_id`` as the box shows it (the admin pages' preview)."""
    async with site.db.read() as session:
        row = await session.fetchrow("SELECT id, account_key, title, lang FROM accounts WHERE id = $1", account_id)
    return None if row is None else BoxAccount(*row)


@cache
def all_strings() -> dict[str, dict[str, str]]:
    """Every language of LANGS to its box texts: the language's own where written, English for the rest."""
    written: dict[str, dict[str, str]] = json.loads(STRINGS.read_text(encoding="utf-8"))
    english = written["en"]
    return {lang: {**english, **written.get(lang, {})} for lang in LANGS}


def written_strings() -> dict[str, dict[str, str]]:
    """The languages with texts of their own (the box switches among them for ``smartsupp('language')``;
    any other code shows English)."""
    strings = all_strings()
    return {lang: strings[lang] for lang in json.loads(STRINGS.read_text(encoding="utf-8"))}


class LoaderScript:
    """loader.js, read once with its gzip form and ETag (the file is part of the installed package)."""

    def __init__(self, path: Path = LOADER) -> None:
        self.body = path.read_bytes()
        self.gzipped = gzip.compress(self.body, compresslevel=9, mtime=0)
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'

    async def respond(self, request: Request) -> Response:
        headers = {
            "cache-control": LOADER_CACHE,
            "etag": self.etag,
            "vary": "Accept-Encoding",
            # a host page that isolates itself (Cross-Origin-Embedder-Policy) may still load it
            "cross-origin-resource-policy": "cross-origin",
            "x-content-type-options": "nosniff",
        }
        media = "text/javascript; charset=utf-8"
        if self.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(self.gzipped, media_type=media, headers={**headers, "content-encoding": "gzip"})
        return Response(self.body, media_type=media, headers=headers)


def box_policy(request: Request) -> str:
    """The box pages' Content-Security-Policy: this origin only (its websocket included:
    ``'self'`` names ws/wss only in newer browsers, so they are spelled out)."""
    host = request.headers.get("host") or request.url.netloc
    return "; ".join((
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        f"connect-src 'self' ws://{host} wss://{host}",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-src 'none'",
    ))


def box_headers(request: Request) -> dict[str, str]:
    return {"content-security-policy": box_policy(request), "cache-control": "no-store",
            "referrer-policy": "no-referrer", "x-content-type-options": "nosniff"}


def box_page(site: Site, request: Request, account: BoxAccount, look: BoxLook, mode: str, *,
             preview: bool = False) -> Response:
    """The box's page for ``account`` with its ``look`` (boxlook/); ``preview``: the admin
    pages' preview of a look, which box.js shows without connecting."""
    asked = request.query_params.get("lang", "")
    lang = asked if asked in LANGS else account.lang if account.lang in LANGS else "en"
    config: dict[str, Any] = {
        "key": account.key,
        "title": look.title or account.title,
        "lang": lang,
        "mode": mode,
        "strings": written_strings(),
        "look": {"color": look.color, "position": look.position, "welcome": look.welcome},
    }
    if preview:
        config["preview"] = True
    return site.templates.TemplateResponse(
        request, "chat_box.html", {"config": config, "strings": all_strings()[lang], "lang": lang, "mode": mode},
        headers=box_headers(request),
    )


def box_routes(site: Site) -> list[BaseRoute]:
    """The routes site/app.py mounts: the loader, the box, the full-page box."""
    loader = LoaderScript()

    async def render(request: Request, key: str, mode: str) -> Response:
        account = await account_by_key(site, key)
        if account is None:
            return site.templates.TemplateResponse(request, "chat_missing.html", {"key": key}, status_code=404,
                                                   headers=box_headers(request))
        async with site.db.read() as session:
            look = await box_look_of(session, account_id=account.id)
        return box_page(site, request, account, look, mode)

    async def box(request: Request) -> Response:
        mode = "embed" if request.query_params.get("embed") == "1" else "page"
        return await render(request, request.query_params.get("key", ""), mode)

    async def widget(request: Request) -> Response:
        key = request.path_params.get("key") or request.query_params.get("accountKey") or \
            request.query_params.get("key", "")
        return await render(request, key, "page")

    return [
        Route("/loader.js", loader.respond, name="loader"),
        Route("/chat/box", box, name="chat_box"),
        Route("/widget", widget, name="widget"),
        Route("/widget/{key}", widget, name="widget_key"),
    ]
