"""A minimal counting receiver for benchmarks: POST anything → 200; GET /count → the count."""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web

count = 0


async def receive(request: web.Request) -> web.Response:
    global count
    await request.read()
    count += 1
    return web.Response(text="ok")


async def report(request: web.Request) -> web.Response:
    return web.Response(text=str(count))


def main() -> None:
    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    app.router.add_get("/count", report)
    web.run_app(
        app, host="127.0.0.1", port=int(sys.argv[1]), print=None, loop=uvloop.new_event_loop()
    )


if __name__ == "__main__":
    main()
