"""Checking a provisioning file's rows before any request, by the server's own rules.

Scalar and field rules (text, e-mail, password, role, avatar, language) come from
``opensupp_client.values``, the module the server validates its request bodies with, so a
value this check lets through is not refused by the server for its form, and a refused one
is described in the same words as the API's 400 would. What only the server can know (an
e-mail taken on the server, a trigger condition's catalogue) is found when the row is sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from opensupp_client import values
from opensupp_client.provision.reading import Problem, Row, read_rows, type_name

ROW_KEYS = ("title", "lang", "users", "triggers", "officehours", "offlineemails", "hooks")
USER_KEYS = ("email", "password", "fullname", "role", "nickname", "avatar", "note", "lang")
TRIGGER_KEYS = ("name", "actions", "conditions", "active", "description", "event", "only_once", "constraints")
OFFICEHOURS_KEYS = ("active", "days", "timezone", "config", "exceptions")
HOOK_KEYS = ("name", "config", "active")
HOOK_NAMES = ("domain-stats-report", "conversation-export", "webhook")
EVENTS = ("onload", "onmessage", "onopen")
CONSTRAINTS = ("all", "any")

PASSWORD_HINT = ("users without a password (an export has none) need --default-password or --generate-passwords, "
                 "which give them one")


class _Checker:
    def __init__(self, line: int, problems: list[Problem]) -> None:
        self.line = line
        self.problems = problems

    def bad(self, where: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.line, where, message, hint))

    def keys(self, where: str, value: dict[str, Any], allowed: tuple[str, ...]) -> None:
        for key in value:
            if key not in allowed:
                self.bad(f"{where}{'.' if where else ''}{key}", f"is not a known field (allowed: {', '.join(allowed)})")

    def text(self, where: str, value: Any, *, required: bool = False, max_len: int = 255, min_len: int | None = None,
             multiline: bool = False, blank_ok: bool = False) -> bool:
        """A string field as the server's ``TextRules(max_len, multiline=, required=)`` checks it
        (``blank_ok``: an optional field that may be empty or blank). True when it is good."""
        if value is None:
            if required:
                self.bad(where, "is required")
            return False
        if not isinstance(value, str):
            self.bad(where, "must be a string")
            return False
        strict = not blank_ok
        problem = values.string_problem(value, max_length=max_len, min_length=min_len if min_len is not None else
                                        int(strict), multiline=multiline, required=strict)
        if problem:
            self.bad(where, problem)
            return False
        return True

    def check(self, where: str, value: str, problem: str | None) -> bool:
        if problem:
            self.bad(where, problem)
        return not problem

    def email(self, where: str, value: Any, *, required: bool = True) -> str | None:
        if self.text(where, value, required=required, max_len=values.EMAIL_MAX) and self.check(
                where, value, values.email_problem(value)):
            return str(value)
        return None

    def lang(self, where: str, value: Any, *, required: bool) -> None:
        if value is None and not required:
            return
        if value is None or isinstance(value, str):
            if value is None:
                self.bad(where, "is required")
            else:
                self.check(where, value, values.lang_problem(value))
        else:
            self.bad(where, "must be a string")

    def boolean(self, where: str, value: Any) -> None:
        if value is not None and values.as_bool(value) is None:
            self.bad(where, "must be true or false")

    def choice(self, where: str, value: Any, choices: Iterable[str], *, required: bool = False) -> None:
        choices = tuple(choices)
        if value is None:
            if required:
                self.bad(where, "is required")
            return
        if value not in choices:
            self.bad(where, values.one_of(choices))

    def items(self, where: str, value: Any, *, objects: bool = True) -> list[tuple[int, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.bad(where, "must be a list")
            return []
        out = []
        for i, item in enumerate(value):
            if objects and not isinstance(item, dict):
                self.bad(f"{where}[{i}]", "must be an object")
            else:
                out.append((i, item))
        return out


def validate(rows: list[Row], *, passwords_supplied: bool) -> list[Problem]:
    """Every problem the file's rows have, before any request; [] when the file is good.

    ``passwords_supplied``: users without a password are fine (--default-password or
    --generate-passwords gives them one).
    """
    problems: list[Problem] = []
    emails: dict[str, tuple[int, str]] = {}
    for row in rows:
        c = _Checker(row.line, problems)
        data = row.data
        c.keys("", data, ROW_KEYS)
        c.text("title", data.get("title"), required=True)
        c.lang("lang", data.get("lang"), required=True)

        for i, user in c.items("users", data.get("users")):
            where = f"users[{i}]"
            c.keys(where, user, USER_KEYS)
            email = c.email(f"{where}.email", user.get("email"))
            c.text(f"{where}.fullname", user.get("fullname"), required=True, max_len=values.NAME_MAX)
            password = user.get("password")
            if password is None:
                if not passwords_supplied:
                    c.bad(f"{where}.password", "is required", PASSWORD_HINT)
            else:
                c.text(f"{where}.password", password, min_len=values.PASSWORD_MIN, max_len=values.PASSWORD_MAX)
            c.choice(f"{where}.role", user.get("role"), values.ROLES)
            c.text(f"{where}.nickname", user.get("nickname"), max_len=values.NAME_MAX)
            avatar = user.get("avatar")
            if avatar is not None:
                if not isinstance(avatar, str):
                    c.bad(f"{where}.avatar", "must be a string")
                elif len(avatar) > values.AVATAR_MAX:
                    c.bad(f"{where}.avatar", values.too_long(values.AVATAR_MAX))
                else:
                    c.check(f"{where}.avatar", avatar, values.avatar_problem(avatar))
            c.text(f"{where}.note", user.get("note"), max_len=2000, multiline=True, blank_ok=True)
            c.lang(f"{where}.lang", user.get("lang"), required=False)
            if email:
                key = email.casefold()
                if key in emails:
                    first_line, first_where = emails[key]
                    same = "this line's" if first_line == row.line else f"line {first_line}'s"
                    c.bad(f"{where}.email", f"{email} is also {same} {first_where}.email (e-mails are unique "
                                            "on the server, compared case-insensitively)")
                else:
                    emails[key] = (row.line, where)

        for i, trigger in c.items("triggers", data.get("triggers")):
            where = f"triggers[{i}]"
            c.keys(where, trigger, TRIGGER_KEYS)
            c.text(f"{where}.name", trigger.get("name"), required=True)
            c.text(f"{where}.description", trigger.get("description"), max_len=1000, multiline=True, blank_ok=True)
            for flag in ("active", "only_once"):
                c.boolean(f"{where}.{flag}", trigger.get(flag))
            c.choice(f"{where}.event", trigger.get("event"), EVENTS)
            c.choice(f"{where}.constraints", trigger.get("constraints"), CONSTRAINTS)
            for j, condition in c.items(f"{where}.conditions", trigger.get("conditions")):
                c.text(f"{where}.conditions[{j}].name", condition.get("name"), required=True)
                if "value" not in condition:
                    c.bad(f"{where}.conditions[{j}].value", "is required")
            actions = trigger.get("actions")
            if actions is None or actions == []:
                c.bad(f"{where}.actions",
                      'is required: at least one {"name": "message", "agent_nick", "message"}')
            for j, action in c.items(f"{where}.actions", actions):
                c.choice(f"{where}.actions[{j}].name", action.get("name"), ("message",), required=True)

        hours = data.get("officehours")
        if hours is not None:
            if not isinstance(hours, dict):
                c.bad("officehours", "must be an object")
            else:
                c.keys("officehours", hours, OFFICEHOURS_KEYS)
                c.boolean("officehours.active", hours.get("active"))
                for i, day in c.items("officehours.days", hours.get("days"), objects=False):
                    if isinstance(day, bool) or not isinstance(day, (int, str)) or str(day) not in "0123456":
                        c.bad(f"officehours.days[{i}]", f"must be a day 0 (Sunday) to 6, not {day!r}")
                timezone = hours.get("timezone")
                if timezone is not None and (isinstance(timezone, bool) or not isinstance(timezone, (int, float, str))):
                    c.bad("officehours.timezone",
                          f"must be an offset in hours or an IANA name, not {type_name(timezone)}")
                for i, entry in c.items("officehours.config", hours.get("config")):
                    if "dow" not in entry:
                        c.bad(f"officehours.config[{i}].dow", "is required")
                    c.items(f"officehours.config[{i}].times", entry.get("times"))
                for i, entry in c.items("officehours.exceptions", hours.get("exceptions")):
                    if "date" not in entry:
                        c.bad(f"officehours.exceptions[{i}].date", "is required")
                    c.items(f"officehours.exceptions[{i}].times", entry.get("times"))

        seen: dict[str, int] = {}
        for i, item in c.items("offlineemails", data.get("offlineemails"), objects=False):
            where = f"offlineemails[{i}]"
            if isinstance(item, dict):
                c.keys(where, item, ("email",))
                item, where = item.get("email"), f"{where}.email"
            email = c.email(where, item)
            if email:
                if email.casefold() in seen:
                    c.bad(where, f"{email} is also offlineemails[{seen[email.casefold()]}] (once per account)")
                seen.setdefault(email.casefold(), i)

        for i, hook in c.items("hooks", data.get("hooks")):
            where = f"hooks[{i}]"
            c.keys(where, hook, HOOK_KEYS)
            c.choice(f"{where}.name", hook.get("name"), HOOK_NAMES, required=True)
            c.boolean(f"{where}.active", hook.get("active"))
            config = hook.get("config")
            if not isinstance(config, dict):
                c.bad(f"{where}.config", "is required: {\"url\": \"https://...\"}" if config is None
                      else "must be an object")
            elif (c.text(f"{where}.config.url", config.get("url"), required=True, max_len=2000)
                  and not config["url"].startswith(("http://", "https://"))):
                c.bad(f"{where}.config.url", "must be an http:// or https:// URL")
    return problems


def load(path: Path, fmt: str, *, passwords_supplied: bool,
         delimiter: str | None = None) -> tuple[list[Row], list[Problem]]:
    """The file's rows and every problem it has (none: it may be sent)."""
    rows, problems = read_rows(path, fmt, delimiter=delimiter)
    problems += validate(rows, passwords_supplied=passwords_supplied)
    if not rows and not problems:
        problems.append(Problem(0, "", "has no rows", fatal=True))
    problems.sort(key=lambda p: p.line)
    return rows, problems
