"""What a run made, from the journal: ``FILE.results.json``, and the helpers that write it."""

from __future__ import annotations

import collections
import datetime as _dt
import os
from pathlib import Path
from typing import Any

from opensupp_client.provision.journal import Journal
from opensupp_client.provision.planning import Step, compact, plan
from opensupp_client.provision.reading import Problem, Row


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def results(rows: list[Row], journal: Journal, *, source: Path, plans: dict[int, list[Step]] | None = None,
            invalid: list[Problem] | None = None) -> dict[str, Any]:
    """What each row made, from the journal: ``{"rows": {"<line>": {...}}}``. ``plans``: the
    rows' plans by line when already made (a Provisioner's); ``invalid``: the problems of the
    rows left out (--skip-invalid), reported under status ``invalid``."""
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
            entry["error"] = {k: failure.get(k) for k in ("step", "status", "error", "message", "rolledBack")}
        else:
            status = "pending"
        entry = {"status": status, **entry}
        counts[status] += 1
        out[str(row.line)] = entry
    for problem in invalid or ():
        entry = out.setdefault(str(problem.line), {"status": "invalid", "problems": []})
        if entry["problems"] == []:
            counts["invalid"] += 1
        entry["problems"].append({"field": problem.field, "message": problem.message})
    if invalid:
        out = dict(sorted(out.items(), key=lambda item: int(item[0])))
    kinds = ("ok", "failed", "pending", "invalid") if invalid else ("ok", "failed", "pending")
    return {"file": str(source), "updated": now_iso(), "counts": {k: counts[k] for k in kinds}, "rows": out}


def render_json(value: dict[str, Any]) -> str:
    """``value`` as JSON with one top-level key, and one entry of a mapping under it, per line:
    readable and diffable, and written by the C encoder (``indent=`` falls back to the
    pure-Python one, a second for 10^4 rows)."""
    lines = []
    for key, item in value.items():
        if isinstance(item, dict) and item and all(isinstance(v, dict) for v in item.values()):
            inner = ",\n".join(f"  {compact(k)}: {compact(v)}" for k, v in item.items())
            lines.append(f" {compact(key)}: {{\n{inner}\n }}")
        else:
            lines.append(f" {compact(key)}: {compact(item)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_json_atomically(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(render_json(value))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
