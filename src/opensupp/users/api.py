"""HTTP routes for users: /accounts/:aid/users/..."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

from opensupp import values
from opensupp.db import Row
from opensupp.timeutil import iso
from opensupp.users import service
from opensupp.web.crud import Crud, register, table_service
from opensupp.web.fields import Body, Lang, Text
from opensupp.web.resources import Out, ReadOnly, ReadOnlyId
from opensupp.web.routing import Router

router = Router()


# The rules and their words live in opensupp_client.values, shared with provision's check.
# (API.md: "syntax is checked, deliverability is not": special-use domains pass.)
def _check_email(value: str) -> str:
    problem = values.email_problem(value)
    if problem is not None:
        raise PydanticCustomError("email", "{problem}", {"problem": problem})
    return value


_AVATAR = values.AVATAR


def _check_avatar(value: str) -> str:
    problem = values.avatar_problem(value)
    if problem is not None:
        raise PydanticCustomError("avatar", "{problem}", {"problem": problem})
    return value


Email = Annotated[Text(254), AfterValidator(_check_email), WithJsonSchema({"type": "string", "format": "email", "maxLength": 254})]
Password = Annotated[
    Text(values.PASSWORD_MAX, min_length=values.PASSWORD_MIN),
    Field(description="At least 8 characters; stored only as an argon2id hash."),
]
Avatar = Annotated[
    str, StringConstraints(max_length=2000), AfterValidator(_check_avatar),
    Field(json_schema_extra={"pattern": f"^{_AVATAR.pattern}$"}),
]
Role = Literal["agent", "admin"]


class UserCreate(Body):
    email: Email = Field(description="The login: unique on this server, compared case-insensitively.")
    password: Password
    fullname: Text(255)
    role: Role = Field("agent", description="`agent` chats only; `admin` can do everything.")
    nickname: Text(255) = Field(None, description="The name visitors see; defaults to fullname.")
    avatar: Avatar = Field("", description="An http(s) URL or empty.")
    note: Text(2000, multiline=True, required=False) = ""
    lang: Lang = Field(None, description="Defaults to the account's language.")


class UserUpdate(Body):
    email: Email = None
    password: Password = None
    fullname: Text(255) = None
    role: Role = None
    nickname: Text(255) = None
    avatar: Avatar = None
    note: Text(2000, multiline=True, required=False) = None
    lang: Lang = None
    id: ReadOnlyId = ReadOnly()
    createdAt: str = ReadOnly()


class UserOut(Out):
    id: str
    role: Role
    email: str
    fullname: str
    nickname: str
    avatar: str
    note: str
    lang: str
    createdAt: str


def user_json(row: Row) -> dict[str, Any]:
    return {
        "id": str(row[0]), "role": row[1], "email": row[2], "fullname": row[3], "nickname": row[4],
        "avatar": row[5], "note": row[6], "lang": row[7], "createdAt": iso(row[8]),
    }


register(
    router,
    Crud(
        plural="users", noun="user", tag="Users",
        create=UserCreate, update=UserUpdate, out=UserOut, to_json=user_json,
        service=table_service(service.USERS, create=service.create_user, update=service.update_user),
        writable=("email", "password", "fullname", "role", "nickname", "avatar", "note", "lang"),
        prepare=service.hashed,
    ),
    extra_doc={
        "create": "A taken e-mail (any case) is a 409. The password is never answered.",
        "update": "A new password is re-hashed; a taken e-mail is a 409.",
    },
)
