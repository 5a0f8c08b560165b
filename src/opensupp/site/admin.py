"""The admin pages: /admin/... (users, triggers, office hours, offline e-mails, hooks, the box's look)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from opensupp.site.app import Site


def admin_routes(site: Site) -> list[BaseRoute]:
    return []
