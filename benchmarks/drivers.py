"""asyncpg against psycopg 3 on hookline's two hottest statements, on a local PostgreSQL.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python -m benchmarks.drivers

Publish: one transaction inserting an event and three deliveries (what POST /events does).
Claim: UPDATE ... FOR UPDATE SKIP LOCKED ... RETURNING a batch of 200 (what a dispatcher does).
Prints the numbers; asserts nothing.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time

import asyncpg
import psycopg

ADMIN = os.environ.get("HOOKLINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
SCHEMA = """
CREATE TABLE events (id text PRIMARY KEY, payload bytea NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE deliveries (id text PRIMARY KEY, event_id text NOT NULL, status text NOT NULL,
    next_attempt_at timestamptz, lease_token text);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('pending', 'delivering');
"""
INSERT_EVENT = "INSERT INTO events (id, payload, created_at) VALUES ($1, $2, now())"
INSERT_DELIVERIES = (
    "INSERT INTO deliveries (id, event_id, status, next_attempt_at) "
    "SELECT d, $2, 'pending', now() FROM unnest($1::text[]) AS d"
)
CLAIM = (
    "WITH due AS (SELECT id FROM deliveries WHERE status IN ('pending', 'delivering') "
    "AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) "
    "UPDATE deliveries d SET status = 'delivering', next_attempt_at = now() + interval '1 min', "
    "lease_token = $2 FROM due WHERE d.id = due.id RETURNING d.id, d.event_id"
)
EVENTS = 3_000
PAYLOAD = b"x" * 1000


def ids(n: int) -> list[str]:
    return [secrets.token_hex(8) for _ in range(n)]


async def with_asyncpg(url: str) -> tuple[float, float]:
    conn = await asyncpg.connect(url)
    started = time.perf_counter()
    for _ in range(EVENTS):
        event = secrets.token_hex(8)
        async with conn.transaction():
            await conn.execute(INSERT_EVENT, event, PAYLOAD)
            await conn.execute(INSERT_DELIVERIES, ids(3), event)
    publish = EVENTS / (time.perf_counter() - started)
    started, claimed = time.perf_counter(), 0
    while rows := await conn.fetch(CLAIM, 200, "lease"):
        claimed += len(rows)
    claim = claimed / (time.perf_counter() - started)
    await conn.close()
    return publish, claim


async def with_psycopg(url: str) -> tuple[float, float]:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    to_psycopg = lambda sql: sql.replace("$1", "%s").replace("$2", "%s")  # noqa: E731
    started = time.perf_counter()
    for _ in range(EVENTS):
        event = secrets.token_hex(8)
        async with conn.transaction():
            await conn.execute(to_psycopg(INSERT_EVENT), (event, PAYLOAD))
            # %s placeholders bind in textual order, where $2 comes before $1
            await conn.execute(to_psycopg(INSERT_DELIVERIES), (event, ids(3)))
    publish = EVENTS / (time.perf_counter() - started)
    started, claimed = time.perf_counter(), 0
    while True:
        cursor = await conn.execute(to_psycopg(CLAIM), (200, "lease"))
        rows = await cursor.fetchall()
        if not rows:
            break
        claimed += len(rows)
    claim = claimed / (time.perf_counter() - started)
    await conn.close()
    return publish, claim


async def main() -> None:
    base = ADMIN.rpartition("/")[0]
    admin = await asyncpg.connect(ADMIN)
    print(f"{'driver':<12}{'publish tx/s':>14}{'claimed rows/s':>16}")
    try:
        for name, run in (("asyncpg", with_asyncpg), ("psycopg 3", with_psycopg)):
            database = f"hookline_bench_{secrets.token_hex(4)}"
            await admin.execute(f"CREATE DATABASE {database}")
            try:
                setup = await asyncpg.connect(f"{base}/{database}")
                await setup.execute(SCHEMA)
                await setup.close()
                publish, claim = await run(f"{base}/{database}")
                print(f"{name:<12}{publish:>14,.0f}{claim:>16,.0f}")
            finally:
                await admin.execute(f"DROP DATABASE {database} WITH (FORCE)")
    finally:
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
