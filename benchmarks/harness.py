"""What every benchmark run shares: the receiver, hookline's processes, the load generator."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

PYTHON = sys.executable
HOOKLINE = str(Path(sys.executable).with_name("hookline"))
API_KEY = "bench-admin-key"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOPICS = [
    "employee_create", "employee_update", "employee_start", "employee_terminate",
    "leave_request_create", "leave_request_approve", "leave_request_reject",
    "leave_request_withdraw",
]  # fmt: skip
#: ~1 KB of event data, as the reference's employee events are
PADDING = "x" * 900


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def peak_rss_mib(pid: int) -> float:
    """The process's high-water resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def event_body(topic: str, n: int, stamped: bool = False) -> bytes:
    data: dict[str, Any] = {"id": n, "first_name": "John", "padding": PADDING}
    if stamped:
        data["t"] = time.time()
    return orjson.dumps({"action": topic, "data": data})


def _http(method: str, url: str, body: Any = None, key: str | None = None) -> Any:
    data = None if body is None else orjson.dumps(body)
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=60) as response:
        text = response.read()
    return orjson.loads(text) if text[:1] in (b"{", b"[") else text


def wait_until(check: Any, timeout: float, what: str, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            if check():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f}s")
        time.sleep(every)


class Receiver:
    """The counting receiver, in a process of its own."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process = subprocess.Popen([PYTHON, "-m", "benchmarks.receiver", str(self.port)])
        wait_until(lambda: self.stats() is not None, 20, "the receiver")

    def stats(self) -> dict[str, Any]:
        return _http("GET", f"{self.url}/stats")  # type: ignore[no-any-return]

    def count(self) -> int:
        return int(self.stats()["count"])

    def reset(self) -> None:
        _http("POST", f"{self.url}/reset")

    def wait_for(self, count: int, timeout: float) -> dict[str, Any]:
        """Wait until ``count`` requests arrived; return the stats."""
        wait_until(lambda: self.count() >= count, timeout, f"{count} deliveries", every=0.05)
        return self.stats()

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)


@dataclass
class Hookline:
    """hookline's processes for one run: ``roles`` are CLI commands (serve, api, worker)."""

    env: dict[str, str]
    roles: list[str]
    port: int = 0

    def __post_init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.peak_rss: dict[str, float] = {}

    def start(self) -> Hookline:
        env = {**os.environ, **self.env, "HOOKLINE_PORT": str(self.port)}
        for role in self.roles:
            self.processes.append(
                (role, subprocess.Popen([HOOKLINE, role], env=env, stderr=subprocess.DEVNULL))
            )
        if any(role in ("serve", "api") for role in self.roles):
            wait_until(lambda: _http("GET", f"{self.url}/readyz") is not None, 60, "hookline")
        return self

    def rss(self) -> dict[str, float]:
        """Each process's peak RSS so far (MiB), keyed ``role`` or ``role 2``, ``role 3``..."""
        out: dict[str, float] = {}
        for role, process in self.processes:
            name = (
                role if role not in out else f"{role} {sum(r == role for r, _ in self.processes)}"
            )
            out[name] = peak_rss_mib(process.pid)
        return out

    def stop(self) -> None:
        self.peak_rss = self.rss()
        for _, process in self.processes:
            process.send_signal(signal.SIGTERM)
        for _, process in self.processes:
            try:
                process.wait(40)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes = []

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return _http(method, f"{self.url}/api/v1{path}", body, API_KEY)

    def add_webhooks(self, urls: list[str], topics: list[list[str]], **extra: Any) -> None:
        for n, (url, subscribed) in enumerate(zip(urls, topics, strict=True)):
            self.api(
                "POST",
                "/webhooks",
                {"name": f"bench {n}", "url": url, "topics": subscribed, "secret": SECRET} | extra,
            )


@contextlib.contextmanager
def running(hookline: Hookline) -> Iterator[Hookline]:
    hookline.start()
    try:
        yield hookline
    finally:
        hookline.stop()


def hookline_env(database_url: str, **settings: str) -> dict[str, str]:
    return {
        "HOOKLINE_DATABASE_URL": database_url,
        "HOOKLINE_API_KEY": API_KEY,
        "HOOKLINE_EGRESS_ALLOW": "127.0.0.1/32",
        "HOOKLINE_LOG_LEVEL": "WARNING",
        **settings,
    }


# -- load --------------------------------------------------------------------------------------


@dataclass
class Published:
    count: int
    seconds: float
    ack_ms: list[float]

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


async def drive(
    total: int, concurrency: int, rate: float | None, one: Callable[[int], Awaitable[None]]
) -> None:
    """Run ``one(n)`` for n in 0..total-1, at most ``concurrency`` at once: as fast as that
    allows, or each started on time at ``rate`` per second (an open loop: a slow answer does
    not slow the senders down, as with real publishers)."""
    if rate is None:
        queue = iter(range(total))

        async def sender() -> None:
            for n in queue:
                await one(n)

        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return
    gate = asyncio.Semaphore(concurrency)

    async def gated(n: int) -> None:
        async with gate:
            await one(n)

    started = time.perf_counter()
    tasks = []
    for n in range(total):
        if (wait := started + n / rate - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(gated(n)))
    await asyncio.gather(*tasks)


async def _post_events(
    url: str, total: int, concurrency: int, topics: list[str], rate: float | None
) -> Published:
    """POST ``total`` events to hookline (see ``drive``); each event to one of ``topics`` in
    turn, stamped with its publish time."""
    acks: list[float] = []
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(n: int) -> None:
            body = event_body(topics[n % len(topics)], n, stamped=True)
            started = time.perf_counter()
            async with session.post(f"{url}/api/v1/events", data=body, headers=headers) as r:
                await r.read()
                if r.status != 202:
                    raise RuntimeError(f"publish answered {r.status}: {await r.text()}")
            acks.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await drive(total, concurrency, rate, one)
        return Published(total, time.perf_counter() - started, acks)


def publish(
    url: str, total: int, topics: list[str], concurrency: int = 64, rate: float | None = None
) -> Published:
    import uvloop

    return uvloop.run(_post_events(url, total, concurrency, topics, rate))


def latency_summary(stats: dict[str, Any]) -> dict[str, float | None]:
    latencies = stats["latencies_ms"]
    return {
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else None,
    }


def drain_rate(stats: dict[str, Any], count: int) -> float:
    """Deliveries per second from the first to the last one received."""
    return count / max(stats["last"] - stats["first"], 1e-6)
