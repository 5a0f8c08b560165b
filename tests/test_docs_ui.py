"""/docs in a real browser: Debian's headless Chromium, driven by Playwright.

The page must render the API's operations from the vendored Swagger UI alone: every
request the page makes goes to the server under test (127.0.0.1), none to a CDN or to
Swagger's online validator. The screenshot it leaves is the README's picture of /docs.

The README's picture, ``docs/images/docs-ui.png``, is this test's screenshot: written when
missing, or again with OPENSUPP_UPDATE_SCREENSHOTS=1.

Playwright's own browser downloads are never used: the browser is the system's
``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` installs it when missing
and sets OPENSUPP_REQUIRE_BROWSER=1, which turns a missing browser into a failure).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import start_server, stop_server
from opensupp.migrate import migrate
from opensupp.web.system import ASSET_DIR

CHROMIUM = Path(os.environ.get("OPENSUPP_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "images" / "docs-ui.png"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("OPENSUPP_REQUIRE_BROWSER") == "1":
            pytest.fail(message + "; OPENSUPP_REQUIRE_BROWSER=1 requires it", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses to start.
        # No host but 127.0.0.1 resolves, so nothing the page asks for can leave the machine
        # (the test also records and refuses every such request, to name it).
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The docs do not touch the database: one server on SQLite is enough."""
    directory = tmp_path_factory.mktemp("docs-ui")
    url = f"sqlite:///{directory / 'opensupp.db'}"
    migrate(url)
    live = start_server(url, directory)
    yield live
    stop_server(live)


def _update_screenshot() -> bool:
    """Write the README's picture when it is missing or OPENSUPP_UPDATE_SCREENSHOTS=1 asks; else
    the picture goes to a temporary directory (every rendering differs by a few bytes, which
    would leave the work tree changed after each run)."""
    return not SCREENSHOT.exists() or os.environ.get("OPENSUPP_UPDATE_SCREENSHOTS") == "1"


def test_docs_render_every_operation_from_this_server_alone(browser, server, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    requested: list[str] = []
    elsewhere: list[str] = []

    def only_this_server(route):
        url = route.request.url
        requested.append(url)
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith("data:"):
            route.continue_()
        else:  # recorded, and never sent
            elsewhere.append(url)
            route.abort()

    context.route("**/*", only_this_server)
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    try:
        page.goto(server.url + "/docs", wait_until="networkidle")
        page.get_by_text("Create a user", exact=True).first.wait_for(timeout=30_000)

        document = json.loads(page.evaluate("() => JSON.stringify(window.ui.specSelectors.specJson().toJS())"))
        operations = [(method, path) for path, item in document["paths"].items() for method in item]
        summaries = page.locator(".opblock-summary-description").all_inner_texts()
        assert len(summaries) == len(operations)
        expected = {"Create a user", "List offline emails", "Create an offline email", "Create an account"}
        assert expected <= set(summaries)
        assert page.locator(".title .version-stamp, .title small").first.is_visible()
        assert "OAS 3.1" in page.locator(".title").inner_text()
        assert page.get_by_text("Resolver error").count() == 0  # every $ref resolved

        # the picture, taken before anything is clicked (a clicked row keeps its hover buttons)
        picture = SCREENSHOT if _update_screenshot() else tmp_path / SCREENSHOT.name
        picture.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(picture))
        assert picture.stat().st_size > 20_000  # a rendered page, not a blank one

        # an operation opens on its documented request body, resolved from the components
        page.get_by_text("Create a user", exact=True).first.click()
        block = page.locator(".opblock.is-open")
        block.get_by_text("Request body").first.wait_for()
        assert "email" in block.inner_text()
    finally:
        context.close()

    assert elsewhere == []
    assert any(re.search(r"/docs/swagger-ui-bundle\.[0-9a-f]{16}\.js$", url) for url in requested)
    assert server.url + "/openapi.json" in requested
    assert page_errors == []


def test_vendored_ui_readme_names_its_version():
    """The README beside the assets says which release they are (its update steps rely on it)."""
    version = json.loads((ASSET_DIR / "package.json").read_text())["version"]
    assert re.match(r"^5\.\d+\.\d+$", version)
    assert f"**{version}**" in (ASSET_DIR / "README.md").read_text()
