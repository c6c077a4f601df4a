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
import enum
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from .__about__ import __version__
from .config import Settings
from .egress import Egress, HttpResult
from .errors import StoreUnavailable
from .ids import new_id
from .metrics import Metrics
from .models import Attempt, DeliveryStatus, Job, Lane, Outcome, WebhookAlert
from .retry import RetryPolicy, parse_retry_after
from .signing import signature_headers
from .store import Store
from .store.base import RecordRules

log = logging.getLogger("hookline.dispatcher")

USER_AGENT = f"hookline/{__version__}"
_IDLE_FLOOR = 0.005
#: with requests in flight, how long to wait for one to finish before claiming again anyway
_BUSY_WAIT = 0.05
#: after finding no retry due, how long before looking again (a wake-up does not shorten it)
_RETRY_LOOK_INTERVAL = 0.05


class _Claimed(enum.Enum):
    FULL = "full"  #: a lane got all it asked for: more may be due, claim again at once
    SOME = "some"  #: some came: claim again when a request finishes
    NONE = "none"  #: nothing was due: sleep until something is


def request_headers(job: Job, now: datetime, signature_header: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    headers.update(
        signature_headers(
            job.secret,
            job.delivery_id,
            int(now.timestamp()),
            job.payload,
            signature_header,
            job.previous_secret,
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
    if result.status == 410:
        # gone for good: no retries, and the webhook is disabled
        return Outcome(
            job=job,
            attempt=attempt,
            status=DeliveryStatus.FAILED,
            next_attempt_at=None,
            schedule_step=step,
            disable_reason="the receiver answered 410 Gone",
        )
    retry_after = parse_retry_after(_header(result.headers, "retry-after"), finished)
    next_at = policy.next_attempt(step, finished, retry_after)
    pause = None
    if result.status in (429, 503) and retry_after is not None:
        # the receiver asked for a break: the whole webhook waits, not only this delivery
        pause = finished + timedelta(seconds=min(retry_after, policy.retry_after_max))
    return Outcome(
        job=job,
        attempt=attempt,
        status=DeliveryStatus.PENDING if next_at else DeliveryStatus.FAILED,
        next_attempt_at=next_at,
        schedule_step=step,
        pause_webhook_until=pause,
    )


class _RateLimit:
    """Spaces one webhook's requests ``1/rate`` seconds apart (in this process)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + 1 / self.rate
        if slot > now:
            await asyncio.sleep(slot - now)


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


#: what the dispatcher reports after recording a batch: webhook alerts, deliveries that failed
#: for good
AlertSink = Callable[[list[WebhookAlert], list[Outcome]], Awaitable[None]]


class Dispatcher:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        egress: Egress,
        *,
        clock: Callable[[], datetime],
        on_alerts: AlertSink | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.egress = egress
        self.clock = clock
        self.policy = settings.retry_policy
        self._on_alerts = on_alerts
        self.metrics = metrics or Metrics()
        self._rules = RecordRules(
            disable_after=timedelta(seconds=settings.disable_after),
            failing_threshold=settings.failing_alert_after,
        )
        self._wake = asyncio.Event()
        self._slots = {Lane.FIRST: settings.concurrency, Lane.RETRY: settings.retry_concurrency}
        self._in_flight: dict[Lane, dict[asyncio.Task[None], Job]] = {lane: {} for lane in Lane}
        self._rate_limits: dict[str, _RateLimit] = {}
        self._retries_quiet_until = 0.0
        self._finished: list[Outcome] = []
        self._finished_event = asyncio.Event()
        self._closing = False

    @property
    def in_flight(self) -> int:
        return sum(len(tasks) for tasks in self._in_flight.values())

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
                    claimed = await self._claim_and_send()
                    if claimed is _Claimed.SOME:
                        # requests are in flight: the next to finish wakes us, no planning
                        await self._wait_for_wake(stop, _BUSY_WAIT, clear=False)
                    elif claimed is _Claimed.NONE:
                        await self._idle(stop)
                    backoff.reset()
                except StoreUnavailable as exc:
                    delay = backoff.next()
                    log.warning("cannot claim deliveries (%s); again in %.1fs", exc.detail, delay)
                    await _sleep_unless(stop, delay)
                except Exception:
                    # a bug must not stop delivery for good: say it loudly and carry on
                    log.exception("the dispatcher loop failed; carrying on")
                    await _sleep_unless(stop, backoff.next())
        finally:
            await self._shutdown(writer)

    async def _claim_and_send(self) -> _Claimed:
        """Claim for each lane as many due deliveries as it has free slots."""
        more = False
        got = False
        full = 0
        for lane, slots in self._slots.items():
            free = slots - len(self._in_flight[lane])
            if free <= 0:
                full += 1
                continue
            if lane is Lane.RETRY and time.monotonic() < self._retries_quiet_until:
                continue
            want = min(free, self.settings.claim_batch)
            now = self.clock()
            jobs = await self.store.claim(
                now,
                want,
                now + timedelta(seconds=self.settings.lease_seconds),
                new_id("lease"),
                lane,
                self.settings.ordered_failed_blocks,
            )
            for job in jobs:
                task = asyncio.create_task(self._send(job))
                self._in_flight[lane][task] = job
                task.add_done_callback(functools.partial(self._done, lane))
            more = more or len(jobs) == want
            got = got or bool(jobs)
            if lane is Lane.RETRY and not jobs:
                # retries are planned, not urgent: look again in a moment, not on every wake-up
                self._retries_quiet_until = time.monotonic() + _RETRY_LOOK_INTERVAL
        if full == len(self._slots):
            self._wake.clear()
            await self._wake.wait()  # a finishing request wakes us
            return _Claimed.FULL
        if more:
            return _Claimed.FULL
        return _Claimed.SOME if got else _Claimed.NONE

    def _done(self, lane: Lane, task: asyncio.Task[None]) -> None:
        self._in_flight[lane].pop(task, None)
        self._wake.set()

    async def _idle(self, stop: asyncio.Event) -> None:
        """Nothing was due: sleep until the earliest planned attempt, a wake-up, or the poll."""
        self._wake.clear()
        timeout = self.settings.poll_interval
        next_due = await self.store.next_due_at()
        if next_due is not None:
            timeout = min(timeout, (next_due - self.clock()).total_seconds())
        await self._wait_for_wake(stop, max(timeout, _IDLE_FLOOR), clear=False)  # cleared above

    async def _wait_for_wake(self, stop: asyncio.Event, timeout: float, clear: bool) -> None:
        if clear:
            self._wake.clear()
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _send(self, job: Job) -> None:
        if job.rate_limit:
            limit = self._rate_limits.get(job.webhook_id)
            if limit is None or limit.rate != job.rate_limit:
                limit = self._rate_limits[job.webhook_id] = _RateLimit(job.rate_limit)
            await limit.wait()
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
                alerts = await self.store.record(batch, self.clock(), self._rules)
            except Exception as exc:
                if not isinstance(exc, StoreUnavailable):
                    log.exception("recording %d attempts failed", len(batch))
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since > self.settings.lease_seconds / 2:
                    log.error("dropped %d attempt records: %s", len(batch), exc)
                    failing_since = None
                    continue
                self._finished[:0] = batch
                await asyncio.sleep(backoff.next())
                continue
            failing_since = None
            backoff.reset()
            self.metrics.recorded(batch)
            self._wake.set()  # a retry may now be the earliest due: re-plan the sleep
            await self._report(alerts, batch)

    async def _report(self, alerts: list[WebhookAlert], batch: list[Outcome]) -> None:
        failed = [o for o in batch if o.status is DeliveryStatus.FAILED]
        for webhook_alert in alerts:
            log.warning(
                "webhook %s %s: %s",
                webhook_alert.webhook_id,
                webhook_alert.kind,
                webhook_alert.reason,
            )
        if self._on_alerts is not None and (alerts or failed):
            try:
                await self._on_alerts(alerts, failed)
            except Exception:
                log.exception("could not publish operational events")

    async def _shutdown(self, writer: asyncio.Task[None]) -> None:
        tasks = {task: job for lane in self._in_flight.values() for task, job in lane.items()}
        if tasks:
            await asyncio.wait(list(tasks), timeout=self.settings.attempt_timeout + 1)
        unfinished = [job for task, job in tasks.items() if not task.done()]
        for task in tasks:
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
