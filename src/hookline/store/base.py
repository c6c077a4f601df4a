"""The store interface: everything hookline keeps, behind one set of async methods.

A backend runs its own SQL, turns rows into ``models`` records and translates driver errors
into ``errors`` before they leave it. The deliveries table is the delivery queue: a
dispatcher claims due rows under a lease (``claim``) and reports what happened (``record``).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..metrics import QueueStats
from ..models import (
    ApiKey,
    Delivery,
    DeliveryDetail,
    DeliveryFilter,
    DeliveryStatus,
    Event,
    Inbox,
    InboxRequest,
    Job,
    Lane,
    Outcome,
    Page,
    Session,
    Tenant,
    Webhook,
    WebhookAlert,
    WebhookSummary,
)
from ..secretbox import SecretBox


@dataclass(frozen=True, slots=True, kw_only=True)
class NewEvent:
    """An event to store, with the deliveries it fans out to."""

    id: str
    tenant_id: str
    action: str
    payload: bytes
    created_at: datetime
    #: deliver to this webhook alone (a test event), whatever it subscribes to
    only_webhook_id: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    idempotency_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEvent:
    event: Event
    delivery_ids: tuple[str, ...]
    #: True when an Idempotency-Key matched an earlier publish and nothing new was stored
    replayed: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordRules:
    """What recording attempts decides about their webhooks."""

    #: disable a webhook whose every attempt has failed for this long
    disable_after: timedelta
    #: raise the failing alert when this many attempts in a row have failed
    failing_threshold: int


def alert(webhook: Webhook, kind: str, consecutive_failures: int, reason: str) -> WebhookAlert:
    return WebhookAlert(
        tenant_id=webhook.tenant_id,
        webhook_id=webhook.id,
        name=webhook.name,
        url=webhook.url,
        kind=kind,
        reason=reason,
        consecutive_failures=consecutive_failures,
        failing_since=webhook.failing_since,
    )


#: what a dispatcher's round comes to: the alerts of the attempts recorded, each lane's claim
RoundResult = tuple[list[WebhookAlert], dict[Lane, list[Job]]]


class Store(abc.ABC):
    #: seals webhook secrets on the way in and opens them on the way out
    box: SecretBox

    def _revealed(self, webhook: Webhook) -> Webhook:
        return replace(
            webhook,
            secret=self.box.open(webhook.secret),
            previous_secret=self.box.open(webhook.previous_secret),
        )

    @abc.abstractmethod
    async def reseal_secrets(self) -> int:
        """Seal again, under the primary key, every webhook secret sealed with another key (or
        stored before encryption); return how many changed."""

    @abc.abstractmethod
    async def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def reserve_dispatch(self) -> None:  # noqa: B027 - an optional hook
        """Called before a process starts dispatching; a backend that allows only one
        dispatching process raises ``Conflict`` when another holds the role."""

    async def listen(self, on_due: Callable[[], None]) -> None:
        """Call ``on_due`` whenever another process makes deliveries due; runs until
        cancelled. Backends without notifications rely on polling and in-process wake-ups."""
        await asyncio.Event().wait()

    # -- API keys ------------------------------------------------------------------------------

    @abc.abstractmethod
    async def add_api_key(
        self,
        key_id: str,
        tenant_id: str,
        key_hash: str,
        now: datetime,
        *,
        is_admin: bool = True,
        name: str = "",
    ) -> None: ...

    @abc.abstractmethod
    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The unrevoked key with that hash, or None."""

    @abc.abstractmethod
    async def touch_api_key(self, key_id: str, now: datetime) -> None:
        """Remember that the key was used."""

    @abc.abstractmethod
    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]: ...

    @abc.abstractmethod
    async def revoke_api_key(self, tenant_id: str, key_id: str, now: datetime) -> None:
        """Revoke the tenant's key; NotFound if it has no such key."""

    @abc.abstractmethod
    async def count_api_keys(self) -> int: ...

    # -- tenants -------------------------------------------------------------------------------

    @abc.abstractmethod
    async def add_tenant(self, tenant: Tenant) -> None: ...

    @abc.abstractmethod
    async def get_tenant(self, tenant_id: str) -> Tenant:
        """NotFound unless it exists."""

    @abc.abstractmethod
    async def list_tenants(self) -> list[Tenant]:
        """Oldest first."""

    # -- webhooks ------------------------------------------------------------------------------

    @abc.abstractmethod
    async def insert_webhook(self, webhook: Webhook) -> None: ...

    @abc.abstractmethod
    async def get_webhook(self, tenant_id: str, webhook_id: str) -> Webhook:
        """Raise NotFound unless the tenant has that webhook."""

    @abc.abstractmethod
    async def list_webhooks(self, tenant_id: str, cursor: str | None, limit: int) -> Page: ...

    @abc.abstractmethod
    async def count_webhooks(self, tenant_id: str) -> int: ...

    @abc.abstractmethod
    async def update_webhook(self, webhook: Webhook) -> None:
        """Replace the stored webhook (same id and tenant); raise NotFound if it is gone."""

    @abc.abstractmethod
    async def delete_webhook(self, tenant_id: str, webhook_id: str) -> None:
        """Delete the webhook with its deliveries and attempts; raise NotFound if none."""

    # -- events --------------------------------------------------------------------------------

    @abc.abstractmethod
    async def insert_event(self, new: NewEvent) -> StoredEvent:
        """Store the event and one delivery per subscribed webhook, atomically: pending for an
        enabled webhook, skipped for a disabled one.

        With an idempotency key already stored and unexpired, store nothing and return the
        original event (``replayed``); raise IdempotencyConflict if its request hash differs.
        """

    @abc.abstractmethod
    async def get_event(self, tenant_id: str, event_id: str) -> Event: ...

    # -- deliveries ----------------------------------------------------------------------------

    @abc.abstractmethod
    async def list_deliveries(
        self, query: DeliveryFilter, cursor: str | None, limit: int
    ) -> Page: ...

    @abc.abstractmethod
    async def get_delivery(self, tenant_id: str, delivery_id: str) -> DeliveryDetail: ...

    @abc.abstractmethod
    async def redeliver(self, tenant_id: str, delivery_id: str, now: datetime) -> Delivery:
        """Make the delivery due now for one manual attempt (its webhook-id unchanged)."""

    # -- the dispatcher's queue ----------------------------------------------------------------

    @abc.abstractmethod
    async def claim(
        self,
        now: datetime,
        limit: int,
        lease_until: datetime,
        lease_token: str,
        lane: Lane = Lane.FIRST,
        failed_blocks: bool = False,
    ) -> list[Job]:
        """Lease up to ``limit`` due deliveries of the lane (pending, or delivering with an
        expired lease), oldest first, never more per webhook than its free slots; for an
        ordered webhook only its oldest unfinished delivery (held back by a failed one when
        ``failed_blocks``). Disabled and paused webhooks are skipped."""

    @abc.abstractmethod
    async def record(
        self, outcomes: list[Outcome], now: datetime, rules: RecordRules
    ) -> list[WebhookAlert]:
        """Store the attempts and move each delivery on, unless its lease was taken meanwhile;
        update each webhook's failure streak, pause and enabled state; return the alerts."""

    @abc.abstractmethod
    async def record_and_claim(
        self,
        outcomes: list[Outcome],
        now: datetime,
        rules: RecordRules,
        wants: Mapping[Lane, int],
        lease_until: datetime,
        lease_token: str,
        failed_blocks: bool = False,
    ) -> RoundResult:
        """One round of the dispatcher, in one transaction: ``record`` the outcomes, then
        ``claim`` up to each lane's want. The slots the recorded attempts held are free again
        for the claim, so a webhook at its cap is not skipped for attempts that have already
        finished."""

    @abc.abstractmethod
    async def replay(
        self,
        tenant_id: str,
        webhook_id: str,
        statuses: tuple[DeliveryStatus, ...],
        since: datetime | None,
        until: datetime | None,
        now: datetime,
        spacing: timedelta,
        changed_since: datetime | None = None,
    ) -> int:
        """Make the webhook's deliveries in those statuses (created in the range, and last
        attempted or skipped since ``changed_since``) due again, one every ``spacing`` from
        ``now``, with a fresh retry schedule; return how many."""

    @abc.abstractmethod
    async def release(self, jobs: list[Job], now: datetime) -> None:
        """Give leased, unsent deliveries back to the queue, due now."""

    @abc.abstractmethod
    async def next_due_at(self) -> datetime | None:
        """When the earliest queued delivery becomes due (or its lease expires)."""

    # -- what the UI shows -----------------------------------------------------------------------

    @abc.abstractmethod
    async def webhook_summaries(
        self, tenant_id: str, webhook_ids: list[str], since: datetime
    ) -> dict[str, WebhookSummary]:
        """Each webhook's last delivery, and its attempts' outcomes since ``since``."""

    @abc.abstractmethod
    async def delivery_counts(
        self, tenant_id: str, webhook_id: str, since: datetime, bucket_seconds: int, buckets: int
    ) -> list[dict[str, int]]:
        """Deliveries created in each of ``buckets`` equal spans from ``since``, by status."""

    @abc.abstractmethod
    async def queue_stats(self, now: datetime) -> QueueStats:
        """How many deliveries are due, since when the oldest, how many webhooks disabled."""

    # -- sessions ------------------------------------------------------------------------------

    @abc.abstractmethod
    async def add_session(self, session: Session, now: datetime) -> None: ...

    @abc.abstractmethod
    async def get_session(self, token_hash: str, now: datetime) -> Session | None:
        """The unexpired session with that token hash, or None."""

    @abc.abstractmethod
    async def delete_session(self, token_hash: str) -> None: ...

    # -- test inboxes --------------------------------------------------------------------------

    @abc.abstractmethod
    async def add_inbox(self, inbox: Inbox) -> None: ...

    @abc.abstractmethod
    async def get_inbox(self, tenant_id: str, inbox_id: str) -> Inbox: ...

    @abc.abstractmethod
    async def list_inboxes(self, tenant_id: str, now: datetime) -> list[Inbox]:
        """The tenant's unexpired inboxes, newest first."""

    @abc.abstractmethod
    async def delete_inbox(self, tenant_id: str, inbox_id: str) -> None: ...

    @abc.abstractmethod
    async def capture(self, token: str, request: InboxRequest, now: datetime, keep: int) -> bool:
        """Keep a request sent to the inbox with that token (the newest ``keep`` are kept);
        False when there is no such unexpired inbox."""

    @abc.abstractmethod
    async def inbox_requests(self, inbox_id: str, limit: int) -> list[InboxRequest]:
        """Newest first."""

    # -- retention -----------------------------------------------------------------------------

    @abc.abstractmethod
    async def purge(self, before: datetime, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` events created before ``before``, with their deliveries and
        attempts; and, expired by ``now``, up to ``limit`` idempotency keys, sessions and
        inboxes (with their requests). Return how many events went."""
