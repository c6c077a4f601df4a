"""The naive baseline: what a team writes instead of hookline. Celery on Redis, one task per
delivery, ``requests`` to post, the same two signatures, retries with exponential backoff.

The worker is Celery's default prefork pool with 8 processes (an I/O-bound setting; the default
would be one per core, 2 here). Run by ``python -m benchmarks``; the worker alone:

    celery -A benchmarks.naive worker -c 8 -Q hookline-bench
"""

from __future__ import annotations

import os
import subprocess
import time

import requests
from celery import Celery

from hookline.signing import signature_headers

from .harness import PYTHON, SECRET

BROKER = os.environ.get("HOOKLINE_BENCH_REDIS", "redis://127.0.0.1:6379/15")
QUEUE = "hookline-bench"
WORKERS = 8

app = Celery("naive", broker=BROKER)
app.conf.update(
    task_default_queue=QUEUE,
    task_acks_late=True,  # a delivery survives a worker crash, as hookline's do
    worker_prefetch_multiplier=4,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)
session = requests.Session()


@app.task(
    bind=True,
    autoretry_for=(requests.RequestException,),
    retry_backoff=True,
    max_retries=8,
)
def deliver(self: object, url: str, body: str, delivery_id: str) -> None:
    data = body.encode("utf-8")
    headers = {"Content-Type": "application/json"}
    headers.update(
        signature_headers(SECRET, delivery_id, int(time.time()), data, "X-PeopleForce-Signature")
    )
    response = session.post(url, data=data, headers=headers, timeout=15)
    response.raise_for_status()


def purge() -> None:
    app.control.purge()


def enqueue(url: str, body: bytes, delivery_id: str) -> None:
    deliver.apply_async((url, body.decode("utf-8"), delivery_id))


def start_worker() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PYTHON, "-m", "celery", "-A", "benchmarks.naive", "worker", "-c", str(WORKERS),
         "-Q", QUEUE, "--without-heartbeat", "--without-mingle", "--without-gossip",
         "-l", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def worker_rss_mib(worker: subprocess.Popen[bytes]) -> float:
    """Peak RSS of the worker and its pool processes together."""
    from .harness import peak_rss_mib

    children = subprocess.run(
        ["pgrep", "-P", str(worker.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    return peak_rss_mib(worker.pid) + sum(peak_rss_mib(int(pid)) for pid in children)
