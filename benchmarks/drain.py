"""Measure hookline on SQLite, in one process: publish N events, then drain them to a local
receiver running in its own process. Prints the numbers; asserts nothing.

    .venv/bin/python -m benchmarks.drain [N]
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import orjson
import uvloop

from hookline.config import Settings
from hookline.models import DEFAULT_TENANT
from hookline.runtime import Runtime

WEBHOOKS = 8
TOPICS = [
    "employee_create", "employee_update", "employee_start", "employee_terminate",
    "leave_request_create", "leave_request_approve", "leave_request_reject",
    "leave_request_withdraw",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def received(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as response:
        return int(response.read())


async def run(total: int, port: int, folder: str) -> None:
    settings = Settings(
        database_url=f"sqlite:///{folder}/bench.db",
        api_key="bench",
        egress_allow=(ipaddress.ip_network("127.0.0.1/32"),),
    )
    data = {"id": 130333, "attributes": {"first_name": "John", "padding": "x" * 900}}
    async with Runtime(settings, dispatch=False) as runtime:
        svc = runtime.service
        # eight webhooks (eight paths of one receiver), each event to one of them, with the
        # default cap of 8 in flight each: 64 slots, the dispatcher's own concurrency
        for n in range(WEBHOOKS):
            await svc.create_webhook(
                DEFAULT_TENANT, name=f"bench {n}", url=f"http://127.0.0.1:{port}/hook/{n}",
                topics=[TOPICS[n]], secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            )  # fmt: skip
        bodies = [orjson.dumps({"action": topic, "data": data}) for topic in TOPICS[:WEBHOOKS]]
        started = time.perf_counter()
        for n in range(total):
            await svc.publish(DEFAULT_TENANT, bodies[n % WEBHOOKS])
        publish_s = time.perf_counter() - started
    async with Runtime(settings, dispatch=True):
        started = time.perf_counter()
        while (got := await asyncio.to_thread(received, port)) < total:
            await asyncio.sleep(0.05)
        drain_s = time.perf_counter() - started
    print(f"events: {total}, ~1 KB each, each to one of {WEBHOOKS} webhooks with a secret")
    print(f"publish (service, one durable transaction each): {total / publish_s:,.0f} events/s")
    print(f"drain (claim, sign, POST, record):               {total / drain_s:,.0f} deliveries/s")
    print(f"received: {got}")


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.receiver", str(port)])
    try:
        for _ in range(100):
            try:
                received(port)
                break
            except OSError:
                time.sleep(0.05)
        with tempfile.TemporaryDirectory() as folder:
            uvloop.run(run(total, port, folder))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
