"""`opensupp provision` and `opensupp export` against real servers, on SQLite and PostgreSQL.

The commands run as subprocesses (`python -m opensupp ...`), as a partner runs them; the
crash tests kill them, or the server, with SIGKILL part way and check that a re-run
completes the file without creating anything twice.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from conftest import LiveServer, cli_key, free_port, opensupp, start_server, stop_server
from opensupp_client import Client, NotFoundError
from opensupp_client.cli import provision as provision_command

MESSAGE = [{"name": "message", "agent_nick": "Ann", "message": "Hello!"}]
ALL_EVENTS = ["conversation.opened", "conversation.closed", "conversation.rated", "conversation.agent_joined",
              "conversation.agent_replied", "conversation.contact_replied", "offline_message.created"]


@pytest.fixture(scope="module")
def server(database_url, tmp_path_factory):
    """One server for the module; each test provisions with a key (a partner) of its own."""
    live = start_server(database_url, tmp_path_factory.mktemp("provision"))
    yield live
    stop_server(live)


def api_env(url: str, key: str) -> dict[str, str]:
    return {**os.environ, "OPENSUPP_API_URL": url, "OPENSUPP_API_KEY": key}


def provision(path: Path, url: str, key: str, *args: str) -> tuple[int, dict[str, Any]]:
    """Run the CLI to its end; (exit code, its JSON summary)."""
    out = opensupp("provision", str(path), "--output", "json", *args, env=api_env(url, key), check=False)
    assert out.stdout, out.stderr
    return out.returncode, json.loads(out.stdout)


def write_ndjson(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def results(path: Path) -> dict[str, Any]:
    return json.loads(Path(str(path) + ".results.json").read_text())["rows"]


def journal_lines(path: Path) -> int:
    try:
        return Path(str(path) + ".journal").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def server_accounts(url: str, key: str) -> list[Any]:
    with Client(url, key) as client:
        return list(client.accounts.list())


def export_rows(url: str, key: str) -> list[dict[str, Any]]:
    out = opensupp("export", env=api_env(url, key))
    return [json.loads(line) for line in out.stdout.splitlines()]


def by_title(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: r["title"])


def without_passwords(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    if "users" in row:
        row["users"] = [{k: v for k, v in u.items() if k != "password"} for u in row["users"]]
    return row


def full_row(i: int, tag: str) -> dict[str, Any]:
    """An account with every field explicit, so that its export is the row less the password.

    One row in five has a user: a user costs an argon2id hash (~20 ms of server CPU).
    """
    lang = ("en", "cs", "de")[i % 3]
    row: dict[str, Any] = {"title": f"Round trip {tag} #{i}", "lang": lang}
    if i % 5 == 0:
        row["users"] = [{"email": f"admin{i}.{tag}@example.com", "password": "correct horse", "fullname": f"Admin {i}",
                         "role": "admin", "nickname": f"A{i}", "avatar": "", "note": f"row {i}", "lang": lang}]
    row["triggers"] = [
        {"active": True, "name": f"greeting {i}", "description": "", "event": "onload", "only_once": True,
         "constraints": "all", "conditions": [{"name": "delay_site", "value": 10 + i % 50}], "actions": MESSAGE},
        {"active": i % 2 == 0, "name": "pricing", "description": "on the pricing page", "event": "onopen",
         "only_once": False, "constraints": "any",
         "conditions": [{"name": "visitor_page_url", "value": "/pricing", "cmp": "contains"}], "actions": MESSAGE},
    ]
    row["officehours"] = {"active": True, "days": [1, 2, 3, 4, 5], "timezone": "Europe/Prague" if i % 2 else 1,
                          "config": [{"dow": 1, "times": [{"from": 480, "to": 720}, {"from": 780, "to": 1020}]}]}
    if i % 10 == 0:  # holidays travel too
        row["officehours"]["exceptions"] = [{"date": "2026-12-24", "times": []},
                                            {"date": "2026-12-31", "times": [{"from": 480, "to": 720}]}]
    if i % 50 == 0:
        row["offlineemails"] = [{"email": f"offline{i}.{tag}@example.com"}]
        row["hooks"] = [{"name": "webhook", "config": {"url": "https://hooks.example.com/in", "secret": "s" * 24,
                                                       "events": ALL_EVENTS}, "active": True},
                        {"name": "domain-stats-report", "config": {"url": "https://stats.example.com/h",
                                                                   "secret": "t" * 24}, "active": False}]
    return row


# --------------------------------------------------------------------------- the check (no server)


def run_check(path: Path, *args: str) -> Any:
    return CliRunner().invoke(provision_command, [str(path), "--check", *args], catch_exceptions=False)


def test_check_reports_every_bad_row_with_its_line(tmp_path):
    good = {"title": "Good", "lang": "en",
            "users": [{"email": "a@example.com", "password": "12345678", "fullname": "A"}]}
    lines = [
        json.dumps(good),                                                         # 1 fine
        '{"title": "Broken", "lang": "en"',                                      # 2 not JSON
        json.dumps(["not", "an", "object"]),                                     # 3
        json.dumps({"title": "", "lang": "english"}),                            # 4 blank title, lang
        "",                                                                       # 5 blank lines are skipped
        json.dumps({"title": "T", "lang": "en", "colour": "red"}),               # 6 unknown key
        json.dumps({"title": "T", "lang": "en", "users": [{"email": "not-an-email", "password": "12345678",
                                                             "fullname": "B"}]}),  # 7 e-mail syntax
        json.dumps({"title": "T", "lang": "en", "users": [{"email": "A@Example.com", "password": "12345678",
                                                             "fullname": "C"}]}),  # 8 duplicate of line 1
        json.dumps({"title": "T", "lang": "en", "users": [{"email": "c@example.com",
                                                             "fullname": "D"}]}),  # 9 no password
        json.dumps({"title": "T", "lang": "en", "triggers": [{"name": "x", "actions": [], "active": "maybe"}],
                    "officehours": {"days": [7], "timezone": True}, "hooks": [{"name": "ftp", "config": {}}],
                    "offlineemails": ["o@example.com", "O@example.com"]}),      # 10 several at once
        json.dumps({"title": 5, "lang": "en", "users": {"email": "x"}}),         # 11 types
        json.dumps({"title": "Fine too", "lang": "cs"}),                          # 12 fine
    ]
    path = tmp_path / "partner.ndjson"
    path.write_text("\n".join(lines) + "\n")

    out = run_check(path, "--output", "json")
    assert out.exit_code == 1
    report = json.loads(out.stdout)
    assert report["valid"] is False and report["rows"] == 9  # lines 2 and 3 are no rows
    found = {(p["line"], p["field"]) for p in report["problems"]}
    expected = {
        (2, ""), (3, ""), (4, "title"), (4, "lang"), (6, "colour"), (7, "users[0].email"), (8, "users[0].email"),
        (9, "users[0].password"), (10, "triggers[0].actions"), (10, "triggers[0].active"), (10, "officehours.days[0]"),
        (10, "officehours.timezone"), (10, "hooks[0].name"), (10, "hooks[0].config.url"), (10, "offlineemails[1]"),
        (11, "title"), (11, "users"),
    }
    assert found == expected
    assert report["badRows"] == 9
    duplicate = next(p for p in report["problems"] if p["line"] == 8)
    assert "line 1" in duplicate["message"]

    text = run_check(path)  # the human form: FILE:LINE: field: message, on stderr
    assert text.exit_code == 1
    assert f"{path}:2: is not valid JSON" in text.stderr
    assert f"{path}:7: users[0].email: is not a valid e-mail address: " in text.stderr
    assert f"{path}:9: users[0].password: is required\n" in text.stderr and "--generate-passwords" in text.stderr
    assert "17 problem(s) on 9 line(s); nothing was sent" in text.stderr

    # users without a password are fine once the run would give them one
    with_passwords = json.loads(run_check(path, "--output", "json", "--generate-passwords").stdout)
    assert (9, "users[0].password") not in {(p["line"], p["field"]) for p in with_passwords["problems"]}

    path.write_text("\n".join([lines[0], lines[11]]) + "\n")
    good_run = run_check(path)
    assert good_run.exit_code == 0 and "2 rows, all good" in good_run.stderr


def test_check_reads_csv_with_its_line_numbers(tmp_path):
    path = tmp_path / "partner.csv"
    path.write_text(
        "title,lang,email,fullname,password\n"      # 1
        "Acme,en,jane@acme.example,Jane,secret-1\n"  # 2 fine
        '"Multi\nline",en,,,\n'                     # 3-4: a title with a newline
        "Beta,en,bob@beta,Bob,secret-2\n"            # 5 no dot in the domain
        "Gamma,en,g@gamma.example,,short\n"          # 6 no fullname, short password
        "Delta,en\n"                                 # 7 too few fields
        "Eps,en,JANE@acme.example,J,secret-3\n"      # 8 same e-mail as line 2
        "Zeta,zz,,,\n"                               # 9 unknown language
        "Eta,en,,,\n"                                # 10 fine: an account without a user
    )
    out = run_check(path, "--output", "json")
    assert out.exit_code == 1
    found = {(p["line"], p["field"]) for p in json.loads(out.stdout)["problems"]}
    assert found == {(3, "title"), (5, "users[0].email"), (6, "users[0].fullname"), (6, "users[0].password"),
                     (7, ""), (8, "users[0].email"), (9, "lang")}

    bad_header = tmp_path / "header.csv"
    bad_header.write_text("name,lang,mail\nAcme,en,a@b.example\n")
    problems = json.loads(run_check(bad_header, "--output", "json").stdout)["problems"]
    assert any("unknown column" in p["message"] and p["line"] == 1 for p in problems)
    assert any("no 'title' column" in p["message"] for p in problems)


def test_a_bad_file_sends_nothing_and_a_journal_is_bound_to_its_server(tmp_path):
    path = write_ndjson(tmp_path / "p.ndjson", [{"title": "A", "lang": "en"}, {"title": "B", "lang": "english"}])
    # a server that does not exist: the check fails before any connection is tried
    out = opensupp("provision", str(path), env=api_env(f"http://127.0.0.1:{free_port()}", "osk_x"), check=False)
    assert out.returncode == 1 and f"{path}:2: lang:" in out.stderr and "nothing was sent" in out.stderr
    assert not Path(str(path) + ".journal").exists()

    write_ndjson(path, [{"title": "A", "lang": "en"}])
    Path(str(path) + ".journal").write_text(
        json.dumps({"event": "run", "keyBase": str(path), "apiUrl": "http://old.example.com"}) + "\n"
        + json.dumps({"event": "created", "line": 1, "step": "account:0", "id": "1", "accountKey": "k"}) + "\n")
    out = opensupp("provision", str(path), env=api_env("http://new.example.com", "osk_x"), check=False)
    assert out.returncode == 2 and "was started against http://old.example.com" in out.stderr


def test_the_client_commands_import_nothing_of_the_server():
    code = (
        "import sys, opensupp_client.cli, opensupp_client.provision\n"
        "mods = sorted(m for m in sys.modules if m.startswith('opensupp') and not m.startswith('opensupp_client'))\n"
        "server = [m for m in ('asyncpg', 'sqlalchemy', 'alembic', 'uvicorn', 'argon2', 'pydantic', 're2', 'orjson',"
        " 'starlette') if m in sys.modules]\n"
        "print(mods, server)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[] []"
    standalone = subprocess.run([sys.executable, "-m", "opensupp_client", "provision", "--help"],
                                capture_output=True, text=True, check=True)
    assert "--default-password" in standalone.stdout


# --------------------------------------------------------------------------- against a server


def test_round_trip_of_500_accounts_through_provision_and_export(env, server, tmp_path):
    tag = secrets.token_hex(4)
    rows = [full_row(i, tag) for i in range(500)]
    path = write_ndjson(tmp_path / "partner.ndjson", rows)
    key = cli_key(env)

    started = time.monotonic()
    code, summary = provision(path, server.url, key)
    assert code == 0, summary
    assert (summary["rows"], summary["succeeded"], summary["failed"], summary["pending"]) == (500, 500, 0, 0)
    assert summary["created"] == {"account": 500, "user": 100, "trigger": 1000, "officehours": 500,
                                  "offlineemail": 10, "hook": 20}
    print(f"\n500 accounts (100 users, 1000 triggers, 500 office hours) provisioned "
          f"in {time.monotonic() - started:.1f} s")

    started = time.monotonic()
    exported = export_rows(server.url, key)
    print(f"exported in {time.monotonic() - started:.1f} s")
    assert by_title(exported) == by_title([without_passwords(r) for r in rows])

    # the results file maps every row to what the server has
    mapped = results(path)
    assert set(mapped) == {str(line) for line in range(1, 501)}
    accounts = {a.id: a for a in server_accounts(server.url, key)}
    assert {r["accountId"] for r in mapped.values()} == set(accounts)
    with Client(server.url, key) as client:
        for line in ("1", "251", "496"):  # rows with a user
            row, entry = rows[int(line) - 1], mapped[line]
            assert entry["status"] == "ok" and accounts[entry["accountId"]].title == row["title"]
            assert accounts[entry["accountId"]].account_key == entry["accountKey"]
            (email, user_id), = entry["users"].items()
            assert client.users.get(entry["accountId"], user_id).email == email == row["users"][0]["email"]
            assert len(entry["triggers"]) == 2 and entry["officehours"] is True

    # a second run finds everything done and sends no create
    code, again = provision(path, server.url, key)
    assert code == 0 and again["alreadyDone"] == 500 and again["succeeded"] == 0
    assert sum(again["created"].values()) == 0
    assert len(server_accounts(server.url, key)) == 500

    # an export provisions again into another server (passwords generated: an export has none);
    # its first 100 accounts, to keep the time down
    other = start_server(f"sqlite:///{tmp_path / 'other.db'}", tmp_path)
    try:
        other_key = cli_key({**os.environ, "OPENSUPP_DATABASE_URL": f"sqlite:///{tmp_path / 'other.db'}"})
        export_path = write_ndjson(tmp_path / "export.ndjson", exported[:100])
        code, moved = provision(export_path, other.url, other_key)
        assert code == 1 and moved["valid"] is False  # the check: no passwords
        assert {p["field"] for p in moved["problems"]} == {"users[0].password"}
        code, moved = provision(export_path, other.url, other_key, "--generate-passwords")
        assert code == 0 and moved["succeeded"] == 100, moved
        assert by_title(export_rows(other.url, other_key)) == by_title(exported[:100])
        generated = [pw for entry in results(export_path).values()
                     for pw in entry.get("generatedPasswords", {}).values()]
        users = sum(len(row.get("users", [])) for row in exported[:100])
        assert len(generated) == users and len(set(generated)) == users and all(len(pw) == 20 for pw in generated)
        assert (export_path.parent / "export.ndjson.results.json").stat().st_mode & 0o077 == 0
    finally:
        stop_server(other)


def test_a_failing_row_is_reported_and_the_others_go_on(env, server, tmp_path):
    key = cli_key(env)
    taken = f"taken.{secrets.token_hex(4)}@example.com"
    with Client(server.url, key) as client:
        elsewhere = client.accounts.create(title="already there", lang="en")
        client.users.create(elsewhere.id, email=taken, password="12345678", fullname="First")
    tag = secrets.token_hex(4)
    rows = [{"title": f"Fail {tag} {i}", "lang": "en",
             "users": [{"email": f"u{i}.{tag}@example.com", "password": "12345678", "fullname": f"U{i}"}]}
            for i in range(20)]
    rows[4]["users"][0]["email"] = taken.upper()  # line 5: taken on the server (409)
    rows[8]["hooks"] = [{"name": "webhook", "config": {"url": "http://10.1.2.3/hook"}}]  # line 9: private address (400)
    path = write_ndjson(tmp_path / "partner.ndjson", rows)

    code, summary = provision(path, server.url, key)
    assert code == 1
    assert (summary["succeeded"], summary["failed"], summary["pending"]) == (18, 2, 0)
    failures = {f["line"]: f for f in summary["failures"]}
    assert set(failures) == {5, 9}
    assert failures[5]["status"] == 409 and failures[5]["error"] == "Conflict"
    assert failures[5]["message"] == f"The email {taken.upper()} is already used by another user."
    assert failures[5]["step"] == f"users[0] ({taken.upper()})"
    assert failures[9]["status"] == 400 and failures[9]["step"] == "hooks[0] (webhook)"
    mapped = results(path)
    assert mapped["5"]["status"] == "failed" and mapped["5"]["error"]["status"] == 409 and mapped["5"]["users"] == {}
    assert sum(entry["status"] == "ok" for entry in mapped.values()) == 18
    # a row lands whole or leaves nothing: the failed rows' accounts were deleted through the API
    assert summary["rolledBack"] == 2 and summary["created"]["account"] == 18
    assert failures[5]["rolledBack"] and failures[9]["rolledBack"]
    assert mapped["5"]["error"]["rolledBack"] == failures[5]["rolledBack"] and "accountId" not in mapped["5"]
    assert len(server_accounts(server.url, key)) == 19  # the 18 good rows and the one made above
    with Client(server.url, key) as client, pytest.raises(NotFoundError):
        client.accounts.get(failures[5]["rolledBack"])

    # the human output names the line and the API's message
    rows[0]["title"] += " (changed)"  # and a row whose account exists but whose title changed is refused
    write_ndjson(path, rows)
    out = opensupp("provision", str(path), env=api_env(server.url, key), check=False)
    assert out.returncode == 1
    assert f"{path}:5: users[0] ({taken.upper()}): 409 Conflict: The email" in out.stdout
    assert "(rolled back: account " in out.stdout
    assert f"{path}:1: account: this line's title or lang changed" in out.stdout
    assert len(server_accounts(server.url, key)) == 19

    # fixed in place, the re-run makes the failed rows anew (new Idempotency-Keys: not the deleted accounts)
    rows[0]["title"] = rows[0]["title"].removesuffix(" (changed)")
    rows[4]["users"][0]["email"] = f"fixed.{tag}@example.com"
    rows[8]["hooks"][0]["config"]["url"] = "https://hooks.example.com/in"
    write_ndjson(path, rows)
    code, summary = provision(path, server.url, key)
    assert code == 0 and summary["succeeded"] == 2 and summary["alreadyDone"] == 18
    assert summary["created"] == {"account": 2, "user": 2, "trigger": 0, "officehours": 0, "offlineemail": 0, "hook": 1}
    assert len(server_accounts(server.url, key)) == 21  # 20 rows and the one made above
    assert all(entry["status"] == "ok" for entry in results(path).values())

    # --fail-fast starts no new rows after a failure
    rows = [{"title": f"FF {tag} {i}", "lang": "en"} for i in range(10)]
    rows[1]["users"] = [{"email": taken, "password": "12345678", "fullname": "Again"}]
    path = write_ndjson(tmp_path / "fail-fast.ndjson", rows)
    # one row in flight: --concurrency 1 request of --batch-size 1 call
    code, summary = provision(path, server.url, key, "--fail-fast", "--concurrency", "1", "--batch-size", "1")
    assert code == 1 and (summary["succeeded"], summary["failed"], summary["pending"]) == (1, 1, 8)
    assert "--fail-fast" in summary["stopped"]
    assert sum(entry["status"] == "pending" for entry in results(path).values()) == 8


def test_users_done_but_not_journaled_are_replayed_with_their_generated_passwords(env, server, tmp_path):
    key = cli_key(env)
    tag = secrets.token_hex(4)
    rows = [{"title": f"Gen {tag} {i}", "lang": "en", "users": [{"email": f"g{i}.{tag}@example.com", "fullname": "G"}],
             "triggers": [{"name": "t", "actions": MESSAGE}]} for i in range(10)]
    path = write_ndjson(tmp_path / "generated.ndjson", rows)
    code, summary = provision(path, server.url, key, "--generate-passwords")
    assert code == 0 and summary["created"]["user"] == 10
    first = results(path)
    # as if killed after each user's and trigger's answer but before its journal line
    journal = Path(str(path) + ".journal")
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    kept = [json.dumps(e) for e in events if e["event"] != "done"
            and not (e["event"] == "created" and e["step"].startswith(("user:", "trigger:")))]
    assert len(kept) == len(events) - 30
    journal.write_text("\n".join(kept) + "\n")
    code, summary = provision(path, server.url, key, "--generate-passwords")
    assert code == 0, summary  # the same bodies (the journaled passwords) and keys: replayed, not 409
    assert summary["created"]["user"] == summary["created"]["trigger"] == 10 and summary["created"]["account"] == 0
    again = results(path)
    assert all(again[line]["users"] == first[line]["users"] for line in first)
    assert all(again[line]["generatedPasswords"] == first[line]["generatedPasswords"] for line in first)
    with Client(server.url, key) as client:
        for entry in again.values():
            assert len(list(client.users.list(entry["accountId"]))) == 1
            assert len(list(client.triggers.list(entry["accountId"]))) == 1


def test_progress_bar_only_on_a_terminal(env, server, tmp_path):
    key = cli_key(env)
    path = write_ndjson(tmp_path / "p.ndjson", [{"title": f"P {i}", "lang": "en"} for i in range(30)])
    primary, replica = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "opensupp", "provision", str(path)],
                               env={**api_env(server.url, key), "COLUMNS": "80", "TERM": "xterm"},
                               stdout=subprocess.PIPE, stderr=replica, text=True)
    os.close(replica)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    stdout, _ = process.communicate(timeout=60)
    terminal = b"".join(chunks).decode(errors="replace")
    assert process.returncode == 0
    assert "30/30" in terminal and "rows/s" in terminal and "0 failed" in terminal
    assert "30 rows: 30 done" in stdout
    # the bar's rate is rows over the time since the start (the summary's), not a burst's
    shown = [float(rate) for rate in re.findall(r"([0-9.]+) rows/s", terminal)]
    summary_rate = float(re.search(r"([0-9.]+) rows/s", stdout).group(1))
    assert shown and max(shown) <= summary_rate * 1.5 + 1, (shown, summary_rate)

    path = write_ndjson(tmp_path / "q.ndjson", [{"title": f"Q {i}", "lang": "en"} for i in range(3)])
    out = opensupp("provision", str(path), env=api_env(server.url, key))  # stderr is a pipe: no bar
    assert out.stderr == "" and "3 rows: 3 done" in out.stdout


# --------------------------------------------------------------------------- crashes


ROWS = 2000


def accounts_file(tmp_path: Path, name: str) -> tuple[Path, list[str]]:
    """ROWS accounts without users (argon2 would dominate the time), titles unique per row."""
    tag = secrets.token_hex(4)
    titles = [f"Crash {tag} row {i}" for i in range(ROWS)]
    return write_ndjson(tmp_path / name, [{"title": t, "lang": "en"} for t in titles]), titles


def wait_for_journal(path: Path, process: subprocess.Popen, lines: int) -> None:
    deadline = time.monotonic() + 60
    while journal_lines(path) < lines:
        assert process.poll() is None, "the provisioning ended before it could be killed"
        assert time.monotonic() < deadline, "the journal did not grow"
        time.sleep(0.01)


def assert_complete(path: Path, url: str, key: str, titles: list[str]) -> None:
    accounts = server_accounts(url, key)
    assert len(accounts) == ROWS
    assert sorted(a.title for a in accounts) == sorted(titles)  # each row once: no duplicates
    mapped = results(path)
    assert set(mapped) == {str(line) for line in range(1, ROWS + 1)}
    assert all(entry["status"] == "ok" for entry in mapped.values())
    ids = {a.title: a.id for a in accounts}
    assert all(ids[titles[int(line) - 1]] == entry["accountId"] for line, entry in mapped.items())


def test_the_cli_killed_part_way_resumes_without_duplicates(env, server, tmp_path):
    key = cli_key(env)
    path, titles = accounts_file(tmp_path, "crash.ndjson")
    command = [sys.executable, "-m", "opensupp", "provision", str(path), "--output", "json"]

    # Ctrl-C: the rows in flight are cancelled, the summary says so, the results file is written
    process = subprocess.Popen(command, env=api_env(server.url, key), stdout=subprocess.PIPE, text=True)
    wait_for_journal(path, process, 200)
    process.send_signal(signal.SIGINT)
    summary = json.loads(process.communicate(timeout=30)[0])
    assert process.returncode == 130 and summary["interrupted"] is True
    assert summary["succeeded"] >= 50 and summary["succeeded"] + summary["pending"] == ROWS
    assert sum(entry["status"] == "pending" for entry in results(path).values()) == summary["pending"]

    # kill -9, the second run
    process = subprocess.Popen(command, env=api_env(server.url, key), stdout=subprocess.DEVNULL)
    wait_for_journal(path, process, journal_lines(path) + 400)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    journal = Path(str(path) + ".journal")
    lines = journal.read_bytes().splitlines(keepends=True)
    assert 600 <= len(lines) < 2 * ROWS
    # Simulate steps that the server did but the journal missed (killed between the answer and
    # the write): drop the last 100 entries, and leave a torn line as a kill mid-write would.
    journal.write_bytes(b"".join(lines[:-100]) + b'{"event":"created","line":7,"st')
    before = len(server_accounts(server.url, key))
    assert 150 < before < ROWS

    code, summary = provision(path, server.url, key)
    assert code == 0, summary
    assert summary["alreadyDone"] + summary["succeeded"] == ROWS and summary["failed"] == 0
    assert_complete(path, server.url, key, titles)


def test_the_server_killed_and_restarted_part_way_loses_and_duplicates_nothing(database_url, env, tmp_path):
    port = free_port()

    def serve() -> LiveServer:
        return start_server(database_url, tmp_path, port=port)  # the same port each time

    live = serve()
    try:
        key = cli_key(env)
        path, titles = accounts_file(tmp_path, "restart.ndjson")
        process = subprocess.Popen(
            [sys.executable, "-m", "opensupp", "provision", str(path), "--output", "json", "--max-retries", "30"],
            env=api_env(live.url, key), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_journal(path, process, 500)
        live.process.send_signal(signal.SIGKILL)
        live.process.wait()
        time.sleep(1.0)  # requests meet a closed port, and are retried
        assert process.poll() is None
        live = serve()
        stdout, stderr = process.communicate(timeout=180)
        summary = json.loads(stdout)
        assert process.returncode == 0, (summary, stderr)
        assert summary["succeeded"] == ROWS and summary["failed"] == 0
        assert_complete(path, live.url, key, titles)
    finally:
        stop_server(live)


# --------------------------------------------------------------------------- the server's rules, the server's words

ACCOUNT_FIELDS = [("title", ""), ("title", "   "), ("title", "x" * 256), ("title", "a\x00b"), ("lang", "english"),
                  ("lang", "xx")]
USER_FIELDS = [
    ("email", "not-an-email"), ("email", "bob@beta"), ("email", ""), ("email", "a" * 250 + "@example.com"),
    ("password", "short"), ("password", "x" * 1025), ("password", " " * 8),
    ("fullname", ""), ("fullname", "   "), ("fullname", "x" * 256), ("fullname", "a\x00b"),
    ("role", "owner"), ("nickname", ""), ("avatar", "ftp://example.com/a.png"), ("note", "bell \x07"),
    ("lang", "xx"),
]
GOOD_USER = {"email": "good@example.com", "password": "12345678", "fullname": "Good"}


def test_provision_refuses_what_the_server_refuses_in_the_same_words(env, server):
    """The same bad values through the API and through provision's check: the same messages."""
    from opensupp_client.provision import Row, validate

    key = cli_key(env)
    headers = {"apiKey": key}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        account = http.post("/accounts/create", json={"title": "Rules", "lang": "en"}).json()
        cases = [(f, v, "/accounts/create", {"title": "T", "lang": "en", f: v}, {"title": "T", "lang": "en", f: v})
                 for f, v in ACCOUNT_FIELDS]
        cases += [(f"users[0].{f}", v, f"/accounts/{account['id']}/users/create", {**GOOD_USER, f: v},
                   {"title": "T", "lang": "en", "users": [{**GOOD_USER, f: v}]}) for f, v in USER_FIELDS]
        for where, value, url, body, row in cases:
            answer = http.post(url, json=body)
            assert answer.status_code == 400, (where, value, answer.text)
            field = where.removeprefix("users[0].")
            server_says = [e["message"] for e in answer.json()["errors"] if e["field"] == field]
            problems = validate([Row(1, row)], passwords_supplied=False)
            provision_says = [p.message for p in problems if p.field == where]
            assert provision_says == server_says, (where, value)


# --------------------------------------------------------------------------- the progress bar


def rendered(progress: Any, console: Any) -> tuple[str, set[str]]:
    """The bar as text, and the names of the colours it uses."""
    segments = list(console.render(progress.get_renderable()))
    text = "".join(segment.text for segment in segments)
    return text, {s.style.color.name for s in segments if s.style is not None and s.style.color is not None}


def test_the_bar_counts_rows_and_shows_the_true_rate_in_no_red_while_nothing_failed():
    from rich.console import Console

    from opensupp_client.cli import _progress

    clock = [100.0]
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=100)
    live = _progress(200, console=console, get_time=lambda: clock[0])
    progress, task = live["progress"], live["task"]

    clock[0] += 4.4  # rows in flight, none finished yet
    text, colours = rendered(progress, console)
    assert "0/200" in text and "- rows/s" in text and "0 failed" in text
    assert "red" not in colours

    for done in range(1, 201):  # then they finish, one call per row, within 0.4 s
        clock[0] += 0.002
        progress.update(task, advance=1, ok=done, failed=0)
    text, colours = rendered(progress, console)
    assert "200/200" in text and "200 ok" in text and "0 failed" in text
    assert "41.7 rows/s" in text  # 200 rows over 4.8 s since the start, not the last moment's burst
    assert "red" not in colours

    progress.update(task, failed=1)
    text, colours = rendered(progress, console)
    assert "1 failed" in text and "red" in colours


def test_calls_made_together_are_spread_over_the_free_batches(env, server):
    """40 rows' calls at once with room for 8 batches go as 8 batches of 5, whose answers (and
    so finished rows) come back apart, not as one batch of 40 answered at its end; past that
    room, batches are full."""
    sizes: list[int] = []

    async def count(request: httpx.Request) -> None:
        if request.url.path == "/batch":
            sizes.append(len(json.loads(request.content)["requests"]))

    async def run(calls: int) -> None:
        from opensupp_client import AsyncClient

        http = httpx.AsyncClient(event_hooks={"request": [count]})
        async with AsyncClient(server.url, key, http_client=http, batch_size=100, batch_concurrency=8) as client:
            await asyncio.gather(*(client.accounts.create(title=f"Spread {i}", lang="en") for i in range(calls)))

    key = cli_key(env)
    asyncio.run(run(40))
    assert sizes == [5] * 8
    sizes.clear()
    asyncio.run(run(1000))
    assert sizes[:8] == [100] * 8 and sum(sizes) == 1000


# --------------------------------------------------------------------------- what new users tripped over


def test_skip_invalid_sends_the_good_rows_and_reports_the_bad(env, server, tmp_path):
    key = cli_key(env)
    tag = secrets.token_hex(4)
    path = tmp_path / "mixed.ndjson"
    path.write_text("\n".join([
        json.dumps({"title": f"Good {tag} 1", "lang": "en"}),
        json.dumps({"title": f"Bad {tag}", "lang": "english"}),
        '{"title": "torn',
        json.dumps({"title": f"Good {tag} 2", "lang": "cs", "users": [{"email": f"g.{tag}@example.com",
                                                                       "password": "12345678", "fullname": "G"}]}),
    ]) + "\n")
    code, report = provision(path, server.url, key)  # without the flag: nothing is sent
    assert code == 1 and report["valid"] is False and report["badRows"] == 2
    assert server_accounts(server.url, key) == []

    code, summary = provision(path, server.url, key, "--skip-invalid")
    assert code == 1  # not every row is done
    assert (summary["rows"], summary["succeeded"], summary["failed"], summary["invalid"]) == (4, 2, 0, 2)
    assert {(p["line"], p["field"]) for p in summary["problems"]} == {(2, "lang"), (3, "")}
    assert sorted(a.title for a in server_accounts(server.url, key)) == [f"Good {tag} 1", f"Good {tag} 2"]
    mapped = results(path)
    assert [mapped[str(line)]["status"] for line in range(1, 5)] == ["ok", "invalid", "invalid", "ok"]
    assert mapped["2"]["problems"][0]["field"] == "lang"

    out = opensupp("provision", str(path), "--skip-invalid", env=api_env(server.url, key), check=False)
    assert out.returncode == 1 and f"{path}:2: lang: must be a supported language code" in out.stderr
    assert "2 bad line(s) left out (--skip-invalid)" in out.stderr and "2 invalid (left out)" in out.stdout
    assert len(server_accounts(server.url, key)) == 2  # the good ones were done already

    bad_header = tmp_path / "header.csv"  # a problem of the whole file still stops it
    bad_header.write_text("name,lang\nAcme,en\n")
    code, report = provision(bad_header, server.url, key, "--skip-invalid")
    assert code == 1 and report["valid"] is False and len(server_accounts(server.url, key)) == 2


def test_a_semicolon_csv_and_upper_case_languages(env, server, tmp_path):
    key = cli_key(env)
    tag = secrets.token_hex(4)
    path = tmp_path / "excel.csv"  # as a European Excel saves it
    path.write_text(f"title;lang;email;fullname;password\r\nSemi {tag};EN;s.{tag}@example.com;Jane Doe;secret-123\r\n"
                    f"Colon {tag};De;;;\r\n", encoding="utf-8-sig")
    code, summary = provision(path, server.url, key)
    assert code == 0 and summary["succeeded"] == 2, summary
    accounts = sorted(server_accounts(server.url, key), key=lambda a: a.title)
    assert [(a.title, a.lang) for a in accounts] == [(f"Colon {tag}", "de"), (f"Semi {tag}", "en")]
    with Client(server.url, key) as client:
        assert [u.email for u in client.users.list(accounts[1].id)] == [f"s.{tag}@example.com"]

    tabs = tmp_path / "tabs.csv"
    tabs.write_text(f"title\tlang\nTab {tag}\tcs\n")
    assert provision(tabs, server.url, key)[0] == 0
    forced = run_check(path, "--delimiter", ",", "--output", "json")  # --delimiter wins over the header
    assert forced.exit_code == 1 and "no 'title' column" in forced.stdout
    assert run_check(tabs, "--delimiter", "tab").exit_code == 0


def test_a_hint_is_said_once_however_many_rows_it_concerns(tmp_path):
    path = write_ndjson(tmp_path / "export.ndjson", [
        {"title": f"T{i}", "lang": "en", "users": [{"email": f"u{i}@example.com", "fullname": "U"}]}
        for i in range(25)
    ])
    text = run_check(path)
    assert text.exit_code == 1
    assert text.stderr.count("users[0].password: is required") == 25
    assert text.stderr.count("--generate-passwords") == 1
    report = json.loads(run_check(path, "--output", "json").stdout)
    assert len(report["problems"]) == 25 and len(report["hints"]) == 1 and "--default-password" in report["hints"][0]


def test_json_output_reports_errors_as_json(env, server, tmp_path):
    path = write_ndjson(tmp_path / "p.ndjson", [{"title": "A", "lang": "en"}])
    no_url = {k: v for k, v in os.environ.items() if k not in ("OPENSUPP_API_URL", "OPENSUPP_API_KEY")}
    out = opensupp("provision", str(path), "--output", "json", env=no_url, check=False)
    assert out.returncode == 2 and out.stderr == ""
    assert json.loads(out.stdout) == {"error": "UsageError", "message": "--api-url and --api-key (or OPENSUPP_API_URL "
                                      "and OPENSUPP_API_KEY) are required"}

    out = opensupp("provision", str(path), "--output=json", "--batch-size", "0", env=no_url, check=False)
    assert out.returncode == 2 and json.loads(out.stdout)["error"] == "UsageError" and "--batch-size" in out.stdout

    out = opensupp("provision", str(path), "--output", "json", env=api_env(server.url, "osk_not-a-key"), check=False)
    error = json.loads(out.stdout)
    assert out.returncode == 1 and error["error"] == "Error" and "refused the first request: 401" in error["message"]

    out = opensupp("provision", str(path), env=api_env(server.url, "osk_not-a-key"), check=False)  # text: as before
    assert out.returncode == 1 and out.stdout == "" and "Error: " in out.stderr
