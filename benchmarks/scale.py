"""Deliveries per second on PostgreSQL with 1, 2 and 3 `hookline worker` processes.

    .venv/bin/python -m benchmarks.scale [EVENTS]

A backlog of EVENTS events to one webhook (a local receiver in its own process) is drained by
each number of workers in turn; between runs the same backlog is made due again. Prints the
numbers; asserts nothing. Needs PostgreSQL at HOOKLINE_TEST_POSTGRES (default: local, trust).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import orjson

from hookline.config import Settings
from hookline.models import DEFAULT_TENANT
from hookline.runtime import Runtime

from .drain import TOPICS, WEBHOOKS, free_port, received

ADMIN = os.environ.get("HOOKLINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
HOOKLINE = str(Path(sys.executable).with_name("hookline"))


async def fill(url: str, port: int, total: int) -> None:
    settings = Settings(
        database_url=url, api_key="bench", egress_allow=(ipaddress.ip_network("127.0.0.1/32"),)
    )
    bodies = [
        orjson.dumps({"action": topic, "data": {"id": 1, "pad": "x" * 900}})
        for topic in TOPICS[:WEBHOOKS]
    ]
    async with Runtime(settings, dispatch=False) as runtime:
        svc = runtime.service
        # eight webhooks, each event to one of them, each taking up to 32 requests at once:
        # 256 slots, more than three workers' 64 each, so the caps do not bind
        for n in range(WEBHOOKS):
            await svc.create_webhook(
                DEFAULT_TENANT,
                name=f"bench {n}",
                url=f"http://127.0.0.1:{port}/hook/{n}",
                topics=[TOPICS[n]],
                secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                max_in_flight=32,
            )
        remaining = iter(range(total))

        async def publisher() -> None:
            for n in remaining:
                await svc.publish(DEFAULT_TENANT, bodies[n % WEBHOOKS])

        await asyncio.gather(*(publisher() for _ in range(8)))


async def make_due_again(url: str) -> None:
    conn = await asyncpg.connect(url)
    await conn.execute("DELETE FROM attempts")
    await conn.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = now(), attempts_count = 0, "
        "schedule_step = 0, lease_token = NULL"
    )
    await conn.execute("VACUUM ANALYZE deliveries")
    await conn.close()


def drain(url: str, port: int, total: int, workers: int) -> float:
    env = {
        **os.environ,
        "HOOKLINE_DATABASE_URL": url,
        "HOOKLINE_API_KEY": "bench",
        "HOOKLINE_EGRESS_ALLOW": "127.0.0.1/32",
    }
    before = received(port)
    processes = [
        subprocess.Popen([HOOKLINE, "worker"], env=env, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    try:
        # timed from the first delivery received: process start-up is not delivery
        while received(port) == before:
            time.sleep(0.005)
        started = time.perf_counter()
        while received(port) - before < total:
            time.sleep(0.02)
        return time.perf_counter() - started
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(30)


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    database = f"hookline_scale_{secrets.token_hex(4)}"
    url = f"{ADMIN.rpartition('/')[0]}/{database}"
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-m", "benchmarks.receiver", str(port)])

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(ADMIN)
        await conn.execute(sql)
        await conn.close()

    asyncio.run(admin(f"CREATE DATABASE {database}"))
    try:
        while True:
            try:
                received(port)
                break
            except OSError:
                time.sleep(0.05)
        asyncio.run(fill(url, port, total))
        print(
            f"backlog: {total} deliveries of a 1 KB signed event to {WEBHOOKS} webhooks, "
            "receiver in its own process"
        )
        print(f"{'workers':>8}{'seconds':>10}{'deliveries/s':>15}")
        for workers in (1, 2, 3):
            asyncio.run(make_due_again(url))
            seconds = drain(url, port, total, workers)
            print(f"{workers:>8}{seconds:>10.2f}{total / seconds:>15,.0f}")
    finally:
        receiver.terminate()
        receiver.wait(10)
        asyncio.run(admin(f"DROP DATABASE {database} WITH (FORCE)"))


if __name__ == "__main__":
    main()
