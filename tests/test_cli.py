"""The opensupp command: keys, migrate, and serve as a real process."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import httpx
import pytest

from conftest import cli_key, opensupp, start_server, stop_server


def test_keys_create_prints_the_key_last(env):
    out = opensupp("keys", "create", "--name", "acme-cli", env=env)
    key = out.stdout.splitlines()[-1]
    assert re.fullmatch(r"osk_[A-Za-z0-9_-]{43}", key)
    assert out.stdout.strip() == key


def test_partner_names_are_unique(env):
    cli_key(env, "dup-partner")
    out = opensupp("keys", "create", "--name", "dup-partner", env=env, check=False)
    assert out.returncode == 1
    assert "already exists" in out.stderr


def test_keys_list_and_revoke(env, live):
    key = cli_key(env, "lister")
    second = opensupp("keys", "create", "--name", "second-key", "--partner", "lister", env=env).stdout.split()[-1]
    listing = opensupp("keys", "list", env=env).stdout
    assert key[:12] in listing and second[:12] in listing
    assert key not in listing and second not in listing
    row = next(line for line in listing.splitlines() if key[:12] in line)
    assert "lister" in row and "never" in row

    with httpx.Client(base_url=live.url) as c:
        created = c.post("/accounts/create", json={"title": "x", "lang": "en"}, headers={"apiKey": key}).json()
        # a second key of the same partner sees the same accounts
        assert c.get(f"/accounts/{created['id']}/get", headers={"apiKey": second}).json() == created
        out = opensupp("keys", "revoke", key[:12], env=env)
        assert "revoked" in out.stdout
        # the server trusts a looked-up key for key_cache_seconds (2 s by default)
        for _ in range(40):
            if c.get("/test", headers={"apiKey": key}).status_code == 401:
                break
            import time

            time.sleep(0.1)
        assert c.get("/test", headers={"apiKey": key}).status_code == 401
        assert c.get("/test", headers={"apiKey": second}).status_code == 200
    assert "revoked" not in opensupp("keys", "revoke", key[:12], env=env, check=False).stdout


def test_if_none_creates_only_a_first_key(tmp_path):
    import os

    env = {**os.environ, "OPENSUPP_DATABASE_URL": f"sqlite:///{tmp_path / 'first.db'}"}
    first = opensupp("keys", "create", "--name", "default", "--if-none", env=env)
    assert first.stdout.strip().startswith("osk_")
    again = opensupp("keys", "create", "--name", "default", "--if-none", env=env)
    assert again.stdout == ""


def test_migrate_is_idempotent(env):
    assert opensupp("migrate", env=env).returncode == 0
    assert opensupp("migrate", env=env).returncode == 0


def test_bad_database_url_is_a_clear_error(tmp_path):
    import os

    env = {**os.environ, "OPENSUPP_DATABASE_URL": "mysql://x@localhost/db"}
    out = opensupp("migrate", env=env, check=False)
    assert out.returncode == 1
    assert "unsupported database URL scheme" in out.stderr


def test_live_server_speaks_the_php_wrappers_dialect(env, live):
    key = cli_key(env)
    with httpx.Client(headers={"apiKey": key}, follow_redirects=False) as c:
        created = c.post(live.url + "//accounts/create", json={"title": "PHP", "lang": "en"})
        assert created.status_code == 200
        account = created.json()
        assert c.get(live.url + "//accounts/").json()["records"] == [account]
        assert c.get(f"{live.url}/accounts/{account['id']}/get/").json() == account
        r = c.get(live.url + "/accounts/create")  # empty parameters: a GET
        assert r.status_code == 400 and r.json()["error"] == "ValidationError"

        def chunks():
            for _ in range(20):
                yield b" " * 65536

        r = c.post(live.url + "/accounts/create", content=chunks())
        assert r.status_code == 413
    log = live.log_after('"POST /accounts/create" 413')
    assert key not in log
    assert re.search(r'"POST //accounts/create" 200 \d+ [\d.]+ms partner=\d+', log)


def test_query_key_is_redacted_in_the_server_log(env, live):
    key = cli_key(env)
    assert httpx.get(f"{live.url}/test?apiKey={key}").status_code == 200
    assert httpx.get(f"{live.url}/test?apiKey=not-a-real-key").status_code == 401
    log = live.log_after('"GET /test?apiKey=[redacted]" 401')
    assert key not in log and "not-a-real-key" not in log
    assert '"GET /test?apiKey=[redacted]" 200' in log


def test_workers(env, database_url, tmp_path):
    key = cli_key(env)
    server = start_server(database_url, tmp_path, "--workers", "2")
    try:
        with httpx.Client(base_url=server.url, headers={"apiKey": key}) as c:
            ids = {c.post("/accounts/create", json={"title": f"w{i}", "lang": "en"}).json()["id"] for i in range(20)}
            assert len(ids) == 20
            assert c.get("/readyz").json() == {"status": "ok"}
    finally:
        stop_server(server)
    assert len(set(re.findall(r"Started server process \[(\d+)\]", server.log_text()))) == 2


# ----------------------------------------------------------------------------- bad settings

ACCEPTED = "accepted: sqlite:///relative.db, sqlite:////absolute/path.db or postgresql://user:password@host:5432/db"
NO_HOST = ("an SQLite URL names no host: the 'here' between // and the next / would be ignored, leaving the file"
           " 'x.db' relative to the current directory; for /here/x.db write sqlite:////here/x.db")
BAD_URLS = {  # as given (DIR: the test's directory) -> why it is refused
    "sqlite:DIR/x.db": "not a database URL (for the SQLite file DIR/x.db write sqlite:///DIR/x.db)",
    "DIR/x.db": "not a database URL (for the SQLite file DIR/x.db write sqlite:///DIR/x.db)",
    "sqlite://here/x.db": NO_HOST,
    "": "the URL is empty",
    "mysql://user@localhost/db": "unsupported database URL scheme 'mysql'",
}


def refused(tmp_path: Path, *args: str, **variables: str) -> list[str]:
    """What ``opensupp *args`` printed on stderr, run in ``tmp_path`` with these OPENSUPP_*
    variables, after checking it failed without a traceback and wrote nothing there."""
    env = {**os.environ, "OPENSUPP_DATA_DIR": str(tmp_path / "data"), **variables}
    with socket.socket() as busy:  # a server started by mistake stops at once: its port is taken
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        args = tuple(str(busy.getsockname()[1]) if a == "BUSY_PORT" else a for a in args)
        out = opensupp(*args, env=env, check=False, cwd=tmp_path)
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no database file, no directory
    return out.stderr.splitlines()


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_malformed_database_url_is_one_line_and_writes_nothing(tmp_path, url):
    given = url.replace("DIR", str(tmp_path))
    why = BAD_URLS[url].replace("DIR", str(tmp_path))
    lines = refused(tmp_path, "migrate", OPENSUPP_DATABASE_URL=given)
    assert lines == [f"Error: OPENSUPP_DATABASE_URL: {why}; {ACCEPTED}"]


@pytest.mark.parametrize("command", [("serve", "--port", "BUSY_PORT"), ("keys", "list")])
@pytest.mark.parametrize("url", ["sqlite:DIR/x.db", "sqlite://here/x.db"])
def test_every_command_refuses_a_malformed_database_url(tmp_path, command, url):
    lines = refused(tmp_path, *command, OPENSUPP_DATABASE_URL=url.replace("DIR", str(tmp_path)))
    assert lines == [f"Error: OPENSUPP_DATABASE_URL: {BAD_URLS[url].replace('DIR', str(tmp_path))}; {ACCEPTED}"]


def test_the_database_url_option_is_checked_under_its_own_name(tmp_path):
    lines = refused(tmp_path, "--database-url", "sqlite://here/x.db", "migrate",
                    OPENSUPP_DATABASE_URL=f"sqlite:///{tmp_path}/unused.db")
    assert lines == [f"Error: --database-url: {NO_HOST}; {ACCEPTED}"]


def test_each_bad_variable_is_named_on_a_line_of_its_own(tmp_path):
    lines = refused(tmp_path, "keys", "list", OPENSUPP_DATABASE_URL=f"sqlite:///{tmp_path}/unused.db",
                    OPENSUPP_RATE_LIMIT="abc", OPENSUPP_DB_POOL_SIZE="0", OPENSUPP_LOG_LEVEL="loud",
                    OPENSUPP_ACCESS_LOG="maybe")
    assert lines[0].startswith("Error: ")
    assert sorted([lines[0].removeprefix("Error: "), *lines[1:]]) == [
        "OPENSUPP_ACCESS_LOG: must be 1 or 0 (or true/false, yes/no, on/off)",
        "OPENSUPP_DB_POOL_SIZE: must be greater than or equal to 1",
        "OPENSUPP_LOG_LEVEL: must be 'debug', 'info', 'warning' or 'error'",
        "OPENSUPP_RATE_LIMIT: must be a number",
    ]


def test_serve_without_a_key_says_how_to_create_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'keyless.db'}"
    server = start_server(url, tmp_path)
    try:
        log = server.log_text()
    finally:
        stop_server(server)
    assert "no API key exists yet" in log and "opensupp keys create --name NAME" in log
    assert log.count("opensupp keys create") == 1

    env = {**os.environ, "OPENSUPP_DATABASE_URL": url}
    cli_key(env, "first")
    server = start_server(url, tmp_path)  # with a key, not a word about it
    try:
        assert "keys create" not in server.log_text()
    finally:
        stop_server(server)


def test_keys_revoke_takes_the_whole_key(env):
    key = cli_key(env, f"whole-{os.urandom(3).hex()}")
    out = opensupp("keys", "revoke", key, env=env)
    assert f"({key[:12]}...)" in out.stdout and "revoked key" in out.stdout
    assert key not in out.stdout + out.stderr  # the secret part is never echoed
    row = next(line for line in opensupp("keys", "list", env=env).stdout.splitlines() if key[:12] in line)
    assert row.split()[-1] != "-"  # REVOKED has a date

    again = opensupp("keys", "revoke", key, env=env, check=False)  # revoked already: no active key matches
    assert again.returncode == 1 and "No active key" in again.stderr and key not in again.stderr
    unknown = key[:12] + "x" * (len(key) - 12)
    wrong = opensupp("keys", "revoke", unknown, env=env, check=False)
    assert wrong.returncode == 1 and f"No active key {key[:12]}..." in wrong.stderr and unknown not in wrong.stderr


def test_the_opensupp_script_has_the_server_commands_through_entry_points(tmp_path, env):
    """The `opensupp` script is the client distribution's; the server's commands and its
    --database-url join it through the opensupp.commands and opensupp.options entry points."""
    import subprocess
    import sys

    script = str(Path(sys.executable).parent / "opensupp")
    top = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60, env=env)
    commands = {line.split()[0] for line in top.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert top.returncode == 0
    assert commands == {"serve", "migrate", "keys", "worker", "mail", "xmpp", "provision", "export"}
    assert "--database-url" in top.stdout and top.stderr == ""

    key = subprocess.run([script, "keys", "create", "--name", "via-script"], capture_output=True, text=True,
                         timeout=60, env=env, check=True).stdout.split()[-1]
    assert key.startswith("osk_")
    bad = subprocess.run([script, "--database-url", "sqlite://here/x.db", "migrate"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "OPENSUPP_DATA_DIR": str(tmp_path / "data")}, cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.splitlines() == [f"Error: --database-url: {NO_HOST}; {ACCEPTED}"]
    assert list(tmp_path.iterdir()) == []
