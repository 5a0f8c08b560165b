"""Hostile input (issue 12, items 1-3): what one partner sends must not stall the server for
the others, make it answer megabytes, or make it hold memory it never gives back.

Time is measured as the longest the event loop was held (``LoopWatch``: a task that wakes
every millisecond and records the longest gap), with bounds about 10x what this machine
needs, so the tests fail on the old code (seconds) and not on a slow machine.
"""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from test_triggers import SIMPLE, account

pytestmark = pytest.mark.anyio

KB = 1024


class LoopWatch:
    """The longest the event loop went without running this watcher's task, in seconds."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    async def __aenter__(self) -> LoopWatch:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.sleep(0.002)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.sleep(0.002)
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def small_error(r, max_bytes: int = 8 * KB) -> dict:
    assert r.status_code == 400, r.text[:500]
    assert len(r.content) <= max_bytes, f"an error answer of {len(r.content)} bytes"
    body = r.json()
    assert body["error"] == "ValidationError"
    assert 1 <= len(body["errors"]) <= 20
    return body


# ----------------------------------------------------------------------------- 2. validation errors


@pytest.mark.parametrize("where", ["visitor", "top"])
async def test_thirty_thousand_unknown_keys_answer_a_few_kb_at_once(api, where):
    aid = await account(api)
    keys = {f"k{i}": i for i in range(30_000)}
    body = {"visitor": keys} if where == "visitor" else keys
    async with LoopWatch() as watch:
        r = await api.post(f"/accounts/{aid}/triggers/evaluate", json=body)
    answer = small_error(r)
    prefix = "visitor." if where == "visitor" else ""
    listed = [e["field"] for e in answer["errors"]]
    assert listed == [f"{prefix}k{i}" for i in range(len(listed))]  # the first ones, in the order sent
    assert len(listed) + answer["moreErrors"] == 30_000
    assert answer["message"].endswith(f"(and {30_000 - 5} more).")
    assert watch.longest < 0.5, f"the loop was held {watch.longest * 1000:.0f} ms"


async def test_unknown_keys_of_a_create_are_counted_not_listed(api):
    r = await api.post("/accounts/create", json={"title": "Acme", "lang": "en", **{f"x{i}": 1 for i in range(5000)}})
    answer = small_error(r)
    assert answer["errors"][0] == {"field": "x0", "message": "is not a known field (allowed: title, lang)"}
    assert len(answer["errors"]) + answer["moreErrors"] == 5000


async def test_a_key_as_long_as_the_body_is_cut_in_the_answer(api):
    aid = await account(api)
    long_key = "k" * 500_000
    r = await api.post(f"/accounts/{aid}/triggers/evaluate", json={"visitor": {long_key: 1}})
    answer = small_error(r)
    field = answer["errors"][0]["field"]
    assert field.startswith("visitor.kkk") and field.endswith("...") and len(field) <= 200


async def test_few_problems_are_all_listed_without_a_count(api):
    r = await api.post("/accounts/create", json={"title": 5, "nope": 1})
    answer = small_error(r)
    assert [e["field"] for e in answer["errors"]] == ["title", "lang", "nope"]
    assert "moreErrors" not in answer


@pytest.mark.parametrize("path,body", [
    ("/accounts/{aid}/triggers/create",
     {**SIMPLE, "conditions": [{"name": "visitor_ip", "value": "1", **{f"c{i}": 1 for i in range(3000)}}] * 10}),
    ("/accounts/{aid}/officehours/update", {"config": [{"dow": d, **{f"o{i}": 1 for i in range(3000)}} for d in range(5)]}),
    ("/accounts/{aid}/hooks/create",
     {"name": "webhook", "config": {"url": "https://example.com/h", **{f"h{i}": 1 for i in range(30_000)}}}),
])
async def test_unknown_keys_in_nested_objects_are_counted(api, path, body):
    aid = await account(api)
    async with LoopWatch() as watch:
        r = await api.post(path.format(aid=aid), json=body)
    answer = small_error(r)
    assert answer["moreErrors"] > 1000
    assert watch.longest < 0.5, f"the loop was held {watch.longest * 1000:.0f} ms"


async def test_a_batch_call_with_many_unknown_keys_answers_small(api):
    calls = [{"id": "a", "method": "POST", "url": "/accounts/create",
              "body": {"title": "A", "lang": "en", **{f"z{i}": 1 for i in range(50_000)}}}]
    async with LoopWatch() as watch:
        r = await api.post("/batch", json={"requests": calls})
    assert r.status_code == 200
    assert len(r.content) < 8 * KB
    call = r.json()["responses"][0]
    assert call["status"] == 400 and len(call["body"]["errors"]) + call["body"]["moreErrors"] == 50_000
    assert watch.longest < 0.5, f"the loop was held {watch.longest * 1000:.0f} ms"


def test_error_answers_stay_small_for_any_list_of_problems():
    from opensupp.errors import FieldError, ValidationFailed
    from opensupp.web.errors import error_response

    problems = [FieldError("f" * 10_000 + str(i), "m" * 10_000) for i in range(1000)]
    status, _, out = error_response(ValidationFailed(problems))
    body = orjson.loads(out)
    assert status == 400 and len(out) <= 8 * KB
    assert len(body["errors"]) + body["moreErrors"] == 1000
