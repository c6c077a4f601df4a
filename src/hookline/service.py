"""Every use case of hookline, once. The API, the UI and the CLI all call this.

The service validates input, shapes records and asks the store; it knows nothing of HTTP
frameworks or SQL drivers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import orjson

from .config import Settings
from .egress import EgressBlocked, EgressGuard
from .errors import (
    Conflict,
    InvalidInput,
    InvalidJSON,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
)
from .ids import new_id, token_hash
from .inboxes import Inboxes
from .metrics import Metrics, QueueStats
from .models import (
    DEFAULT_TENANT,
    ApiKey,
    Delivery,
    DeliveryDetail,
    DeliveryFilter,
    DeliveryStatus,
    Event,
    Outcome,
    Page,
    Principal,
    Tenant,
    Topic,
    Webhook,
    WebhookAlert,
    WebhookSummary,
)
from .sessions import Sessions
from .signing import generate_secret
from .store import NewEvent, Store, StoredEvent
from .topics import Catalog

Clock = Callable[[], datetime]

#: the value of ``secret`` that asks hookline to generate one
GENERATE: Final = "generate"
MAX_NAME = 255
MAX_URL = 2048
MAX_SECRET = 1024
MAX_IDEMPOTENCY_KEY = 255
MAX_PAGE = 500
MAX_TOPICS = 100
MAX_OVERLAP = 30 * 86400
KEY_USE_RESOLUTION = timedelta(minutes=1)
MAX_IN_FLIGHT = 100
MAX_RATE_LIMIT = 10_000
#: hookline's own topics start with this
OPERATIONAL_PREFIX = "hookline."
REPLAYABLE = {
    "failed": (DeliveryStatus.FAILED, DeliveryStatus.SKIPPED),
    "skipped": (DeliveryStatus.SKIPPED,),
    "all": (DeliveryStatus.FAILED, DeliveryStatus.SKIPPED, DeliveryStatus.SUCCEEDED),
}


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "leave as it is" in updates, where None means "remove"
UNSET: Final = _Unset()


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedWebhook:
    webhook: Webhook
    #: a secret hookline generated, shown this once and never again
    generated_secret: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TestSent:
    event_id: str
    delivery_id: str


class Service:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        catalog: Catalog,
        *,
        clock: Clock = utcnow,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.box = store.box
        self.settings = settings
        self.catalog = catalog
        self.clock = clock
        self.guard = EgressGuard(
            settings.egress_allow,
            allow_metadata=settings.egress_allow_metadata,
            https_only=settings.egress_https_only,
        )
        self._wake_listeners: list[Callable[[], None]] = []
        self._publish_buckets: dict[str, tuple[float, float]] = {}
        self.sessions = Sessions(self)
        self.inboxes = Inboxes(self)
        self.metrics = metrics or Metrics()

    def on_due(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever deliveries become due (a dispatcher's wake-up)."""
        self._wake_listeners.append(listener)

    def _wake(self) -> None:
        for listener in self._wake_listeners:
            listener()

    # -- access --------------------------------------------------------------------------------

    async def ensure_admin_key(self) -> str | None:
        """On first start without HOOKLINE_API_KEY, make an admin key; return it to show once."""
        if self.settings.api_key or await self.store.count_api_keys():
            return None
        key = "hk_" + secrets.token_urlsafe(32)
        await self.store.add_api_key(
            new_id("key"), DEFAULT_TENANT, token_hash(key), self.clock(), name="first admin key"
        )
        return key

    async def authenticate(self, key: str | None, acting_for: str | None = None) -> Principal:
        """Who an API key is: an admin acts for the default tenant or ``acting_for`` (the
        X-Hookline-Tenant header); a tenant key for its own tenant only. Unauthorized if the
        key is missing, unknown or revoked; NotFound for a tenant the key cannot see."""
        if not key:
            raise Unauthorized()
        configured = self.settings.api_key
        if configured and hmac.compare_digest(key.encode(), configured.encode()):
            principal = Principal(tenant_id=DEFAULT_TENANT, is_admin=True, key_id=None)
        else:
            stored = await self.store.find_api_key(token_hash(key))
            if stored is None:
                raise Unauthorized("unknown or revoked API key")
            await self._touch(stored)
            principal = Principal(
                tenant_id=stored.tenant_id, is_admin=stored.is_admin, key_id=stored.id
            )
        if acting_for and acting_for != principal.tenant_id:
            if not principal.is_admin:
                raise NotFound(f"no tenant {acting_for}")  # never say it exists
            await self.store.get_tenant(acting_for)
            principal = replace(principal, tenant_id=acting_for)
        return principal

    async def _touch(self, key: ApiKey) -> None:
        """Remember a key's last use, at most once a minute (a write per request is waste)."""
        now = self.clock()
        if key.last_used_at is None or now - key.last_used_at > KEY_USE_RESOLUTION:
            await self.store.touch_api_key(key.id, now)

    # -- tenants and keys ----------------------------------------------------------------------

    async def create_tenant(self, name: Any) -> Tenant:
        tenant = Tenant(id=new_id("ten"), name=self._check_name(name), created_at=self.clock())
        await self.store.add_tenant(tenant)
        return tenant

    async def list_tenants(self) -> list[Tenant]:
        return await self.store.list_tenants()

    async def create_api_key(
        self, tenant_id: str, name: Any = "", *, is_admin: bool = False
    ) -> tuple[ApiKey, str]:
        """A new key for the tenant, returned with the key itself, which is shown this once."""
        await self.store.get_tenant(tenant_id)
        label = name.strip()[:MAX_NAME] if isinstance(name, str) else ""
        key = "hk_" + secrets.token_urlsafe(32)
        key_id = new_id("key")
        now = self.clock()
        await self.store.add_api_key(
            key_id, tenant_id, token_hash(key), now, is_admin=is_admin, name=label
        )
        return (
            ApiKey(
                id=key_id,
                tenant_id=tenant_id,
                name=label,
                is_admin=is_admin,
                created_at=now,
                last_used_at=None,
                revoked_at=None,
            ),
            key,
        )

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        return await self.store.list_api_keys(tenant_id)

    async def revoke_api_key(self, tenant_id: str, key_id: str) -> None:
        await self.store.revoke_api_key(tenant_id, key_id, self.clock())

    # -- topics --------------------------------------------------------------------------------

    def topics(self) -> list[Topic]:
        return list(self.catalog)

    # -- webhooks ------------------------------------------------------------------------------

    def _check_name(self, name: Any) -> str:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("name", "a name is required")
        if len(name) > MAX_NAME:
            raise InvalidInput("name", f"at most {MAX_NAME} characters")
        _refuse_control_characters("name", name)
        return name.strip()

    def _check_url(self, given: Any) -> str:
        if not isinstance(given, str) or not given.strip():
            raise InvalidInput("url", "a Payload URL is required")
        url = given.strip()
        if len(url) > MAX_URL:
            raise InvalidInput("url", f"at most {MAX_URL} characters")
        _refuse_control_characters("url", url)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise InvalidInput("url", f"not a valid URL: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise InvalidInput("url", "must start with http:// or https://")
        if not parts.hostname:
            raise InvalidInput("url", "must name a host")
        if parts.username is not None or parts.password is not None:
            raise InvalidInput("url", "must not contain credentials; use a secret instead")
        if port == 0:
            raise InvalidInput("url", "port 0 cannot be reached")
        if url.startswith(self.settings.inbox_prefix):
            return url  # a test inbox: delivered in-process, never through the network
        try:
            self.guard.check_url(url)
        except EgressBlocked as exc:
            raise InvalidInput("url", str(exc)) from None
        return url

    def _check_topics(self, topics: Any) -> tuple[str, ...]:
        if isinstance(topics, str) or not isinstance(topics, Sequence) or not topics:
            raise InvalidInput("topics", "choose at least one topic")
        if len(topics) > MAX_TOPICS:
            raise InvalidInput("topics", f"at most {MAX_TOPICS} topics")
        unique: list[str] = []
        for topic in topics:
            if not isinstance(topic, str):
                raise InvalidInput("topics", "topics are names (strings)")
            self.catalog.get(topic, field="topics")
            if topic not in unique:
                unique.append(topic)
        return tuple(unique)

    def _check_secret(self, secret: Any) -> tuple[str | None, str | None]:
        """(secret to store, secret to reveal once)."""
        if secret is None or secret == "":
            return None, None
        if not isinstance(secret, str):
            raise InvalidInput("secret", "must be a string")
        if secret == GENERATE:
            generated = generate_secret()
            return generated, generated
        if len(secret) > MAX_SECRET:
            raise InvalidInput("secret", f"at most {MAX_SECRET} characters")
        _refuse_control_characters("secret", secret)
        return secret, None

    def _check_limits(self, max_in_flight: Any, rate_limit: Any, ordered: Any) -> dict[str, Any]:
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int):
            raise InvalidInput("max_in_flight", "a whole number of requests")
        if not 1 <= max_in_flight <= MAX_IN_FLIGHT:
            raise InvalidInput("max_in_flight", f"between 1 and {MAX_IN_FLIGHT}")
        if rate_limit is not None:
            if isinstance(rate_limit, bool) or not isinstance(rate_limit, int | float):
                raise InvalidInput("rate_limit", "requests per second, or null for no limit")
            if not 0 < rate_limit <= MAX_RATE_LIMIT:
                raise InvalidInput("rate_limit", f"more than 0 and at most {MAX_RATE_LIMIT}")
        if not isinstance(ordered, bool):
            raise InvalidInput("ordered", "must be true or false")
        return {"max_in_flight": max_in_flight, "rate_limit": rate_limit, "ordered": ordered}

    async def create_webhook(
        self,
        tenant_id: str,
        *,
        name: Any,
        url: Any,
        topics: Any,
        secret: Any = None,
        enabled: Any = True,
        max_in_flight: Any = None,
        rate_limit: Any = None,
        ordered: Any = False,
    ) -> SavedWebhook:
        stored_secret, revealed = self._check_secret(secret)
        if not isinstance(enabled, bool):
            raise InvalidInput("enabled", "must be true or false")
        limits = self._check_limits(
            self.settings.max_in_flight if max_in_flight is None else max_in_flight,
            rate_limit,
            ordered,
        )
        if await self.store.count_webhooks(tenant_id) >= self.settings.max_webhooks:
            raise Conflict(
                f"this tenant has {self.settings.max_webhooks} webhooks, the most allowed "
                "(HOOKLINE_MAX_WEBHOOKS)"
            )
        now = self.clock()
        webhook = Webhook(
            id=new_id("wh"),
            tenant_id=tenant_id,
            name=self._check_name(name),
            url=self._check_url(url),
            topics=self._check_topics(topics),
            enabled=enabled,
            secret=stored_secret,
            created_at=now,
            updated_at=now,
            **limits,
        )
        await self.store.insert_webhook(webhook)
        return SavedWebhook(webhook=webhook, generated_secret=revealed)

    async def get_webhook(self, tenant_id: str, webhook_id: str) -> Webhook:
        return await self.store.get_webhook(tenant_id, webhook_id)

    async def list_webhooks(
        self, tenant_id: str, cursor: str | None = None, limit: int = 100
    ) -> Page:
        return await self.store.list_webhooks(tenant_id, cursor, _limit(limit))

    async def update_webhook(
        self,
        tenant_id: str,
        webhook_id: str,
        *,
        name: Any = UNSET,
        url: Any = UNSET,
        topics: Any = UNSET,
        secret: Any = UNSET,
        enabled: Any = UNSET,
        max_in_flight: Any = UNSET,
        rate_limit: Any = UNSET,
        ordered: Any = UNSET,
    ) -> SavedWebhook:
        webhook = await self.store.get_webhook(tenant_id, webhook_id)
        changes: dict[str, Any] = {}
        revealed = None
        if name is not UNSET:
            changes["name"] = self._check_name(name)
        if url is not UNSET:
            changes["url"] = self._check_url(url)
        if topics is not UNSET:
            changes["topics"] = self._check_topics(topics)
        if secret is not UNSET:
            changes["secret"], revealed = self._check_secret(secret)
        if enabled is not UNSET:
            if not isinstance(enabled, bool):
                raise InvalidInput("enabled", "must be true or false")
            changes["enabled"] = enabled
            if enabled:
                changes.update(disabled_at=None, disabled_reason=None)
        if (max_in_flight, rate_limit, ordered) != (UNSET, UNSET, UNSET):
            changes.update(
                self._check_limits(
                    webhook.max_in_flight if max_in_flight is UNSET else max_in_flight,
                    webhook.rate_limit if rate_limit is UNSET else rate_limit,
                    webhook.ordered if ordered is UNSET else ordered,
                )
            )
        if changes:
            webhook = replace(webhook, **changes, updated_at=self.clock())
            await self.store.update_webhook(webhook)
            self._wake()  # re-enabled: its held deliveries may be due
        return SavedWebhook(webhook=webhook, generated_secret=revealed)

    async def rotate_secret(
        self,
        tenant_id: str,
        webhook_id: str,
        secret: Any = GENERATE,
        overlap: float | None = None,
    ) -> SavedWebhook:
        """A new secret now; the old one keeps signing beside it for ``overlap`` seconds
        (default HOOKLINE_SECRET_OVERLAP), so receivers can switch without missing a beat."""
        webhook = await self.store.get_webhook(tenant_id, webhook_id)
        new_secret, revealed = self._check_secret(secret)
        if new_secret is None:
            raise InvalidInput("secret", 'a new secret, or "generate"')
        window = self.settings.secret_overlap if overlap is None else overlap
        if not 0 <= window <= MAX_OVERLAP:
            raise InvalidInput("overlap", f"between 0 and {MAX_OVERLAP:g} seconds")
        now = self.clock()
        rotated = replace(
            webhook,
            secret=new_secret,
            previous_secret=webhook.secret if window else None,
            previous_secret_until=now + timedelta(seconds=window)
            if webhook.secret and window
            else None,
            updated_at=now,
        )
        await self.store.update_webhook(rotated)
        return SavedWebhook(webhook=rotated, generated_secret=revealed)

    async def delete_webhook(self, tenant_id: str, webhook_id: str) -> None:
        await self.store.delete_webhook(tenant_id, webhook_id)

    # -- events --------------------------------------------------------------------------------

    def _parse_event(self, body: bytes) -> tuple[str, Any]:
        if len(body) > self.settings.max_payload_bytes:
            raise PayloadTooLarge(
                f"the body is {len(body)} bytes; the limit is {self.settings.max_payload_bytes}"
            )
        try:
            # orjson refuses NaN, Infinity, lone surrogates and invalid UTF-8
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidJSON(f"the body is not valid JSON: {exc}") from None
        _refuse_deep_nesting(document, self.settings.max_json_depth)
        # one key twice in an object: receivers would disagree on which one counts
        json.loads(body, object_pairs_hook=_refuse_duplicate_keys)
        if not isinstance(document, dict):
            raise InvalidInput("body", 'expected a JSON object {"action": ..., "data": {...}}')
        unknown = sorted(set(document) - {"action", "data"})
        if unknown:
            raise InvalidInput(unknown[0], 'unknown field; an event is {"action", "data"}')
        action = document.get("action")
        if not isinstance(action, str) or not action:
            raise InvalidInput("action", "the topic name is required")
        self.catalog.get(action, field="action")
        if "data" not in document:
            raise InvalidInput("data", "required")
        if not isinstance(document["data"], dict):
            raise InvalidInput("data", "must be a JSON object")
        if self.settings.validate_payloads:
            self.catalog.validate(action, document["data"])
        return action, document["data"]

    async def publish(
        self,
        tenant_id: str,
        body: bytes,
        idempotency_key: str | None = None,
        *,
        rate_key: str | None = None,
    ) -> StoredEvent:
        """Store an event ``{"action", "data"}`` (these exact bytes) and fan it out durably.
        ``rate_key`` (the API key's id) is held to HOOKLINE_PUBLISH_RATE."""
        if rate_key is not None and self.settings.publish_rate > 0:
            self._spend_publish_token(rate_key)
        action, _ = self._parse_event(body)
        now = self.clock()
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise InvalidInput("Idempotency-Key", f"1 to {MAX_IDEMPOTENCY_KEY} characters")
        stored = await self.store.insert_event(
            NewEvent(
                id=new_id("evt"),
                tenant_id=tenant_id,
                action=action,
                payload=body,
                created_at=now,
                idempotency_key=idempotency_key,
                request_hash=hashlib.sha256(body).hexdigest() if idempotency_key else None,
                idempotency_expires_at=(
                    now + timedelta(seconds=self.settings.idempotency_ttl)
                    if idempotency_key
                    else None
                ),
            )
        )
        if not stored.replayed:
            self.metrics.published(action)
            if stored.delivery_ids:
                self._wake()
        return stored

    def _spend_publish_token(self, rate_key: str) -> None:
        """A token bucket per key: bursts up to one second's worth, then the rate."""
        rate = self.settings.publish_rate
        now = time.monotonic()
        tokens, last = self._publish_buckets.get(rate_key, (rate, now))
        tokens = min(rate, tokens + (now - last) * rate)
        if tokens < 1:
            raise RateLimited(
                f"this key may publish {rate:g} events a second (HOOKLINE_PUBLISH_RATE)",
                retry_after=(1 - tokens) / rate,
            )
        self._publish_buckets[rate_key] = (tokens - 1, now)

    async def publish_data(
        self, tenant_id: str, action: str, data: Any, idempotency_key: str | None = None
    ) -> StoredEvent:
        """Publish from Python values (the CLI, tests): serialised once, then as ``publish``."""
        return await self.publish(
            tenant_id, orjson.dumps({"action": action, "data": data}), idempotency_key
        )

    async def send_test(
        self, tenant_id: str, webhook_id: str, topic: str | None = None
    ) -> TestSent:
        """Send the topic's example payload to this webhook alone."""
        webhook = await self.store.get_webhook(tenant_id, webhook_id)
        chosen = self.catalog.get(topic or webhook.topics[0])
        stored = await self.store.insert_event(
            NewEvent(
                id=new_id("evt"),
                tenant_id=tenant_id,
                action=chosen.name,
                payload=orjson.dumps({"action": chosen.name, "data": chosen.example}),
                created_at=self.clock(),
                only_webhook_id=webhook.id,
            )
        )
        self._wake()
        return TestSent(event_id=stored.event.id, delivery_id=stored.delivery_ids[0])

    async def get_event(self, tenant_id: str, event_id: str) -> Event:
        return await self.store.get_event(tenant_id, event_id)

    # -- deliveries ----------------------------------------------------------------------------

    async def list_deliveries(
        self, query: DeliveryFilter, cursor: str | None = None, limit: int = 50
    ) -> Page:
        if query.webhook_id is not None:
            await self.store.get_webhook(query.tenant_id, query.webhook_id)
        return await self.store.list_deliveries(query, cursor, _limit(limit))

    async def get_delivery(self, tenant_id: str, delivery_id: str) -> DeliveryDetail:
        return await self.store.get_delivery(tenant_id, delivery_id)

    async def webhook_summaries(
        self, tenant_id: str, webhooks: Sequence[Webhook]
    ) -> dict[str, WebhookSummary]:
        """Each webhook's last delivery and its last 24 hours of attempts."""
        since = self.clock() - timedelta(hours=24)
        return await self.store.webhook_summaries(tenant_id, [w.id for w in webhooks], since)

    async def delivery_chart(
        self, tenant_id: str, webhook_id: str, hours: int = 24
    ) -> list[ChartBucket]:
        """Deliveries per hour over the last ``hours``, by status, oldest first."""
        now = self.clock().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        since = now - timedelta(hours=hours)
        counts = await self.store.delivery_counts(tenant_id, webhook_id, since, 3600, hours)
        return [
            ChartBucket(start=since + timedelta(hours=index), counts=bucket)
            for index, bucket in enumerate(counts)
        ]

    async def replay(
        self,
        tenant_id: str,
        webhook_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        status: str = "failed",
        changed_since: datetime | None = None,
    ) -> int:
        """Send again what did not arrive ("failed": failed and skipped deliveries) or
        everything ("all") created in the range, spaced at the replay rate; return how many."""
        chosen = REPLAYABLE.get(status)
        if chosen is None:
            raise InvalidInput("status", f"one of {', '.join(REPLAYABLE)}")
        spacing = timedelta(seconds=1 / self.settings.replay_rate)
        count = await self.store.replay(
            tenant_id, webhook_id, chosen, since, until, self.clock(), spacing, changed_since
        )
        if count:
            self._wake()
        return count

    async def announce(self, alerts: list[WebhookAlert], failed: list[Outcome]) -> None:
        """Publish hookline's own events about webhooks and deliveries, to whoever subscribes
        to them, through the same pipeline. Nothing is said about deliveries of these events
        themselves: a failing alert receiver must not feed itself."""
        for alert in alerts:
            topic = (
                "hookline.webhook_disabled"
                if alert.kind == "disabled"
                else ("hookline.webhook_failing")
            )
            await self.publish_data(
                alert.tenant_id,
                topic,
                {
                    "webhook_id": alert.webhook_id,
                    "name": alert.name,
                    "url": alert.url,
                    "reason": alert.reason,
                    "consecutive_failures": alert.consecutive_failures,
                    "failing_since": alert.failing_since.isoformat()
                    if alert.failing_since
                    else None,
                },
            )
        for outcome in failed:
            if outcome.job.topic.startswith(OPERATIONAL_PREFIX):
                continue
            attempt = outcome.attempt
            await self.publish_data(
                outcome.job.tenant_id,
                "hookline.delivery_failed",
                {
                    "delivery_id": outcome.job.delivery_id,
                    "webhook_id": outcome.job.webhook_id,
                    "topic": outcome.job.topic,
                    "attempts": attempt.number,
                    "last_status_code": attempt.response_status,
                    "error_kind": attempt.error_kind.value if attempt.error_kind else None,
                },
            )

    async def queue_stats(self) -> QueueStats:
        return await self.store.queue_stats(self.clock())

    async def redeliver(self, tenant_id: str, delivery_id: str) -> Delivery:
        """Send the delivery again now, same payload and webhook-id."""
        delivery = await self.store.redeliver(tenant_id, delivery_id, self.clock())
        self._wake()
        return delivery


@dataclass(frozen=True, slots=True, kw_only=True)
class ChartBucket:
    start: datetime
    counts: dict[str, int]


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InvalidJSON(f"the key {key!r} appears twice in one object")
        seen[key] = value
    return seen


def _refuse_deep_nesting(document: Any, limit: int) -> None:
    level = [document]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            raise InvalidInput("body", f"nested deeper than {limit} levels")
        level = [
            child
            for node in level
            if isinstance(node, dict | list)
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]


def _refuse_control_characters(field: str, value: str) -> None:
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise InvalidInput(field, "must not contain control characters (tabs, newlines, NUL)")


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"between 1 and {MAX_PAGE}")
    return limit
