"""The baseline: a bare ASGI app under uvicorn, set up exactly as ``opensupp serve`` runs.

GET answers a small JSON object; POST reads the whole body first, then answers one.
No routing, no auth, no database, no access log: the most any app can do per request
on this uvicorn configuration, which ``bench/api.py`` compares the real server with.

    python bench/raw_app.py --host 127.0.0.1 --port 8001
"""

from __future__ import annotations

import argparse
from typing import Any

GET_BODY = b'{"ok":true,"method":"GET"}'
POST_BODY = b'{"ok":true,"method":"POST"}'
HEADERS = [(b"content-type", b"application/json")]


async def lifespan(receive: Any, send: Any) -> None:
    """ASGI's lifespan, with nothing to start or stop (the bench's other bare apps use it too)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    if scope["type"] != "http":
        return
    body = GET_BODY
    if scope["method"] != "GET":
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = POST_BODY
    headers = HEADERS + [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    import uvicorn

    from opensupp.logs import setup_logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    setup_logging("info")  # the same logger levels as the server (they matter to uvicorn's speed)
    # Keep in step with opensupp.cli.serve: the same loop, parser, worker count and logging.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        loop="uvloop",
        http="httptools",
        log_config=None,
        log_level="info",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
