"""``create_app(settings)``: the server as one ASGI application (web/front.py): the partner
API's core (web/asgi.py) and the web pages (opensupp/site), sharing the settings, the
database and the lifespan."""

from __future__ import annotations

import logging

import orjson

from opensupp.accounts.api import router as accounts
from opensupp.boxlook.api import router as boxlook
from opensupp.chat.api import router as chat
from opensupp.chat.retention import Retention
from opensupp.config import BadSettings, Settings, settings_from_environment
from opensupp.db import Database
from opensupp.hooks.api import router as hooks
from opensupp.logs import setup_logging
from opensupp.mail.smtp import mailer_for
from opensupp.officehours.api import router as officehours
from opensupp.officehours.validation import zone_names
from opensupp.offlineemails.api import router as offlineemails
from opensupp.outbox.api import router as outbox
from opensupp.outbox.sending import parse_networks
from opensupp.outbox.stats import StatsReport
from opensupp.outbox.worker import Worker
from opensupp.signin.api import router as signin
from opensupp.site import create_site
from opensupp.triggers import plan
from opensupp.triggers.api import router as triggers
from opensupp.users.api import router as users
from opensupp.web.asgi import App
from opensupp.web.batch import router as batch
from opensupp.web.front import Front
from opensupp.web.metrics import Metrics
from opensupp.web.metrics import router as metrics
from opensupp.web.openapi import build_openapi
from opensupp.web.system import router as system
from opensupp.xmpp.config import SetupError

log = logging.getLogger(__name__)
ROUTERS = [system, accounts, users, signin, triggers, officehours, offlineemails, hooks, outbox, boxlook, chat, batch]


def create_app(settings: Settings, db: Database | None = None) -> Front:
    if not plan.COMPILED:
        log.warning("the trigger engine (opensupp.triggers.plan) is not compiled (no C compiler at install?): "
                    "triggers/evaluate runs several times slower; reinstall with a C compiler")
    zone_names()  # the IANA zone names, read from disk once (slower than a request) before the first request needs them
    core = App(settings, ROUTERS + [metrics] if settings.metrics else ROUTERS, db=db)
    if settings.metrics:
        core.metrics = Metrics(core.db)
    if settings.chat_retention_days:
        core.background.append(Retention(core.db, settings.chat_retention_days).purge_loop)
    if settings.outbox_worker:
        worker = Worker(core.db, networks=parse_networks(settings.hook_allow_networks),
                        lease=settings.outbox_lease_seconds, keep_days=settings.delivery_log_days,
                        mailer=mailer_for(settings))
        core.background.append(worker.loop)
        core.background.append(StatsReport(core.db).loop)  # the hourly domain-stats-report
    # /metrics is the operator's, not the partner API's: not in its document
    core.openapi = orjson.dumps(build_openapi([route for route in core.table.routes if route not in metrics.routes]))
    site = create_site(settings, core.db)
    core.chat = site.chat  # the partner API's sends and closes reach the sockets through it
    if site.xmpp_config is not None and settings.xmpp and site.chat is not None:
        from opensupp.xmpp.bridge import Bridge

        core.background.append(Bridge(site.xmpp_config, core.db, site.chat).run_logged)
    return Front(core, site.asgi, site.chat.websockets if site.chat is not None else None)


def app_factory() -> Front:
    """For uvicorn's ``--factory`` (and its worker processes): settings from the environment."""
    try:
        settings = settings_from_environment()
    except BadSettings as exc:  # uvicorn would print a traceback
        raise SystemExit(f"opensupp: error: {exc}") from None
    setup_logging(settings.log_level, settings.log_format)
    try:
        return create_app(settings)
    except SetupError as exc:  # a broken xmpp.json: said in one line, not as a traceback
        raise SystemExit(f"opensupp: error: {exc}") from None
