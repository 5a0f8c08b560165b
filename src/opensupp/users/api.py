"""HTTP routes for users: /accounts/:aid/users/..."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from opensupp import values
from opensupp.timeutil import iso
from opensupp.users import service
from opensupp.users.models import User
from opensupp.web.crud import Crud, register, table_service
from opensupp.web.fields import Body, Email, Lang, Omittable, TextRules
from opensupp.web.resources import Out, ReadOnly, ReadOnlyId
from opensupp.web.routing import Router

router = Router()


_AVATAR = values.AVATAR


def _check_avatar(value: str) -> str:
    problem = values.avatar_problem(value)
    if problem is not None:
        raise PydanticCustomError("avatar", "{problem}", {"problem": problem})
    return value


Password = Annotated[
    str, TextRules(values.PASSWORD_MAX, min_length=values.PASSWORD_MIN),
    Field(description="At least 8 characters; stored only as an argon2id hash."),
]
Name = Annotated[str, TextRules(255)]
Note = Annotated[str, TextRules(2000, multiline=True, required=False)]
Avatar = Annotated[
    str, StringConstraints(max_length=2000), AfterValidator(_check_avatar),
    Field(json_schema_extra={"pattern": f"^{_AVATAR.pattern}$"}),
]
Role = Literal["agent", "admin"]


class UserCreate(Body):
    email: Email = Field(description="The login: unique on this server, compared case-insensitively.")
    password: Password
    fullname: Name
    role: Role = Field("agent", description="`agent` chats only; `admin` can do everything.")
    nickname: Omittable[Name] = Field(None, description="The name visitors see; defaults to fullname.")
    avatar: Avatar = Field("", description="An http(s) URL or empty.")
    note: Note = ""
    lang: Omittable[Lang] = Field(None, description="Defaults to the account's language.")


class UserUpdate(Body):
    email: Omittable[Email] = None
    password: Omittable[Password] = None
    fullname: Omittable[Name] = None
    role: Omittable[Role] = None
    nickname: Omittable[Name] = None
    avatar: Omittable[Avatar] = None
    note: Omittable[Note] = None
    lang: Omittable[Lang] = None
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


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id), "role": user.role, "email": user.email, "fullname": user.fullname,
        "nickname": user.nickname, "avatar": user.avatar, "note": user.note, "lang": user.lang,
        "createdAt": iso(user.created_at),
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
