"""The chat bench's baseline: a bare ASGI WebSocket echo under uvicorn, set up exactly as
``opensupp serve`` runs (``opensupp.web.server.uvicorn_options``, which ``opensupp serve`` uses).

It accepts every WebSocket and sends each text message back; no routing, no middleware, no
state. ``bench/chat.py`` compares the chat's visitor endpoint with it (memory per idle
connection, round trip at a fixed message rate).

    python bench/ws_echo_app.py --host 127.0.0.1 --port 8001
"""

from __future__ import annotations

import argparse
from typing import Any

from raw_app import lifespan  # bench/raw_app.py


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


def main() -> None:
    import uvicorn

    from opensupp.config import settings_from_environment
    from opensupp.logs import setup_logging
    from opensupp.web.server import uvicorn_options

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    settings = settings_from_environment()
    setup_logging(settings.log_level, settings.log_format)
    uvicorn.run(app, host=args.host, port=args.port, **uvicorn_options(settings))


if __name__ == "__main__":
    main()
