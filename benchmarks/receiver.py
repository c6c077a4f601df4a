"""The receiver every system in the benchmark posts to, in its own process.

POST /hook/<anything>   200 "ok", counted; if the JSON body's data carries ``t`` (the
                        publisher's time.time() when it published), publish-to-receive is
                        recorded
POST /hang/<anything>   never answers: the sender's deadline ends it; not counted
GET  /stats             {"count", "first", "last", "latencies_ms": [...]} since the last reset
POST /reset             forget everything

python -m benchmarks.receiver PORT
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson
import uvloop
from aiohttp import web


class Tally:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self.latencies_ms: list[float] = []


tally = Tally()


async def receive(request: web.Request) -> web.Response:
    body = await request.read()
    now = time.time()
    tally.count += 1
    tally.first = tally.first or now
    tally.last = now
    if b'"t":' in body:
        sent = orjson.loads(body)["data"]["t"]
        tally.latencies_ms.append((now - sent) * 1000)
    return web.Response(text="ok")


async def hang(request: web.Request) -> web.Response:
    await asyncio.sleep(3600)
    return web.Response(text="late")


async def stats(request: web.Request) -> web.Response:
    return web.Response(
        body=orjson.dumps(
            {
                "count": tally.count,
                "first": tally.first,
                "last": tally.last,
                "latencies_ms": tally.latencies_ms,
            }
        ),
        content_type="application/json",
    )


async def reset(request: web.Request) -> web.Response:
    tally.reset()
    return web.Response(text="ok")


def main() -> None:
    app = web.Application()
    app.router.add_post("/hook/{tail:.*}", receive)
    app.router.add_post("/hang/{tail:.*}", hang)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        print=None,
        loop=uvloop.new_event_loop(),
        shutdown_timeout=0.5,  # hanging requests are not worth waiting for
    )


if __name__ == "__main__":
    main()
