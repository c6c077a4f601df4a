"""The dispatcher: claims due deliveries, signs and sends them, records what happened.

The queue is the deliveries table. A claim leases a batch of due rows; each is sent through
the egress guard while at most ``concurrency`` requests are in flight; finished attempts are
written back in batches, moving each delivery to succeeded, to its next retry, or to failed.
A dispatcher that dies holds its leases until they expire; the deliveries are then claimed
again and sent with the same ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from .__about__ import __version__
from .config import Settings
from .egress import Egress, HttpResult
from .errors import StoreUnavailable
from .ids import new_id
from .models import Attempt, DeliveryStatus, Job, Outcome
from .retry import RetryPolicy, parse_retry_after
from .signing import signature_headers
from .store import Store

log = logging.getLogger("hookline.dispatcher")

USER_AGENT = f"hookline/{__version__}"
_IDLE_FLOOR = 0.005


def request_headers(job: Job, now: datetime, signature_header: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    headers.update(
        signature_headers(
            job.secret, job.delivery_id, int(now.timestamp()), job.payload, signature_header
        )
    )
    return headers


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


def outcome_of(
    job: Job, result: HttpResult, started_at: datetime, policy: RetryPolicy, url: str
) -> Outcome:
    """The attempt to record for ``result`` and the state the delivery moves to."""
    attempt = Attempt(
        id=new_id("att"),
        delivery_id=job.delivery_id,
        number=job.attempt_number,
        manual=job.manual,
        started_at=started_at,
        duration_ms=result.duration_ms,
        request_url=url,
        request_headers=result.request_headers,
        request_body=job.payload,
        response_status=result.status,
        response_headers=result.headers,
        response_body=result.body,
        error_kind=result.error_kind,
        error_message=result.error_message,
    )
    # a redelivery is an extra attempt: it leaves the retry schedule where it was
    step = job.schedule_step if job.manual else job.schedule_step + 1
    if result.ok:
        return Outcome(
            job=job,
            attempt=attempt,
            status=DeliveryStatus.SUCCEEDED,
            next_attempt_at=None,
            schedule_step=step,
        )
    finished = started_at + timedelta(milliseconds=result.duration_ms)
    retry_after = parse_retry_after(_header(result.headers, "retry-after"), finished)
    next_at = policy.next_attempt(step, finished, retry_after)
    return Outcome(
        job=job,
        attempt=attempt,
        status=DeliveryStatus.PENDING if next_at else DeliveryStatus.FAILED,
        next_attempt_at=next_at,
        schedule_step=step,
    )


class _Backoff:
    """0.1 s, doubling, at most 5 s."""

    def __init__(self) -> None:
        self._delay = 0.1

    def next(self) -> float:
        delay = self._delay
        self._delay = min(self._delay * 2, 5.0)
        return delay

    def reset(self) -> None:
        self._delay = 0.1


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        egress: Egress,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.settings = settings
        self.egress = egress
        self.clock = clock
        self.policy = settings.retry_policy
        self._wake = asyncio.Event()
        self._in_flight: dict[asyncio.Task[None], Job] = {}
        self._finished: list[Outcome] = []
        self._finished_event = asyncio.Event()
        self._closing = False

    def wake(self) -> None:
        """Look for due deliveries now (something was published or became due)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; then finish what is in flight and release the rest.

        While the store is unreachable the dispatcher waits and tries again; it never gives up.
        """
        writer = asyncio.create_task(self._write_outcomes(), name="hookline-recorder")
        backoff = _Backoff()
        try:
            while not stop.is_set():
                try:
                    if not await self._claim_and_send():
                        await self._idle(stop)
                    backoff.reset()
                except StoreUnavailable as exc:
                    delay = backoff.next()
                    log.warning("cannot claim deliveries (%s); again in %.1fs", exc.detail, delay)
                    await _sleep_unless(stop, delay)
        finally:
            await self._shutdown(writer)

    async def _claim_and_send(self) -> bool:
        """Claim as many due deliveries as there are free slots; True if a full batch came."""
        free = self.settings.concurrency - len(self._in_flight)
        if free <= 0:
            self._wake.clear()
            await self._wake.wait()  # a finishing request wakes us
            return True
        want = min(free, self.settings.claim_batch)
        now = self.clock()
        jobs = await self.store.claim(
            now, want, now + timedelta(seconds=self.settings.lease_seconds), new_id("lease")
        )
        for job in jobs:
            task = asyncio.create_task(self._send(job))
            self._in_flight[task] = job
            task.add_done_callback(self._done)
        return len(jobs) == want

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self._wake.set()

    async def _idle(self, stop: asyncio.Event) -> None:
        self._wake.clear()
        timeout = self.settings.poll_interval
        next_due = await self.store.next_due_at()
        if next_due is not None:
            timeout = min(timeout, (next_due - self.clock()).total_seconds())
        timeout = max(timeout, _IDLE_FLOOR)
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _send(self, job: Job) -> None:
        started_at = self.clock()
        headers = request_headers(job, started_at, self.settings.signature_header)
        result = await self.egress.post(job.url, headers, job.payload)
        self._finished.append(outcome_of(job, result, started_at, self.policy, job.url))
        self._finished_event.set()

    async def _write_outcomes(self) -> None:
        """Write finished attempts in batches: one transaction for all that finished meanwhile.

        A batch the store refuses is tried again for half a lease; after that it is dropped
        and its deliveries, still leased, are sent again once the lease runs out.
        """
        backoff = _Backoff()
        failing_since: float | None = None
        while True:
            if not self._finished:
                if self._closing:
                    return
                await self._finished_event.wait()
                self._finished_event.clear()
                continue
            batch, self._finished = self._finished, []
            try:
                await self.store.record(batch)
            except StoreUnavailable as exc:
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since > self.settings.lease_seconds / 2:
                    log.error("dropped %d attempt records: %s", len(batch), exc.detail)
                    failing_since = None
                    continue
                self._finished[:0] = batch
                await asyncio.sleep(backoff.next())
                continue
            failing_since = None
            backoff.reset()
            self._wake.set()  # a retry may now be the earliest due: re-plan the sleep

    async def _shutdown(self, writer: asyncio.Task[None]) -> None:
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=self.settings.attempt_timeout + 1)
        unfinished = list(self._in_flight.values())
        for task in list(self._in_flight):
            task.cancel()
        self._closing = True
        self._finished_event.set()
        try:
            await asyncio.wait_for(writer, self.settings.lease_seconds / 2 + 1)
            if unfinished:
                await self.store.release(unfinished, self.clock())
        except (TimeoutError, StoreUnavailable) as exc:
            # still leased: sent again by whoever claims them after the lease
            log.warning("stopped without recording everything: %s", exc)
