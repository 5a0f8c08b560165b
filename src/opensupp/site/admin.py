"""The admin pages: /admin/... (users, triggers, office hours, offline e-mails, hooks, the box's look).

Each section (site/admin_<section>.py) is a thin edge over the partner API's own routes
(site/partnerapi.py, through site/adminkit.py): a form's fields become the API's JSON
body, the API's route validates and writes it, and its errors (the messages a partner
script gets) are shown next to the form, with a 400. Every page and action is for the
signed-in account's admins only (an agent gets 403); CSRF is checked before it
(site/csrf.py). A success redirects (303) to the section's page with a short notice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from opensupp.site import admin_box, admin_emails, admin_hooks, admin_hours, admin_triggers, admin_users
from opensupp.site.adminkit import AdminPages
from opensupp.site.auth import SignedIn

if TYPE_CHECKING:
    from opensupp.site.app import Site


def admin_routes(site: Site) -> list[BaseRoute]:
    pages = AdminPages(site)

    async def home(request: Request, who: SignedIn) -> Response:
        return RedirectResponse("/admin/users", status_code=303)

    return [
        Route("/admin", pages.admin_only(home), name="admin"),
        *admin_users.routes(pages),
        *admin_triggers.routes(pages),
        *admin_hours.routes(pages),
        *admin_emails.routes(pages),
        *admin_hooks.routes(pages),
        *admin_box.routes(pages),
    ]
