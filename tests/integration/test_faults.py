"""Receivers that misbehave, and a healthy rest that must not notice: real receivers on
loopback, the real dispatcher, each test with the pass criterion it asserts."""

from __future__ import annotations

import asyncio
import resource
import time
from datetime import UTC, datetime, timedelta

import orjson

from hookline.config import Settings
from hookline.models import DEFAULT_TENANT, DeliveryFilter, DeliveryStatus, ErrorKind
from hookline.runtime import Runtime

from ..helpers import eventually
from ..receiver import Receiver
from .test_delivery import publish_one, settled, subscribe


async def _received(receiver: Receiver, path: str):
    return receiver.received(path)


HEALTHY = 9  # and one hanging: a tenth of the receivers misbehave


async def drain_rate(settings: Settings, receiver: Receiver, hanging: bool, events: int) -> float:
    """Deliveries per second to the healthy receivers, draining a backlog of ``events``."""
    async with Runtime(settings, dispatch=False) as runtime:
        svc = runtime.service
        for n in range(HEALTHY):
            await subscribe(svc, receiver.url(f"/ok/healthy/{n}"))
        if hanging:
            await subscribe(svc, receiver.url("/hang"))
        for n in range(events):
            await svc.publish_data(DEFAULT_TENANT, "employee_create", {"n": n})
    expected = events * HEALTHY
    async with Runtime(settings, dispatch=True):
        started = time.monotonic()
        deadline = started + 60
        while sum(r.path.startswith("/ok/") for r in receiver.received()) < expected:
            assert time.monotonic() < deadline, "the healthy receivers did not get everything"
            await asyncio.sleep(0.002)  # a fine poll: this is a timing
        return expected / (time.monotonic() - started)


async def test_a_hanging_receiver_does_not_slow_the_healthy_ones(
    settings: Settings, fresh_database
):
    """Nine healthy receivers and one that hangs to the deadline: the healthy ones keep ≥ 90 %
    of the throughput they have without it."""
    events = 350
    rates: dict[bool, float] = {}
    for hanging in (False, True) * 5:
        quick = settings.with_(
            database_url=await fresh_database(), attempt_timeout=2, lease_seconds=5,
            retry_schedule=(0, 0.2),
        )  # fmt: skip
        receiver = Receiver().start()
        try:
            rate = await drain_rate(quick, receiver, hanging, events)
            if hanging:
                assert len(receiver.received("/hang")) <= 8 * 4  # its cap holds
        finally:
            receiver.stop()
        # the best of five runs each way, interleaved: the machine's noise (two cores, the
        # database's own background work) is not what is measured
        rates[hanging] = max(rates.get(hanging, 0.0), rate)
    print("healthy deliveries/s without and with a hanging receiver:", rates)
    assert rates[True] >= 0.9 * rates[False], rates


async def test_429_with_retry_after_pauses_the_webhook_without_failing_its_deliveries(
    settings: Settings, receiver: Receiver
):
    async with Runtime(settings.with_(retry_schedule=(0, 0.1, 0.2)), dispatch=True) as runtime:
        svc = runtime.service
        await subscribe(svc, receiver.url("/limited/1"))
        first = await publish_one(svc)
        await eventually(lambda: _received(receiver, "/limited/1"), lambda r: len(r) == 1)
        asked_at = receiver.received("/limited/1")[0].at
        others = [await publish_one(svc) for _ in range(4)]
        details = [await settled(svc, d) for d in [first, *others]]
    assert all(d.delivery.status is DeliveryStatus.SUCCEEDED for d in details)
    later = receiver.received("/limited/1")[1:]
    # nothing went to the receiver before the second it asked for
    assert min(r.at for r in later) - asked_at >= 0.95
    # the others were not attempted during the pause: one attempt each, all successful
    assert [d.delivery.attempts_count for d in details[1:]] == [1, 1, 1, 1]


async def test_410_disables_at_once_and_says_so_to_whoever_listens(
    settings: Settings, receiver: Receiver
):
    async with Runtime(settings, dispatch=True) as runtime:
        svc = runtime.service
        gone = await subscribe(svc, receiver.url("/status/410"))
        await svc.create_webhook(
            DEFAULT_TENANT, name="ops", url=receiver.url("/ok/ops"),
            topics=["hookline.webhook_disabled", "hookline.delivery_failed"],
        )  # fmt: skip
        detail = await settled(svc, await publish_one(svc))
        assert detail.delivery.status is DeliveryStatus.FAILED
        assert detail.delivery.attempts_count == 1  # no retries after 410
        await eventually(lambda: _received(receiver, "/ok/ops"), lambda r: len(r) >= 2)
        webhook = await svc.get_webhook(DEFAULT_TENANT, gone)
        assert not webhook.enabled and webhook.disabled_reason == "the receiver answered 410 Gone"
        later = await svc.publish_data(DEFAULT_TENANT, "employee_create", {"n": 2})
        skipped = await svc.list_deliveries(
            DeliveryFilter(tenant_id=DEFAULT_TENANT, webhook_id=gone, event_id=later.event.id)
        )
        assert [d.status for d in skipped.items] == [DeliveryStatus.SKIPPED]
    events = {orjson.loads(r.body)["action"]: orjson.loads(r.body)["data"]
              for r in receiver.received("/ok/ops")}  # fmt: skip
    assert events["hookline.webhook_disabled"]["webhook_id"] == gone
    assert events["hookline.webhook_disabled"]["reason"] == "the receiver answered 410 Gone"
    assert events["hookline.delivery_failed"]["last_status_code"] == 410


async def test_a_webhook_failing_for_the_whole_window_is_disabled_by_a_controllable_clock(
    settings: Settings, receiver: Receiver
):
    offset = [timedelta(0)]

    def clock() -> datetime:  # real time, moved forward at will: nobody waits an hour
        return datetime.now(UTC) + offset[0]

    window = settings.with_(retry_schedule=(0, 0.05, 0.05, 0.05), disable_after=3600)
    async with Runtime(window, dispatch=True, clock=clock) as runtime:
        svc = runtime.service
        flaky = await subscribe(svc, receiver.url("/status/500"))
        await settled(svc, await publish_one(svc))
        assert (await svc.get_webhook(DEFAULT_TENANT, flaky)).enabled  # not a whole hour yet
        offset[0] = timedelta(seconds=3601)
        await publish_one(svc)
        hook = await eventually(
            lambda: svc.get_webhook(DEFAULT_TENANT, flaky), lambda w: not w.enabled
        )
    assert not hook.enabled and "every attempt failed since" in (hook.disabled_reason or "")
    assert hook.disabled_at is not None and hook.disabled_at >= hook.failing_since + timedelta(
        seconds=3600
    )


async def test_sporadic_failures_never_disable(settings: Settings, receiver: Receiver):
    offset = [timedelta(0)]

    def clock() -> datetime:
        return datetime.now(UTC) + offset[0]

    window = settings.with_(retry_schedule=(0, 0.05, 0.05), disable_after=3600)
    async with Runtime(window, dispatch=True, clock=clock) as runtime:
        svc = runtime.service
        flaky = await subscribe(svc, receiver.url("/first-fails"))
        for n in range(3):  # every two hours: one failure, then a success
            await svc.publish_data(DEFAULT_TENANT, "employee_create", {"n": n})
            await eventually(
                lambda: _received(receiver, "/first-fails"), lambda r, n=n: len(r) >= 2 * n + 2
            )
            await asyncio.sleep(0.1)  # the success is recorded
            offset[0] += timedelta(hours=2)
        hook = await svc.get_webhook(DEFAULT_TENANT, flaky)
    assert hook.enabled and hook.failing_since is None


async def test_a_huge_answer_is_cut_at_the_cap_and_memory_stays_bounded(
    settings: Settings, receiver: Receiver
):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with Runtime(settings.with_(retry_schedule=(0,)), dispatch=True) as runtime:
        await subscribe(runtime.service, receiver.url("/big"))
        started = time.monotonic()
        detail = await settled(runtime.service, await publish_one(runtime.service))
        elapsed = time.monotonic() - started
    [attempt] = detail.attempts
    assert attempt.response_status == 200 and len(attempt.response_body or b"") == 65536
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 64, grown_mib  # a 1 GiB answer was not read, let alone kept
    assert elapsed < settings.attempt_timeout


async def test_a_connection_closed_mid_response_is_a_named_failure(
    settings: Settings, receiver: Receiver
):
    async with Runtime(settings.with_(retry_schedule=(0,)), dispatch=True) as runtime:
        await subscribe(runtime.service, receiver.url("/cut"))
        detail = await settled(runtime.service, await publish_one(runtime.service))
    [attempt] = detail.attempts
    assert attempt.error_kind is ErrorKind.CONNECTION, attempt
    assert detail.delivery.status is DeliveryStatus.FAILED


async def test_an_ordered_webhook_delivers_in_publish_order_under_retries(
    settings: Settings, receiver: Receiver
):
    async with Runtime(settings.with_(retry_schedule=(0, 0.1, 0.1)), dispatch=True) as runtime:
        svc = runtime.service
        await svc.create_webhook(
            DEFAULT_TENANT, name="ordered", url=receiver.url("/first-fails"),
            topics=["employee_create"], ordered=True,
        )  # fmt: skip
        for n in range(6):
            await svc.publish_data(DEFAULT_TENANT, "employee_create", {"n": n})
        await eventually(lambda: _received(receiver, "/first-fails"), lambda r: len(r) >= 12, 20)
    sequence = [orjson.loads(r.body)["data"]["n"] for r in receiver.received("/first-fails")]
    # each event twice (a failure, then the success) before the next one starts
    assert sequence == [n for n in range(6) for _ in range(2)]


async def test_without_ordering_the_same_receiver_sees_them_interleaved(
    settings: Settings, receiver: Receiver
):
    """The control for the test above: ordering is what made the difference."""
    async with Runtime(settings.with_(retry_schedule=(0, 0.1, 0.1)), dispatch=True) as runtime:
        svc = runtime.service
        await subscribe(svc, receiver.url("/first-fails"))
        for n in range(6):
            await svc.publish_data(DEFAULT_TENANT, "employee_create", {"n": n})
        await eventually(lambda: _received(receiver, "/first-fails"), lambda r: len(r) >= 12, 20)
    sequence = [orjson.loads(r.body)["data"]["n"] for r in receiver.received("/first-fails")]
    assert sequence != [n for n in range(6) for _ in range(2)]
