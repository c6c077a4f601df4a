"""The runs: each system on each scenario, against one receiver. Every function returns plain
numbers; ``benchmarks.__main__`` prints them and judges them against the targets."""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from . import ceiling, naive
from .harness import (
    TOPICS,
    Hookline,
    Published,
    Receiver,
    drain_rate,
    event_body,
    hookline_env,
    latency_summary,
    percentile,
    publish,
    running,
)

ADMIN_POSTGRES = os.environ.get(
    "HOOKLINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
#: ten topics: the hanging scenario's ten webhooks each get their own
TEN_TOPICS = [*TOPICS, "employee_position_create", "employee_position_update"]


@dataclass(frozen=True)
class Sizes:
    drain: int = 50_000
    naive: int = 10_000  #: Celery drains slowly: a smaller backlog gives the same rate
    steady_rate: float = 500
    ack_rate: float = 1_000
    seconds: float = 10
    fanout: int = 1_000
    fanout_rounds: int = 5
    hanging: int = 30_000
    hanging_rounds: int = 3
    pending: int = 1_000_000
    pending_seconds: float = 20

    def quick(self) -> Sizes:
        return replace(
            self, drain=3_000, naive=1_000, seconds=2, fanout=100, fanout_rounds=2,
            hanging=3_000, hanging_rounds=1, pending=20_000, pending_seconds=3,
        )  # fmt: skip


def _acks(published: Published) -> dict[str, Any]:
    return {
        "events_per_s": published.per_second,
        "ack_p50_ms": percentile(published.ack_ms, 50),
        "ack_p99_ms": percentile(published.ack_ms, 99),
    }


def _hooks(receiver: Receiver, topics: list[str], hanging: int = 0) -> list[str]:
    return [f"{receiver.url}/{'hang' if n < hanging else 'hook'}/{n}" for n in range(len(topics))]


def _steady(receiver: Receiver, url: str, sizes: Sizes) -> dict[str, Any]:
    """Publish-to-receive at a steady rate, through hookline's API."""
    receiver.reset()
    total = int(sizes.steady_rate * sizes.seconds)
    published = publish(url, total, TOPICS, rate=sizes.steady_rate)
    return latency_summary(receiver.wait_for(total, 60)) | _acks(published)


# -- the ceiling and the naive baseline --------------------------------------------------------


def run_ceiling(receiver: Receiver, sizes: Sizes) -> dict[str, Any]:
    receiver.reset()
    ceiling.send(receiver.url, sizes.drain)
    drain = drain_rate(receiver.wait_for(sizes.drain, 60), sizes.drain)
    receiver.reset()
    total = int(sizes.steady_rate * sizes.seconds)
    ceiling.send(receiver.url, total, rate=sizes.steady_rate)
    return {"drain_per_s": drain} | latency_summary(receiver.wait_for(total, 60))


def run_naive(receiver: Receiver, sizes: Sizes) -> dict[str, Any]:
    naive.purge()
    receiver.reset()
    for n in range(sizes.naive):
        topic = TOPICS[n % len(TOPICS)]
        naive.enqueue(f"{receiver.url}/hook/{n % 8}", event_body(topic, n), f"msg_{n}")
    worker = naive.start_worker()
    try:
        drain = drain_rate(receiver.wait_for(sizes.naive, 600), sizes.naive)
        receiver.reset()
        total = int(sizes.steady_rate * sizes.seconds)
        started = time.perf_counter()
        for n in range(total):
            if (wait := started + n / sizes.steady_rate - time.perf_counter()) > 0:
                time.sleep(wait)
            body = event_body(TOPICS[n % len(TOPICS)], n, stamped=True)
            naive.enqueue(f"{receiver.url}/hook/{n % 8}", body, f"steady_{n}")
        steady = latency_summary(receiver.wait_for(total, 120))
        rss = {"celery worker + 8 pool processes": naive.worker_rss_mib(worker)}
    finally:
        worker.terminate()
        worker.wait(30)
    return {"drain_per_s": drain, "rss_mib": rss} | steady


# -- hookline on SQLite ------------------------------------------------------------------------


def run_sqlite(receiver: Receiver, sizes: Sizes) -> dict[str, Any]:
    """Ingest a backlog through the API (API process alone), drain it with ``hookline serve``,
    then measure publish-to-receive at a steady rate and the publish ack at a higher one."""
    with tempfile.TemporaryDirectory() as folder:
        env = hookline_env(f"sqlite:///{folder}/hookline.db")
        api = Hookline(env, ["api"])
        with running(api):
            api.add_webhooks(_hooks(receiver, TOPICS), [[t] for t in TOPICS])
            receiver.reset()
            ingest = _acks(publish(api.url, sizes.drain, TOPICS))
        ingest["rss_mib"] = api.peak_rss
        serve = Hookline(env, ["serve"])
        with running(serve):
            drain = drain_rate(receiver.wait_for(sizes.drain, 600), sizes.drain)
            steady = _steady(receiver, serve.url, sizes)
            receiver.reset()
            total = int(sizes.ack_rate * sizes.seconds)
            at_ack_rate = _acks(publish(serve.url, total, TOPICS, rate=sizes.ack_rate))
            at_ack_rate |= latency_summary(receiver.wait_for(total, 120))
    return {
        "drain_per_s": drain,
        "rss_mib": serve.peak_rss,
        **steady,
        "ingest": ingest,
        "at_ack_rate": at_ack_rate,
    }


def run_fanout(receiver: Receiver, sizes: Sizes, database_url: str, roles: list[str]) -> Any:
    """One event to ``sizes.fanout`` webhooks: how long until the last one has it."""
    hookline = Hookline(hookline_env(database_url), roles)
    rounds = []
    with running(hookline):
        urls = [f"{receiver.url}/hook/{n}" for n in range(sizes.fanout)]
        hookline.add_webhooks(urls, [["employee_create"]] * sizes.fanout)
        for _ in range(sizes.fanout_rounds):
            receiver.reset()
            publish(hookline.url, 1, ["employee_create"])
            stats = receiver.wait_for(sizes.fanout, 60)
            rounds.append(max(stats["latencies_ms"]))
            time.sleep(0.2)
    return {"all_received_ms": rounds, "rss_mib": hookline.peak_rss}


def run_hanging(receiver: Receiver, sizes: Sizes) -> dict[str, Any]:
    """Healthy throughput with one webhook in ten hanging until the deadline, against the same
    backlog with all ten healthy: ``sizes.hanging_rounds`` pairs of runs, each pair back to
    back, and the median of the pairs' ratios (single runs on this machine drift by a third
    within minutes; a pair shares the drift)."""
    pairs = [
        (_healthy_rate(receiver, sizes, 0), _healthy_rate(receiver, sizes, 1))
        for _ in range(sizes.hanging_rounds)
    ]
    return {
        "healthy_per_s": statistics.median(none for none, _ in pairs),
        "with_one_in_ten_hanging_per_s": statistics.median(one for _, one in pairs),
        "kept": statistics.median(one / none for none, one in pairs),
        "pairs": pairs,
    }


def _healthy_rate(receiver: Receiver, sizes: Sizes, hanging: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        env = hookline_env(f"sqlite:///{folder}/hookline.db")
        api = Hookline(env, ["api"])
        with running(api):
            api.add_webhooks(_hooks(receiver, TEN_TOPICS, hanging), [[t] for t in TEN_TOPICS])
            publish(api.url, sizes.hanging, TEN_TOPICS)
        healthy = sizes.hanging - hanging * sizes.hanging // len(TEN_TOPICS)
        receiver.reset()
        with running(Hookline(env, ["serve"])):
            return drain_rate(receiver.wait_for(healthy, 600), healthy)


# -- hookline on PostgreSQL --------------------------------------------------------------------


def _admin(sql: str, url: str = ADMIN_POSTGRES) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


class Database:
    """A fresh PostgreSQL database for one run, dropped afterwards."""

    def __enter__(self) -> str:
        self.name = f"hookline_bench_{secrets.token_hex(4)}"
        _admin(f"CREATE DATABASE {self.name}")
        return f"{ADMIN_POSTGRES.rpartition('/')[0]}/{self.name}"

    def __exit__(self, *exc: object) -> None:
        _admin(f"DROP DATABASE {self.name} WITH (FORCE)")


def _make_due_again(url: str) -> int:
    _admin("DELETE FROM attempts", url)
    _admin(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = now(), attempts_count = 0, "
        "schedule_step = 0, lease_token = NULL",
        url,
    )
    _admin("VACUUM ANALYZE deliveries", url)
    return int(_admin("SELECT count(*) FROM deliveries", url))


def run_postgres(receiver: Receiver, sizes: Sizes) -> dict[str, Any]:
    """Ingest through one API process, then for 1 and 2 workers: drain the backlog (made due
    again between runs) and measure publish-to-receive at a steady rate."""
    out: dict[str, Any] = {}
    with Database() as url:
        env = hookline_env(url)
        api = Hookline(env, ["api"])
        with running(api):
            api.add_webhooks(_hooks(receiver, TOPICS), [[t] for t in TOPICS])
            receiver.reset()
            out["ingest"] = _acks(publish(api.url, sizes.drain, TOPICS))
        out["ingest"]["rss_mib"] = api.peak_rss
        for workers in (1, 2):
            backlog = _make_due_again(url) if workers > 1 else sizes.drain
            receiver.reset()
            hookline = Hookline(env, ["api"] + ["worker"] * workers)
            with running(hookline):
                drain = drain_rate(receiver.wait_for(backlog, 600), backlog)
                steady = _steady(receiver, hookline.url, sizes)
            out[f"{workers} worker{'s' if workers > 1 else ''}"] = {
                "drain_per_s": drain,
                "rss_mib": hookline.peak_rss,
                **steady,
            }
    return out


# -- a million pending deliveries --------------------------------------------------------------

_CLONE_COLUMNS = (
    "tenant_id, event_id, webhook_id, topic, status, attempts_count, schedule_step, manual, "
    "next_attempt_at, lease_token, last_status_code, created_at, updated_at, last_duration_ms"
)


def _clone_sqlite(path: str, total: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(
        f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        f"INSERT INTO deliveries (id, {_CLONE_COLUMNS}) SELECT "
        f"substr(d.id, 1, 20) || printf('%010d', n.i), {_CLONE_COLUMNS} "
        f"FROM (SELECT * FROM deliveries LIMIT 1) d, n",
        (total - 1,),
    )
    conn.commit()
    conn.close()


async def _clone_postgres(url: str, total: int) -> None:
    conn = await asyncpg.connect(url)
    await conn.execute(
        f"INSERT INTO deliveries (id, {_CLONE_COLUMNS}) SELECT "
        f"substr(d.id, 1, 20) || lpad(n::text, 10, '0'), {_CLONE_COLUMNS} "
        f"FROM (SELECT * FROM deliveries LIMIT 1) d, generate_series(1, $1) n",
        total - 1,
    )
    await conn.execute("VACUUM ANALYZE deliveries")
    await conn.close()


def _while_pending(receiver: Receiver, hookline: Hookline, sizes: Sizes) -> dict[str, Any]:
    """List deliveries over and over while the dispatcher works on the backlog."""
    latencies = []
    started = time.monotonic()
    while time.monotonic() - started < sizes.pending_seconds:
        began = time.perf_counter()
        hookline.api("GET", "/deliveries")
        latencies.append((time.perf_counter() - began) * 1000)
    return {
        "list_p50_ms": percentile(latencies, 50),
        "list_p99_ms": percentile(latencies, 99),
        "lists": len(latencies),
        "delivered_meanwhile": receiver.count(),
    }


def run_pending(receiver: Receiver, sizes: Sizes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/hookline.db"
        env = hookline_env(f"sqlite:///{path}")
        with running(Hookline(env, ["api"])) as api:
            api.add_webhooks([f"{receiver.url}/hook/0"], [["employee_create"]])
            publish(api.url, 1, ["employee_create"])
        _clone_sqlite(path, sizes.pending)
        receiver.reset()
        serve = Hookline(env, ["serve"])
        with running(serve):
            out["SQLite"] = _while_pending(receiver, serve, sizes)
        out["SQLite"]["rss_mib"] = serve.peak_rss
    with Database() as url:
        env = hookline_env(url)
        with running(Hookline(env, ["api"])) as api:
            api.add_webhooks([f"{receiver.url}/hook/0"], [["employee_create"]])
            publish(api.url, 1, ["employee_create"])
        asyncio.run(_clone_postgres(url, sizes.pending))
        receiver.reset()
        hookline = Hookline(env, ["api", "worker"])
        with running(hookline):
            out["PostgreSQL"] = _while_pending(receiver, hookline, sizes)
        out["PostgreSQL"]["rss_mib"] = hookline.peak_rss
    return out


def redis_up() -> bool:
    return subprocess.run(["redis-cli", "ping"], capture_output=True, check=False).returncode == 0
