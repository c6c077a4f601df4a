"""Wiring: builds the store, catalog, service, egress and dispatcher from Settings, and runs
them for ``hookline serve``, ``api``, ``worker`` and the management commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from .config import Settings
from .dispatcher import Dispatcher
from .egress import Egress
from .metrics import Metrics
from .retention import purge_forever
from .secretbox import SecretBox
from .service import Clock, Service, utcnow
from .store import Store, open_store
from .topics import Catalog

log = logging.getLogger("hookline")


def first_key_notice(key: str) -> str:
    return (
        "\nNo HOOKLINE_API_KEY was set, so hookline made an admin API key.\n"
        f"It is shown this once; keep it safe:\n\n    {key}\n"
    )


class Runtime:
    """One process's hookline; with ``dispatch`` it also delivers and purges."""

    def __init__(self, settings: Settings, *, dispatch: bool, clock: Clock = utcnow) -> None:
        self.settings = settings
        self.clock = clock
        box = SecretBox.from_settings(settings.secret_key, settings.key_file)
        self.store: Store = open_store(settings.database_url, box, pool_size=settings.db_pool_size)
        self.metrics = Metrics()
        self.service = Service(
            self.store,
            settings,
            Catalog.load(settings.topics_file),
            clock=clock,
            metrics=self.metrics,
        )
        self.dispatcher: Dispatcher | None = None
        self._egress: Egress | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: asyncio.Task[None] | None = None
        if dispatch:
            self._egress = Egress(
                self.service.guard,
                timeout=settings.attempt_timeout,
                body_limit=settings.response_body_max,
                # a connection for every slot of both lanes
                max_connections=settings.concurrency + settings.retry_concurrency,
                local_prefix=settings.inbox_prefix,
                local_capture=self.service.inboxes.capture,
            )
            self.dispatcher = Dispatcher(
                self.store,
                settings,
                self._egress,
                clock=clock,
                on_alerts=self.service.announce,
                metrics=self.metrics,
            )
            self.service.on_due(self.dispatcher.wake)

    async def start(self) -> str | None:
        """Migrate, make the first admin key if needed (returned, to show once), dispatch."""
        try:
            await self.store.migrate()
            generated = await self.service.ensure_admin_key()
            if self.dispatcher is not None:
                await self.store.reserve_dispatch()
        except BaseException:
            await self.store.close()
            raise
        if self.dispatcher is not None:
            # the listener runs until cancelled; the others finish their work once told to stop
            self._listener = self._spawn(self.store.listen(self.dispatcher.wake), "listener")
            self._spawn(self.dispatcher.run(self._stop), "dispatcher")
            self._spawn(
                purge_forever(self.store, self.settings, self.clock, self._stop), "retention"
            )
        return generated

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=f"hookline-{name}")
        self._tasks.append(task)
        return task

    async def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._egress is not None:
            await self._egress.close()
        await self.store.close()

    @property
    def dispatching(self) -> bool:
        """This process delivers, and its dispatcher is running."""
        return any(
            task.get_name() == "hookline-dispatcher" and not task.done() for task in self._tasks
        )

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
