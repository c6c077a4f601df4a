"""The dispatcher: claims due deliveries, signs and sends them, records what happened.

The queue is the deliveries table. The dispatcher works in rounds: one store round records
every attempt that finished since the last round (moving each delivery to succeeded, to its
next retry, or to failed) and leases as many due deliveries as there are free slots. Each is
sent through the egress guard while at most ``concurrency`` requests are in flight. Rounds
clock themselves: while one runs, more attempts finish, so the busier the dispatcher, the
bigger each round and the smaller its fixed cost per delivery.
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
#: with requests in flight, how long to wait for one to finish before a round anyway
_BUSY_WAIT = 0.05
#: after finding no retry due, how long before looking again (a wake-up does not shorten it)
_RETRY_LOOK_INTERVAL = 0.05


class _Claimed(enum.Enum):
    FULL = "full"  #: a lane got all it asked for: more may be due, claim again at once
    SOME = "some"  #: some came: the next round when a request finishes
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
        self._unrecorded_since: float | None = None

    @property
    def in_flight(self) -> int:
        return sum(len(tasks) for tasks in self._in_flight.values())

    def wake(self) -> None:
        """Look for due deliveries now (something was published or became due)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; then finish what is in flight, record it and release
        the rest. While the store is unreachable the dispatcher waits and tries again; it
        never gives up."""
        backoff = _Backoff()
        try:
            while not stop.is_set():
                # cleared before the round, not after: a publish or a finished request while
                # the round runs must still wake the next one
                self._wake.clear()
                try:
                    claimed = await self._round()
                    backoff.reset()
                except StoreUnavailable as exc:
                    delay = backoff.next()
                    log.warning("the store is unavailable (%s); again in %.1fs", exc.detail, delay)
                    await _sleep_unless(stop, delay)
                    continue
                except Exception:
                    # a bug must not stop delivery for good: say it loudly and carry on
                    log.exception("the dispatcher loop failed; carrying on")
                    await _sleep_unless(stop, backoff.next())
                    continue
                if claimed is not _Claimed.FULL:
                    await self._wait(stop, claimed)
        finally:
            await self._shutdown()

    def _wants(self) -> dict[Lane, int]:
        """How many deliveries each lane may claim now: its free slots, up to a batch."""
        wants = {}
        for lane, slots in self._slots.items():
            free = slots - len(self._in_flight[lane])
            if lane is Lane.RETRY and time.monotonic() < self._retries_quiet_until:
                free = 0
            wants[lane] = max(0, min(free, self.settings.claim_batch))
        return wants

    async def _round(self, claiming: bool = True) -> _Claimed:
        """Record what finished and claim for each lane as many due deliveries as it has free
        slots, in one store round."""
        wants = self._wants() if claiming else {}
        batch, self._finished = self._finished, []
        if not batch and not any(wants.values()):
            return _Claimed.SOME if self.in_flight else _Claimed.NONE
        now = self.clock()
        try:
            alerts, claimed = await self.store.record_and_claim(
                batch,
                now,
                self._rules,
                wants,
                now + timedelta(seconds=self.settings.lease_seconds),
                new_id("lease"),
                self.settings.ordered_failed_blocks,
            )
        except BaseException as exc:
            self._keep_unrecorded(batch, exc)
            raise
        self._unrecorded_since = None
        for lane, jobs in claimed.items():
            for job in jobs:
                task = asyncio.create_task(self._send(job))
                self._in_flight[lane][task] = job
                task.add_done_callback(functools.partial(self._done, lane))
            if lane is Lane.RETRY and not jobs:
                # retries are planned, not urgent: look again in a moment, not on every wake-up
                self._retries_quiet_until = time.monotonic() + _RETRY_LOOK_INTERVAL
        if batch:
            self.metrics.recorded(batch)
            await self._report(alerts, batch)
        if any(want and len(claimed.get(lane, ())) == want for lane, want in wants.items()):
            return _Claimed.FULL
        got = any(claimed.values())
        return _Claimed.SOME if got or self.in_flight else _Claimed.NONE

    def _keep_unrecorded(self, batch: list[Outcome], exc: BaseException) -> None:
        """A round failed: keep its attempts for the next one, for half a lease at most; then
        drop them (their deliveries, still leased, are sent again once the lease runs out)."""
        if not batch:
            return
        now = time.monotonic()
        self._unrecorded_since = self._unrecorded_since or now
        if now - self._unrecorded_since > self.settings.lease_seconds / 2:
            log.error("dropped %d attempt records: %s", len(batch), exc)
            self._unrecorded_since = None
            return
        if not isinstance(exc, (StoreUnavailable, asyncio.CancelledError)):
            log.error("recording %d attempts failed: %s", len(batch), exc)
        self._finished[:0] = batch

    def _done(self, lane: Lane, task: asyncio.Task[None]) -> None:
        self._in_flight[lane].pop(task, None)
        self._wake.set()

    async def _wait(self, stop: asyncio.Event, claimed: _Claimed) -> None:
        """Until the next round is worth a trip to the store: an attempt finished, something
        was published, or (when nothing was due) the earliest planned attempt is due."""
        if self._finished or self._wake.is_set():
            return
        timeout = _BUSY_WAIT
        if claimed is _Claimed.NONE:
            timeout = self.settings.poll_interval
            next_due = await self.store.next_due_at()
            if next_due is not None:
                timeout = min(timeout, (next_due - self.clock()).total_seconds())
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(
                waiters, timeout=max(timeout, _IDLE_FLOOR), return_when=asyncio.FIRST_COMPLETED
            )
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

    async def _shutdown(self) -> None:
        tasks = {task: job for lane in self._in_flight.values() for task, job in lane.items()}
        if tasks:
            await asyncio.wait(list(tasks), timeout=self.settings.attempt_timeout + 1)
        unfinished = [job for task, job in tasks.items() if not task.done()]
        for task in tasks:
            task.cancel()
        try:
            async with asyncio.timeout(self.settings.lease_seconds / 2 + 1):
                await self._record_the_rest()
                if unfinished:
                    await self.store.release(unfinished, self.clock())
        except (TimeoutError, StoreUnavailable) as exc:
            # still leased: sent again by whoever claims them after the lease
            log.warning("stopped without recording everything: %s", exc)

    async def _record_the_rest(self) -> None:
        backoff = _Backoff()
        while self._finished:
            try:
                await self._round(claiming=False)
            except StoreUnavailable:
                await asyncio.sleep(backoff.next())
