"""HTTP routes for offline emails: /accounts/:aid/offlineemails/..."""

from __future__ import annotations

from typing import Any

from opensupp.offlineemails import service
from opensupp.offlineemails.models import OfflineEmail
from opensupp.web.crud import Crud, register, table_service
from opensupp.web.fields import Body, Email, Omittable
from opensupp.web.resources import Out, ReadOnly, ReadOnlyId
from opensupp.web.routing import Router

router = Router()


class OfflineEmailCreate(Body):
    email: Email


class OfflineEmailUpdate(Body):
    email: Omittable[Email] = None
    id: ReadOnlyId = ReadOnly()


class OfflineEmailOut(Out):
    id: str
    email: str


def offline_email_json(offline_email: OfflineEmail) -> dict[str, Any]:
    return {"id": str(offline_email.id), "email": offline_email.email}


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
