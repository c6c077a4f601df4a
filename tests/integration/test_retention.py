from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hookline.config import Settings
from hookline.models import DEFAULT_TENANT, DeliveryFilter
from hookline.retention import purge_expired
from hookline.runtime import Runtime


async def test_everything_older_than_the_window_goes_in_small_batches(settings: Settings):
    now = datetime(2026, 6, 1, tzinfo=UTC)
    clock_value = [now - timedelta(days=40)]
    window = settings.with_(retention=30 * 86400, purge_batch=2)
    async with Runtime(window, dispatch=False, clock=lambda: clock_value[0]) as runtime:
        svc = runtime.service
        await svc.create_webhook(
            DEFAULT_TENANT, name="h", url="https://example.com/h", topics=["employee_create"]
        )
        for n in range(5):
            await svc.publish_data(DEFAULT_TENANT, "employee_create", {"n": n})
        clock_value[0] = now - timedelta(days=10)
        kept = await svc.publish_data(DEFAULT_TENANT, "employee_create", {"n": "kept"})
        assert await purge_expired(runtime.store, window, now) == 5
        page = await svc.list_deliveries(DeliveryFilter(tenant_id=DEFAULT_TENANT))
        assert [d.event_id for d in page.items] == [kept.event.id]
