"""The ceiling: a bare aiohttp client (uvloop) posting the same signed ~1 KB bodies to the same
receiver, 64 at a time, with nothing else to do: no queue, no storage, no history. What the
machine's HTTP client can physically push; hookline is measured against it."""

from __future__ import annotations

import time

import aiohttp
import uvloop

from hookline.signing import signature_headers

from .harness import SECRET, TOPICS, drive, event_body


def _headers(n: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        **signature_headers(SECRET, f"msg_{n}", int(time.time()), body, "X-PeopleForce-Signature"),
    }


async def _run(receiver_url: str, total: int, concurrency: int, rate: float | None) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(n: int) -> None:
            body = event_body(TOPICS[n % len(TOPICS)], n, stamped=True)
            url = f"{receiver_url}/hook/{n % len(TOPICS)}"
            async with session.post(url, data=body, headers=_headers(n, body)) as response:
                await response.read()

        await drive(total, concurrency, rate, one)


def send(receiver_url: str, total: int, concurrency: int = 64, rate: float | None = None) -> None:
    """Send ``total`` requests as fast as possible, or paced at ``rate`` per second."""
    uvloop.run(_run(receiver_url, total, concurrency, rate))
