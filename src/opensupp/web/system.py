"""Routes that are not a resource: the key check, health, the API's own documentation."""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from pydantic import Field

from opensupp.db import check_ready
from opensupp.web.errors import JSON
from opensupp.web.resources import Out
from opensupp.web.routing import Router

router = Router()
TAG = "System"

_DOCS_HTML = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>opensupp partner API</title>
<link rel="icon" href="/docs/favicon-32x32.png">
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});</script>
</body></html>"""

_ASSETS = {
    "swagger-ui.css": b"text/css; charset=utf-8",
    "swagger-ui-bundle.js": b"text/javascript; charset=utf-8",
    "favicon-32x32.png": b"image/png",
}


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
    return 200, [(b"content-type", b"text/html; charset=utf-8")], _DOCS_HTML


def _asset_route(name: str, content_type: bytes) -> None:
    path = Path(swagger_ui_bundle.swagger_ui_path) / name

    async def asset(req):
        return 200, [(b"content-type", content_type), (b"cache-control", b"public, max-age=86400")], path.read_bytes()

    asset.__name__ = "docs_" + name.split(".")[0].replace("-", "_")
    router.add("page", f"/docs/{name}", tag=TAG, public=True, raw=True, summary=name)(asset)


for _name, _type in _ASSETS.items():
    _asset_route(_name, _type)
