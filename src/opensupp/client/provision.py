"""Bulk provisioning from a CSV or NDJSON file, resumable and never creating twice; and export.

This module is the engine behind ``opensupp provision`` and ``opensupp export`` (the
click commands are in ``opensupp.client.cli``). It uses only the SDK, so a partner can
install the client alone.

Input formats (one account per row; line numbers are the file's own, starting at 1):

- CSV, with a header: ``title,lang`` and, for the account's first admin,
  ``email,fullname,password`` (an empty ``email`` means no user). The admin is created
  with ``role: admin``.
- NDJSON (``.ndjson``/``.jsonl``): one JSON object per line, everything under the account
  in the API's shapes::

      {"title": "Acme", "lang": "en",
       "users": [{"email", "fullname", "password", "role", "nickname", "avatar", "note", "lang"}],
       "triggers": [{"name", "actions", "conditions", "active", "description", "event", "only_once", "constraints"}],
       "officehours": {"active", "days", "timezone", "config"},
       "offlineemails": ["a@example.com" or {"email": "a@example.com"}],
       "hooks": [{"name", "config", "active"}]}

Resuming. Each row is a list of steps (account, users, triggers, office hours, offline
emails, hooks), run in that order. A step's identity is its kind and a hash of its
content in the file (a user's password left out), so editing one part of a row, or
reordering its users, never re-runs the other parts. The journal (``FILE.journal``,
append-only NDJSON, one ``os.write`` per line) records every finished step with what it
created; a re-run skips the steps it finds there. Every create sends an Idempotency-Key
``opensupp-provision-<sha256(key base, line, step, account id, request body)>``, where
the key base is the input's absolute path when the journal was started: a step that
the server did but the journal missed (the process killed between the answer and the
write) is replayed by the server's idempotency (24 hours) instead of being done twice.
"""

from __future__ import annotations

import asyncio
import collections
import csv
import datetime as _dt
import hashlib
import io
import json
import os
import re
import secrets
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opensupp.client._client import AsyncClient
from opensupp.client.errors import (
    APIConnectionError,
    APIStatusError,
    AuthError,
    NotFoundError,
    OpensuppError,
)
from opensupp.langs import LANGS as SUPPORTED_LANGS

LANGS = frozenset(SUPPORTED_LANGS)  # the server's own list, shared (a module of data only)
ROW_KEYS = ("title", "lang", "users", "triggers", "officehours", "offlineemails", "hooks")
USER_KEYS = ("email", "password", "fullname", "role", "nickname", "avatar", "note", "lang")
TRIGGER_KEYS = ("name", "actions", "conditions", "active", "description", "event", "only_once", "constraints")
OFFICEHOURS_KEYS = ("active", "days", "timezone", "config", "exceptions")
HOOK_KEYS = ("name", "config", "active")
HOOK_NAMES = ("domain-stats-report", "conversation-export", "webhook")
CSV_COLUMNS = ("title", "lang", "email", "fullname", "password")
FORMATS = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}
DEFAULT_OFFICEHOURS = {"active": False, "days": [], "timezone": 0, "config": []}

_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
_LANG = re.compile(r"[a-z]{2}")
_TRUE_FALSE = (True, False, "true", "false", "1", "0")


# one encoder each, made once: json.dumps with options builds a new encoder per call
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def canonical(value: Any) -> str:
    return _canonical(value)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode()).hexdigest()


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- reading and validating


@dataclass(frozen=True)
class Problem:
    line: int
    field: str
    message: str

    def render(self, name: str) -> str:
        where = f"{name}:{self.line}" if self.line else name
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.message}


@dataclass
class Row:
    line: int
    data: dict[str, Any]


def detect_format(path: Path, override: str | None) -> str:
    if override:
        return "ndjson" if override == "jsonl" else override
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the format of {path.name} from its extension; "
                         "name it .csv, .ndjson or .jsonl, or pass --format")
    return fmt


def read_rows(path: Path, fmt: str) -> tuple[list[Row], list[Problem]]:
    """Parse the file into rows in the NDJSON shape; structural problems as Problems."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [Problem(0, "", f"is not UTF-8 text ({exc.reason} at byte {exc.start})")]
    return (_read_csv if fmt == "csv" else _read_ndjson)(text)


def _read_ndjson(text: str) -> tuple[list[Row], list[Problem]]:
    rows: list[Row] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(number, "", f"is not valid JSON: {exc.msg} (column {exc.colno})"))
            continue
        if not isinstance(value, dict):
            problems.append(Problem(number, "", f"must be a JSON object (one account), not {_type(value)}"))
            continue
        rows.append(Row(number, value))
    return rows, problems


def _read_csv(text: str) -> tuple[list[Row], list[Problem]]:
    rows: list[Row] = []
    problems: list[Problem] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    start = 1
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if not record or all(not cell.strip() for cell in record):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in record]
                unknown = [c for c in header if c not in CSV_COLUMNS]
                if unknown:
                    problems.append(Problem(line, "", f"unknown column(s) {', '.join(map(repr, unknown))} "
                                                      f"(allowed: {', '.join(CSV_COLUMNS)})"))
                for required in ("title", "lang"):
                    if required not in header:
                        problems.append(Problem(line, "", f"the header has no {required!r} column "
                                                          f"(columns: {', '.join(CSV_COLUMNS)})"))
                duplicated = sorted({c for c in header if header.count(c) > 1})
                if duplicated:
                    problems.append(Problem(line, "", f"column(s) {', '.join(duplicated)} appear twice"))
                continue
            if len(record) != len(header):
                problems.append(Problem(line, "", f"has {len(record)} fields, the header {len(header)}"))
                continue
            cells = {name: value for name, value in zip(header, record) if name in CSV_COLUMNS}
            data: dict[str, Any] = {"title": cells.get("title", ""), "lang": cells.get("lang", "")}
            email, fullname, password = (cells.get(k, "") for k in ("email", "fullname", "password"))
            if email or fullname or password:
                user = {"email": email, "fullname": fullname, "role": "admin"}
                if password:
                    user["password"] = password
                data["users"] = [user]
            rows.append(Row(line, data))
    except csv.Error as exc:
        problems.append(Problem(reader.line_num, "", f"is not valid CSV: {exc}"))
    if header is None:
        problems.append(Problem(0, "", "has no header line (title,lang,email,fullname,password)"))
    return rows, problems


def _type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


class _Checker:
    def __init__(self, line: int, problems: list[Problem]) -> None:
        self.line = line
        self.problems = problems

    def bad(self, where: str, message: str) -> None:
        self.problems.append(Problem(self.line, where, message))

    def keys(self, where: str, value: dict[str, Any], allowed: tuple[str, ...]) -> None:
        for key in value:
            if key not in allowed:
                self.bad(f"{where}{'.' if where else ''}{key}", f"is not a known field (allowed: {', '.join(allowed)})")

    def text(self, where: str, value: Any, *, required: bool = False, max_len: int = 255,
             multiline: bool = False, blank_ok: bool = False) -> bool:
        if value is None and not required:
            return False
        if not isinstance(value, str):
            self.bad(where, "is required" if value is None else f"must be a string, not {_type(value)}")
            return False
        if required and not blank_ok and not value.strip():
            self.bad(where, "is required" if not value else "may not be blank")
            return False
        if len(value) > max_len:
            self.bad(where, f"is longer than {max_len} characters")
            return False
        allowed = "\t\n" if multiline else ""
        if any(unicodedata.category(c) == "Cc" and c not in allowed for c in value):
            self.bad(where, "contains a control character")
            return False
        return True

    def email(self, where: str, value: Any, *, required: bool = True) -> str | None:
        if not self.text(where, value, required=required, max_len=254):
            return None
        if not _EMAIL.fullmatch(value):
            self.bad(where, f"{value!r} is not a valid e-mail address")
            return None
        return value

    def lang(self, where: str, value: Any, *, required: bool) -> None:
        if not self.text(where, value, required=required, max_len=10):
            return
        if not _LANG.fullmatch(value):
            self.bad(where, f"{value!r} is not a lower-case two-letter ISO 639-1 code")
        elif value not in LANGS:
            self.bad(where, f"{value!r} is not a supported language ({' '.join(sorted(LANGS))})")

    def boolean(self, where: str, value: Any) -> None:
        if value is not None and not any(value is v or (isinstance(v, str) and value == v) for v in _TRUE_FALSE):
            self.bad(where, f"must be true or false, not {value!r}")

    def choice(self, where: str, value: Any, choices: Iterable[str], *, required: bool = False) -> None:
        choices = tuple(choices)
        if value is None and not required:
            return
        if value not in choices:
            self.bad(where, f"must be one of {', '.join(choices)}, not {value!r}" if value is not None else "is required")

    def items(self, where: str, value: Any, *, objects: bool = True) -> list[tuple[int, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.bad(where, f"must be a list, not {_type(value)}")
            return []
        out = []
        for i, item in enumerate(value):
            if objects and not isinstance(item, dict):
                self.bad(f"{where}[{i}]", f"must be an object, not {_type(item)}")
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
            c.text(f"{where}.fullname", user.get("fullname"), required=True)
            password = user.get("password")
            if password is None:
                if not passwords_supplied:
                    c.bad(f"{where}.password", "is required (an export has none: pass --default-password "
                                               "or --generate-passwords to give users without one a password)")
            elif not isinstance(password, str):
                c.bad(f"{where}.password", f"must be a string, not {_type(password)}")
            elif not 8 <= len(password) <= 1024:
                c.bad(f"{where}.password", "must be 8 to 1024 characters")
            c.choice(f"{where}.role", user.get("role"), ("agent", "admin"))
            c.text(f"{where}.nickname", user.get("nickname"), max_len=255, blank_ok=True)
            avatar = user.get("avatar")
            if c.text(f"{where}.avatar", avatar, max_len=2000) and avatar and not avatar.startswith(("http://", "https://")):
                c.bad(f"{where}.avatar", "must be an http(s):// URL or empty")
            c.text(f"{where}.note", user.get("note"), max_len=2000, multiline=True)
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
            c.text(f"{where}.description", trigger.get("description"), max_len=1000, multiline=True)
            for flag in ("active", "only_once"):
                c.boolean(f"{where}.{flag}", trigger.get(flag))
            c.choice(f"{where}.event", trigger.get("event"), ("onload", "onmessage", "onopen"))
            c.choice(f"{where}.constraints", trigger.get("constraints"), ("all", "any"))
            for j, condition in c.items(f"{where}.conditions", trigger.get("conditions")):
                c.text(f"{where}.conditions[{j}].name", condition.get("name"), required=True)
                if "value" not in condition:
                    c.bad(f"{where}.conditions[{j}].value", "is required")
            actions = trigger.get("actions")
            if actions is None or actions == []:
                c.bad(f"{where}.actions", "is required: at least one {\"name\": \"message\", \"agent_nick\", \"message\"}")
            for j, action in c.items(f"{where}.actions", actions):
                c.choice(f"{where}.actions[{j}].name", action.get("name"), ("message",), required=True)

        hours = data.get("officehours")
        if hours is not None:
            if not isinstance(hours, dict):
                c.bad("officehours", f"must be an object, not {_type(hours)}")
            else:
                c.keys("officehours", hours, OFFICEHOURS_KEYS)
                c.boolean("officehours.active", hours.get("active"))
                for i, day in c.items("officehours.days", hours.get("days"), objects=False):
                    if isinstance(day, bool) or not isinstance(day, (int, str)) or str(day) not in "0123456":
                        c.bad(f"officehours.days[{i}]", f"must be a day 0 (Sunday) to 6, not {day!r}")
                timezone = hours.get("timezone")
                if timezone is not None and (isinstance(timezone, bool) or not isinstance(timezone, (int, float, str))):
                    c.bad("officehours.timezone", f"must be an offset in hours or an IANA name, not {_type(timezone)}")
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
                      else f"must be an object, not {_type(config)}")
            elif (c.text(f"{where}.config.url", config.get("url"), required=True, max_len=2000)
                  and not config["url"].startswith(("http://", "https://"))):
                c.bad(f"{where}.config.url", "must be an http:// or https:// URL")
    return problems


def load(path: Path, fmt: str, *, passwords_supplied: bool) -> tuple[list[Row], list[Problem]]:
    rows, problems = read_rows(path, fmt)
    problems += validate(rows, passwords_supplied=passwords_supplied)
    if not rows and not problems:
        problems.append(Problem(0, "", "has no rows"))
    problems.sort(key=lambda p: p.line)
    return rows, problems


# --------------------------------------------------------------------------- steps


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


# --------------------------------------------------------------------------- the journal


class JournalBusy(Exception):
    pass


class Journal:
    """Append-only NDJSON: one ``os.write`` per line, so a kill leaves at most a torn last line.

    Events: ``run`` (each start: file, key base, API URL), ``created`` (a step done: line,
    step, and what it made), ``password`` (a generated password, written before the user's
    create so a resume sends the same one), ``failed`` and ``done``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.runs: list[dict[str, Any]] = []
        self.created: dict[int, dict[str, dict[str, Any]]] = collections.defaultdict(dict)
        self.passwords: dict[tuple[int, str], str] = {}
        self.failed: dict[int, tuple[int, dict[str, Any]]] = {}  # line: (run number, event)
        self.torn = 0
        self.closed = False  # opened, then closed
        self._fd: int | None = None
        if path.exists():
            self._load()

    def _load(self) -> None:
        lines = self.path.read_bytes().split(b"\n")
        for raw in lines:
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
                self._apply(event["event"], event)
            except (ValueError, KeyError, TypeError, AttributeError):
                self.torn += 1  # a line cut by a kill; what it recorded is replayed by its Idempotency-Key

    def _apply(self, kind: str, event: dict[str, Any]) -> None:
        if kind == "run":
            self.runs.append(event)
        elif kind == "created":
            self.created[event["line"]][event["step"]] = event
        elif kind == "password":
            self.passwords[(event["line"], event["step"])] = event["password"]
        elif kind == "failed":
            self.failed[event["line"]] = (len(self.runs), event)

    @property
    def key_base(self) -> str | None:
        return self.runs[0].get("keyBase") if self.runs else None

    @property
    def opened(self) -> bool:
        return self._fd is not None

    def open(self) -> None:
        """Open for appending; JournalBusy when another run holds it (a lock that dies with its process)."""
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on Windows
            fcntl = None  # type: ignore[assignment]
        if fcntl is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._fd)
                self._fd = None
                raise JournalBusy(f"another run is using the journal {self.path}; wait for it to end") from None
        size = os.fstat(self._fd).st_size
        if size:
            with self.path.open("rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    os.write(self._fd, b"\n")  # after a torn line, start clean

    def write(self, event: dict[str, Any]) -> None:
        assert self._fd is not None, "open() first"
        data = (_compact(event) + "\n").encode()
        written = os.write(self._fd, data)
        while written < len(data):  # only on a full disk or a signal; finish the line
            written += os.write(self._fd, data[written:])
        self._apply(event["event"], event)

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None
                self.closed = True


# --------------------------------------------------------------------------- running


@dataclass
class Failure:
    line: int
    step: str
    message: str
    status: int | None = None
    error: str = ""

    def render(self, name: str) -> str:
        code = f"{self.status} {self.error}: " if self.status else (f"{self.error}: " if self.error else "")
        return f"{name}:{self.line}: {self.step}: {code}{self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "step": self.step, "status": self.status, "error": self.error, "message": self.message}


@dataclass
class Outcome:
    rows: int = 0
    already_done: int = 0
    succeeded: int = 0  # in this run
    failed: list[Failure] = field(default_factory=list)
    pending: int = 0  # not started (fail-fast, a stop, an interrupt) or cancelled in flight
    created: collections.Counter[str] = field(default_factory=collections.Counter)
    stopped: str = ""  # why no more rows were started (fail-fast, auth, connection)
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.pending and not self.interrupted


RowDone = Callable[[Row, "Failure | None"], None]


class Provisioner:
    def __init__(self, client: AsyncClient, rows: list[Row], journal: Journal, *, key_base: str,
                 concurrency: int = 8, fail_fast: bool = False, default_password: str | None = None,
                 generate_passwords: bool = False, on_row_done: RowDone | None = None) -> None:
        self.client = client
        self.rows = rows
        self.journal = journal
        self.key_base = key_base
        self.concurrency = concurrency
        self.fail_fast = fail_fast
        self.default_password = default_password
        self.generate_passwords = generate_passwords
        self.on_row_done = on_row_done or (lambda row, failure: None)
        self.outcome = Outcome(rows=len(rows))
        self.plans = {row.line: plan(row) for row in rows}
        self.fatal: list[BaseException] = []  # e.g. the journal could not be written: stop, and raise it

    def is_done(self, row: Row) -> bool:
        created = self.journal.created.get(row.line, {})
        return all(step.id in created for step in self.plans[row.line])

    def todo(self) -> list[Row]:
        return [row for row in self.rows if not self.is_done(row)]

    def idempotency_key(self, line: int, step: Step, account_id: str | None, body: dict[str, Any]) -> str:
        material = "\n".join((self.key_base, str(line), step.id, account_id or "", canonical(body)))
        return "opensupp-provision-" + hashlib.sha256(material.encode()).hexdigest()

    async def run(self) -> Outcome:
        started = time.monotonic()
        todo = self.todo()
        self.outcome.already_done = len(self.rows) - len(todo)
        semaphore = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        started_rows = 0
        try:
            for row in todo:
                await semaphore.acquire()
                if self.outcome.stopped:
                    semaphore.release()
                    break
                task = asyncio.create_task(self._row(row, semaphore))
                tasks.add(task)
                task.add_done_callback(self._finished(tasks))
                started_rows += 1
            while tasks:
                await asyncio.wait(set(tasks))
        except asyncio.CancelledError:  # Ctrl-C or SIGTERM: stop, the journal is consistent
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.outcome.interrupted = True
        self.outcome.pending = len(todo) - started_rows
        if self.outcome.interrupted:
            self.outcome.pending = len(todo) - self.outcome.succeeded - len(self.outcome.failed)
        self.outcome.seconds = time.monotonic() - started
        if self.fatal:
            raise self.fatal[0]
        return self.outcome

    def _finished(self, tasks: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                self.fatal.append(task.exception())  # type: ignore[arg-type]
                self.outcome.stopped = f"unexpected error: {task.exception()!r}"

        return done

    async def _row(self, row: Row, semaphore: asyncio.Semaphore) -> None:
        try:
            failure = await self._steps(row)
            if failure is None:
                self.journal.write({"event": "done", "line": row.line})
                self.outcome.succeeded += 1
            else:
                self.journal.write({"event": "failed", **failure.to_json()})
                self.outcome.failed.append(failure)
                if self.fail_fast and not self.outcome.stopped:
                    self.outcome.stopped = f"--fail-fast: line {row.line} failed"
            self.on_row_done(row, failure)
        finally:
            semaphore.release()

    async def _steps(self, row: Row) -> Failure | None:
        line = row.line
        created = self.journal.created.get(line, {})
        steps = self.plans[line]
        account_step = steps[0]
        earlier = next((e for sid, e in created.items() if sid.startswith("account:")), None)
        if earlier is not None and earlier["step"] != account_step.id:
            return Failure(line, "account", f"this line's title or lang changed since account {earlier['id']} was "
                           "created from it (see the journal); restore the line, or move the journal away to "
                           "provision the line as a new account")
        account_id = earlier["id"] if earlier else None
        for step in steps:
            if step.id in created:
                continue
            try:
                made = await self._do(line, step, account_id)
            except AuthError as exc:
                self.outcome.stopped = f"the API key was refused ({exc.message})"
                return Failure(line, step.label, exc.message, exc.status, exc.error)
            except APIStatusError as exc:
                message = exc.message
                if isinstance(exc, NotFoundError) and step.kind != "account":
                    message += (f" (was account {account_id}, which this line created, deleted? Then remove "
                                f"line {line}'s entries from the journal to create it anew)")
                return Failure(line, step.label, message, exc.status, exc.error)
            except APIConnectionError as exc:
                self.outcome.stopped = "the server could not be reached after every retry; re-run to resume"
                return Failure(line, step.label, exc.message, None, "ConnectionError")
            except OpensuppError as exc:
                return Failure(line, step.label, str(exc), None, type(exc).__name__)
            except Exception as exc:  # noqa: BLE001  (a bug or an answer the SDK could not read: this row fails, the rest go on)
                return Failure(line, step.label, f"unexpected error: {exc!r}", None, type(exc).__name__)
            self.journal.write({"event": "created", "line": line, "step": step.id, **made})
            self.outcome.created[step.kind] += 1
            if step.kind == "account":
                account_id = made["id"]
        return None

    async def _do(self, line: int, step: Step, account_id: str | None) -> dict[str, Any]:
        client = self.client
        body = step.content
        if step.kind == "account":
            key = self.idempotency_key(line, step, None, body)
            account = await client.accounts.create(**body, idempotency_key=key)
            return {"id": account.id, "accountKey": account.account_key}
        assert account_id is not None
        if step.kind == "officehours":
            await client.office_hours.update(account_id, **body)
            return {}
        if step.kind == "user":
            body = {**body, "password": self._password(line, step)}
        key = self.idempotency_key(line, step, account_id, body)
        if step.kind == "user":
            user = await client.users.create(account_id, **body, idempotency_key=key)
            return {"id": user.id, "email": user.email}
        if step.kind == "trigger":
            return {"id": (await client.triggers.create(account_id, **body, idempotency_key=key)).id}
        if step.kind == "offlineemail":
            made = await client.offline_emails.create(account_id, **body, idempotency_key=key)
            return {"id": made.id, "email": made.email}
        if step.kind == "hook":
            return {"id": (await client.hooks.create(account_id, **body, idempotency_key=key)).id}
        raise AssertionError(step.kind)

    def _password(self, line: int, step: Step) -> str:
        """The file's; else one generated by an earlier run (it may have been sent); else the default;
        else a new random one."""
        if step.password is not None:
            return step.password
        if (line, step.id) in self.journal.passwords:
            return self.journal.passwords[(line, step.id)]
        if self.default_password is not None:
            return self.default_password
        if (line, step.id) not in self.journal.passwords:
            if not self.generate_passwords:
                raise AssertionError("validation lets no user without a password through")
            # journaled before the request, so that a resume sends the same body and key
            self.journal.write({"event": "password", "line": line, "step": step.id,
                                "password": secrets.token_urlsafe(15)})
        return self.journal.passwords[(line, step.id)]


def results(rows: list[Row], journal: Journal, *, source: Path,
            plans: dict[int, list[Step]] | None = None) -> dict[str, Any]:
    """What each row made, from the journal: ``{"rows": {"<line>": {...}}}``. ``plans``: the
    rows' plans by line when already made (a Provisioner's)."""
    out: dict[str, Any] = {}
    counts: collections.Counter[str] = collections.Counter()
    last_run = len(journal.runs)
    for row in rows:
        steps = plans[row.line] if plans is not None else plan(row)
        created = journal.created.get(row.line, {})
        entry: dict[str, Any] = {"title": row.data.get("title")}
        account = created.get(steps[0].id)
        if account:
            entry["accountId"] = account["id"]
            entry["accountKey"] = account["accountKey"]
        users: dict[str, str] = {}
        passwords: dict[str, str] = {}
        triggers: list[str | None] = []
        offline: dict[str, str] = {}
        hooks: list[str | None] = []
        for step in steps[1:]:
            made = created.get(step.id)
            if step.kind == "user":
                email = step.content["email"]
                if made:
                    users[email] = made["id"]
                if step.password is None and (row.line, step.id) in journal.passwords and made:
                    passwords[email] = journal.passwords[(row.line, step.id)]
            elif step.kind == "trigger":
                triggers.append(made["id"] if made else None)
            elif step.kind == "offlineemail" and made:
                offline[step.content["email"]] = made["id"]
            elif step.kind == "hook":
                hooks.append(made["id"] if made else None)
            elif step.kind == "officehours":
                entry["officehours"] = bool(made)
        entry["users"] = users
        if passwords:
            entry["generatedPasswords"] = passwords
        for name, value in (("triggers", triggers), ("offlineemails", offline), ("hooks", hooks)):
            if value:
                entry[name] = value
        if all(step.id in created for step in steps):
            status = "ok"
        elif row.line in journal.failed and journal.failed[row.line][0] == last_run:
            status = "failed"
            failure = journal.failed[row.line][1]
            entry["error"] = {k: failure.get(k) for k in ("step", "status", "error", "message")}
        else:
            status = "pending"
        entry = {"status": status, **entry}
        counts[status] += 1
        out[str(row.line)] = entry
    return {"file": str(source), "updated": now_iso(), "counts": {k: counts[k] for k in ("ok", "failed", "pending")},
            "rows": out}


def render_json(value: dict[str, Any]) -> str:
    """``value`` as JSON with one top-level key, and one entry of a mapping under it, per line:
    readable and diffable, and written by the C encoder (``indent=`` falls back to the
    pure-Python one, a second for 10^4 rows)."""
    lines = []
    for key, item in value.items():
        if isinstance(item, dict) and item and all(isinstance(v, dict) for v in item.values()):
            inner = ",\n".join(f"  {_compact(k)}: {_compact(v)}" for k, v in item.items())
            lines.append(f" {_compact(key)}: {{\n{inner}\n }}")
        else:
            lines.append(f" {_compact(key)}: {_compact(item)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_json_atomically(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(render_json(value))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------- export


def _without(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in keys}


async def export_account(client: AsyncClient, account: Any, *, omit_secrets: bool = False) -> dict[str, Any]:
    """One account with everything under it, in provision's NDJSON shape (no ids, no passwords)."""
    aid = account.id

    async def collect(resource: Any) -> list[dict[str, Any]]:
        return [item.raw async for item in resource.list(aid)]

    # one request at a time per account: --concurrency accounts in flight is that many requests
    users = await collect(client.users)
    triggers = await collect(client.triggers)
    hours = await client.office_hours.get(aid)
    offline = await collect(client.offline_emails)
    hooks = await collect(client.hooks)
    row: dict[str, Any] = {"title": account.title, "lang": account.lang}
    if users:
        row["users"] = [_without(u, "id", "createdAt") for u in users]
    if triggers:
        row["triggers"] = [_without(t, "id") for t in triggers]
    office = {k: hours.raw[k] for k in OFFICEHOURS_KEYS if k in hours.raw}
    if office != DEFAULT_OFFICEHOURS:
        row["officehours"] = office
    if offline:
        row["offlineemails"] = [{"email": o["email"]} for o in offline]
    if hooks:
        row["hooks"] = []
        for hook in hooks:
            config = dict(hook["config"])
            if omit_secrets:
                config.pop("secret", None)
            row["hooks"].append({"name": hook["name"], "config": config, "active": hook["active"]})
    return row


async def export(client: AsyncClient, write: Callable[[dict[str, Any]], Awaitable[None] | None], *,
                 concurrency: int = 8, omit_secrets: bool = False) -> int:
    """Every account of the partner, oldest first, through ``write``; the number written."""
    window: collections.deque[asyncio.Task[dict[str, Any]]] = collections.deque()
    count = 0

    async def flush_one() -> None:
        nonlocal count
        result = write(await window.popleft())
        if asyncio.iscoroutine(result):
            await result
        count += 1

    try:
        async for account in client.accounts.list():
            window.append(asyncio.create_task(export_account(client, account, omit_secrets=omit_secrets)))
            if len(window) >= concurrency:
                await flush_one()
        while window:
            await flush_one()
    finally:
        for task in window:
            task.cancel()
        await asyncio.gather(*window, return_exceptions=True)
    return count
