"""Retention: what is older than the window is deleted in the background, in small batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from .config import Settings
from .errors import StoreUnavailable
from .store import Store

log = logging.getLogger("hookline.retention")

#: the pause between two purge batches: delivery's writes go first
_BREATHER = 0.05


async def purge_expired(store: Store, settings: Settings, now: datetime) -> int:
    """Delete everything older than the retention window; return the number of events."""
    before = now - timedelta(seconds=settings.retention)
    total = 0
    while True:
        deleted = await store.purge(before, now, settings.purge_batch)
        total += deleted
        if deleted < settings.purge_batch:
            return total
        await asyncio.sleep(_BREATHER)


async def purge_forever(
    store: Store, settings: Settings, clock: Callable[[], datetime], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            deleted = await purge_expired(store, settings, clock())
            if deleted:
                log.info("purged %d events older than the retention window", deleted)
        except StoreUnavailable as exc:
            log.warning("purge skipped: %s", exc.detail)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.purge_interval)
