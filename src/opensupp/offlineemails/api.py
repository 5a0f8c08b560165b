"""HTTP routes for offline emails: /accounts/:aid/offlineemails/..."""

from __future__ import annotations

from typing import Any

from opensupp.db import Row
from opensupp.offlineemails import service
from opensupp.users.api import Email
from opensupp.web.crud import Crud, register, table_service
from opensupp.web.fields import Body
from opensupp.web.resources import Out, ReadOnly, ReadOnlyId
from opensupp.web.routing import Router

router = Router()


class OfflineEmailCreate(Body):
    email: Email


class OfflineEmailUpdate(Body):
    email: Email = None
    id: ReadOnlyId = ReadOnly()


class OfflineEmailOut(Out):
    id: str
    email: str


def offline_email_json(row: Row) -> dict[str, Any]:
    return {"id": str(row[0]), "email": row[1]}


register(
    router,
    Crud(
        plural="offlineemails", noun="offline email", tag="Offline emails",
        create=OfflineEmailCreate, update=OfflineEmailUpdate, out=OfflineEmailOut, to_json=offline_email_json,
        service=table_service(
            service.OFFLINE_EMAILS, create=service.create_offline_email, update=service.update_offline_email
        ),
        writable=("email",), read_only=("id",),
    ),
    extra_doc={"create": "An address may be listed once per account (any case): a second time is a 409."},
)
