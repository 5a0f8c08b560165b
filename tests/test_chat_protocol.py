"""The chat protocol's frames and tokens (opensupp.chat.protocol): what a client may send, the
errors it gets otherwise, and the signed identities (docs/chat-protocol.md sections 2 and 7)."""

from __future__ import annotations

import time

import orjson
import pytest

from opensupp.chat import protocol as p

SECRET = "k" * 40


def error_of(raw: object, side: p.Side = "visitor") -> p.ProtocolError:
    with pytest.raises(p.ProtocolError) as caught:
        p.parse(raw if isinstance(raw, (str, bytes, dict)) else orjson.dumps(raw), side)
    return caught.value


def test_frames_parse_to_their_models_with_camel_case_fields():
    frame = p.parse('{"type":"visitor.connect","ref":"1","token":null,"after":7,"pageUrl":"https://a.example/",'
                    '"name":"Ann","variables":{"plan":"pro","n":3,"vip":true,"labelled":{"label":"L","value":"v"}}}',
                    "visitor")
    assert isinstance(frame, p.VisitorConnect)
    assert (frame.ref, frame.after, frame.page_url, frame.name) == ("1", 7, "https://a.example/", "Ann")
    assert frame.given_values() == {"name": "Ann", "variables": {"plan": "pro", "n": 3, "vip": True,
                                                                 "labelled": {"label": "L", "value": "v"}}}
    message = p.parse({"type": "chat.message", "clientId": "c-1", "text": "  hi  "}, "visitor")
    assert isinstance(message, p.VisitorMessage) and message.text == "hi" and message.ref is None
    typing = p.parse({"type": "chat.typing", "is": True}, "visitor")
    assert isinstance(typing, p.VisitorTyping) and typing.is_ is True
    agent = p.parse({"type": "chat.message", "conversationId": 3, "clientId": "a", "text": "x"}, "agent")
    assert isinstance(agent, p.AgentMessage) and agent.conversation_id == 3


def test_bad_frames_name_what_is_wrong_and_keep_the_ref():
    assert error_of(b"[1]").code == "bad_json"
    assert error_of(b"{nope").code == "bad_json"
    unknown = error_of({"type": "chat.shout", "ref": "9"})
    assert (unknown.code, unknown.ref) == ("unknown_type", "9")
    assert error_of({"type": "agent.connect", "token": "x"}, "visitor").code == "unknown_type"  # other side's
    assert error_of({"type": "visitor.connect"}, "agent").code == "unknown_type"
    for bad, field in [
        ({"type": "chat.message", "clientId": "c", "text": "x" * 2001}, "text"),
        ({"type": "chat.message", "clientId": "c", "text": "   "}, "text"),
        ({"type": "chat.message", "clientId": "c" * 65, "text": "x"}, "client_id"),
        ({"type": "chat.message", "clientId": "tab\there", "text": "x"}, "client_id"),
        ({"type": "chat.rate", "value": 0}, "value"),
        ({"type": "visitor.connect", "after": -1}, "after"),
        ({"type": "visitor.connect", "lang": "english please"}, "lang"),
        ({"type": "visitor.connect", "name": "n" * 256}, "name"),
        ({"type": "visitor.connect", "variables": {f"k{i}": i for i in range(51)}}, "variables"),
        ({"type": "visitor.connect", "variables": {f"k{i}": "v" * 250 for i in range(40)}}, "variables"),
        ({"type": "page.view"}, "url"),
    ]:
        error = error_of({**bad, "ref": "r"})
        assert (error.code, error.ref) == ("invalid_frame", "r"), bad
        assert error.message.startswith(field.replace("client_id", "clientId")) or field in error.message, error.message
    assert error_of({"type": "ping", "ref": "has space"}).ref is None  # an unusable ref is not echoed


def test_server_frames():
    assert orjson.loads(p.encode(p.ack("1", {"x": 1}))) == {"type": "ack", "ref": "1", "data": {"x": 1}}
    assert p.error("rate_limited", "slow down", "2", 1.5) == {
        "type": "server.error", "code": "rate_limited", "message": "slow down", "ref": "2", "retryAfter": 1.5}
    assert p.ProtocolError("not_found", "no", "3").frame()["ref"] == "3"


def test_visitor_tokens_are_bound_to_the_account():
    vid = p.new_vid()
    assert len(vid) == 22 and vid != p.new_vid()
    token = p.visitor_token(SECRET, 12, vid)
    assert p.read_visitor_token(SECRET, 12, token) == vid
    assert p.read_visitor_token(SECRET, 13, token) is None  # another account's
    assert p.read_visitor_token("x" * 40, 12, token) is None  # another server's
    tampered = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]  # not the last: it has spare bits
    assert p.read_visitor_token(SECRET, 12, tampered) is None
    assert p.read_visitor_token(SECRET, 12, None) is None
    assert p.read_visitor_token(SECRET, 12, p.agent_token(SECRET, 12, 5)) is None  # salts keep them apart


def test_agent_tokens_expire():
    token = p.agent_token(SECRET, 12, 5)
    assert p.read_agent_token(SECRET, token) == (12, 5)
    assert p.read_agent_token("x" * 40, token) is None
    assert p.read_agent_token(SECRET, p.visitor_token(SECRET, 12, p.new_vid())) is None
    time.sleep(1.1)
    assert p.read_agent_token(SECRET, token, max_age=0) is None
