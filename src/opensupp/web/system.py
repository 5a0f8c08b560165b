"""Routes that are not a resource: the key check, health, the API's own documentation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from opensupp.db import check_ready
from opensupp.web.errors import JSON
from opensupp.web.resources import Out
from opensupp.web.routing import Router

router = Router()
TAG = "System"

#: Swagger UI's built files, vendored (see its README.md there for the version and how to update)
ASSET_DIR = Path(__file__).with_name("docs_assets")
#: a year: an asset's URL names a hash of its content, so a new file is a new URL
ASSET_CACHE = b"public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class DocsAsset:
    """One file of the docs UI, served at a URL carrying its content's hash."""

    name: str
    content_type: bytes
    body: bytes
    digest: str

    @classmethod
    def load(cls, name: str, content_type: bytes) -> DocsAsset:
        body = (ASSET_DIR / name).read_bytes()
        return cls(name, content_type, body, hashlib.sha256(body).hexdigest()[:16])

    @property
    def url(self) -> str:
        """``/docs/swagger-ui-bundle.0123456789abcdef.js``"""
        stem, dot, suffix = self.name.partition(".")
        return f"/docs/{stem}.{self.digest}{dot}{suffix}"

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"content-type", self.content_type), (b"etag", f'"{self.digest}"'.encode()),
                (b"cache-control", ASSET_CACHE)]


DOCS_ASSETS = {
    name: DocsAsset.load(name, content_type)
    for name, content_type in (
        ("swagger-ui-bundle.js", b"text/javascript; charset=utf-8"),
        ("swagger-ui.css", b"text/css; charset=utf-8"),
        ("favicon-32x32.png", b"image/png"),
    )
}

# validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io
_DOCS_HTML = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>opensupp partner API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="{DOCS_ASSETS["favicon-32x32.png"].url}">
<link rel="stylesheet" href="{DOCS_ASSETS["swagger-ui.css"].url}"></head>
<body><div id="swagger-ui"></div>
<script src="{DOCS_ASSETS["swagger-ui-bundle.js"].url}"></script>
<script>window.ui = SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
                                     validatorUrl: null}});</script>
</body></html>""".encode()
_DOCS_ETAG = f'"{hashlib.sha256(_DOCS_HTML).hexdigest()[:16]}"'.encode()


class Success(Out):
    success: bool = Field(description="Always true: the key is valid.")


class Health(Out):
    status: str = Field(examples=["ok"])


@router.add("page", "/test", response=Success, tag=TAG)
async def test_key(req) -> dict:
    """Check an apiKey

    Answers `{"success": true}` for a valid key, 401 otherwise.
    """
    return {"success": True}


@router.add("page", "/healthz", response=Health, tag=TAG, public=True)
async def healthz(req) -> dict:
    """Liveness: the process answers

    No key needed.
    """
    return {"status": "ok"}


@router.add("page", "/readyz", response=Health, tag=TAG, public=True)
async def readyz(req) -> dict:
    """Readiness: the database answers and can write

    No key needed. 503 (with Retry-After) when the database cannot be reached, does not
    answer within the timeouts, is read-only, or its writes fail (a full disk).
    """
    await check_ready(req.db)  # an outage is logged once by the database's Health, not per poll
    return {"status": "ok"}


@router.add("page", "/openapi.json", tag=TAG, public=True, raw=True)
async def openapi_json(req):
    """This API's OpenAPI document"""
    return 200, [JSON], req.app.openapi


@router.add("page", "/docs", tag=TAG, public=True, raw=True)
async def docs(req):
    """Browsable documentation (Swagger UI)"""
    # no-cache: the page names the assets' current URLs, so it is checked on every visit
    return 200, [(b"content-type", b"text/html; charset=utf-8"), (b"etag", _DOCS_ETAG),
                 (b"cache-control", b"no-cache")], _DOCS_HTML


def _asset_route(asset: DocsAsset) -> None:
    async def serve(req):
        return 200, asset.headers, asset.body

    serve.__name__ = "docs_" + asset.name.split(".")[0].replace("-", "_")
    router.add("page", asset.url, tag=TAG, public=True, raw=True, summary=asset.name)(serve)


for _asset in DOCS_ASSETS.values():
    _asset_route(_asset)
