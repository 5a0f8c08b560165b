"""A real ASGI reverse proxy that misbehaves on purpose, for the SDK's retry tests.

Each request takes the next action of ``plan``: "ok" forwards it; "503" and "429" answer
that error without forwarding; "404" answers as a server without that path would; "hang"
forwards it (the server does the work) and then never answers, so the client times out, as
after a lost response.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import uvicorn


class Flaky:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.plan: list[str] = []
        self.seen: list[tuple[str, str, str | None]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k not in (b"host", b"content-length")}
        self.seen.append((scope["method"], scope["path"], headers.get("idempotency-key")))
        action = self.plan.pop(0) if self.plan else "ok"
        if action == "404":
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": b'{"error": "NotFound", "message": "No such path"}'})
            return
        if action in ("503", "429"):
            extra = [(b"retry-after", b"1")] if action == "429" else []
            await send({"type": "http.response.start", "status": int(action),
                        "headers": [(b"content-type", b"application/json"), *extra]})
            await send({"type": "http.response.body",
                        "body": b'{"error": "ServiceUnavailable", "message": "try again"}'})
            return
        url = self.upstream + scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
        async with httpx.AsyncClient() as client:
            response = await client.request(scope["method"], url, content=body, headers=headers)
        if action == "hang":
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": [(k.encode(), v.encode()) for k, v in response.headers.items()
                                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")]})
        await send({"type": "http.response.body", "body": response.content})


class ProxyServer:
    def __init__(self, app: Flaky, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ProxyServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
