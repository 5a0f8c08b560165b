"""HTTP routes for the chat box's look: /accounts/:aid/box/get and /update (one per account,
like the office hours). The admin pages' look editor calls the same routes."""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from opensupp.boxlook import service
from opensupp.db import Session
from opensupp.web.fields import Body, Omittable, TextRules
from opensupp.web.request import Caller
from opensupp.web.resources import Out
from opensupp.web.routing import Router

router = Router()
TAG = "Chat box"
COLOR = re.compile(r"#[0-9A-Fa-f]{6}")
MAX_TITLE = 100
MAX_WELCOME = 500


def _check_color(value: str) -> str:
    if not COLOR.fullmatch(value):
        raise PydanticCustomError("color", "must be a colour written #rrggbb, like #1565c0")
    return value.lower()


Color = Annotated[str, AfterValidator(_check_color),
                  WithJsonSchema({"type": "string", "pattern": "^#[0-9A-Fa-f]{6}$", "example": "#1565c0"})]
Position = Literal["right", "left"]
Title = Annotated[str, TextRules(MAX_TITLE, required=False)]
Welcome = Annotated[str, TextRules(MAX_WELCOME, multiline=True, required=False)]


class BoxLookUpdate(Body):
    """Partial: only the fields sent change."""

    color: Omittable[Color] = Field(None, description="The box's colour; its text colour is chosen for contrast.")
    position: Omittable[Position] = Field(None, description="The side of the page the box sits on.")
    title: Omittable[Title] = Field(None, description="The box's title; empty: the account's title.")
    welcome: Omittable[Welcome] = Field(
        None, description="The greeting shown first; empty: the box's own, in the visitor's language.")


class BoxLookOut(Out):
    color: str
    position: Position
    title: str
    welcome: str


@router.get("/accounts/{aid}/box/get", response=BoxLookOut, tag=TAG)
async def get_box_look(req: Caller, session: Session) -> dict[str, Any]:
    """Get the chat box's look

    Before any update: `{"color": "#1565c0", "position": "right", "title": "", "welcome": ""}`.
    """
    look = await service.get_box_look(session, partner_id=req.partner_id, account_id=req.ids[0])
    return dataclasses.asdict(look)


@router.update("/accounts/{aid}/box/update", body=BoxLookUpdate, response=BoxLookOut, tag=TAG)
async def update_box_look(req: Caller, session: Session, body: BoxLookUpdate) -> dict[str, Any]:
    """Update the chat box's look

    Partial: the fields sent change. `color` is `#rrggbb` (answered in lower case),
    `position` `right` or `left`, `title` at most 100 characters and `welcome` at most 500
    (several lines); an empty text means the box's own. The chat code's options on a page
    (`color`, `orientation`) still win over these there.
    """
    look = await service.update_box_look(session, partner_id=req.partner_id, account_id=req.ids[0],
                                         changes=body.model_dump(exclude_unset=True))
    return dataclasses.asdict(look)
