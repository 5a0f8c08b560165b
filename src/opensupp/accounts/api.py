"""HTTP routes for accounts: parse, call one service, serialize."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from opensupp.accounts import service
from opensupp.accounts.models import Account
from opensupp.db import Session
from opensupp.timeutil import iso
from opensupp.web.fields import Body, Lang, Omittable, TextRules
from opensupp.web.request import Caller
from opensupp.web.resources import Out, ReadOnly, ReadOnlyId, changes, check_read_only
from opensupp.web.routing import Router

router = Router()
TAG = "Accounts"
READ_ONLY = ("id", "accountKey", "createdAt")
Title = Annotated[str, TextRules(255)]


class AccountCreate(Body):
    title: Title = Field(description="Internal name, not visible to clients; 1 to 255 characters.")
    lang: Lang = Field(description="Language of the chat box and transactional e-mails (ISO 639-1).")


class AccountUpdate(Body):
    title: Omittable[Title] = Field(None, description="New internal name.")
    lang: Omittable[Lang] = Field(None, description="New language.")
    id: ReadOnlyId = ReadOnly()
    accountKey: str = ReadOnly()
    createdAt: str = ReadOnly()


class AccountOut(Out):
    id: str = Field(description="Decimal id, unique on this server.", pattern=r"^[1-9][0-9]*$")
    title: str
    lang: str
    accountKey: str = Field(
        description="Goes into the chat code; 40 lowercase hex characters.", pattern=r"^[0-9a-f]{40}$"
    )
    createdAt: str = Field(description="ISO 8601 UTC.", examples=["2026-11-24T10:00:00Z"])


def account_json(account: Account) -> dict[str, Any]:
    return {
        "id": str(account.id),
        "title": account.title,
        "lang": account.lang,
        "accountKey": account.account_key,
        "createdAt": iso(account.created_at),
    }


@router.list("/accounts", response=AccountOut, tag=TAG)
async def list_accounts(req: Caller, session: Session, after: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """List accounts

    The partner's accounts, oldest first.
    """
    rows = await service.list_accounts(session, partner_id=req.partner_id, after=after, limit=limit + 1)
    return [account_json(a) for a in rows[:limit]], len(rows) > limit


@router.create("/accounts/create", body=AccountCreate, response=AccountOut, tag=TAG)
async def create_account(req: Caller, session: Session, body: AccountCreate) -> dict[str, Any]:
    """Create an account

    Creates an empty account (no users, no triggers) and answers its `id` and the
    `accountKey` that goes into the chat code.
    """
    account = await service.create_account(session, partner_id=req.partner_id, title=body.title, lang=body.lang)
    return account_json(account)


@router.get("/accounts/{aid}/get", response=AccountOut, tag=TAG)
async def get_account(req: Caller, session: Session) -> dict[str, Any]:
    """Get an account"""
    account = await service.get_account(session, partner_id=req.partner_id, account_id=req.ids[0])
    return account_json(account)


@router.update("/accounts/{aid}/update", body=AccountUpdate, response=AccountOut, tag=TAG)
async def update_account(req: Caller, session: Session, body: AccountUpdate) -> dict[str, Any]:
    """Update an account

    Partial: only the fields sent change. Read-only fields (`id`, `accountKey`,
    `createdAt`) may be sent back unchanged.
    """
    account_id = req.ids[0]
    if body.model_fields_set.intersection(READ_ONLY):
        current = await service.get_account(session, partner_id=req.partner_id, account_id=account_id)
        check_read_only(body, account_json(current), READ_ONLY)
    account = await service.update_account(
        session, partner_id=req.partner_id, account_id=account_id, changes=changes(body, ("title", "lang"))
    )
    return account_json(account)


@router.delete("/accounts/{aid}/delete", tag=TAG)
async def delete_account(req: Caller, session: Session) -> None:
    """Delete an account

    Deletes the account and everything under it, in one transaction.
    """
    await service.delete_account(session, partner_id=req.partner_id, account_id=req.ids[0])
