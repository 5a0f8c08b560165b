"""``create_app(settings)``: the partner API as one ASGI application."""

from __future__ import annotations

import logging

import orjson

from opensupp.accounts.api import router as accounts
from opensupp.config import BadSettings, Settings, settings_from_environment
from opensupp.db import Database
from opensupp.hooks.api import router as hooks
from opensupp.logs import setup_logging
from opensupp.officehours.api import router as officehours
from opensupp.officehours.validation import zone_names
from opensupp.offlineemails.api import router as offlineemails
from opensupp.triggers import plan
from opensupp.triggers.api import router as triggers
from opensupp.users.api import router as users
from opensupp.web.asgi import App
from opensupp.web.batch import router as batch
from opensupp.web.openapi import build_openapi
from opensupp.web.system import router as system

log = logging.getLogger(__name__)
ROUTERS = [system, accounts, users, triggers, officehours, offlineemails, hooks, batch]


def create_app(settings: Settings, db: Database | None = None) -> App:
    if not plan.COMPILED:
        log.warning("the trigger engine (opensupp.triggers.plan) is not compiled (no C compiler at install?): "
                    "triggers/evaluate runs several times slower; reinstall with a C compiler")
    zone_names()  # the IANA zone names, read from disk once (30 ms) before the first request needs them
    app = App(settings, ROUTERS, db=db)
    app.openapi = orjson.dumps(build_openapi(app.table.routes))
    return app


def app_factory() -> App:
    """For uvicorn's ``--factory`` (and its worker processes): settings from the environment."""
    try:
        settings = settings_from_environment()
    except BadSettings as exc:  # uvicorn would print a traceback
        raise SystemExit(f"opensupp: error: {exc}") from None
    setup_logging(settings.log_level)
    return create_app(settings)
