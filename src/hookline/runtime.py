"""Wiring: builds the store, catalog, service, egress and dispatcher from Settings, and runs
them for ``hookline serve`` and the other commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .config import Settings
from .dispatcher import Dispatcher
from .egress import Egress
from .service import Clock, Service, utcnow
from .store import Store, open_store
from .topics import Catalog

log = logging.getLogger("hookline")


class Runtime:
    def __init__(self, settings: Settings, *, dispatch: bool, clock: Clock = utcnow) -> None:
        self.settings = settings
        self.store: Store = open_store(settings.database_url)
        self.service = Service(
            self.store, settings, Catalog.load(settings.topics_file), clock=clock
        )
        self.dispatcher: Dispatcher | None = None
        self._egress: Egress | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        if dispatch:
            self._egress = Egress(
                self.service.guard,
                timeout=settings.attempt_timeout,
                body_limit=settings.response_body_max,
                max_connections=settings.concurrency,
            )
            self.dispatcher = Dispatcher(self.store, settings, self._egress, clock=clock)
            self.service.on_due(self.dispatcher.wake)

    async def start(self) -> str | None:
        """Migrate, make the first admin key if needed (returned, to show once), dispatch."""
        await self.store.migrate()
        generated = await self.service.ensure_admin_key()
        if self.dispatcher is not None:
            self._task = asyncio.create_task(self.dispatcher.run(self._stop), name="dispatcher")
        return generated

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._egress is not None:
            await self._egress.close()
        await self.store.close()

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
