"""The store contract, run against every backend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from hookline.errors import IdempotencyConflict, NotFound
from hookline.ids import new_id
from hookline.models import (
    Attempt,
    DeliveryFilter,
    DeliveryStatus,
    ErrorKind,
    Job,
    Lane,
    Outcome,
    Webhook,
)
from hookline.store import NewEvent, Store
from hookline.store.base import RecordRules

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RULES = RecordRules(disable_after=timedelta(days=5), failing_threshold=3)


async def record(store: Store, outcomes, now: datetime = T0):
    return await store.record(outcomes, now, RULES)


def webhook(
    tenant: str = "default", topics: tuple[str, ...] = ("employee_create",), **kw
) -> Webhook:
    values = dict(
        id=new_id("wh"),
        tenant_id=tenant,
        name="HR sync",
        url="https://example.com/hook",
        topics=topics,
        enabled=True,
        secret="s3cret",
        created_at=T0,
        updated_at=T0,
    )
    values.update(kw)
    return Webhook(**values)


def event(action: str = "employee_create", tenant: str = "default", **kw) -> NewEvent:
    body = b'{"action": "%s", "data": {"id": 1}}' % action.encode()
    values = dict(id=new_id("evt"), tenant_id=tenant, action=action, payload=body, created_at=T0)
    values.update(kw)
    return NewEvent(**values)


def outcome(job: Job, status: DeliveryStatus, code: int | None, at: datetime, next_at=None):
    attempt = Attempt(
        id=new_id("att"),
        delivery_id=job.delivery_id,
        number=job.attempt_number,
        manual=job.manual,
        started_at=at,
        duration_ms=12,
        request_url=job.url,
        request_headers={"webhook-id": job.delivery_id},
        request_body=job.payload,
        response_status=code,
        response_headers={"Server": "test"} if code else None,
        response_body=b"ok" if code else None,
        error_kind=None if status is DeliveryStatus.SUCCEEDED else ErrorKind.BAD_STATUS,
        error_message=None if status is DeliveryStatus.SUCCEEDED else f"HTTP {code}",
    )
    return Outcome(
        job=job,
        attempt=attempt,
        status=status,
        next_attempt_at=next_at,
        schedule_step=job.schedule_step + 1,
    )


async def test_migrations_apply_once(store: Store):
    assert await store.migrate() == []


async def test_webhooks_round_trip_and_stay_within_their_tenant(store: Store):
    hook = webhook(topics=("employee_create", "leave_request_create"))
    await store.insert_webhook(hook)
    assert await store.get_webhook("default", hook.id) == hook
    with pytest.raises(NotFound):
        await store.get_webhook("other", hook.id)
    changed = webhook(id=hook.id, name="renamed", topics=("employee_update",), secret=None)
    await store.update_webhook(changed)
    assert await store.get_webhook("default", hook.id) == changed
    await store.delete_webhook("default", hook.id)
    with pytest.raises(NotFound):
        await store.get_webhook("default", hook.id)
    with pytest.raises(NotFound):
        await store.delete_webhook("default", hook.id)


async def test_webhook_pages_are_newest_first(store: Store):
    ids = []
    for _ in range(5):
        hook = webhook()
        await store.insert_webhook(hook)
        ids.append(hook.id)
    first = await store.list_webhooks("default", None, 2)
    second = await store.list_webhooks("default", first.next_cursor, 2)
    third = await store.list_webhooks("default", second.next_cursor, 2)
    seen = [w.id for page in (first, second, third) for w in page.items]
    assert seen == sorted(ids, reverse=True)
    assert third.next_cursor is None


async def test_an_event_fans_out_to_its_topics_subscribers_skipping_disabled_ones(store: Store):
    subscribed = webhook()
    other_topic = webhook(topics=("employee_update",))
    disabled = webhook(enabled=False)
    other_tenant = webhook(tenant="acme")
    for hook in (subscribed, other_topic, disabled, other_tenant):
        await store.insert_webhook(hook)
    stored = await store.insert_event(event())
    assert stored.event.deliveries_count == 2 and not stored.replayed
    page = await store.list_deliveries(DeliveryFilter(tenant_id="default"), None, 10)
    assert sorted((d.webhook_id, d.status) for d in page.items) == sorted(
        [(subscribed.id, DeliveryStatus.PENDING), (disabled.id, DeliveryStatus.SKIPPED)]
    )
    skipped = next(d for d in page.items if d.status is DeliveryStatus.SKIPPED)
    assert skipped.next_attempt_at is None
    assert (await store.get_event("default", stored.event.id)).payload == stored.event.payload
    assert len(await store.claim(T0, 10, T0 + timedelta(seconds=30), "a")) == 1


async def test_a_repeated_idempotency_key_stores_nothing_new(store: Store):
    await store.insert_webhook(webhook())
    key = dict(
        idempotency_key="k1", request_hash="h1", idempotency_expires_at=T0 + timedelta(hours=24)
    )
    first = await store.insert_event(event(**key))
    again = await store.insert_event(event(**key))
    assert (
        again.replayed and again.event == first.event and again.delivery_ids == first.delivery_ids
    )
    page = await store.list_deliveries(DeliveryFilter(tenant_id="default"), None, 10)
    assert len(page.items) == 1
    with pytest.raises(IdempotencyConflict):
        await store.insert_event(event(**{**key, "request_hash": "h2"}))
    later = T0 + timedelta(hours=25)
    fresh = await store.insert_event(
        event(created_at=later, **{**key, "idempotency_expires_at": later + timedelta(hours=24)})
    )
    assert not fresh.replayed and fresh.event.id != first.event.id


async def test_claim_leases_due_deliveries_once(store: Store):
    hook = webhook()
    await store.insert_webhook(hook)
    for _ in range(3):
        await store.insert_event(event())
    lease = T0 + timedelta(seconds=30)
    jobs = await store.claim(T0, 2, lease, "lease-a")
    assert len(jobs) == 2
    assert {job.url for job in jobs} == {hook.url}
    assert all(job.secret == "s3cret" and job.attempt_number == 1 for job in jobs)
    assert jobs[0].payload.startswith(b'{"action": "employee_create"')
    rest = await store.claim(T0, 10, lease, "lease-b")
    assert len(rest) == 1
    assert await store.claim(T0, 10, lease, "lease-c") == []
    # a lease that expires makes its delivery due again
    again = await store.claim(lease, 10, lease + timedelta(seconds=30), "lease-d")
    assert len(again) == 3


async def test_record_moves_deliveries_on_and_keeps_attempts(store: Store):
    await store.insert_webhook(webhook())
    await store.insert_event(event())
    [job] = await store.claim(T0, 10, T0 + timedelta(seconds=30), "lease-a")
    retry_at = T0 + timedelta(seconds=5)
    await record(store, [outcome(job, DeliveryStatus.PENDING, 500, T0, retry_at)])
    detail = await store.get_delivery("default", job.delivery_id)
    assert detail.delivery.status is DeliveryStatus.PENDING
    assert detail.delivery.next_attempt_at == retry_at
    assert detail.delivery.attempts_count == 1 and detail.delivery.last_status_code == 500
    [attempt] = detail.attempts
    assert attempt.response_status == 500 and attempt.error_kind is ErrorKind.BAD_STATUS
    assert attempt.request_body == job.payload
    assert await store.next_due_at() == retry_at
    assert await store.claim(T0, 10, T0 + timedelta(seconds=30), "early") == []
    assert await store.claim(retry_at, 10, retry_at + timedelta(seconds=30), "first") == []
    [retry] = await store.claim(
        retry_at, 10, retry_at + timedelta(seconds=30), "lease-b", Lane.RETRY
    )
    assert retry.attempt_number == 2 and retry.schedule_step == 1
    await record(store, [outcome(retry, DeliveryStatus.SUCCEEDED, 200, retry_at)])
    detail = await store.get_delivery("default", job.delivery_id)
    assert detail.delivery.status is DeliveryStatus.SUCCEEDED
    assert [a.number for a in detail.attempts] == [1, 2]
    assert await store.next_due_at() is None


async def test_a_stale_lease_cannot_overwrite_a_newer_claim(store: Store):
    await store.insert_webhook(webhook())
    await store.insert_event(event())
    [stale] = await store.claim(T0, 10, T0 + timedelta(seconds=1), "old")
    later = T0 + timedelta(seconds=2)
    [fresh] = await store.claim(later, 10, later + timedelta(seconds=30), "new")
    await record(store, [outcome(stale, DeliveryStatus.FAILED, 500, T0)])
    detail = await store.get_delivery("default", fresh.delivery_id)
    assert detail.delivery.status is DeliveryStatus.DELIVERING
    assert len(detail.attempts) == 1  # the stale attempt happened and is kept


async def test_redeliver_makes_a_finished_delivery_due_for_one_manual_attempt(store: Store):
    await store.insert_webhook(webhook())
    await store.insert_event(event())
    [job] = await store.claim(T0, 10, T0 + timedelta(seconds=30), "a")
    await record(store, [outcome(job, DeliveryStatus.SUCCEEDED, 200, T0)])
    later = T0 + timedelta(minutes=1)
    delivery = await store.redeliver("default", job.delivery_id, later)
    assert delivery.status is DeliveryStatus.PENDING
    [manual] = await store.claim(later, 10, later + timedelta(seconds=30), "b", Lane.RETRY)
    assert manual.manual and manual.delivery_id == job.delivery_id and manual.attempt_number == 2
    with pytest.raises(NotFound):
        await store.redeliver("acme", job.delivery_id, later)


async def test_release_gives_leased_deliveries_back(store: Store):
    await store.insert_webhook(webhook())
    await store.insert_event(event())
    jobs = await store.claim(T0, 10, T0 + timedelta(minutes=5), "a")
    await store.release(jobs, T0)
    assert len(await store.claim(T0, 10, T0 + timedelta(minutes=5), "b")) == 1


async def test_deliveries_of_a_disabled_webhook_wait(store: Store):
    hook = webhook()
    await store.insert_webhook(hook)
    await store.insert_event(event())
    await store.update_webhook(webhook(id=hook.id, enabled=False))
    assert await store.claim(T0, 10, T0 + timedelta(seconds=30), "a") == []
    assert await store.next_due_at() is None
    await store.update_webhook(webhook(id=hook.id, enabled=True))
    assert len(await store.claim(T0, 10, T0 + timedelta(seconds=30), "b")) == 1


async def test_delivery_filters(store: Store):
    a, b = webhook(), webhook(topics=("employee_create", "employee_update"))
    await store.insert_webhook(a)
    await store.insert_webhook(b)
    first = await store.insert_event(event())
    await store.insert_event(event("employee_update", created_at=T0 + timedelta(hours=1)))

    async def ids(**kw):
        page = await store.list_deliveries(DeliveryFilter(tenant_id="default", **kw), None, 50)
        return len(page.items)

    assert await ids() == 3
    assert await ids(webhook_id=b.id) == 2
    assert await ids(topic="employee_update") == 1
    assert await ids(event_id=first.event.id) == 2
    assert await ids(status=DeliveryStatus.PENDING) == 3
    assert await ids(status=DeliveryStatus.FAILED) == 0
    assert await ids(since=T0 + timedelta(minutes=30)) == 1
    assert await ids(until=T0 + timedelta(minutes=30)) == 2


async def test_deleting_a_webhook_removes_its_deliveries(store: Store):
    hook = webhook()
    await store.insert_webhook(hook)
    stored = await store.insert_event(event())
    await store.delete_webhook("default", hook.id)
    with pytest.raises(NotFound):
        await store.get_delivery("default", stored.delivery_ids[0])
    assert await store.claim(T0, 10, T0 + timedelta(seconds=30), "a") == []


async def test_purge_deletes_old_events_with_their_history_in_batches(store: Store):
    await store.insert_webhook(webhook())
    old = [await store.insert_event(event()) for _ in range(3)]
    recent = await store.insert_event(event(created_at=T0 + timedelta(days=2)))
    [job, *_] = await store.claim(T0, 1, T0 + timedelta(seconds=30), "a")
    await record(store, [outcome(job, DeliveryStatus.SUCCEEDED, 200, T0)])
    key = dict(
        idempotency_key="k", request_hash="h", idempotency_expires_at=T0 + timedelta(hours=1)
    )
    await store.insert_event(event(created_at=T0 + timedelta(days=2), **key))
    cutoff, now = T0 + timedelta(days=1), T0 + timedelta(days=2)
    assert await store.purge(cutoff, now, 2) == 2
    assert await store.purge(cutoff, now, 2) == 1
    assert await store.purge(cutoff, now, 2) == 0
    for stored in old:
        with pytest.raises(NotFound):
            await store.get_event("default", stored.event.id)
        with pytest.raises(NotFound):
            await store.get_delivery("default", stored.delivery_ids[0])
    assert (await store.get_event("default", recent.event.id)).id == recent.event.id
    # the expired key is gone: the same key now stores a new event
    again = await store.insert_event(event(created_at=now, **key))
    assert not again.replayed


async def test_sessions_expire(store: Store):
    from hookline.models import Session

    session = Session(
        token_hash="h1", tenant_id="default", csrf_token="c", expires_at=T0 + timedelta(hours=1)
    )
    await store.add_session(session, T0)
    assert await store.get_session("h1", T0) == session
    assert await store.get_session("h1", T0 + timedelta(hours=2)) is None
    assert await store.get_session("other", T0) is None
    await store.delete_session("h1")
    assert await store.get_session("h1", T0) is None


async def test_inboxes_capture_up_to_a_cap_and_expire(store: Store):
    from hookline.models import Inbox, InboxRequest

    inbox = Inbox(
        id=new_id("inb"), tenant_id="default", name="try", token="tok",
        created_at=T0, expires_at=T0 + timedelta(hours=1),
    )  # fmt: skip
    await store.add_inbox(inbox)
    assert await store.get_inbox("default", inbox.id) == inbox
    with pytest.raises(NotFound):
        await store.get_inbox("acme", inbox.id)
    for n in range(4):
        request = InboxRequest(
            id=new_id("req"), inbox_id="", received_at=T0, headers={"n": str(n)}, body=b"{}"
        )
        assert await store.capture("tok", request, T0, keep=3)
    kept = await store.inbox_requests(inbox.id, 10)
    assert [r.headers["n"] for r in kept] == ["3", "2", "1"]
    assert kept[0].inbox_id == inbox.id and kept[0].body == b"{}"
    late = T0 + timedelta(hours=2)
    assert not await store.capture("tok", request, late, keep=3)
    assert not await store.capture("nope", request, T0, keep=3)
    assert await store.list_inboxes("default", T0) == [inbox]
    assert await store.list_inboxes("default", late) == []
    await store.purge(T0, late, 100)
    with pytest.raises(NotFound):
        await store.get_inbox("default", inbox.id)


async def test_webhook_summaries_and_delivery_counts(store: Store):
    now = datetime.now(UTC)
    busy, idle = webhook(), webhook()
    await store.insert_webhook(busy)
    await store.insert_webhook(idle)
    for _ in range(3):
        await store.insert_event(event(created_at=now, only_webhook_id=busy.id))
    jobs = await store.claim(now, 10, now + timedelta(seconds=30), "a")
    await record(
        store,
        [outcome(jobs[0], DeliveryStatus.SUCCEEDED, 200, now)]
        + [outcome(job, DeliveryStatus.FAILED, 500, now) for job in jobs[1:]],
    )
    summaries = await store.webhook_summaries(
        "default", [busy.id, idle.id], now - timedelta(hours=24)
    )
    assert summaries[busy.id].succeeded == 1 and summaries[busy.id].failed == 2
    assert summaries[busy.id].last_status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)
    assert summaries[idle.id].last_status is None and summaries[idle.id].success_rate is None
    counts = await store.delivery_counts(
        "default", busy.id, now - timedelta(hours=23, minutes=59), 3600, 24
    )
    assert len(counts) == 24 and counts[-1] == {"succeeded": 1, "failed": 2}
    assert sum(sum(bucket.values()) for bucket in counts[:-1]) == 0


def lease(at: datetime) -> datetime:
    return at + timedelta(seconds=30)


async def test_claims_respect_each_webhooks_free_slots(store: Store):
    narrow, other = webhook(max_in_flight=2), webhook()
    await store.insert_webhook(narrow)
    await store.insert_webhook(other)
    for _ in range(5):
        await store.insert_event(event(only_webhook_id=narrow.id))
    await store.insert_event(event(only_webhook_id=other.id))
    first = await store.claim(T0, 100, lease(T0), "a")
    assert sorted(job.webhook_id for job in first) == sorted([narrow.id, narrow.id, other.id])
    assert await store.claim(T0, 100, lease(T0), "b") == []  # narrow is full
    await record(store, [outcome(first[0], DeliveryStatus.SUCCEEDED, 200, T0)])
    if first[0].webhook_id == narrow.id:
        assert len(await store.claim(T0, 100, lease(T0), "c")) == 1


async def test_first_attempts_and_retries_are_claimed_in_separate_lanes(store: Store):
    await store.insert_webhook(webhook())
    await store.insert_event(event())
    [job] = await store.claim(T0, 10, lease(T0), "a")
    await record(store, [outcome(job, DeliveryStatus.PENDING, 500, T0, T0)])
    await store.insert_event(event())
    [fresh] = await store.claim(T0, 10, lease(T0), "b", Lane.FIRST)
    assert fresh.attempt_number == 1
    [retry] = await store.claim(T0, 10, lease(T0), "c", Lane.RETRY)
    assert retry.delivery_id == job.delivery_id and retry.attempt_number == 2


async def test_a_receiver_that_asked_for_a_pause_gets_it(store: Store):
    hook = webhook()
    await store.insert_webhook(hook)
    for _ in range(3):
        await store.insert_event(event())
    [job] = await store.claim(T0, 1, lease(T0), "a")
    until = T0 + timedelta(seconds=60)
    paused = outcome(job, DeliveryStatus.PENDING, 429, T0, until)
    await record(store, [Outcome(**{**_fields(paused), "pause_webhook_until": until})])
    assert (await store.get_webhook("default", hook.id)).paused_until == until
    # nothing of this webhook goes before the pause ends, first attempts included
    assert await store.claim(T0 + timedelta(seconds=59), 10, lease(T0), "b") == []
    after = T0 + timedelta(seconds=61)
    assert len(await store.claim(after, 10, lease(after), "c")) == 2


def _fields(value):
    return {name: getattr(value, name) for name in value.__dataclass_fields__}


@pytest.mark.parametrize("failed_blocks", [False, True])
async def test_an_ordered_webhook_gets_one_delivery_at_a_time_in_order(
    store: Store, failed_blocks: bool
):
    hook = webhook(ordered=True)
    await store.insert_webhook(hook)
    ids = [(await store.insert_event(event())).delivery_ids[0] for _ in range(3)]

    async def claim_one(at, token):
        jobs = await store.claim(at, 10, lease(at), token, Lane.FIRST, failed_blocks)
        jobs += await store.claim(at, 10, lease(at), token + "r", Lane.RETRY, failed_blocks)
        return jobs

    [first] = await claim_one(T0, "a")
    assert first.delivery_id == ids[0]
    assert await claim_one(T0, "b") == []  # the head is in flight
    retry_at = T0 + timedelta(seconds=5)
    await record(store, [outcome(first, DeliveryStatus.PENDING, 500, T0, retry_at)])
    assert await claim_one(T0 + timedelta(seconds=1), "c") == []  # the head waits its retry
    [again] = await claim_one(retry_at, "d")
    assert again.delivery_id == ids[0]
    await record(store, [outcome(again, DeliveryStatus.FAILED, 500, retry_at)])
    later = retry_at + timedelta(seconds=1)
    if failed_blocks:
        assert await claim_one(later, "e") == []
        await store.redeliver("default", ids[0], later)
        [redo] = await claim_one(later, "f")
        assert redo.delivery_id == ids[0]
    else:
        [second] = await claim_one(later, "e")
        assert second.delivery_id == ids[1]


async def test_410_disables_at_once_and_long_failure_streaks_disable_too(store: Store):
    gone, flaky, dying = webhook(), webhook(), webhook()
    for hook in (gone, flaky, dying):
        await store.insert_webhook(hook)
        await store.insert_event(event(only_webhook_id=hook.id))
        await store.insert_event(event(only_webhook_id=hook.id))
    jobs = {job.webhook_id: job for job in await store.claim(T0, 10, lease(T0), "a")}
    went = outcome(jobs[gone.id], DeliveryStatus.FAILED, 410, T0)
    alerts = await record(
        store,
        [
            Outcome(**{**_fields(went), "disable_reason": "the receiver answered 410 Gone"}),
            outcome(jobs[flaky.id], DeliveryStatus.PENDING, 500, T0, T0),
            outcome(jobs[dying.id], DeliveryStatus.PENDING, 500, T0, T0),
        ],
    )
    assert [(a.webhook_id, a.kind) for a in alerts] == [(gone.id, "disabled")]
    stored = await store.get_webhook("default", gone.id)
    assert not stored.enabled and stored.disabled_reason == "the receiver answered 410 Gone"
    # flaky recovers; dying fails on for five days (a controllable clock, not waiting)
    later = T0 + timedelta(days=3)
    retries = {j.webhook_id: j for j in await store.claim(later, 10, lease(later), "b", Lane.RETRY)}
    await record(
        store,
        [
            outcome(retries[flaky.id], DeliveryStatus.SUCCEEDED, 200, later),
            outcome(retries[dying.id], DeliveryStatus.PENDING, 500, later, later),
        ],
        later,
    )
    assert (await store.get_webhook("default", flaky.id)).failing_since is None
    assert (await store.get_webhook("default", dying.id)).failing_since == T0
    end = T0 + timedelta(days=5, seconds=1)
    [last] = await store.claim(end, 10, lease(end), "c", Lane.RETRY)
    alerts = await record(store, [outcome(last, DeliveryStatus.PENDING, 500, end, end)], end)
    assert [(a.webhook_id, a.kind) for a in alerts] == [
        (dying.id, "failing"),  # the third failure in a row crossed the threshold of 3
        (dying.id, "disabled"),
    ]
    dead = await store.get_webhook("default", dying.id)
    assert not dead.enabled and "every attempt failed since" in (dead.disabled_reason or "")
    assert (await store.get_webhook("default", flaky.id)).enabled
    # enabling it again starts afresh
    await store.update_webhook(
        Webhook(**{**_fields(dead), "enabled": True, "disabled_at": None, "disabled_reason": None})
    )
    revived = await store.get_webhook("default", dying.id)
    assert revived.enabled and revived.failing_since is None and revived.disabled_reason is None


async def test_replay_sends_failed_and_skipped_again_at_a_bounded_rate(store: Store):
    hook = webhook()
    await store.insert_webhook(hook)
    for _ in range(2):
        await store.insert_event(event())
    jobs = await store.claim(T0, 10, lease(T0), "a")
    await record(store, [outcome(j, DeliveryStatus.FAILED, 500, T0) for j in jobs])
    await store.update_webhook(webhook(id=hook.id, enabled=False))
    await store.insert_event(event())  # skipped: the webhook is disabled
    await store.update_webhook(webhook(id=hook.id, enabled=True))
    statuses = (DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)
    later = T0 + timedelta(hours=1)
    count = await store.replay(
        "default", hook.id, statuses, None, None, later, timedelta(seconds=1)
    )
    assert count == 3
    due = await store.claim(later + timedelta(seconds=1), 10, lease(later), "b", Lane.RETRY)
    due += await store.claim(later + timedelta(seconds=1), 10, lease(later), "c", Lane.FIRST)
    assert len(due) == 2  # the third is due a second later: the rate is bounded
    with pytest.raises(NotFound):
        await store.replay("acme", hook.id, statuses, None, None, later, timedelta(seconds=1))


async def test_a_webhook_with_a_backlog_does_not_keep_the_others_waiting(store: Store):
    busy, quiet = webhook(), webhook()  # busy's id sorts first
    await store.insert_webhook(busy)
    await store.insert_webhook(quiet)
    for _ in range(20):
        await store.insert_event(event(only_webhook_id=busy.id))
    # the quiet webhook's only delivery is the oldest of all
    await store.insert_event(event(only_webhook_id=quiet.id, created_at=T0 - timedelta(seconds=1)))
    claimed = await store.claim(T0, 2, lease(T0), "a") + await store.claim(T0, 2, lease(T0), "b")
    assert quiet.id in {job.webhook_id for job in claimed}


async def test_a_round_records_what_finished_and_claims_the_slots_it_freed(store: Store):
    narrow = webhook(max_in_flight=1)
    await store.insert_webhook(narrow)
    for _ in range(2):
        await store.insert_event(event(only_webhook_id=narrow.id))
    [first] = await store.claim(T0, 10, lease(T0), "a")
    done = outcome(first, DeliveryStatus.SUCCEEDED, 200, T0)
    alerts, claimed = await store.record_and_claim(
        [done], T0, RULES, {Lane.FIRST: 10, Lane.RETRY: 0}, lease(T0), "b"
    )
    assert alerts == []
    assert Lane.RETRY not in claimed  # a lane that wants nothing is not asked
    [second] = claimed[Lane.FIRST]
    assert second.delivery_id != first.delivery_id
    recorded = await store.get_delivery("default", first.delivery_id)
    assert recorded.delivery.status is DeliveryStatus.SUCCEEDED


async def test_publishes_at_once_each_get_their_own_answer(store: Store):
    """Published together (SQLite commits them as one group), a conflicting one fails alone:
    the others are stored, each with its deliveries."""
    await store.insert_webhook(webhook())
    key = dict(idempotency_key="k", idempotency_expires_at=T0 + timedelta(hours=1))
    await store.insert_event(event(request_hash="first", **key))
    results = await asyncio.gather(
        store.insert_event(event()),
        store.insert_event(event(request_hash="another body", **key)),
        store.insert_event(event()),
        return_exceptions=True,
    )
    assert isinstance(results[1], IdempotencyConflict)
    for stored in (results[0], results[2]):
        assert not isinstance(stored, BaseException)
        assert await store.get_event("default", stored.event.id) == stored.event
        assert len(stored.delivery_ids) == 1
    page = await store.list_deliveries(DeliveryFilter(tenant_id="default"), None, 10)
    assert len(page.items) == 3
