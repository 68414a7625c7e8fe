"""The bench's honest baselines: what the same Python server does with no stack of ours at all.

* ``raw``: a bare ASGI application that reads the body and answers a constant (the server's
  own limit: uvicorn, httptools, uvloop);
* ``fastapi``: an empty FastAPI endpoint that reads the body (the framework's limit).

``bench`` starts each as its own process on the service's server settings
(``python -m uvicorn <package>.bench_baselines:raw --loop uvloop --http httptools``) and compares
``/v1/predict`` with both, side by side in one run. Neither imports anything of this project.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

ANSWER = b'{"ok":true}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def raw(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


fastapi = FastAPI()


@fastapi.post("/")
async def empty(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")
