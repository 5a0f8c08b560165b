"""The agent dashboard: /dashboard (inbox, live visitors, a conversation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from opensupp.site.app import Site


def dashboard_routes(site: Site) -> list[BaseRoute]:
    return []
