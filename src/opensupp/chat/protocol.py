"""The chat protocol's frames (docs/chat-protocol.md): names, shapes, bounds, encoding, and the
signed tokens that identify visitors and agents.

``parse(raw, side)`` turns one client frame (the text of a WebSocket message, or one item of a
long-poll body) into its pydantic model, or raises ``ProtocolError`` with the code the
``server.error`` frame carries (``bad_json``, ``unknown_type``, ``invalid_frame``). Server frames
are plain dicts encoded with orjson (``encode``); ``ack``, ``error`` and ``event`` build them.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

import orjson
from itsdangerous import BadData, URLSafeSerializer, URLSafeTimedSerializer
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

VERSION = 1
#: a WebSocket frame's UTF-8 bytes at most (more: close 1009)
MAX_FRAME = 16 * 1024
#: a long-poll request's body, and its frames
MAX_POLL_BODY = 64 * 1024
MAX_POLL_FRAMES = 16
#: a connect's replay, oldest first
MAX_REPLAY = 500
AGENT_TOKEN_SECONDS = 12 * 3600
VISITOR_SALT = "opensupp.visitor"
AGENT_SALT = "opensupp.agent"

# close codes (docs/chat-protocol.md 1.1)
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_BINARY = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_LATER = 1013
CLOSE_IDLE = 4000
CLOSE_AUTH = 4001
CLOSE_UNKNOWN_ACCOUNT = 4004

Ref = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
ClientId = Ref
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Short = Annotated[str, StringConstraints(max_length=255)]
Url = Annotated[str, StringConstraints(max_length=2048)]
Lang = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,4})?$", max_length=8)]
Id = Annotated[int, Field(ge=1, lt=2**53)]
After = Annotated[int, Field(ge=0, lt=2**53)]
Vid = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{22}$")]
Scalar = Annotated[str, StringConstraints(max_length=255)] | bool | int | float
MAX_VARIABLES = 50
MAX_VARIABLES_BYTES = 8 * 1024


class Labelled(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    label: Short = ""
    value: Scalar | None = None


Variables = dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], Scalar | Labelled | None]


class Frame(BaseModel):
    """A client frame: ``type`` and an optional ``ref``; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)
    type: str
    ref: Ref | None = None


class VisitorValues(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)
    name: Short | None = None
    email: Short | None = None
    phone: Short | None = None
    lang: Lang | None = None
    group: Short | None = None
    variables: Variables | None = None

    @field_validator("variables")
    @classmethod
    def _bounded(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if len(value) > MAX_VARIABLES:
            raise ValueError(f"at most {MAX_VARIABLES} variables")
        plain = {k: (v.model_dump() if isinstance(v, Labelled) else v) for k, v in value.items()}
        if len(orjson.dumps(plain)) > MAX_VARIABLES_BYTES:
            raise ValueError(f"variables are at most {MAX_VARIABLES_BYTES} bytes of JSON")
        return plain

    def given(self) -> dict[str, Any]:
        """The fields the client sent (a missing or null field changes nothing)."""
        # warnings off: ``_bounded`` keeps variables as plain JSON, which the declared union does not name
        return self.model_dump(exclude_none=True, warnings=False)


class VisitorConnect(Frame, VisitorValues):
    type: Literal["visitor.connect"]
    token: Annotated[str, StringConstraints(max_length=512)] | None = None
    after: After | None = None
    page_url: Url | None = None
    page_title: Short | None = None
    referrer: Url | None = None

    def values(self) -> VisitorValues:
        return VisitorValues.model_validate(self.given_values())

    def given_values(self) -> dict[str, Any]:
        """The visitor's details the frame carries, as plain JSON values (as ``VisitorValues.given``)."""
        return self.model_dump(include=set(VisitorValues.model_fields), exclude_none=True, warnings=False)


class VisitorUpdate(Frame):
    type: Literal["visitor.update"]
    values: VisitorValues


class PageView(Frame):
    type: Literal["page.view"]
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    title: Short | None = None
    referrer: Url | None = None


class VisitorMessage(Frame):
    type: Literal["chat.message"]
    client_id: ClientId
    text: Text
    offline: bool = False


class VisitorTyping(Frame):
    type: Literal["chat.typing"]
    is_: bool = Field(alias="is")
    text: Annotated[str, StringConstraints(max_length=200)] | None = None


class VisitorRead(Frame):
    type: Literal["chat.read"]
    last_message_id: Id | None = None


class VisitorClose(Frame):
    type: Literal["chat.close"]


class VisitorOpen(Frame):
    """The visitor opened the chat box (the ``onopen`` triggers' event)."""

    type: Literal["chat.open"]


class VisitorRate(Frame):
    type: Literal["chat.rate"]
    value: Annotated[int, Field(ge=1, le=5)]
    text: Annotated[str, StringConstraints(max_length=1000)] | None = None


class VisitorTranscript(Frame):
    """Mail the visitor's latest conversation to ``email`` (then kept as the visitor's) or to
    the visitor's e-mail on file; ``lang``: the mail's language (default: the account's)."""

    type: Literal["chat.transcript"]
    email: Short | None = None
    lang: Lang | None = None


class Ping(Frame):
    type: Literal["ping"]


class AgentConnect(Frame):
    type: Literal["agent.connect"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    status: Literal["online", "away", "offline"] = "online"
    device_type: Literal["browser", "mobile", "xmpp", "other"] = "browser"
    after: After | None = None


class AgentUpdate(Frame):
    type: Literal["agent.update"]
    status: Literal["online", "away", "offline"]


class AgentMessage(Frame):
    """Into a conversation (``conversationId``), or to a visitor (``vid``): its current
    conversation, or a new one the message opens (a proactive chat). Exactly one of the two."""

    type: Literal["chat.message"]
    conversation_id: Id | None = None
    vid: Vid | None = None
    client_id: ClientId
    text: Text

    @model_validator(mode="after")
    def _one_target(self) -> AgentMessage:
        if (self.conversation_id is None) == (self.vid is None):
            raise ValueError("give conversationId or vid (one of them)")
        return self


class AgentTyping(Frame):
    type: Literal["chat.typing"]
    conversation_id: Id
    is_: bool = Field(alias="is")


class AgentRead(Frame):
    type: Literal["chat.read"]
    conversation_id: Id
    last_message_id: Id | None = None


class AgentClose(Frame):
    type: Literal["chat.close"]
    conversation_id: Id


class AgentAssign(Frame):
    type: Literal["chat.assign"]
    conversation_id: Id
    user_id: Id | None


VISITOR_FRAMES: dict[str, type[Frame]] = {
    "visitor.connect": VisitorConnect, "visitor.update": VisitorUpdate, "page.view": PageView,
    "chat.message": VisitorMessage, "chat.typing": VisitorTyping, "chat.read": VisitorRead,
    "chat.close": VisitorClose, "chat.rate": VisitorRate, "chat.open": VisitorOpen, "ping": Ping,
    "chat.transcript": VisitorTranscript,
}
AGENT_FRAMES: dict[str, type[Frame]] = {
    "agent.connect": AgentConnect, "agent.update": AgentUpdate, "chat.message": AgentMessage,
    "chat.typing": AgentTyping, "chat.read": AgentRead, "chat.close": AgentClose, "chat.assign": AgentAssign,
    "ping": Ping,
}
Side = Literal["visitor", "agent"]


class ProtocolError(Exception):
    """A frame the server refuses: the ``server.error`` it answers (``frame()``)."""

    def __init__(self, code: str, message: str, ref: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.retry_after = retry_after

    def frame(self) -> dict[str, Any]:
        return error(self.code, self.message, self.ref, self.retry_after)


def _ref_of(obj: Any) -> str | None:
    ref = obj.get("ref") if isinstance(obj, dict) else None
    if isinstance(ref, str) and 0 < len(ref) <= 64 and ref.isascii() and ref.isprintable() and " " not in ref:
        return ref
    return None


def parse(raw: str | bytes | dict[str, Any], side: Side) -> Frame:
    """One client frame of ``side``, validated; ProtocolError otherwise."""
    if isinstance(raw, dict):
        obj: Any = raw
    else:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProtocolError("bad_json", "A frame is one JSON object.") from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_json", "A frame is one JSON object.")
    kind = obj.get("type")
    ref = _ref_of(obj)
    model = (VISITOR_FRAMES if side == "visitor" else AGENT_FRAMES).get(kind) if isinstance(kind, str) else None
    if model is None:
        shown = kind if isinstance(kind, str) and len(kind) <= 40 else "(none)"
        raise ProtocolError("unknown_type", f"Unknown frame type {shown!r} for a {side} connection.", ref)
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise ProtocolError("invalid_frame", _explain(exc), ref) from None


def _explain(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"] if not (isinstance(part, str) and part in (
        "str", "int", "bool", "float", "Labelled", "constrained-str")))
    return f"{where or 'frame'}: {first['msg']}"


# --------------------------------------------------------------------------- server frames


def encode(frame: dict[str, Any]) -> bytes:
    return orjson.dumps(frame)


def ack(ref: str | None, data: dict[str, Any] | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "ack", "ref": ref}
    if data is not None:
        frame["data"] = data
    return frame


def error(code: str, message: str, ref: str | None = None, retry_after: float | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "server.error", "code": code, "message": message, "ref": ref}
    if retry_after is not None:
        frame["retryAfter"] = retry_after
    return frame


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


# --------------------------------------------------------------------------- identities


def new_vid() -> str:
    """A visitor id: 22 URL-safe random characters (128 bits)."""
    return secrets.token_urlsafe(16)


def visitor_token(secret: str, account_id: int, vid: str) -> str:
    """The token the visitor keeps (cookie ``ssupp.vid``): its vid, signed and bound to the account."""
    return URLSafeSerializer(secret, salt=VISITOR_SALT).dumps([account_id, vid])


def read_visitor_token(secret: str, account_id: int, token: str | None) -> str | None:
    """The vid of a token made for this account, else None (a new visitor)."""
    if not token:
        return None
    try:
        made_for, vid = URLSafeSerializer(secret, salt=VISITOR_SALT).loads(token)
    except (BadData, TypeError, ValueError):
        return None
    if made_for != account_id or not isinstance(vid, str) or len(vid) != 22:
        return None
    return vid


def agent_token(secret: str, account_id: int, user_id: int, session: str | None = None) -> str:
    """What an agent client sends in ``agent.connect``: valid AGENT_TOKEN_SECONDS. ``session``
    binds it to a dashboard sign-in (site/auth.py): the connection ends when that ends."""
    payload: list[Any] = [account_id, user_id] if session is None else [account_id, user_id, session]
    return URLSafeTimedSerializer(secret, salt=AGENT_SALT).dumps(payload)


def read_agent_grant(secret: str, token: str, max_age: int = AGENT_TOKEN_SECONDS) -> tuple[int, int, str | None] | None:
    """(account id, user id, the sign-in it is bound to or None) of a valid, unexpired agent token; else None."""
    try:
        account_id, user_id, *rest = URLSafeTimedSerializer(secret, salt=AGENT_SALT).loads(token, max_age=max_age)
    except (BadData, TypeError, ValueError):
        return None
    session = rest[0] if len(rest) == 1 else None
    if (not isinstance(account_id, int) or not isinstance(user_id, int) or len(rest) > 1
            or (rest and not isinstance(session, str))):
        return None
    return account_id, user_id, session


def read_agent_token(secret: str, token: str, max_age: int = AGENT_TOKEN_SECONDS) -> tuple[int, int] | None:
    """(account id, user id) of a valid, unexpired agent token; else None."""
    grant = read_agent_grant(secret, token, max_age)
    return None if grant is None else (grant[0], grant[1])
