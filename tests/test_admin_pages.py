"""The admin pages (site/admin*.py): each section's happy path through the real app, the
API's own messages on a refused form (nothing written), account isolation, an agent's 403
on every page and action, CSRF."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conftest import client_for, new_key
from opensupp.app import create_app
from opensupp.config import Settings

pytestmark = pytest.mark.anyio

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
async def site(database_url: str, tmp_path: Any) -> AsyncIterator[Any]:
    application = create_app(Settings(database_url=database_url, data_dir=tmp_path, key_cache_seconds=0,
                                            test_routes=True))
    await application.startup()
    try:
        yield application
    finally:
        await application.shutdown()


@dataclass
class Account:
    aid: str
    key: str
    admin_id: str
    agent_id: str


def unique_email(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(5)}@example.com"


async def make_account(site: Any) -> Account:
    key = await new_key(site)
    async with client_for(site, key) as api:
        aid = (await api.post("/accounts/create", json={"title": "Acme", "lang": "en"})).json()["id"]
        ids = []
        for role in ("admin", "agent"):
            r = await api.post(f"/accounts/{aid}/users/create", json={
                "email": unique_email(role), "password": "secret-123", "fullname": f"The {role}", "role": role})
            assert r.status_code == 200, r.text
            ids.append(r.json()["id"])
    return Account(aid, key, *ids)


@pytest.fixture
async def acme(site: Any) -> Account:
    return await make_account(site)


@asynccontextmanager
async def signed_in(site: Any, account: Account, uid: str, lang: str = "en") -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in as user ``uid`` by the guide's fast login."""
    async with client_for(site) as client:
        client.headers.update(HTML)
        r = await client.get("/sign/in", params={"apiKey": account.key, "uid": uid, "lang": lang})
        assert r.status_code == 303, r.text
        yield client


@pytest.fixture
async def admin(site: Any, acme: Account) -> AsyncIterator[httpx.AsyncClient]:
    async with signed_in(site, acme, acme.admin_id) as client:
        yield client


@pytest.fixture
async def api(site: Any, acme: Account) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(site, acme.key) as client:
        yield client


def token_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def post(client: httpx.AsyncClient, path: str, data: dict[str, Any], page: str | None = None) -> httpx.Response:
    """A form's POST with the CSRF token of ``page`` (default: the path's own page)."""
    token = token_of((await client.get(page or path)).text)
    return await client.post(path, data={"csrf_token": token, **data})


async def users_of(api: httpx.AsyncClient, aid: str) -> list[dict[str, Any]]:
    return (await api.get(f"/accounts/{aid}/users")).json()["records"]


# --------------------------------------------------------------------------- users


async def test_users_are_listed_created_edited_and_deleted(admin, api, acme):
    page = await admin.get("/admin/users")
    assert page.status_code == 200
    assert "The agent" in page.text and "The admin" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    email = unique_email("new")
    r = await post(admin, "/admin/users", {"email": email, "password": "long-enough", "fullname": "Nova Agent",
                                           "nickname": "", "role": "agent", "lang": "", "avatar": "", "note": ""})
    assert r.status_code == 303 and r.headers["location"] == "/admin/users"
    created = next(u for u in await users_of(api, acme.aid) if u["email"] == email)
    assert created["nickname"] == "Nova Agent" and created["lang"] == "en"  # the API's defaults
    listed = await admin.get("/admin/users")
    assert "The user was created." in listed.text and "Nova Agent" in listed.text

    r = await post(admin, f"/admin/users/{created['id']}", {"email": email, "fullname": "Nova Admin", "role": "admin",
                                                             "nickname": "Nova", "lang": "cs", "avatar": "",
                                                             "note": "two\nlines", "password": ""})
    assert r.status_code == 303
    after = (await api.get(f"/accounts/{acme.aid}/users/{created['id']}/get")).json()
    assert (after["fullname"], after["role"], after["nickname"], after["lang"], after["note"]) == (
        "Nova Admin", "admin", "Nova", "cs", "two\nlines")

    r = await post(admin, f"/admin/users/{created['id']}/delete", {}, page=f"/admin/users/{created['id']}")
    assert r.status_code == 303
    assert email not in [u["email"] for u in await users_of(api, acme.aid)]


async def test_an_admin_who_changes_their_own_password_stays_signed_in_here_only(site, admin, api, acme):
    async with signed_in(site, acme, acme.admin_id) as elsewhere:
        me = (await api.get(f"/accounts/{acme.aid}/users/{acme.admin_id}/get")).json()
        r = await post(admin, f"/admin/users/{acme.admin_id}", {
            "email": me["email"], "fullname": me["fullname"], "role": "admin", "nickname": me["nickname"],
            "lang": "en", "avatar": "", "note": "", "password": "a fresh password"})
        assert r.status_code == 303 and r.headers["location"] == "/admin/users"
        listed = await admin.get("/admin/users")
        assert listed.status_code == 200 and "saved" in listed.text.lower()  # this browser, with its notice
        assert (await elsewhere.get("/admin/users")).status_code == 303  # the other session has ended


async def test_a_refused_user_shows_the_apis_messages_and_writes_nothing(admin, api, acme):
    before = await users_of(api, acme.aid)
    r = await post(admin, "/admin/users", {"email": "not-an-email", "password": "short", "fullname": "X",
                                           "role": "agent"})
    assert r.status_code == 400
    wire = await api.post(f"/accounts/{acme.aid}/users/create",
                          json={"email": "not-an-email", "password": "short", "fullname": "X", "role": "agent"})
    for problem in wire.json()["errors"]:
        assert problem["message"] in r.text
    assert 'aria-invalid="true"' in r.text
    assert await users_of(api, acme.aid) == before


async def test_a_taken_email_is_the_apis_conflict(admin, api, acme):
    taken = (await users_of(api, acme.aid))[1]["email"]
    r = await post(admin, "/admin/users", {"email": taken.upper(), "password": "long-enough", "fullname": "Twin"})
    assert r.status_code == 400
    assert f"The email {taken.upper()} is already used by another user." in r.text


async def test_the_only_admin_cannot_delete_or_demote_themselves(admin, api, acme):
    r = await post(admin, f"/admin/users/{acme.admin_id}/delete", {}, page=f"/admin/users/{acme.admin_id}")
    assert r.status_code == 400 and "only admin" in r.text
    user = (await api.get(f"/accounts/{acme.aid}/users/{acme.admin_id}/get")).json()
    r = await post(admin, f"/admin/users/{acme.admin_id}", {**user, "role": "agent", "password": ""})
    assert r.status_code == 400 and "only admin" in r.text
    assert (await api.get(f"/accounts/{acme.aid}/users/{acme.admin_id}/get")).json()["role"] == "admin"
    # with a second admin, they may step down
    await api.post(f"/accounts/{acme.aid}/users/{acme.agent_id}/update", json={"role": "admin"})
    r = await post(admin, f"/admin/users/{acme.admin_id}", {**user, "role": "agent", "password": ""})
    assert r.status_code == 303


async def test_another_accounts_users_are_not_found(site, admin, acme):
    other = await make_account(site)
    assert (await admin.get(f"/admin/users/{other.agent_id}")).status_code == 404
    r = await post(admin, f"/admin/users/{other.agent_id}", {"fullname": "Hijacked"}, page="/admin/users")
    assert r.status_code == 404
    r = await post(admin, f"/admin/users/{other.agent_id}/delete", {}, page="/admin/users")
    assert r.status_code == 404
    async with client_for(site, other.key) as api:
        user = (await api.get(f"/accounts/{other.aid}/users/{other.agent_id}/get")).json()
    assert user["fullname"] == "The agent"
    assert other.agent_id not in (await admin.get("/admin/users")).text.split("/admin/users/")


# --------------------------------------------------------------------------- offline e-mails


async def test_offline_emails_are_added_refused_and_removed(admin, api, acme):
    r = await post(admin, "/admin/offlineemails", {"email": "desk@example.com"})
    assert r.status_code == 303
    listed = (await api.get(f"/accounts/{acme.aid}/offlineemails")).json()["records"]
    assert [e["email"] for e in listed] == ["desk@example.com"]
    r = await post(admin, "/admin/offlineemails", {"email": "DESK@example.com"})
    assert r.status_code == 400
    wire = await api.post(f"/accounts/{acme.aid}/offlineemails/create", json={"email": "DESK@example.com"})
    assert wire.status_code == 409 and wire.json()["message"] in r.text
    r = await post(admin, "/admin/offlineemails", {"email": "nope"})
    assert r.status_code == 400 and 'aria-invalid="true"' in r.text
    assert len((await api.get(f"/accounts/{acme.aid}/offlineemails")).json()["records"]) == 1
    r = await post(admin, f"/admin/offlineemails/{listed[0]['id']}/delete", {}, page="/admin/offlineemails")
    assert r.status_code == 303
    assert (await api.get(f"/accounts/{acme.aid}/offlineemails")).json()["records"] == []


# --------------------------------------------------------------------------- office hours


async def test_office_hours_show_the_status_and_the_week_and_save_the_apis_document(admin, api, acme):
    page = await admin.get("/admin/officehours")
    assert page.status_code == 200 and "Open" in page.text and "00:00–24:00" in page.text  # inactive: always open
    document = {"active": True, "days": [1, 2, 3, 4, 5], "timezone": "Europe/Prague",
                "config": [{"dow": 1, "times": [{"from": 540, "to": 1020}]}]}
    r = await post(admin, "/admin/officehours", {"document": json.dumps(document)})
    assert r.status_code == 303
    stored = (await api.get(f"/accounts/{acme.aid}/officehours/get")).json()
    assert stored["days"] == [1, 2, 3, 4, 5] and stored["timezone"] == "Europe/Prague"
    page = await admin.get("/admin/officehours")
    assert "09:00–17:00" in page.text and "Europe/Prague" in page.text and "Closed" in page.text


async def test_the_week_form_writes_the_apis_document_and_keeps_the_exceptions(admin, api, acme):
    await api.post(f"/accounts/{acme.aid}/officehours/update",
                   json={"exceptions": [{"date": "2026-12-24", "times": []}]})
    week = {"active": "on", "timezone": "2", "open1": "on", "from1": "09:00", "to1": "17:30", "open2": "on",
            "from2": "", "to2": "", "open6": "on", "from6": "22:00", "to6": "00:00", "from3": "08:00", "to3": "12:00"}
    r = await post(admin, "/admin/officehours/week", week, page="/admin/officehours")
    assert r.status_code == 303
    stored = (await api.get(f"/accounts/{acme.aid}/officehours/get")).json()
    assert stored == {"active": True, "days": [1, 2, 6], "timezone": 2,
                      "config": [{"dow": 1, "times": [{"from": 540, "to": 1050}]},
                                 {"dow": 6, "times": [{"from": 1320, "to": 1440}]}],
                      "exceptions": [{"date": "2026-12-24", "times": []}]}
    page = (await admin.get("/admin/officehours")).text
    assert 'name="from1" value="09:00"' in page and 'name="to6" value="00:00"' in page


async def test_a_refused_week_shows_the_apis_message_and_the_form_as_sent(admin, api, acme):
    before = (await api.get(f"/accounts/{acme.aid}/officehours/get")).json()
    r = await post(admin, "/admin/officehours/week", {"active": "on", "timezone": "Mars/Olympus", "open1": "on",
                                                      "from1": "17:00", "to1": "09:00"}, page="/admin/officehours")
    assert r.status_code == 400
    assert 'name="from1" value="17:00"' in r.text and 'value="Mars/Olympus"' in r.text
    wire = (await api.post(f"/accounts/{acme.aid}/officehours/update", json={
        "active": True, "timezone": "Mars/Olympus", "days": [1],
        "config": [{"dow": 1, "times": [{"from": 1020, "to": 540}]}]})).json()
    for problem in wire["errors"]:
        assert problem["field"] in r.text
    assert (await api.get(f"/accounts/{acme.aid}/officehours/get")).json() == before


async def test_several_periods_a_day_are_edited_as_json_only(admin, api, acme):
    await api.post(f"/accounts/{acme.aid}/officehours/update", json={
        "active": True, "days": [1],
        "config": [{"dow": 1, "times": [{"from": 540, "to": 720}, {"from": 780, "to": 1020}]}]})
    page = (await admin.get("/admin/officehours")).text
    assert "several periods on a day" in page and 'action="/admin/officehours/week' not in page
    assert "09:00–12:00, 13:00–17:00" in page


async def test_refused_office_hours_show_the_apis_problems_and_keep_the_old(admin, api, acme):
    before = (await api.get(f"/accounts/{acme.aid}/officehours/get")).json()
    bad = '{"days": [7], "timezone": "Mars/Olympus"}'
    r = await post(admin, "/admin/officehours", {"document": bad})
    assert r.status_code == 400
    wire = (await api.post(f"/accounts/{acme.aid}/officehours/update", content=bad)).json()
    for problem in wire["errors"]:
        assert problem["message"].replace("'", "&#39;").replace('"', "&#34;") in r.text
    r = await post(admin, "/admin/officehours", {"document": "{not json"})
    assert r.status_code == 400 and "not valid JSON" in r.text
    assert (await api.get(f"/accounts/{acme.aid}/officehours/get")).json() == before


# --------------------------------------------------------------------------- hooks


async def test_hooks_show_their_secret_once(admin, api, acme):
    r = await post(admin, "/admin/hooks", {"name": "webhook", "config.url": "https://example.com/in",
                                           "events": ["conversation.opened", "conversation.closed"], "active": "on"})
    assert r.status_code == 200
    hook = (await api.get(f"/accounts/{acme.aid}/hooks")).json()["records"][0]
    assert hook["config"]["events"] == ["conversation.opened", "conversation.closed"] and hook["active"]
    assert hook["config"]["secret"] in r.text
    page = await admin.get("/admin/hooks")
    assert "https://example.com/in" in page.text and hook["config"]["secret"] not in page.text
    r = await post(admin, f"/admin/hooks/{hook['id']}/active", {"active": "false"}, page="/admin/hooks")
    assert r.status_code == 303
    assert not (await api.get(f"/accounts/{acme.aid}/hooks/{hook['id']}/get")).json()["active"]
    r = await post(admin, f"/admin/hooks/{hook['id']}/delete", {}, page="/admin/hooks")
    assert r.status_code == 303 and (await api.get(f"/accounts/{acme.aid}/hooks")).json()["records"] == []


async def test_a_hooks_test_event_its_deliveries_and_a_retry(site, admin, api, acme):
    hook = (await api.post(f"/accounts/{acme.aid}/hooks/create",
                           json={"name": "webhook", "config": {"url": "https://example.com/in"}})).json()
    r = await post(admin, f"/admin/hooks/{hook['id']}/test", {}, page="/admin/hooks")
    assert r.status_code == 303 and r.headers["location"] == f"/admin/hooks/{hook['id']}/deliveries"
    [queued] = (await api.get(f"/accounts/{acme.aid}/hooks/{hook['id']}/deliveries")).json()["records"]
    assert (queued["event"], queued["status"]) == ("hook.test", "pending")
    page = await admin.get(r.headers["location"])
    assert page.status_code == 200 and "hook.test" in page.text and "A test event is on its way" in page.text
    assert hook["config"]["secret"] not in page.text
    async with site.db.transaction() as session:  # as the worker leaves a delivery that failed for good
        await session.execute("UPDATE deliveries SET status = 'failed', attempts = 8, last_status_code = 500, "
                              "response = '<b>down</b>' WHERE id = $1", int(queued["id"]))
    page = await admin.get(f"/admin/hooks/{hook['id']}/deliveries")
    assert "HTTP 500" in page.text and "&lt;b&gt;down&lt;/b&gt;" in page.text and "Failed" in page.text
    r = await post(admin, f"/admin/hooks/{hook['id']}/deliveries/{queued['id']}/retry", {},
                   page=f"/admin/hooks/{hook['id']}/deliveries")
    assert r.status_code == 303
    [again] = (await api.get(f"/accounts/{acme.aid}/hooks/{hook['id']}/deliveries")).json()["records"]
    assert (again["status"], again["attempts"]) == ("pending", 0)
    assert (await admin.get("/admin/hooks/999999/deliveries")).status_code == 404
    assert (await admin.get(f"/admin/hooks/{hook['id']}/deliveries?after=nonsense")).status_code == 200


async def test_a_rotated_secret_is_shown_once_and_a_deactivated_hook_says_why(site, admin, api, acme):
    hook = (await api.post(f"/accounts/{acme.aid}/hooks/create",
                           json={"name": "webhook", "config": {"url": "https://example.com/in"}})).json()
    r = await post(admin, f"/admin/hooks/{hook['id']}/rotate", {}, page="/admin/hooks")
    new = (await api.get(f"/accounts/{acme.aid}/hooks/{hook['id']}/get")).json()
    assert new["config"]["secret"] != hook["config"]["secret"] and new["previousSecretExpiresAt"]
    assert r.status_code == 200 and new["config"]["secret"] in r.text and "old one keeps signing" in r.text
    assert new["config"]["secret"] not in (await admin.get("/admin/hooks")).text
    async with site.db.transaction() as session:  # as the outbox leaves a hook failing for days
        await session.execute("UPDATE hooks SET active = $1, disabled_reason = $2 WHERE id = $3", False,
                              "every delivery since 2026-11-30 failed", int(hook["id"]))
    page = (await admin.get("/admin/hooks")).text
    assert "Deactivated by failed deliveries: every delivery since 2026-11-30 failed" in page
    await post(admin, f"/admin/hooks/{hook['id']}/active", {"active": "true"}, page="/admin/hooks")
    assert "Deactivated by failed deliveries" not in (await admin.get("/admin/hooks")).text


async def test_a_refused_hook_shows_the_apis_message(admin, api, acme):
    r = await post(admin, "/admin/hooks", {"name": "webhook", "config.url": "http://127.0.0.1/in"})
    assert r.status_code == 400
    wire = await api.post(f"/accounts/{acme.aid}/hooks/create",
                          json={"name": "webhook", "config": {"url": "http://127.0.0.1/in"}, "active": False})
    assert wire.status_code == 400
    assert wire.json()["errors"][0]["message"] in r.text.replace("&#39;", "'")
    assert (await api.get(f"/accounts/{acme.aid}/hooks")).json()["records"] == []


# --------------------------------------------------------------------------- triggers

TRIGGER = {"name": "Pricing help", "event": "onload", "conditions": [{"name": "number_of_pages", "value": 3,
                                                                      "cmp": "gte"}],
           "actions": [{"name": "message", "agent_nick": "Ann", "message": "Need help?"}]}


async def test_triggers_are_created_edited_tested_and_deleted(admin, api, acme):
    assert "Greeting" in (await admin.get("/admin/triggers")).text  # the sample to start from
    r = await post(admin, "/admin/triggers", {"document": json.dumps(TRIGGER)})
    assert r.status_code == 303
    trigger = (await api.get(f"/accounts/{acme.aid}/triggers")).json()["records"][0]
    assert trigger["name"] == "Pricing help"
    page = await admin.get(f"/admin/triggers/{trigger['id']}")
    assert "Pricing help" in page.text and "Test this trigger on a visitor" in page.text
    r = await post(admin, f"/admin/triggers/{trigger['id']}", {"document": json.dumps({"name": "Pricing"})})
    assert r.status_code == 303
    assert (await api.get(f"/accounts/{acme.aid}/triggers/{trigger['id']}/get")).json()["name"] == "Pricing"

    path = f"/admin/triggers/{trigger['id']}/test"
    r = await post(admin, path, {"event": "onload", "visitor": '{"number_of_pages": 2}', "at": ""},
                   page=f"/admin/triggers/{trigger['id']}")
    assert r.status_code == 200 and "It does not fire." in r.text
    r = await post(admin, path, {"event": "onload", "visitor": '{"number_of_pages": 5}', "at": ""},
                   page=f"/admin/triggers/{trigger['id']}")
    assert r.status_code == 200 and "It fires now." in r.text
    r = await post(admin, path, {"event": "onload", "visitor": '{"shoe_size": 5}', "at": ""},
                   page=f"/admin/triggers/{trigger['id']}")
    assert r.status_code == 400 and "visitor.shoe_size" in r.text

    r = await post(admin, f"/admin/triggers/{trigger['id']}/delete", {}, page=f"/admin/triggers/{trigger['id']}")
    assert r.status_code == 303 and (await api.get(f"/accounts/{acme.aid}/triggers")).json()["records"] == []


async def test_a_refused_trigger_shows_the_apis_problems(admin, api, acme):
    bad = {**TRIGGER, "conditions": [{"name": "shoe_size", "value": 3}]}
    r = await post(admin, "/admin/triggers", {"document": json.dumps(bad)})
    assert r.status_code == 400
    wire = (await api.post(f"/accounts/{acme.aid}/triggers/create", json=bad)).json()
    assert wire["errors"][0]["field"] in r.text
    assert (await api.get(f"/accounts/{acme.aid}/triggers")).json()["records"] == []


async def test_another_accounts_trigger_is_not_found(site, admin):
    other = await make_account(site)
    async with client_for(site, other.key) as api:
        tid = (await api.post(f"/accounts/{other.aid}/triggers/create", json=TRIGGER)).json()["id"]
        assert (await admin.get(f"/admin/triggers/{tid}")).status_code == 404
        r = await post(admin, f"/admin/triggers/{tid}", {"document": json.dumps({"name": "Mine"})},
                       page="/admin/triggers")
        assert r.status_code == 404
        assert (await api.get(f"/accounts/{other.aid}/triggers/{tid}/get")).json()["name"] == "Pricing help"


# --------------------------------------------------------------------------- the box's look


async def test_the_box_look_is_saved_through_the_api_and_previewed(admin, api, acme):
    page = await admin.get("/admin/box")
    assert page.status_code == 200 and 'src="/admin/box/preview?color=%231565c0&amp;position=right' in page.text
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    r = await post(admin, "/admin/box", {"color": "#aa0000", "position": "left", "title": "Help", "welcome": "Hi!"})
    assert r.status_code == 303
    look = (await api.get(f"/accounts/{acme.aid}/box/get")).json()
    assert look == {"color": "#aa0000", "position": "left", "title": "Help", "welcome": "Hi!"}

    preview = await admin.get("/admin/box/preview", params={"color": "#00ff00", "title": "Unsaved", "position": "up"})
    assert preview.status_code == 200
    config = json.loads(re.search(r'id="opensupp-config">(.*?)</script>', preview.text).group(1))
    assert config["preview"] is True and config["title"] == "Unsaved"
    assert config["look"] == {"color": "#00ff00", "position": "left", "welcome": "Hi!"}  # "up" refused: the stored
    assert (await api.get(f"/accounts/{acme.aid}/box/get")).json() == look  # a preview saves nothing


async def test_a_refused_look_shows_the_apis_message(admin, api, acme):
    r = await post(admin, "/admin/box", {"color": "red", "position": "left", "title": "", "welcome": ""})
    assert r.status_code == 400 and "must be a colour written #rrggbb, like #1565c0" in r.text
    assert (await api.get(f"/accounts/{acme.aid}/box/get")).json()["position"] == "right"


# --------------------------------------------------------------------------- who may


ADMIN_PAGES = ["/admin", "/admin/users", "/admin/triggers", "/admin/officehours", "/admin/offlineemails",
               "/admin/hooks", "/admin/box", "/admin/box/preview"]
ADMIN_ACTIONS = ["/admin/users", "/admin/users/{agent}", "/admin/users/{admin}/delete", "/admin/offlineemails",
                 "/admin/offlineemails/1/delete", "/admin/officehours", "/admin/hooks", "/admin/hooks/1/active",
                 "/admin/hooks/1/delete", "/admin/hooks/1/test", "/admin/hooks/1/rotate",
                 "/admin/hooks/1/deliveries/1/retry", "/admin/triggers", "/admin/triggers/1",
                 "/admin/triggers/1/delete", "/admin/triggers/1/test", "/admin/box"]


async def test_an_agent_gets_403_on_every_page_and_action(site, acme):
    async with signed_in(site, acme, acme.agent_id) as agent:
        for path in [*ADMIN_PAGES, f"/admin/users/{acme.agent_id}", "/admin/hooks/1/deliveries"]:
            assert (await agent.get(path)).status_code == 403, path
        token = token_of((await agent.get("/_test/form")).text)  # a token of the agent's own session
        for path in ADMIN_ACTIONS:
            path = path.format(agent=acme.agent_id, admin=acme.admin_id)
            r = await agent.post(path, data={"csrf_token": token, "role": "admin", "email": "x@example.com"})
            assert r.status_code == 403, path
    async with client_for(site, acme.key) as api:
        assert len(await users_of(api, acme.aid)) == 2
        assert (await api.get(f"/accounts/{acme.aid}/users/{acme.agent_id}/get")).json()["role"] == "agent"


async def test_no_session_goes_to_sign_in(site):
    async with client_for(site) as anon:
        r = await anon.get("/admin/users", headers=HTML)
        assert r.status_code == 303 and r.headers["location"].startswith("/sign/in?next=%2Fadmin%2Fusers")


async def test_a_form_without_its_csrf_token_is_refused(admin, api, acme):
    r = await admin.post("/admin/users", data={"email": unique_email("x"), "password": "long-enough",
                                               "fullname": "No Token"})
    assert r.status_code == 403
    assert len(await users_of(api, acme.aid)) == 2
    for path in ADMIN_ACTIONS:
        path = path.format(agent=acme.agent_id, admin=acme.admin_id)
        r = await admin.post(path, data={"csrf_token": "forged", "email": "x@example.com"})
        assert r.status_code == 403 and "CSRF" in r.text, path


async def test_another_accounts_hooks_emails_and_look_are_out_of_reach(site, admin):
    other = await make_account(site)
    async with client_for(site, other.key) as api:
        hook = (await api.post(f"/accounts/{other.aid}/hooks/create",
                               json={"name": "webhook", "config": {"url": "https://other-account.example"}})).json()
        email = (await api.post(f"/accounts/{other.aid}/offlineemails/create",
                                json={"email": "other-account@example.com"})).json()
        for path in [f"/admin/hooks/{hook['id']}/delete", f"/admin/hooks/{hook['id']}/active",
                     f"/admin/offlineemails/{email['id']}/delete"]:
            assert (await post(admin, path, {"active": "false"}, page="/admin/hooks")).status_code == 404, path
        assert (await api.get(f"/accounts/{other.aid}/hooks/{hook['id']}/get")).json()["active"] is True
        assert len((await api.get(f"/accounts/{other.aid}/offlineemails")).json()["records"]) == 1
        page = (await admin.get("/admin/hooks")).text + (await admin.get("/admin/offlineemails")).text
        # (distinct strings: the admin's own generated address may end in "b@example.com")
        assert "other-account.example" not in page and "other-account@example.com" not in page


async def test_every_page_speaks_czech(site, acme, api):
    tid = (await api.post(f"/accounts/{acme.aid}/triggers/create", json=TRIGGER)).json()["id"]
    await api.post(f"/accounts/{acme.aid}/hooks/create", json={"name": "webhook", "config": {"url": "https://a.example"}})
    async with signed_in(site, acme, acme.admin_id, lang="cs") as client:
        page = await client.get("/admin/users")
        assert 'lang="cs"' in page.text and "Nový uživatel" in page.text
        for path in [*ADMIN_PAGES[1:-1], f"/admin/users/{acme.agent_id}", f"/admin/triggers/{tid}"]:  # (not the box)
            page = await client.get(path)
            assert page.status_code == 200 and 'lang="cs"' in page.text, path
            assert "Správa" in page.text, path  # the menu's name
        r = await post(client, f"/admin/triggers/{tid}/test", {"event": "onload", "visitor": "{}", "at": ""},
                       page=f"/admin/triggers/{tid}")
        assert "Nespustí se." in r.text


def test_every_admin_text_is_in_english_and_czech():
    from opensupp.site.i18n import HERE

    texts = json.loads((HERE / "admin.json").read_text("utf-8"))
    assert texts["en"].keys() == texts["cs"].keys()
    assert all(value.strip() for lang in texts.values() for value in lang.values())
