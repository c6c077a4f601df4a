"""A real HTTP receiver on loopback, in a thread of its own, that misbehaves on request.

Paths: ``/ok`` 200; ``/status/<code>`` that status (``?retry_after=`` adds Retry-After);
``/slow/<s>`` 200 after s seconds; ``/flaky/<n>`` 500 for the first n requests, then 200;
``/hang`` never answers (until the receiver stops); ``/drip`` 200 then one body byte a
second; ``/redirect`` 302 to /ok; ``/big`` a 1 GiB body; ``/close`` closes the connection
without answering; ``/cut`` closes it mid-body; ``/limited/<n>`` 429 (Retry-After: 1) for the
first n requests; ``/first-fails`` 500 for the first request of each distinct body.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stopping: asyncio.Event | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def start(self) -> Receiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        async def stop() -> None:
            assert self._stopping is not None
            self._stopping.set()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 10) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received(path)
            if len(got) >= count:
                return got
            time.sleep(0.01)
        raise AssertionError(f"expected {count} requests to {path or 'any path'}, got {got}")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        with self._lock:
            self.requests.append(Received(request.path, dict(request.headers), body, time.time()))
            self._counts[request.path] += 1
            count = self._counts[request.path]
        parts = request.path.strip("/").split("/")
        kind = parts[0]
        if kind == "ok":
            return web.Response(text="ok")
        if kind == "status":
            headers = {}
            if "retry_after" in request.query:
                headers["Retry-After"] = request.query["retry_after"]
            return web.Response(status=int(parts[1]), text=f"status {parts[1]}", headers=headers)
        if kind == "slow":
            await asyncio.sleep(float(parts[1]) if len(parts) > 1 else 0.3)
            return web.Response(text="ok, slowly")
        if kind == "first-fails":
            # each distinct body fails once, then succeeds
            with self._lock:
                seen = self._counts[body.decode()]
                self._counts[body.decode()] += 1
            if not seen:
                return web.Response(status=500, text="first time fails")
            return web.Response(text="ok")
        if kind == "limited":
            if count <= int(parts[1]):
                return web.Response(status=429, text="slow down", headers={"Retry-After": "1"})
            return web.Response(text="ok")
        if kind == "cut":
            response = web.StreamResponse()
            response.content_length = 1000
            await response.prepare(request)
            await response.write(b"partial")
            assert request.transport is not None
            request.transport.close()
            return response
        if kind == "flaky":
            if count <= int(parts[1]):
                return web.Response(status=500, text="not yet")
            return web.Response(text="ok now")
        if kind == "hang":
            assert self._stopping is not None
            await self._stopping.wait()
            return web.Response(text="too late")
        if kind == "drip":
            response = web.StreamResponse()
            await response.prepare(request)
            for _ in range(60):
                await response.write(b".")
                await asyncio.sleep(1)
            return response
        if kind == "redirect":
            raise web.HTTPFound("/ok")
        if kind == "big":
            response = web.StreamResponse()
            response.content_length = 1024 * 1024 * 1024
            await response.prepare(request)
            chunk = b"x" * 65536
            for _ in range(16384):  # 1 GiB, unless the client stops reading
                await response.write(chunk)
            return response
        if kind == "close":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return web.Response(status=404, text="no such path")


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
