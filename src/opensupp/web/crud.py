"""The five verbs of a resource under an account, declared once for every resource.

``register(router, spec)`` adds list, create, get, update and delete routes in the PHP
wrapper's grammar (``/accounts/{aid}/<things>/...``). A resource supplies its models, its
service functions and its JSON shape; paging, idempotency, units of work, read-only
fields and errors come from the edge like everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from pydantic import BaseModel

from opensupp.web.english import plural, with_article
from opensupp.web.fields import Body
from opensupp.web.resources import Out, changes, check_read_only
from opensupp.web.routing import Router

Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Service:
    """Service functions, each taking the session and keyword arguments
    ``partner_id``, ``account_id`` and (but for create and list) ``item_id``."""

    list: Handler  # (..., after, limit) -> (rows, whether more follow)
    get: Handler
    create: Handler  # (..., **fields) -> row
    update: Handler  # (..., changes) -> row
    delete: Handler


@dataclass(frozen=True)
class Crud:
    plural: str  # "users": the path segment and operation names
    noun: str  # "user", "offline email"
    tag: str
    create: type[Body]
    update: type[Body]
    out: type[Out]
    to_json: Callable[[Any], dict[str, Any]]
    service: Service
    writable: tuple[str, ...]  # fields an update may change
    read_only: tuple[str, ...] = ("id", "createdAt")
    # turns the fields of a validated create or update into service arguments (e.g.
    # hashes a password) before the unit of work opens, so slow work never holds it
    prepare: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None


def table_service(table: Any, *, create: Handler, update: Handler) -> Service:
    """A Service whose list, get and delete are the account-scoped table's own."""
    return Service(list=table.list, get=table.get, create=create, update=update, delete=table.delete)


def _named(handler: Handler, name: str, doc: str) -> Handler:
    handler.__name__ = handler.__qualname__ = name
    handler.__doc__ = doc
    return handler


def register(router: Router, spec: Crud, extra_doc: dict[str, str] | None = None) -> None:
    base = f"/accounts/{{aid}}/{spec.plural}"
    svc, to_json, noun = spec.service, spec.to_json, spec.noun
    docs = extra_doc or {}

    async def list_items(req, session, after: int, limit: int):
        rows, more = await svc.list(session, partner_id=req.partner_id, account_id=req.ids[0], after=after, limit=limit)
        return [to_json(r) for r in rows], more

    async def create_item(req, session, fields: dict[str, Any]):
        row = await svc.create(session, partner_id=req.partner_id, account_id=req.ids[0], **fields)
        return to_json(row)

    async def get_item(req, session):
        row = await svc.get(session, partner_id=req.partner_id, account_id=req.ids[0], item_id=req.ids[1])
        return to_json(row)

    async def update_item(req, session, prepared: tuple[BaseModel, dict[str, Any]]):
        body, fields = prepared
        ids = {"partner_id": req.partner_id, "account_id": req.ids[0], "item_id": req.ids[1]}
        if body.model_fields_set.intersection(spec.read_only):
            check_read_only(body, to_json(await svc.get(session, **ids)), spec.read_only)
        return to_json(await svc.update(session, **ids, changes=fields))

    async def delete_item(req, session):
        await svc.delete(session, partner_id=req.partner_id, account_id=req.ids[0], item_id=req.ids[1])

    async def prepare_create(req, body: BaseModel) -> dict[str, Any]:
        fields = body.model_dump()
        return await spec.prepare(fields) if spec.prepare is not None else fields

    async def prepare_update(req, body: BaseModel) -> tuple[BaseModel, dict[str, Any]]:
        fields = changes(body, spec.writable)
        if spec.prepare is not None and fields:
            fields = await spec.prepare(fields)
        return body, fields

    p = spec.plural
    op = noun.replace(" ", "_")
    one, many = with_article(noun), plural(noun)  # "a user", "users"; "an offline email", "offline emails"
    router.list(base, response=spec.out, tag=spec.tag)(
        _named(list_items, f"list_{p}", f"List {many}\n\nThe account's {many}, oldest first. {docs.get('list', '')}"))
    router.create(f"{base}/create", body=spec.create, response=spec.out, tag=spec.tag, prepare=prepare_create)(
        _named(create_item, f"create_{op}", f"Create {one}\n\n{docs.get('create', '')}"))
    router.get(f"{base}/{{id}}/get", response=spec.out, tag=spec.tag)(
        _named(get_item, f"get_{op}", f"Get {one}"))
    router.update(f"{base}/{{id}}/update", body=spec.update, response=spec.out, tag=spec.tag, prepare=prepare_update)(
        _named(update_item, f"update_{op}",
               f"Update {one}\n\nPartial: only the fields sent change. {docs.get('update', '')}"))
    router.delete(f"{base}/{{id}}/delete", tag=spec.tag)(
        _named(delete_item, f"delete_{op}", f"Delete {one}"))
