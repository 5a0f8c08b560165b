"""The SDK against a real server: every resource, errors, retries and idempotency."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time

import pytest

import opensupp_client as sdk
from conftest import cli_key, free_port, start_server, stop_server
from flaky import Flaky, ProxyServer
from opensupp_client import AsyncClient, Client

EXPORTED = [
    "__version__", "Client", "AsyncClient", "Account", "User", "Trigger", "OfficeHours", "OfflineEmail", "Hook",
    "Delivery", "Conversation", "Message",
    "OpensuppError", "APIConnectionError", "APITimeoutError", "APIStatusError", "BadRequestError",
    "InvalidJSONError", "ValidationError", "AuthError", "NotFoundError", "MethodNotAllowedError",
    "ConflictError", "PayloadTooLargeError", "IdempotencyMismatchError", "RateLimitError", "ServerError",
]
MESSAGE = [{"name": "message", "agent_nick": "Ann", "message": "Hi!"}]


@pytest.fixture(scope="module")
def live(database_url, tmp_path_factory):
    """One server for the module (the SDK's tests only add data of their own keys)."""
    server = start_server(database_url, tmp_path_factory.mktemp("sdk"))
    yield server
    stop_server(server)


def test_public_surface_is_pinned():
    assert sdk.__all__ == EXPORTED
    assert all(hasattr(sdk, name) for name in EXPORTED)


def test_the_former_import_path_still_works():
    import opensupp.client

    assert opensupp.client.Client is Client and opensupp.client.AsyncClient is AsyncClient
    assert all(getattr(opensupp.client, name) is getattr(sdk, name) for name in EXPORTED)


def test_the_client_imports_nothing_of_the_server():
    code = (
        "import sys, opensupp_client\n"
        "mods = sorted(m for m in sys.modules if m.startswith('opensupp') and not m.startswith('opensupp_client'))\n"
        "server = [m for m in ('asyncpg', 'sqlalchemy', 'alembic', 'uvicorn', 'argon2', 'pydantic',"
        " 'pydantic_settings', 'email_validator', 're2', 'orjson', 'starlette') if m in sys.modules]\n"
        "print(mods, server)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[] []"


def test_url_and_key_come_from_the_environment_unless_passed(monkeypatch):
    monkeypatch.setenv("OPENSUPP_API_URL", "http://env.example.com/")
    monkeypatch.setenv("OPENSUPP_API_KEY", "osk_from_env")
    with Client() as client:
        assert client.base_url == "http://env.example.com" and client.headers["apiKey"] == "osk_from_env"
    with Client("https://arg.example.com", "osk_from_arg") as client:  # arguments win
        assert client.base_url == "https://arg.example.com" and client.headers["apiKey"] == "osk_from_arg"
    with Client(api_key="osk_x") as client:
        assert client.base_url == "http://env.example.com" and client.headers["apiKey"] == "osk_x"

    monkeypatch.delenv("OPENSUPP_API_KEY")
    with pytest.raises(ValueError, match="no API key: pass api_key .* or set OPENSUPP_API_KEY"):
        Client()
    with pytest.raises(ValueError, match="OPENSUPP_API_KEY"):
        AsyncClient("http://127.0.0.1:1")
    monkeypatch.delenv("OPENSUPP_API_URL")
    with pytest.raises(ValueError, match="no API URL: pass base_url .* or set OPENSUPP_API_URL"):
        Client(api_key="osk_x")


def test_every_resource_round_trip(env, live):
    with Client(live.url, cli_key(env)) as client:
        account = client.accounts.create(title="Acme", lang="en")
        assert isinstance(account, sdk.Account) and len(account.account_key) == 40
        assert client.accounts.get(account.id) == account
        assert client.accounts.update(account.id, title="Acme 2").title == "Acme 2"

        email = f"sdk.{secrets.token_hex(4)}@example.com"
        user = client.users.create(account.id, email=email, password="12345678", fullname="Jane")
        assert (user.email, user.role, user.nickname) == (email, "agent", "Jane")
        assert [u.id for u in client.users.list(account.id)] == [user.id]
        assert client.users.update(account.id, user.id, role="admin").role == "admin"

        trigger = client.triggers.create(account.id, name="Hi", actions=MESSAGE,
                                         conditions=[{"name": "delay_site", "value": 5}])
        assert trigger.only_once is True and trigger.conditions == [{"name": "delay_site", "value": 5}]
        hours = client.office_hours.update(account.id, active=True, days=[1], timezone="Europe/Prague")
        assert client.office_hours.get(account.id) == hours
        offline = client.offline_emails.create(account.id, email="help@example.com")
        hook = client.hooks.create(account.id, name="webhook", config={"url": "https://example.com/h"})
        assert hook.config["secret"].startswith("whsec_")
        delivery = client.hooks.test(account.id, hook.id)
        assert (delivery.event, delivery.hook_id, delivery.webhook_id[:4]) == ("hook.test", hook.id, "msg_")
        assert [d.id for d in client.hooks.deliveries(account.id, hook.id)] == [delivery.id]
        assert client.hooks.retry_delivery(account.id, hook.id, delivery.id).id == delivery.id
        rotated = client.hooks.rotate_secret(account.id, hook.id)
        assert rotated.config["secret"] != hook.config["secret"] and rotated.previous_secret_expires_at
        assert client.hooks.rotate_secret(account.id, hook.id, secret="s" * 20).config["secret"] == "s" * 20
        assert client.offline_emails.get(account.id, offline.id) == offline

        assert client.triggers.delete(account.id, trigger.id) is None
        assert client.accounts.delete(account.id) is None
        with pytest.raises(sdk.NotFoundError) as err:
            client.accounts.get(account.id)
        assert (err.value.status, err.value.error, err.value.message) == (404, "NotFound", f"No account {account.id}.")


def test_list_follows_every_page(env, live):
    with Client(live.url, cli_key(env)) as client:
        made = [client.accounts.create(title=f"A{i}", lang="en").id for i in range(7)]
        assert [a.id for a in client.accounts.list(limit=2)] == made


def test_errors_carry_the_apis_details(env, live):
    with Client(live.url, cli_key(env)) as client:
        with pytest.raises(sdk.ValidationError) as err:
            client.accounts.create(title="", lang="xx")
        assert err.value.status == 400 and {e["field"] for e in err.value.errors} == {"title", "lang"}
        account = client.accounts.create(title="x", lang="en")
        email = f"dup.{secrets.token_hex(4)}@example.com"
        client.users.create(account.id, email=email, password="12345678", fullname="A")
        with pytest.raises(sdk.ConflictError):
            client.users.create(account.id, email=email, password="12345678", fullname="B")
    with Client(live.url, "osk_wrong") as client, pytest.raises(sdk.AuthError) as err:
        client.accounts.get(1)
    assert err.value.message == "No account found for apiKey osk_wrong."


def test_a_timed_out_create_is_retried_with_the_same_key_and_creates_once(env, live):
    key = cli_key(env)
    flaky = Flaky(live.url)
    with (
        ProxyServer(flaky, free_port()) as proxy,
        Client(proxy.url, key, timeout=1.0, max_retries=2, backoff=0.05) as client,
    ):
        flaky.plan = ["hang"]
        account = client.accounts.create(title="Once", lang="en")
        creates = [s for s in flaky.seen if s[1] == "/accounts/create"]
        assert len(creates) == 2 and creates[0][2] and creates[0][2] == creates[1][2]
        assert [a.id for a in client.accounts.list()] == [account.id]


def test_503_is_retried_and_429_honours_retry_after(env, live):
    flaky = Flaky(live.url)
    with ProxyServer(flaky, free_port()) as proxy, Client(proxy.url, cli_key(env), backoff=0.05) as client:
        flaky.plan = ["503", "503"]
        assert client.accounts.create(title="x", lang="en").title == "x"
        assert len(flaky.seen) == 3
        flaky.plan = ["429"]
        started = time.monotonic()
        assert list(client.accounts.list()) != []
        assert time.monotonic() - started >= 1.0
        flaky.plan = ["503"] * 3
        with pytest.raises(sdk.ServerError) as err:
            client.accounts.get(1)
        assert err.value.status == 503


def test_a_retried_delete_that_already_happened_is_a_success(env, live):
    flaky = Flaky(live.url)
    with ProxyServer(flaky, free_port()) as proxy, Client(proxy.url, cli_key(env), timeout=1.0, backoff=0.05) as client:
        account = client.accounts.create(title="x", lang="en")
        flaky.plan = ["hang"]
        assert client.accounts.delete(account.id) is None
        with pytest.raises(sdk.NotFoundError):
            client.accounts.get(account.id)


def test_unreachable_server_raises_a_connection_error():
    with (
        Client(f"http://127.0.0.1:{free_port()}", "osk_x", max_retries=1, backoff=0.01) as client,
        pytest.raises(sdk.APIConnectionError),
    ):
        client.accounts.get(1)


@pytest.mark.anyio
async def test_async_client_has_the_same_surface(env, live):
    async with AsyncClient(live.url, cli_key(env)) as client:
        account = await client.accounts.create(title="Async", lang="de")
        await client.users.create(account.id, email=f"a.{secrets.token_hex(4)}@example.com", password="12345678",
                                  fullname="A")
        users = [u async for u in client.users.list(account.id, limit=1)]
        assert len(users) == 1 and users[0].lang == "de"
        assert (await client.accounts.get(account.id)) == account
        with pytest.raises(sdk.NotFoundError):
            await client.accounts.get(10**17)


# ----------------------------------------------------------------------------- batching


async def _create_many(client: AsyncClient, titles: list[str]) -> list:
    return await asyncio.gather(*(client.accounts.create(title=t, lang="en") for t in titles),
                                return_exceptions=True)


@pytest.mark.anyio
async def test_async_batching_carries_many_calls_per_request_each_with_its_own_answer(env, live):
    flaky = Flaky(live.url)
    with ProxyServer(flaky, free_port()) as proxy:
        async with AsyncClient(proxy.url, cli_key(env), batch_size=50, batch_concurrency=2) as client:
            titles = [f"B{i}" for i in range(200)]
            titles[7] = ""  # this call alone fails
            made = await _create_many(client, titles)
            assert isinstance(made[7], sdk.ValidationError) and made[7].errors[0]["field"] == "title"
            assert [a.title for i, a in enumerate(made) if i != 7] == [t for i, t in enumerate(titles) if i != 7]
            listed = [a async for a in client.accounts.list()]
    paths = [s[1] for s in flaky.seen]
    assert "/accounts/create" not in paths
    assert 4 <= paths.count("/batch") <= 8  # 200 calls, at most 50 a request
    assert sorted(a.id for a in listed) == sorted(a.id for i, a in enumerate(made) if i != 7)


@pytest.mark.anyio
async def test_a_lost_or_refused_batch_is_retried_call_by_call_and_creates_each_once(env, live):
    flaky = Flaky(live.url)
    with ProxyServer(flaky, free_port()) as proxy:
        async with AsyncClient(proxy.url, cli_key(env), timeout=2.0, backoff=0.05, batch_size=100) as client:
            flaky.plan = ["hang", "503"]  # the first batch is done but its answer lost; the retry refused once
            made = await _create_many(client, [f"L{i}" for i in range(60)])
            assert all(not isinstance(a, BaseException) for a in made), made
            listed = [a async for a in client.accounts.list()]
    assert sorted(a.id for a in listed) == sorted(a.id for a in made)  # 60, none twice
    assert [s[1] for s in flaky.seen].count("/batch") >= 3


@pytest.mark.anyio
async def test_without_batch_on_the_server_the_client_sends_calls_alone(env, live):
    flaky = Flaky(live.url)
    with ProxyServer(flaky, free_port()) as proxy:
        async with AsyncClient(proxy.url, cli_key(env), batch_size=10, batch_concurrency=1) as client:
            flaky.plan = ["404"]  # as an older server, or another vendor's, answers POST /batch
            made = await _create_many(client, [f"S{i}" for i in range(20)])
            assert [a.title for a in made] == [f"S{i}" for i in range(20)]
            again = await _create_many(client, ["T1", "T2"])
            assert [a.title for a in again] == ["T1", "T2"]
    paths = [s[1] for s in flaky.seen]
    assert paths.count("/batch") == 1 and paths.count("/accounts/create") == 22


@pytest.mark.anyio
async def test_one_bad_call_does_not_fail_the_others_of_its_batch(env, live):
    async with AsyncClient(live.url, cli_key(env), batch_size=10) as client:
        calls = [client.accounts.create(title=f"K{i}", lang="en") for i in range(5)]
        calls.append(client.accounts.create(title="long key", lang="en", idempotency_key="k" * 300))
        made = await asyncio.gather(*calls, return_exceptions=True)
    assert [a.title for a in made[:5]] == [f"K{i}" for i in range(5)]
    assert isinstance(made[5], sdk.ValidationError) and made[5].errors[0]["field"] == "Idempotency-Key"


@pytest.mark.anyio
async def test_the_sdk_reaches_the_dry_runs_too(env, live):
    async with AsyncClient(live.url, cli_key(env)) as client:
        account = await client.accounts.create(title="Dry", lang="en")
        hours = await client.office_hours.update(account.id, active=True, days=[1], timezone="Europe/Prague",
                                                 exceptions=[{"date": "2026-12-21", "times": []}])
        assert hours.exceptions == [{"date": "2026-12-21", "times": []}]
        status = await client.office_hours.status(account.id, at="2026-12-14T10:00:00+01:00")  # a Monday
        assert status["open"] is True and status["timezone"] == "Europe/Prague"
        week = await client.office_hours.schedule(account.id, start="2026-12-14", days=14)
        assert len(week["intervals"]) == 1  # the 21st is a holiday, the 28th is past the window
        await client.triggers.create(account.id, name="hi", actions=MESSAGE,
                                     conditions=[{"name": "delay_site", "value": 60}])
        answer = await client.triggers.evaluate(account.id, visitor={"seconds_on_site": 20})
        assert [(t["fires"], t["after"]) for t in answer["triggers"]] == [("later", 40)]


SERVER_PACKAGES = {"uvicorn", "asyncpg", "sqlalchemy", "alembic", "cython", "argon2-cffi", "starlette", "opensupp",
                   "pydantic", "httptools", "uvloop"}


@pytest.mark.slow
def test_the_client_installs_alone_and_its_command_works(tmp_path):
    """`pip install ./client` in a fresh venv: none of the server's packages, and `opensupp
    provision --help` works (a copy of client/ is installed, so the build leaves no files in
    the repository)."""
    import json
    import shutil
    from pathlib import Path

    source = tmp_path / "client"
    shutil.copytree(Path(__file__).resolve().parent.parent / "client", source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python, script = str(venv / "bin" / "python"), str(venv / "bin" / "opensupp")
    installed = subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)],
                               capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]

    listed = subprocess.run([python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert "opensupp-client" in names and {"httpx", "click", "rich"} <= names
    assert not names & SERVER_PACKAGES, names & SERVER_PACKAGES

    top = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    commands = {line.split()[0] for line in top.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert top.returncode == 0 and top.stderr == "" and commands == {"provision", "export"}
    provision = subprocess.run([script, "provision", "--help"], capture_output=True, text=True, timeout=60)
    assert provision.returncode == 0 and "--skip-invalid" in provision.stdout
    code = ("import opensupp_client, opensupp_client.provision, opensupp_client.values;"
            "import importlib.resources as r; assert r.files('opensupp_client').joinpath('py.typed').is_file();"
            "print(opensupp_client.__version__)")
    imported = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    assert imported.returncode == 0 and imported.stdout.strip() == sdk.__version__, imported.stderr
