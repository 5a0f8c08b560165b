"""The chat code's server side: /loader.js, the box page /chat/box, the preview pages /widget,
their Content-Security-Policy, the friendly 404 of an unknown key, and the box's texts in
the account's language. On SQLite and PostgreSQL, through the real app. (The browser half is
tests/test_chat_box.py.)"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from conftest import client_for
from opensupp.app import create_app
from opensupp.config import Settings
from opensupp.langs import LANGS
from opensupp.site.loader import LOADER, STRINGS, all_strings

pytestmark = pytest.mark.anyio

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
LOADER_BUDGET = 10 * 1024  # bytes of gzip: the budget for loader.js


@pytest.fixture
async def site(database_url: str, tmp_path: Any) -> AsyncIterator[Any]:
    application = create_app(Settings(database_url=database_url, data_dir=tmp_path))
    await application.startup()
    try:
        yield application
    finally:
        await application.shutdown()


@pytest.fixture
async def web(site: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(site) as client:
        yield client


async def new_account(site: Any, title: str = "Shop", lang: str = "en") -> dict[str, Any]:
    from conftest import new_key

    key = await new_key(site)
    async with client_for(site, key) as api:
        r = await api.post("/accounts/create", json={"title": title, "lang": lang})
        assert r.status_code == 200, r.text
        return dict(r.json())


class Scripts(HTMLParser):
    """The page's <script> elements: their attributes and whether they hold text."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self._in: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._in = dict(attrs)
            self.scripts.append(self._in)
        for name, _ in attrs:
            assert not name.startswith("on"), f"an inline event handler: {name}"

    def handle_data(self, data: str) -> None:
        if self._in is not None and data.strip():
            self.inline.append(self._in.get("type") or "text/javascript")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in = None


# --------------------------------------------------------------------------- /loader.js


async def test_loader_is_served_gzipped_within_its_budget_and_revalidated(web):
    r = await web.get("/loader.js", headers={"accept-encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["content-encoding"] == "gzip"
    assert int(r.headers["content-length"]) <= LOADER_BUDGET
    assert len(gzip.compress(LOADER.read_bytes(), 9)) <= LOADER_BUDGET
    assert r.content == LOADER.read_bytes()  # httpx decoded it: the file as it is
    assert r.headers["cache-control"] == "public, max-age=300"
    assert r.headers["cross-origin-resource-policy"] == "cross-origin"  # isolated host pages may load it
    again = await web.get("/loader.js", headers={"if-none-match": r.headers["etag"]})
    assert again.status_code == 304
    plain = await web.get("/loader.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == LOADER.read_bytes()


async def test_the_loader_sets_no_global_but_smartsupp():
    """A static look at what the browser tests show: the loader is one IIFE in strict mode,
    and the only window property it writes is ``smartsupp``."""
    source = LOADER.read_text()
    assert source.lstrip().startswith("/*") and "(function () {\n  'use strict';" in source
    assert set(re.findall(r"\bw\.([A-Za-z_$][\w$]*)\s*=[^=]", source)) == {"smartsupp"}
    assert "innerHTML" not in source and "eval(" not in source


# --------------------------------------------------------------------------- the box and the preview pages


async def test_box_page_has_a_strict_policy_and_no_inline_script(site, web):
    account = await new_account(site, title="Shop <script>alert(1)</script>")
    r = await web.get(f"/chat/box?key={account['accountKey']}&embed=1", headers=HTML)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    policy = dict(part.strip().split(" ", 1) for part in r.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["connect-src"].split() == ["'self'", "ws://api.test", "wss://api.test"]
    assert policy["base-uri"] == "'none'" and policy["form-action"] == "'none'"
    assert r.headers["cache-control"] == "no-store"

    parser = Scripts()
    parser.feed(r.text)
    assert parser.inline == ["application/json"]  # the box's settings: data, never run
    sources = [s["src"] for s in parser.scripts if s.get("src")]
    assert len(sources) == 1 and re.fullmatch(r"/static/box\.[0-9a-f]{12}\.js", sources[0] or "")
    assert re.search(r'href="/static/box\.[0-9a-f]{12}\.css"', r.text)
    # what the partner typed is text, in the page and in its settings
    assert "<script>alert(1)</script>" not in r.text
    assert "Shop &lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    config = json.loads(re.search(r'id="opensupp-config">(.*?)</script>', r.text, re.S).group(1))  # type: ignore[union-attr]
    assert config["title"] == "Shop <script>alert(1)</script>"
    assert config["key"] == account["accountKey"] and config["mode"] == "embed" and config["lang"] == "en"

    css = await web.get(sources[0] or "")
    assert css.status_code == 200 and "immutable" in css.headers["cache-control"]


async def test_preview_pages_show_the_box_as_a_full_page(site, web):
    account = await new_account(site)
    key = account["accountKey"]
    for path in (f"/widget?accountKey={key}", f"/widget/{key}", f"/chat/box?key={key}"):
        r = await web.get(path, headers=HTML)
        assert r.status_code == 200, path
        assert 'class="mode-page"' in r.text
        assert "content-security-policy" in r.headers


@pytest.mark.parametrize("path", ["/widget?accountKey={key}", "/widget/{key}", "/chat/box?key={key}&embed=1"])
@pytest.mark.parametrize("key", ["0" * 40, "not-a-key", "", "A" * 40, "x" * 5000])
async def test_an_unknown_key_gets_a_friendly_404_page(web, path, key):
    r = await web.get(path.format(key=key), headers=HTML, follow_redirects=True)  # /widget/ -> /widget
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "This chat is not available" in r.text
    assert "content-security-policy" in r.headers
    assert "x" * 100 not in r.text  # a long key is cut, not echoed whole


async def test_the_box_speaks_the_accounts_language(site, web):
    czech = await new_account(site, lang="cs")
    r = await web.get(f"/widget/{czech['accountKey']}", headers=HTML)
    assert '<html lang="cs"' in r.text
    assert "Napište zprávu…" in r.text and "Odeslat" in r.text
    # a language without its own texts: the English ones, the language still named
    german = await new_account(site, lang="de")
    r = await web.get(f"/widget/{german['accountKey']}", headers=HTML)
    assert '<html lang="de"' in r.text and "Write a message…" in r.text
    # ?lang= picks another of LANGS (the loader does not use it; a preview link may)
    r = await web.get(f"/widget/{german['accountKey']}?lang=cs", headers=HTML)
    assert "Napište zprávu…" in r.text


async def test_every_language_has_every_text():
    written = json.loads(STRINGS.read_text(encoding="utf-8"))
    assert {"en", "cs"} <= set(written)
    for lang, texts in written.items():
        assert lang in LANGS
        assert set(texts) == set(written["en"]), lang  # a written language says everything
    strings = all_strings()
    assert set(strings) == set(LANGS)
    assert all(set(texts) == set(written["en"]) for texts in strings.values())
    # every text the page and box.js ask for exists
    template = (STRINGS.parent / "templates" / "chat_box.html").read_text()
    script = (STRINGS.parent / "static" / "box.js").read_text()
    asked = set(re.findall(r"strings\.(\w+)", template)) | set(re.findall(r"data-t(?:-\w+)?=\"(\w+)\"", template))
    asked |= set(re.findall(r"\bt\('(\w+)'", script))
    assert asked - {"title"} <= set(written["en"]), asked - set(written["en"])
