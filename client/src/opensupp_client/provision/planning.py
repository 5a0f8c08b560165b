"""Planning a row: the steps that make it (account, users, triggers, office hours, offline
e-mails, hooks, in that order), each with an identity that survives edits elsewhere in the row.

A step's identity is its kind and a hash of its content in the file (a user's password
left out), so editing one part of a row, or reordering its users, never re-runs the
other parts.
"""

from __future__ import annotations

import collections
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from opensupp_client.provision.reading import Row

# one encoder each, made once: json.dumps with options builds a new encoder per call
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def canonical(value: Any) -> str:
    return _canonical(value)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode()).hexdigest()


@dataclass(frozen=True)
class Step:
    kind: str  # account, user, trigger, officehours, offlineemail, hook
    id: str  # kind:hash of the content (#n when a row repeats the same content)
    label: str  # for messages: users[0] (a@example.com)
    content: dict[str, Any]  # the request body as in the file (a user's password left out)
    password: str | None = None  # a user's password from the file


def plan(row: Row) -> list[Step]:
    data = row.data
    steps = [Step("account", "account:" + digest({"title": data["title"], "lang": data["lang"]})[:16], "account",
                  {"title": data["title"], "lang": data["lang"]})]
    seen: collections.Counter[str] = collections.Counter()

    def add(kind: str, label: str, content: dict[str, Any], password: str | None = None) -> None:
        base = f"{kind}:{digest(content)[:16]}"
        seen[base] += 1
        steps.append(Step(kind, base if seen[base] == 1 else f"{base}#{seen[base]}", label, content, password))

    for i, user in enumerate(data.get("users") or []):
        content = {k: v for k, v in user.items() if k != "password"}
        add("user", f"users[{i}] ({user['email']})", content, user.get("password"))
    for i, trigger in enumerate(data.get("triggers") or []):
        add("trigger", f"triggers[{i}] ({trigger['name']})", trigger)
    if data.get("officehours") is not None:
        add("officehours", "officehours", data["officehours"])
    for i, item in enumerate(data.get("offlineemails") or []):
        email = item["email"] if isinstance(item, dict) else item
        add("offlineemail", f"offlineemails[{i}] ({email})", {"email": email})
    for i, hook in enumerate(data.get("hooks") or []):
        add("hook", f"hooks[{i}] ({hook['name']})", hook)
    return steps
