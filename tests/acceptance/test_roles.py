"""The roles: `hookline api` and `hookline worker` processes, on SQLite and on PostgreSQL,
with real processes killed and a real database restarted under them."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

import hookline

from ..conftest import API_KEY
from ..pg import Template, database_url, unavailable
from ..receiver import Receiver
from .conftest import HooklineProcess, run_cli

LEASE = 3.0


@pytest.fixture
def pg_db(pg_template: Template) -> Iterator[str]:
    name = pg_template.fresh()
    yield database_url(name)
    pg_template.drop(name)


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def arrivals(receiver: Receiver) -> dict[tuple[str, int], list[tuple[float, str]]]:
    """(path, event number) → [(time, webhook-id)] for every request received."""
    seen: dict[tuple[str, int], list[tuple[float, str]]] = defaultdict(list)
    for request in receiver.received():
        number = orjson.loads(request.body)["data"]["n"]
        seen[(request.path, number)].append((request.at, request.headers["webhook-id"]))
    return seen


async def publish_many(url: str, numbers: range, accepted: list[int], concurrency: int = 16):
    """Publish concurrently; keep the numbers answered 202. Returns the other statuses seen."""
    refused: list[int] = []
    queue = iter(numbers)

    async def publisher(client: httpx.AsyncClient) -> None:
        for n in queue:
            body = orjson.dumps({"action": "employee_create", "data": {"n": n}})
            try:
                response = await client.post("/api/v1/events", content=body)
            except httpx.TransportError as exc:
                print(f"publishing {n} failed: {exc!r}")  # shown if the test fails
                refused.append(0)
                continue
            if response.status_code == 202:
                accepted.append(n)
            else:
                refused.append(response.status_code)

    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        await asyncio.gather(*(publisher(client) for _ in range(concurrency)))
    return refused


def subscribe(url: str, receiver: Receiver, count: int) -> list[str]:
    with hookline.Client(url, API_KEY) as client:
        return [
            client.create_webhook(f"hook {i}", receiver.url(f"/ok/{i}"), ["employee_create"])["id"]
            for i in range(count)
        ]


def test_sqlite_runs_an_api_and_one_worker(db: str, tmp_path: Path, receiver: Receiver):
    api = HooklineProcess(db, tmp_path, "api").start()
    worker = HooklineProcess(db, tmp_path, "worker").start()
    try:
        subscribe(api.url, receiver, 1)
        with hookline.Client(api.url, API_KEY) as client:
            client.publish("employee_create", {"n": 1})
        receiver.wait_for(1, "/ok/0")
        second = run_cli(db, "worker")
        assert second.returncode == 1
        assert "another hookline process is already delivering" in second.stderr
        assert worker.alive()
    finally:
        assert worker.stop() == 0
        api.stop()


def test_the_api_alone_does_not_deliver(db: str, tmp_path: Path, receiver: Receiver):
    api = HooklineProcess(db, tmp_path, "api").start()
    try:
        subscribe(api.url, receiver, 1)
        with hookline.Client(api.url, API_KEY) as client:
            client.publish("employee_create", {"n": 1})
        time.sleep(1)
        assert receiver.received() == []
    finally:
        api.stop()


def test_postgres_workers_share_the_load_and_survive_a_kill(
    pg_db: str, tmp_path: Path, receiver: Receiver
):
    """3 workers and 1 api, 10,000 events to 3 webhooks; one worker is killed with -9."""
    env = {"HOOKLINE_LEASE": f"{LEASE}s"}
    api = HooklineProcess(pg_db, tmp_path, "api", **env).start()
    workers = [HooklineProcess(pg_db, tmp_path, "worker", **env).start() for _ in range(3)]
    try:
        subscribe(api.url, receiver, 3)
        accepted: list[int] = []
        refused = asyncio.run(publish_many(api.url, range(10_000), accepted))
        assert refused == [] and len(accepted) == 10_000
        wait_until(lambda: len(receiver.received()) >= 5_000, 60, "half the deliveries")
        workers[0].kill()
        expected = {(f"/ok/{i}", n) for i in range(3) for n in accepted}
        wait_until(lambda: set(arrivals(receiver)) >= expected, 120, "every delivery")
        seen = arrivals(receiver)
        for key, receipts in seen.items():
            assert len({webhook_id for _, webhook_id in receipts}) == 1, key
            times = sorted(at for at, _ in receipts)
            # a second send only after the first sender's lease ran out
            gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
            assert all(gap >= LEASE - 0.5 for gap in gaps), (key, gaps)
        assert all(worker.alive() for worker in workers[1:])
    finally:
        for process in [api, *workers]:
            if process.alive():
                process.stop()


def _restart_postgres() -> None:
    tool = shutil.which("pg_ctlcluster")
    versions = sorted(Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").exists() else []
    if tool is None or not versions:
        unavailable("this test restarts the server with pg_ctlcluster, which is not here")
    subprocess.run(
        [tool, "--skip-systemctl-redirect", versions[-1].name, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_postgres_restart_loses_nothing_that_was_accepted(
    pg_db: str, tmp_path: Path, receiver: Receiver
):
    api = HooklineProcess(pg_db, tmp_path, "api").start()
    workers = [HooklineProcess(pg_db, tmp_path, "worker").start() for _ in range(2)]
    try:
        subscribe(api.url, receiver, 1)
        accepted: list[int] = []

        async def publish_through_a_restart() -> list[int]:
            publishing = asyncio.create_task(publish_many(api.url, range(3_000), accepted, 4))
            while len(accepted) < 500:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(_restart_postgres)
            return await publishing

        refused = asyncio.run(publish_through_a_restart())
        assert refused, "the restart should have refused some publishes"
        if not set(refused) <= {503}:
            Path("/tmp/api-restart.log").write_text(api.log.read_text())
        assert set(refused) <= {503}, set(refused)
        assert len(accepted) + len(refused) == 3_000
        expected = {("/ok/0", n) for n in accepted}
        wait_until(lambda: set(arrivals(receiver)) >= expected, 120, "every accepted event")
        assert all(process.alive() for process in [api, *workers])
        # and they carry on: a publish after the restart is delivered too
        with hookline.Client(api.url, API_KEY) as client:
            client.publish("employee_create", {"n": -1})
        wait_until(lambda: ("/ok/0", -1) in arrivals(receiver), 30, "a publish after it")
    finally:
        for process in [api, *workers]:
            if process.alive():
                process.stop()


def test_postgres_wakes_workers_without_polling(pg_db: str, tmp_path: Path, receiver: Receiver):
    """With a one-minute poll interval, only NOTIFY (and the due-time plan) can be this fast."""
    env = {"HOOKLINE_POLL_INTERVAL": "60s"}
    api = HooklineProcess(pg_db, tmp_path, "api", **env).start()
    worker = HooklineProcess(pg_db, tmp_path, "worker", **env).start()
    try:
        with hookline.Client(api.url, API_KEY) as client:
            client.create_webhook("flaky", receiver.url("/flaky/1"), ["employee_create"])
            time.sleep(0.5)  # the worker has gone idle
            started = time.time()
            client.publish("employee_create", {"n": 1})
            first, second = receiver.wait_for(2, "/flaky/1", timeout=10)
        assert first.at - started < 1.0  # woken by NOTIFY from another process
        assert second.at - first.at < 1.5  # the retry (200 ms later) planned, not polled
    finally:
        worker.stop()
        api.stop()


def test_sigterm_under_load_finishes_in_flight_work_and_leaves_nothing_stuck(
    db: str, tmp_path: Path, receiver: Receiver
):
    server = HooklineProcess(db, tmp_path, "serve").start()
    with hookline.Client(server.url, API_KEY) as client:
        client.create_webhook("slow", receiver.url("/slow/0.5"), ["employee_create"],
                              max_in_flight=32)  # fmt: skip
        for n in range(200):
            client.publish("employee_create", {"n": n})
    receiver.wait_for(20, "/slow/0.5", timeout=20)
    started = time.monotonic()
    assert server.stop() == 0
    took = time.monotonic() - started
    assert took < 2 + 5, took  # the attempt deadline (2 s) and the release, not the backlog
    stuck = run_cli(db, "--json", "deliveries", "list", "--status", "delivering", "--limit", "500")
    assert json.loads(stuck.stdout) == []
    pending = run_cli(db, "--json", "deliveries", "list", "--status", "pending", "--limit", "500")
    succeeded = run_cli(
        db, "--json", "deliveries", "list", "--status", "succeeded", "--limit", "500"
    )
    assert len(json.loads(pending.stdout)) + len(json.loads(succeeded.stdout)) == 200
    assert (
        len(json.loads(succeeded.stdout))
        >= len({orjson.loads(r.body)["data"]["n"] for r in receiver.received("/slow/0.5")}) - 32
    )  # what the receiver answered was recorded (a few may have been cut by the stop)
