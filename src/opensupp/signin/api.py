"""HTTP route for one-time sign-in links: POST /accounts/:aid/users/:uid/login-link."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from opensupp.db import Session
from opensupp.signin import service
from opensupp.timeutil import iso
from opensupp.users.service import USERS
from opensupp.web.fields import Body
from opensupp.web.resources import Out
from opensupp.web.routing import Router

router = Router()


class LoginLinkCreate(Body):
    """No fields: the link signs in the user of the path."""


class LoginLinkOut(Out):
    url: str = Field(description="Opens the dashboard signed in as the user; works once, until expiresAt.")
    expiresAt: str = Field(description="ISO 8601 UTC; OPENSUPP_LOGIN_LINK_SECONDS after it was made (60).")


@router.add("action", "/accounts/{aid}/users/{uid}/login-link", body=LoginLinkCreate, response=LoginLinkOut,
            tag="Users")
async def create_login_link(req: Any, session: Session, body: LoginLinkCreate) -> dict[str, Any]:
    """Create a one-time sign-in link

    A link that signs the user in to the agent dashboard: send the user's browser to it
    (a redirect from your panel). It works once, and for OPENSUPP_LOGIN_LINK_SECONDS (60)
    after it was made; later or again it shows the sign-in page. Unlike the guide's fast
    login (`/sign/in?apiKey=...`), your API key never reaches a browser. Only the link's
    SHA-256 is stored.
    """
    account_id, user_id = req.ids
    await USERS.get(session, partner_id=req.partner_id, account_id=account_id, item_id=user_id)
    settings = req.app.settings
    token, expires_at = await service.create_link(session, account_id=account_id, user_id=user_id,
                                                  seconds=settings.login_link_seconds)
    return {"url": f"{settings.public_url}/sign/link/{token}", "expiresAt": iso(expires_at)}
