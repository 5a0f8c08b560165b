"""The opensupp command: keys, migrate, and serve as a real process."""

from __future__ import annotations

import re

import httpx

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
