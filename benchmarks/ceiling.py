"""The ceiling: a bare aiohttp client (uvloop) posting the same signed ~1 KB bodies to the same
receiver, 64 at a time, with nothing else to do: no queue, no storage, no history. What the
machine's HTTP client can physically push; hookline is measured against it."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import uvloop

from hookline.signing import signature_headers

from .harness import SECRET, TOPICS, event_body


def _headers(n: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        **signature_headers(SECRET, f"msg_{n}", int(time.time()), body, "X-PeopleForce-Signature"),
    }


async def _run(receiver_url: str, total: int, concurrency: int, rate: float | None) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        gate = asyncio.Semaphore(concurrency)

        async def one(n: int) -> None:
            async with gate:
                body = event_body(TOPICS[n % len(TOPICS)], n, stamped=True)
                url = f"{receiver_url}/hook/{n % len(TOPICS)}"
                async with session.post(url, data=body, headers=_headers(n, body)) as response:
                    await response.read()

        if rate is None:
            queue = iter(range(total))

            async def worker() -> None:
                for n in queue:
                    await one(n)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return
        started = time.perf_counter()
        tasks = []
        for n in range(total):
            if (wait := started + n / rate - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)


def send(receiver_url: str, total: int, concurrency: int = 64, rate: float | None = None) -> None:
    """Send ``total`` requests as fast as possible, or paced at ``rate`` per second."""
    uvloop.run(_run(receiver_url, total, concurrency, rate))
