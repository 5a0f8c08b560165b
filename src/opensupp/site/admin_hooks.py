"""stub"""

from __future__ import annotations

from starlette.routing import BaseRoute

from opensupp.site.adminkit import AdminPages


def routes(pages: AdminPages) -> list[BaseRoute]:
    return []
