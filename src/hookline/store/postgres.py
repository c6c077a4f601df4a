"""The PostgreSQL store: several API and dispatcher processes, on several machines, share it.

Dispatchers claim with ``FOR UPDATE SKIP LOCKED`` so they never wait on each other's rows,
write each batch of attempts and state changes in one statement each, and wake on
``NOTIFY hookline_due`` (sent in the transaction that makes deliveries due) instead of
polling. Connections come from a pool; a broken one is replaced on its next use, so the
processes carry on by themselves after a database restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson

from ..errors import IdempotencyConflict, NotFound, StoreUnavailable
from ..ids import id_floor, new_id
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
from .base import NewEvent, RecordRules, RoundResult, Store, StoredEvent, alert
from .rows import (
    NOUNS,
    RETRY_HORIZON,
    api_key_from,
    attempt_from,
    delivery_from,
    event_from,
    inbox_from,
    inbox_request_from,
    job_from,
    page_of,
    session_from,
    tenant_from,
    webhook_from,
)
from .streaks import judge, quiet, webhook_changes

log = logging.getLogger("hookline.store")

CHANNEL = "hookline_due"
_MIGRATION_LOCK = 0x686F6F6B  # "hook": one migrating process at a time
if TYPE_CHECKING:
    Conn: TypeAlias = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # a pooled connection caught mid-operation by a server restart
    asyncpg.exceptions.InternalClientError,
    OSError,
    asyncio.TimeoutError,
)


@contextlib.asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """Driver errors become StoreUnavailable; nothing of asyncpg leaves the store."""
    try:
        yield
    except _DRIVER_ERRORS as exc:
        raise StoreUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc


async def _json_codec(conn: asyncpg.Connection) -> None:
    """jsonb in and out as Python values, through orjson."""
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda value: orjson.dumps(value).decode(),
        decoder=orjson.loads,
    )


async def _owned(conn: Conn, table: str, tenant_id: str, row_id: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT * FROM {table} WHERE id = $1 AND tenant_id = $2", row_id, tenant_id
    )
    if row is None:
        raise NotFound(f"no {NOUNS[table]} {row_id}")
    return row


class PostgresStore(Store):
    def __init__(self, dsn: str, box: SecretBox, *, pool_size: int = 10) -> None:
        self.box = box
        self.dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()

    async def _connect(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    async with _translated():
                        self._pool = await asyncpg.create_pool(
                            self.dsn,
                            min_size=1,
                            max_size=self._pool_size,
                            init=_json_codec,
                            command_timeout=30,
                        )
        return self._pool

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[Conn]:
        pool = await self._connect()
        async with _translated(), pool.acquire() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        async with self._conn() as conn, conn.transaction():
            yield conn

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def migrate(self) -> list[int]:
        folder = resources.files("hookline.store").joinpath("migrations/postgres")
        scripts = sorted(
            (int(entry.name.split("_")[0]), entry.read_text("utf-8"))
            for entry in folder.iterdir()
            if entry.name.endswith(".sql")
        )
        applied: list[int] = []
        async with self._tx() as conn:
            # several processes may start at once: the first migrates, the others wait
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, script in scripts:
                if version not in done:
                    await conn.execute(script)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)", version
                    )
                    applied.append(version)
        return applied

    async def reseal_secrets(self) -> int:
        async with self._tx() as conn:
            rows = await conn.fetch(
                "SELECT id, secret FROM webhooks WHERE secret IS NOT NULL FOR UPDATE"
            )
            stale = [
                (self.box.seal(self.box.open(row["secret"])), row["id"])
                for row in rows
                if not self.box.sealed_by_primary(row["secret"])
            ]
            await conn.executemany("UPDATE webhooks SET secret = $1 WHERE id = $2", stale)
        return len(stale)

    async def listen(self, on_due: Callable[[], None]) -> None:
        """Hold a connection that LISTENs; reconnect (and wake once, to catch up) if it drops."""
        backoff = 0.5
        while True:
            try:
                conn = await asyncpg.connect(self.dsn)
            except _DRIVER_ERRORS as exc:
                log.warning("cannot LISTEN for due deliveries (%s); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
                continue
            backoff = 0.5
            try:
                await self._listen_on(conn, on_due)
            except _DRIVER_ERRORS as exc:
                log.warning("LISTEN connection lost (%s); reconnecting", exc)
            finally:
                with contextlib.suppress(*_DRIVER_ERRORS):
                    await asyncio.wait_for(conn.close(), timeout=2)

    @staticmethod
    async def _listen_on(conn: asyncpg.Connection, on_due: Callable[[], None]) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        await conn.add_listener(CHANNEL, lambda *_: on_due())
        on_due()  # anything published while nobody was listening
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), timeout=5)
            if not lost.is_set():
                # a server that vanished does not always close the socket: probe it
                await asyncio.wait_for(conn.execute("SELECT 1"), timeout=5)

    # -- API keys ------------------------------------------------------------------------------

    async def add_api_key(
        self,
        key_id: str,
        tenant_id: str,
        key_hash: str,
        now: datetime,
        *,
        is_admin: bool = True,
        name: str = "",
    ) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO api_keys (id, tenant_id, key_hash, created_at, is_admin, name) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                key_id,
                tenant_id,
                key_hash,
                now,
                is_admin,
                name,
            )

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
            )
        return None if row is None else api_key_from(row)

    async def touch_api_key(self, key_id: str, now: datetime) -> None:
        async with self._conn() as conn:
            await conn.execute("UPDATE api_keys SET last_used_at = $1 WHERE id = $2", now, key_id)

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT * FROM api_keys WHERE tenant_id = $1 ORDER BY id", tenant_id
            )
        return [api_key_from(row) for row in rows]

    async def revoke_api_key(self, tenant_id: str, key_id: str, now: datetime) -> None:
        async with self._tx() as conn:
            await _owned(conn, "api_keys", tenant_id, key_id)
            await conn.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2",
                now,
                key_id,
            )

    async def add_tenant(self, tenant: Tenant) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)",
                tenant.id,
                tenant.name,
                tenant.created_at,
            )

    async def get_tenant(self, tenant_id: str) -> Tenant:
        async with self._conn() as conn:
            row = await conn.fetchrow("SELECT * FROM tenants WHERE id = $1", tenant_id)
        if row is None:
            raise NotFound(f"no tenant {tenant_id}")
        return tenant_from(row)

    async def list_tenants(self) -> list[Tenant]:
        async with self._conn() as conn:
            rows = await conn.fetch("SELECT * FROM tenants ORDER BY created_at, id")
        return [tenant_from(row) for row in rows]

    async def count_api_keys(self) -> int:
        async with self._conn() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM api_keys"))

    # -- webhooks ------------------------------------------------------------------------------

    @staticmethod
    async def _write_topics(conn: Conn, webhook: Webhook) -> None:
        await conn.execute("DELETE FROM webhook_topics WHERE webhook_id = $1", webhook.id)
        await conn.execute(
            "INSERT INTO webhook_topics (tenant_id, topic, webhook_id) "
            "SELECT $1, topic, $2 FROM unnest($3::text[]) AS topic",
            webhook.tenant_id,
            webhook.id,
            list(webhook.topics),
        )

    def _webhook_row(self, webhook: Webhook) -> tuple[Any, ...]:
        """The columns a person sets (the failure streak and pause are the dispatcher's)."""
        return (
            webhook.name,
            webhook.url,
            self.box.seal(webhook.secret),
            webhook.enabled,
            list(webhook.topics),
            webhook.max_in_flight,
            webhook.rate_limit,
            webhook.ordered,
            webhook.disabled_at,
            webhook.disabled_reason,
            self.box.seal(webhook.previous_secret),
            webhook.previous_secret_until,
            webhook.updated_at,
            webhook.id,
            webhook.tenant_id,
        )

    async def insert_webhook(self, webhook: Webhook) -> None:
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO webhooks (name, url, secret, enabled, topics, max_in_flight, "
                "rate_limit, ordered, disabled_at, disabled_reason, previous_secret, "
                "previous_secret_until, updated_at, id, tenant_id, created_at) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                *self._webhook_row(webhook),
                webhook.created_at,
            )
            await self._write_topics(conn, webhook)

    async def get_webhook(self, tenant_id: str, webhook_id: str) -> Webhook:
        async with self._conn() as conn:
            return self._revealed(
                webhook_from(await _owned(conn, "webhooks", tenant_id, webhook_id))
            )

    async def list_webhooks(self, tenant_id: str, cursor: str | None, limit: int) -> Page:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT * FROM webhooks WHERE tenant_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                tenant_id,
                cursor or "~",
                limit + 1,
            )
        return page_of([self._revealed(webhook_from(row)) for row in rows], limit)

    async def count_webhooks(self, tenant_id: str) -> int:
        async with self._conn() as conn:
            return int(
                await conn.fetchval("SELECT count(*) FROM webhooks WHERE tenant_id = $1", tenant_id)
            )

    async def update_webhook(self, webhook: Webhook) -> None:
        async with self._tx() as conn:
            # enabling a disabled webhook starts its failure streak afresh
            await conn.execute(
                "UPDATE webhooks SET failing_since = NULL, consecutive_failures = 0, "
                "paused_until = NULL WHERE id = $1 AND tenant_id = $2 AND NOT enabled AND $3",
                webhook.id,
                webhook.tenant_id,
                webhook.enabled,
            )
            status = await conn.execute(
                "UPDATE webhooks SET name = $1, url = $2, secret = $3, enabled = $4, "
                "topics = $5, max_in_flight = $6, rate_limit = $7, ordered = $8, "
                "disabled_at = $9, disabled_reason = $10, previous_secret = $11, "
                "previous_secret_until = $12, updated_at = $13 WHERE id = $14 AND tenant_id = $15",
                *self._webhook_row(webhook),
            )
            if status == "UPDATE 0":
                raise NotFound(f"no webhook {webhook.id}")
            await self._write_topics(conn, webhook)
            if webhook.enabled:
                await conn.execute("SELECT pg_notify($1, '')", CHANNEL)

    async def delete_webhook(self, tenant_id: str, webhook_id: str) -> None:
        async with self._tx() as conn:
            status = await conn.execute(
                "DELETE FROM webhooks WHERE id = $1 AND tenant_id = $2", webhook_id, tenant_id
            )
            if status == "DELETE 0":
                raise NotFound(f"no webhook {webhook_id}")
            await conn.execute("DELETE FROM webhook_topics WHERE webhook_id = $1", webhook_id)
            await conn.execute(
                "DELETE FROM attempts WHERE delivery_id IN "
                "(SELECT id FROM deliveries WHERE webhook_id = $1)",
                webhook_id,
            )
            await conn.execute("DELETE FROM deliveries WHERE webhook_id = $1", webhook_id)

    # -- events --------------------------------------------------------------------------------

    async def _replay(self, conn: Conn, new: NewEvent) -> StoredEvent | None:
        """The earlier publish of this idempotency key, or None after claiming the key."""
        claimed = await conn.fetchval(
            "INSERT INTO idempotency_keys (tenant_id, key, request_hash, event_id, expires_at) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, key) DO UPDATE SET "
            "request_hash = EXCLUDED.request_hash, event_id = EXCLUDED.event_id, "
            "expires_at = EXCLUDED.expires_at WHERE idempotency_keys.expires_at <= $6 "
            "RETURNING event_id",
            new.tenant_id,
            new.idempotency_key,
            new.request_hash,
            new.id,
            new.idempotency_expires_at,
            new.created_at,
        )
        if claimed is not None:
            return None
        row = await conn.fetchrow(
            "SELECT request_hash, event_id FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
            new.tenant_id,
            new.idempotency_key,
        )
        assert row is not None  # the key's row exists: the insert above conflicted with it
        if row["request_hash"] != new.request_hash:
            raise IdempotencyConflict()
        event = event_from(await _owned(conn, "events", new.tenant_id, row["event_id"]))
        ids = await conn.fetch("SELECT id FROM deliveries WHERE event_id = $1", event.id)
        return StoredEvent(event=event, delivery_ids=tuple(r[0] for r in ids), replayed=True)

    async def insert_event(self, new: NewEvent) -> StoredEvent:
        if new.idempotency_key is not None:
            async with self._tx() as conn:
                earlier = await self._replay(conn, new)
                if earlier is not None:
                    return earlier
                ids = await self._insert_event_in(conn, new)
        else:
            # no transaction needed: the event and its deliveries go in one statement, which
            # commits (durably) alone; two round trips a publish instead of six
            async with self._conn() as conn:
                ids = await self._insert_event_in(conn, new)
        event = Event(
            id=new.id,
            tenant_id=new.tenant_id,
            action=new.action,
            payload=new.payload,
            created_at=new.created_at,
            deliveries_count=len(ids),
        )
        return StoredEvent(event=event, delivery_ids=tuple(ids), replayed=False)

    async def _insert_event_in(self, conn: Conn, new: NewEvent) -> list[str]:
        if new.only_webhook_id is not None:
            targets = [(new.only_webhook_id, True)]
        else:
            targets = [
                (row[0], row[1])
                for row in await conn.fetch(
                    "SELECT t.webhook_id, w.enabled FROM webhook_topics t JOIN webhooks w "
                    "ON w.id = t.webhook_id WHERE t.tenant_id = $1 AND t.topic = $2",
                    new.tenant_id,
                    new.action,
                )
            ]
        ids = [new_id("dlv") for _ in targets]
        await conn.execute(
            "WITH event AS (INSERT INTO events (id, tenant_id, action, payload, "
            "deliveries_count, created_at) VALUES ($3, $2, $4, $8, $9, $5)), "
            "delivery AS (INSERT INTO deliveries (id, tenant_id, event_id, webhook_id, topic, "
            "status, next_attempt_at, created_at, updated_at) "
            "SELECT d.id, $2, $3, d.webhook_id, $4, "
            "CASE WHEN d.enabled THEN 'pending' ELSE 'skipped' END, "
            "CASE WHEN d.enabled THEN $5::timestamptz END, $5, $5 "
            "FROM unnest($1::text[], $6::text[], $7::bool[]) AS d(id, webhook_id, enabled)) "
            "SELECT pg_notify($10, '') WHERE $9 > 0",
            ids,
            new.tenant_id,
            new.id,
            new.action,
            new.created_at,
            [webhook_id for webhook_id, _ in targets],
            [enabled for _, enabled in targets],
            new.payload,
            len(targets),
            CHANNEL,
        )
        return ids

    async def get_event(self, tenant_id: str, event_id: str) -> Event:
        async with self._conn() as conn:
            return event_from(await _owned(conn, "events", tenant_id, event_id))

    # -- deliveries ----------------------------------------------------------------------------

    async def list_deliveries(self, query: DeliveryFilter, cursor: str | None, limit: int) -> Page:
        clauses = ["tenant_id = $1", "id < $2"]
        params: list[Any] = [query.tenant_id, cursor or "~"]
        for condition, value in (
            ("webhook_id = ", query.webhook_id),
            ("status = ", query.status.value if query.status else None),
            ("topic = ", query.topic),
            ("event_id = ", query.event_id),
            ("created_at >= ", query.since),
            ("created_at < ", query.until),
        ):
            if value is not None:
                params.append(value)
                clauses.append(f"{condition}${len(params)}")
        params.append(limit + 1)
        sql = (
            f"SELECT * FROM deliveries WHERE {' AND '.join(clauses)} "
            f"ORDER BY id DESC LIMIT ${len(params)}"
        )
        async with self._conn() as conn:
            rows = await conn.fetch(sql, *params)
        return page_of([delivery_from(row) for row in rows], limit)

    async def get_delivery(self, tenant_id: str, delivery_id: str) -> DeliveryDetail:
        async with self._conn() as conn:
            row = await _owned(conn, "deliveries", tenant_id, delivery_id)
            payload = bytes(
                await conn.fetchval("SELECT payload FROM events WHERE id = $1", row["event_id"])
            )
            attempts = await conn.fetch(
                "SELECT * FROM attempts WHERE delivery_id = $1 ORDER BY number, started_at",
                delivery_id,
            )
        return DeliveryDetail(
            delivery=delivery_from(row), attempts=tuple(attempt_from(a, payload) for a in attempts)
        )

    async def redeliver(self, tenant_id: str, delivery_id: str, now: datetime) -> Delivery:
        async with self._tx() as conn:
            row = await conn.fetchrow(
                "UPDATE deliveries SET status = 'pending', manual = true, next_attempt_at = $1, "
                "updated_at = $1 WHERE id = $2 AND tenant_id = $3 AND status != 'delivering' "
                "RETURNING *",
                now,
                delivery_id,
                tenant_id,
            )
            if row is None:
                # in flight right now: the attempt under way is the redelivery asked for
                return delivery_from(await _owned(conn, "deliveries", tenant_id, delivery_id))
            await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
            return delivery_from(row)

    # -- the dispatcher's queue ----------------------------------------------------------------

    async def claim(
        self,
        now: datetime,
        limit: int,
        lease_until: datetime,
        lease_token: str,
        lane: Lane = Lane.FIRST,
        failed_blocks: bool = False,
    ) -> list[Job]:
        async with self._conn() as conn:
            return await self._claim_in(
                conn, now, limit, lease_until, lease_token, lane, failed_blocks
            )

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
        # one transaction, one connection: a round trip for each statement, no more
        async with self._tx() as conn:
            alerts = await self._record_in(conn, outcomes, now, rules) if outcomes else []
            jobs = {
                lane: await self._claim_in(
                    conn, now, want, lease_until, lease_token, lane, failed_blocks
                )
                for lane, want in wants.items()
                if want > 0
            }
        return alerts, jobs

    async def _claim_in(
        self,
        conn: Conn,
        now: datetime,
        limit: int,
        lease_until: datetime,
        lease_token: str,
        lane: Lane,
        failed_blocks: bool,
    ) -> list[Job]:
        head_statuses = ["pending", "delivering"] + (["failed"] if failed_blocks else [])
        # a literal, not a parameter: each lane's condition must match its partial index
        lane_condition = "d.attempts_count = 0" if lane is Lane.FIRST else "d.attempts_count > 0"
        rows = await conn.fetch(
            # each webhook's free slots: its cap less its unexpired leases
            "WITH busy AS (SELECT webhook_id, count(*) AS n FROM deliveries "
            "WHERE status = 'delivering' AND next_attempt_at > $1 GROUP BY webhook_id), "
            "hooks AS (SELECT * FROM (SELECT w.id, w.ordered, (CASE WHEN w.ordered THEN 1 "
            "ELSE w.max_in_flight END) - coalesce(b.n, 0) AS room FROM webhooks w "
            "LEFT JOIN busy b ON b.webhook_id = w.id WHERE w.enabled "
            "AND (w.paused_until IS NULL OR w.paused_until <= $1)) open WHERE room > 0), "
            # unordered webhooks: their oldest due deliveries of this lane, up to the room
            "candidates AS (SELECT c.id, c.next_attempt_at FROM hooks h CROSS JOIN LATERAL "
            "(SELECT d.id, d.next_attempt_at FROM deliveries d WHERE d.webhook_id = h.id "
            "AND d.status IN ('pending', 'delivering') AND d.next_attempt_at <= $1 "
            f"AND {lane_condition} ORDER BY d.next_attempt_at "
            # skipping rows another worker is claiming before the limit, not after it:
            # workers claiming at once each get a full share, not the same few rows
            "LIMIT h.room FOR UPDATE SKIP LOCKED) c WHERE NOT h.ordered "
            # ordered webhooks: only the oldest unfinished delivery, in the first lane
            "UNION ALL SELECT head.id, head.next_attempt_at FROM hooks h CROSS JOIN LATERAL "
            "(SELECT d.id, d.status, d.next_attempt_at FROM deliveries d "
            "WHERE d.webhook_id = h.id AND d.status = ANY($6::text[]) ORDER BY d.id LIMIT 1) "
            "head WHERE h.ordered AND $5 AND head.status <> 'failed' "
            "AND head.next_attempt_at <= $1), "
            "chosen AS (SELECT d.id FROM deliveries d JOIN (SELECT id FROM candidates "
            "ORDER BY next_attempt_at LIMIT $2) c ON c.id = d.id "
            "WHERE d.status IN ('pending', 'delivering') AND d.next_attempt_at <= $1 "
            "FOR UPDATE OF d SKIP LOCKED) "
            "UPDATE deliveries d SET status = 'delivering', next_attempt_at = $3, "
            "lease_token = $4 FROM chosen, webhooks w, events e "
            "WHERE d.id = chosen.id AND w.id = d.webhook_id AND e.id = d.event_id "
            "RETURNING d.id, d.tenant_id, d.webhook_id, d.attempts_count, d.schedule_step, "
            "d.manual, d.topic, w.url, w.secret, w.rate_limit, e.payload, "
            "CASE WHEN w.previous_secret_until > $1 THEN w.previous_secret END "
            "AS previous_secret",
            now,
            limit,
            lease_until,
            lease_token,
            lane is Lane.FIRST,
            head_statuses,
        )
        return [job_from(row, lease_token, self.box.open) for row in rows]

    async def record(
        self, outcomes: list[Outcome], now: datetime, rules: RecordRules
    ) -> list[WebhookAlert]:
        async with self._tx() as conn:
            return await self._record_in(conn, outcomes, now, rules)

    async def _record_in(
        self, conn: Conn, outcomes: list[Outcome], now: datetime, rules: RecordRules
    ) -> list[WebhookAlert]:
        attempts = [o.attempt for o in outcomes]
        await conn.execute(
            "INSERT INTO attempts (id, delivery_id, number, manual, started_at, duration_ms, "
            "request_url, request_headers, response_status, response_headers, "
            "response_body, error_kind, error_message) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bool[], "
            "$5::timestamptz[], $6::int[], $7::text[], $8::jsonb[], $9::int[], $10::jsonb[], "
            "$11::bytea[], $12::text[], $13::text[])",
            [a.id for a in attempts],
            [a.delivery_id for a in attempts],
            [a.number for a in attempts],
            [a.manual for a in attempts],
            [a.started_at for a in attempts],
            [a.duration_ms for a in attempts],
            [a.request_url for a in attempts],
            [a.request_headers for a in attempts],
            [a.response_status for a in attempts],
            [a.response_headers for a in attempts],
            [a.response_body for a in attempts],
            [None if a.error_kind is None else a.error_kind.value for a in attempts],
            [a.error_message for a in attempts],
        )
        # webhooks before deliveries: the order deleting a webhook takes its locks in
        alerts = await self._update_webhooks(conn, outcomes, now, rules)
        await conn.execute(
            "UPDATE deliveries d SET status = u.status, next_attempt_at = u.next_at, "
            "schedule_step = u.step, attempts_count = greatest(d.attempts_count, u.number), "
            "last_status_code = u.code, last_duration_ms = u.duration, updated_at = u.at, "
            "lease_token = NULL, manual = false "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::int[], "
            "$6::int[], $7::int[], $8::timestamptz[], $9::int[]) "
            "AS u(id, lease_token, status, next_at, step, number, code, at, duration) "
            "WHERE d.id = u.id AND d.lease_token = u.lease_token",
            [o.attempt.delivery_id for o in outcomes],
            [o.job.lease_token for o in outcomes],
            [o.status.value for o in outcomes],
            [o.next_attempt_at for o in outcomes],
            [o.schedule_step for o in outcomes],
            [o.attempt.number for o in outcomes],
            [o.attempt.response_status for o in outcomes],
            [o.attempt.started_at for o in outcomes],
            [o.attempt.duration_ms for o in outcomes],
        )
        return alerts

    @staticmethod
    async def _update_webhooks(
        conn: Conn, outcomes: list[Outcome], now: datetime, rules: RecordRules
    ) -> list[WebhookAlert]:
        """Streaks, pauses and disabling: the webhook side of recording attempts."""
        alerts = []
        disable: dict[str, str] = {}
        changes = webhook_changes(outcomes)
        ended = [c.streak.webhook_id for c in changes if quiet(c)]
        if ended:
            # only webhooks that were failing are written: a healthy batch writes nothing
            await conn.execute(
                "UPDATE webhooks SET consecutive_failures = 0, failing_since = NULL "
                "WHERE id = ANY($1::text[]) AND (consecutive_failures <> 0 "
                "OR failing_since IS NOT NULL)",
                ended,
            )
        for change in changes:
            if quiet(change):
                continue
            update = change.streak
            row = await conn.fetchrow(
                "UPDATE webhooks SET consecutive_failures = CASE WHEN $1 THEN $2 "
                "ELSE consecutive_failures + $2 END, failing_since = CASE WHEN $1 THEN $3 "
                "ELSE coalesce(failing_since, $3) END, "
                "paused_until = greatest(paused_until, $5::timestamptz) "
                "WHERE id = $4 RETURNING *",
                update.reset,
                update.failures,
                update.first_failure_at,
                update.webhook_id,
                change.pause_until,
            )
            if row is None:
                continue
            failing, reason = judge(
                webhook_from(row), row["consecutive_failures"], update, rules, now
            )
            if failing is not None:
                alerts.append(failing)
            why = change.disable_reason or reason
            if why is not None:
                disable[update.webhook_id] = why
        for webhook_id, why in disable.items():
            row = await conn.fetchrow(
                "UPDATE webhooks SET enabled = false, disabled_at = $1, disabled_reason = $2, "
                "updated_at = $1 WHERE id = $3 AND enabled RETURNING *",
                now,
                why,
                webhook_id,
            )
            if row is not None:
                alerts.append(
                    alert(webhook_from(row), "disabled", row["consecutive_failures"], why)
                )
        return alerts

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
        async with self._tx() as conn:
            await _owned(conn, "webhooks", tenant_id, webhook_id)
            status = await conn.execute(
                "WITH chosen AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n "
                "FROM deliveries WHERE webhook_id = $1 AND tenant_id = $2 "
                "AND status = ANY($3::text[]) AND ($4::timestamptz IS NULL OR created_at >= $4) "
                "AND ($5::timestamptz IS NULL OR created_at < $5) "
                "AND ($8::timestamptz IS NULL OR updated_at >= $8)) "
                "UPDATE deliveries d SET status = 'pending', "
                "next_attempt_at = $6::timestamptz + chosen.n * $7::interval, "
                "schedule_step = 0, manual = false, updated_at = $6 FROM chosen "
                "WHERE d.id = chosen.id",
                webhook_id,
                tenant_id,
                [s.value for s in statuses],
                since,
                until,
                now,
                spacing,
                changed_since,
            )
            await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
        return int(status.split()[-1])

    async def release(self, jobs: list[Job], now: datetime) -> None:
        async with self._tx() as conn:
            await conn.execute(
                "UPDATE deliveries d SET status = 'pending', next_attempt_at = $3, "
                "lease_token = NULL FROM unnest($1::text[], $2::text[]) AS u(id, lease_token) "
                "WHERE d.id = u.id AND d.lease_token = u.lease_token",
                [job.delivery_id for job in jobs],
                [job.lease_token for job in jobs],
                now,
            )
            await conn.execute("SELECT pg_notify($1, '')", CHANNEL)

    async def next_due_at(self) -> datetime | None:
        async with self._conn() as conn:
            due: datetime | None = await conn.fetchval(
                "SELECT min(d.next_attempt_at) FROM deliveries d JOIN webhooks w "
                "ON w.id = d.webhook_id WHERE d.status IN ('pending', 'delivering') AND w.enabled"
            )
            return due

    # -- what the UI shows -----------------------------------------------------------------------

    async def webhook_summaries(
        self, tenant_id: str, webhook_ids: list[str], since: datetime
    ) -> dict[str, WebhookSummary]:
        # deliveries still retrying may be older than the window: look two days further back
        floor = id_floor("dlv", int((since - RETRY_HORIZON).timestamp() * 1000))
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT w.id, last.status, last.last_status_code, last.updated_at, "
                "coalesce(outcomes.ok, 0) AS ok, coalesce(outcomes.failed, 0) AS failed "
                "FROM unnest($1::text[]) AS w(id) "
                "LEFT JOIN LATERAL (SELECT status, last_status_code, updated_at FROM deliveries "
                "WHERE webhook_id = w.id AND tenant_id = $2 ORDER BY id DESC LIMIT 1) last "
                "ON true LEFT JOIN LATERAL (SELECT "
                "count(*) FILTER (WHERE a.error_kind IS NULL) AS ok, "
                "count(*) FILTER (WHERE a.error_kind IS NOT NULL) AS failed "
                "FROM deliveries d JOIN attempts a ON a.delivery_id = d.id "
                "WHERE d.webhook_id = w.id AND d.id >= $3 AND a.started_at >= $4) outcomes ON true",
                webhook_ids,
                tenant_id,
                floor,
                since,
            )
        return {
            row["id"]: WebhookSummary(
                last_status=None if row["status"] is None else DeliveryStatus(row["status"]),
                last_status_code=row["last_status_code"],
                last_at=row["updated_at"],
                succeeded=row["ok"],
                failed=row["failed"],
            )
            for row in rows
        }

    async def delivery_counts(
        self, tenant_id: str, webhook_id: str, since: datetime, bucket_seconds: int, buckets: int
    ) -> list[dict[str, int]]:
        counts: list[dict[str, int]] = [{} for _ in range(buckets)]
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT floor(extract(epoch FROM created_at - $1) / $2)::int AS bucket, status, "
                "count(*) AS n FROM deliveries WHERE webhook_id = $3 AND tenant_id = $4 "
                "AND id >= $5 AND created_at >= $1 GROUP BY bucket, status",
                since,
                bucket_seconds,
                webhook_id,
                tenant_id,
                id_floor("dlv", int(since.timestamp() * 1000)),
            )
        for row in rows:
            if 0 <= row["bucket"] < buckets:
                counts[row["bucket"]][row["status"]] = row["n"]
        return counts

    async def queue_stats(self, now: datetime) -> QueueStats:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT count(*) AS due, min(next_attempt_at) AS oldest FROM deliveries "
                "WHERE status IN ('pending', 'delivering') AND next_attempt_at <= $1",
                now,
            )
            disabled = await conn.fetchval("SELECT count(*) FROM webhooks WHERE NOT enabled")
        assert row is not None
        return QueueStats(due=row["due"], oldest_due_at=row["oldest"], disabled_webhooks=disabled)

    # -- sessions ------------------------------------------------------------------------------

    async def add_session(self, session: Session, now: datetime) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO ui_sessions (token_hash, tenant_id, csrf_token, created_at, "
                "expires_at, portal) VALUES ($1, $2, $3, $4, $5, $6)",
                session.token_hash,
                session.tenant_id,
                session.csrf_token,
                now,
                session.expires_at,
                session.portal,
            )

    async def get_session(self, token_hash: str, now: datetime) -> Session | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM ui_sessions WHERE token_hash = $1 AND expires_at > $2",
                token_hash,
                now,
            )
        return None if row is None else session_from(row)

    async def delete_session(self, token_hash: str) -> None:
        async with self._conn() as conn:
            await conn.execute("DELETE FROM ui_sessions WHERE token_hash = $1", token_hash)

    # -- test inboxes --------------------------------------------------------------------------

    async def add_inbox(self, inbox: Inbox) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO inboxes (id, tenant_id, name, token, created_at, expires_at) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                inbox.id,
                inbox.tenant_id,
                inbox.name,
                inbox.token,
                inbox.created_at,
                inbox.expires_at,
            )

    async def get_inbox(self, tenant_id: str, inbox_id: str) -> Inbox:
        async with self._conn() as conn:
            return inbox_from(await _owned(conn, "inboxes", tenant_id, inbox_id))

    async def list_inboxes(self, tenant_id: str, now: datetime) -> list[Inbox]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT * FROM inboxes WHERE tenant_id = $1 AND expires_at > $2 ORDER BY id DESC",
                tenant_id,
                now,
            )
        return [inbox_from(row) for row in rows]

    async def delete_inbox(self, tenant_id: str, inbox_id: str) -> None:
        async with self._tx() as conn:
            await _owned(conn, "inboxes", tenant_id, inbox_id)
            await conn.execute("DELETE FROM inbox_requests WHERE inbox_id = $1", inbox_id)
            await conn.execute("DELETE FROM inboxes WHERE id = $1", inbox_id)

    async def capture(self, token: str, request: InboxRequest, now: datetime, keep: int) -> bool:
        async with self._tx() as conn:
            inbox_id = await conn.fetchval(
                "SELECT id FROM inboxes WHERE token = $1 AND expires_at > $2 FOR UPDATE",
                token,
                now,
            )
            if inbox_id is None:
                return False
            await conn.execute(
                "INSERT INTO inbox_requests (id, inbox_id, received_at, headers, body) "
                "VALUES ($1, $2, $3, $4, $5)",
                request.id,
                inbox_id,
                request.received_at,
                request.headers,
                request.body,
            )
            await conn.execute(
                "DELETE FROM inbox_requests WHERE inbox_id = $1 AND id NOT IN (SELECT id "
                "FROM inbox_requests WHERE inbox_id = $1 ORDER BY id DESC LIMIT $2)",
                inbox_id,
                keep,
            )
            return True

    async def inbox_requests(self, inbox_id: str, limit: int) -> list[InboxRequest]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT * FROM inbox_requests WHERE inbox_id = $1 ORDER BY id DESC LIMIT $2",
                inbox_id,
                limit,
            )
        return [inbox_request_from(row) for row in rows]

    # -- retention -----------------------------------------------------------------------------

    async def purge(self, before: datetime, now: datetime, limit: int) -> int:
        async with self._tx() as conn:
            ids = [
                row[0]
                for row in await conn.fetch(
                    "SELECT id FROM events WHERE created_at < $1 ORDER BY created_at LIMIT $2 "
                    "FOR UPDATE SKIP LOCKED",
                    before,
                    limit,
                )
            ]
            if ids:
                await conn.execute(
                    "DELETE FROM attempts WHERE delivery_id IN "
                    "(SELECT id FROM deliveries WHERE event_id = ANY($1::text[]))",
                    ids,
                )
                await conn.execute("DELETE FROM deliveries WHERE event_id = ANY($1::text[])", ids)
                await conn.execute("DELETE FROM events WHERE id = ANY($1::text[])", ids)
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys "
                "WHERE expires_at < $1 LIMIT $2)",
                now,
                limit,
            )
            await conn.execute("DELETE FROM ui_sessions WHERE expires_at < $1", now)
            await conn.execute(
                "DELETE FROM inbox_requests WHERE inbox_id IN "
                "(SELECT id FROM inboxes WHERE expires_at < $1)",
                now,
            )
            await conn.execute("DELETE FROM inboxes WHERE expires_at < $1", now)
        return len(ids)
