"""The SQLite store: the embedded default, one file, one writer.

Each connection lives in a thread of its own and every call runs whole there, so a
transaction is never interleaved with another coroutine's statements. Writes share one
connection (SQLite has one writer anyway); reads use a second one, which WAL lets run beside
the writer.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson

from ..errors import Conflict, IdempotencyConflict, NotFound, StoreUnavailable
from ..ids import id_floor, new_id
from ..metrics import QueueStats
from ..models import (
    ApiKey,
    Attempt,
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

T = TypeVar("T")

_QUEUED = "('pending', 'delivering')"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _dt_or_none(us: int | None) -> datetime | None:
    return None if us is None else _dt(us)


class _Connection:
    """One SQLite connection, owned by one thread; ``run`` executes a function there."""

    def __init__(self, path: str, name: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"hookline-sqlite-{name}")
        self._conn: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=True, factory=_SqliteConnection
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a publish answered 2xx survives a power cut, not only a process crash
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA busy_timeout = 10000")
        return conn

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._open()
        try:
            return fn(self._conn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite error: {exc}") from exc

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)


class _SqliteConnection(sqlite3.Connection):
    #: the synchronous mode set last: a PRAGMA is sent only to change it
    synchronous = "FULL"


@contextmanager
def _transaction(conn: sqlite3.Connection, *, durable: bool = True) -> Iterator[None]:
    """A write transaction. ``durable=False`` skips the fsync at commit: for the queue's own
    bookkeeping (leases, attempt records), which a power cut may only make hookline repeat,
    never lose; the next durable commit syncs the log up to it anyway.

    Every statement lets go of the GIL and must win it back from a busy event loop, so the
    writer thread sends as few as it can: no PRAGMA unless the mode changes."""
    mode = "FULL" if durable else "NORMAL"
    if getattr(conn, "synchronous", None) != mode:
        conn.execute(f"PRAGMA synchronous = {mode}")
        if isinstance(conn, _SqliteConnection):
            conn.synchronous = mode
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class _GroupCommit:
    """Durable writes that arrive while one commit is under way wait for the next, and share
    it: one fsync for the lot. Each runs in a savepoint of its own, so one that fails (an
    idempotency conflict, say) is undone alone; its caller gets its error, the others their
    results, and nobody hears back before the commit is on disk. Under load, commits grow with
    the load; alone, a write commits at once."""

    def __init__(self, writer: _Connection) -> None:
        self._writer = writer
        self._waiting: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._committing = False

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((fn, future))
        if not self._committing:
            self._committing = True
            asyncio.create_task(self._commit_while_waiting())  # noqa: RUF006 (ends by itself)
        return await future

    async def _commit_while_waiting(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    outcomes = await self._writer.run(
                        functools.partial(_commit_together, [fn for fn, _ in group])
                    )
                except BaseException as exc:
                    outcomes = [(False, exc)] * len(group)
                for (_, future), (ok, value) in zip(group, outcomes, strict=True):
                    if future.done():
                        continue  # its caller went away; the write stands, as before
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self._committing = False


def _commit_together(
    fns: list[Callable[[sqlite3.Connection], Any]], conn: sqlite3.Connection
) -> list[tuple[bool, Any]]:
    outcomes: list[tuple[bool, Any]] = []
    if len(fns) == 1:
        # alone in its commit: the transaction is its savepoint (two statements fewer)
        try:
            with _transaction(conn):
                return [(True, fns[0](conn))]
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite error: {exc}") from exc
        except Exception as exc:
            return [(False, exc)]
    with _transaction(conn):
        for fn in fns:
            conn.execute("SAVEPOINT one_write")
            try:
                outcomes.append((True, fn(conn)))
            except Exception as exc:
                conn.execute("ROLLBACK TO one_write")
                if isinstance(exc, sqlite3.Error):
                    exc = StoreUnavailable(f"SQLite error: {exc}")
                outcomes.append((False, exc))
            conn.execute("RELEASE one_write")
    return outcomes


_JSON_COLUMNS = frozenset({"topics", "request_headers", "response_headers", "headers"})


def _values(row: sqlite3.Row) -> dict[str, Any]:
    """A row with SQLite's storage turned into Python values: times, JSON."""
    values = dict(zip(row.keys(), row, strict=True))
    for column, value in values.items():
        if value is None:
            continue
        if column.endswith(("_at", "_until", "_since")):
            values[column] = _dt(value)
        elif column in _JSON_COLUMNS:
            values[column] = orjson.loads(value)
    return values


def _owned(conn: sqlite3.Connection, table: str, tenant_id: str, row_id: str) -> dict[str, Any]:
    """The tenant's row of ``table`` with that id; NotFound for a missing or foreign one."""
    row = conn.execute(
        f"SELECT * FROM {table} WHERE id = ? AND tenant_id = ?", (row_id, tenant_id)
    ).fetchone()
    if row is None:
        raise NotFound(f"no {NOUNS[table]} {row_id}")
    return _values(row)


class SqliteStore(Store):
    def __init__(self, path: str, box: SecretBox) -> None:
        self.box = box
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._writer = _Connection(path, "writer")
        self._reader = _Connection(path, "reader")
        self._publishes = _GroupCommit(self._writer)
        self._dispatch_lock: IO[str] | None = None

    @staticmethod
    def path_of(url: str) -> str:
        # sqlite:///relative/path.db and sqlite:////absolute/path.db, as SQLAlchemy spells them
        path = url.removeprefix("sqlite://")
        return path[1:] if path.startswith("/") else path

    async def close(self) -> None:
        await self._writer.close()
        await self._reader.close()
        if self._dispatch_lock is not None:
            self._dispatch_lock.close()
            self._dispatch_lock = None

    async def migrate(self) -> list[int]:
        folder = resources.files("hookline.store").joinpath("migrations/sqlite")
        scripts = sorted(
            (int(entry.name.split("_")[0]), entry.read_text("utf-8"))
            for entry in folder.iterdir()
            if entry.name.endswith(".sql")
        )

        def apply(conn: sqlite3.Connection) -> list[int]:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            applied = []
            for version, script in scripts:
                if version in done:
                    continue
                # executescript commits first; the BEGIN inside makes each migration atomic
                conn.executescript(
                    f"BEGIN IMMEDIATE;\n{script}\nINSERT INTO schema_migrations VALUES "
                    f"({version}, {_us(datetime.now(UTC))});\nCOMMIT;"
                )
                applied.append(version)
            return applied

        return await self._writer.run(apply)

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
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO api_keys (id, tenant_id, key_hash, created_at, is_admin, name) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, tenant_id, key_hash, _us(now), int(is_admin), name),
            )

        await self._writer.run(insert)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        def find(conn: sqlite3.Connection) -> ApiKey | None:
            row = conn.execute(
                "SELECT * FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (key_hash,)
            ).fetchone()
            return None if row is None else api_key_from(_values(row))

        return await self._reader.run(find)

    async def touch_api_key(self, key_id: str, now: datetime) -> None:
        await self._writer.run(
            lambda conn: conn.execute(
                "UPDATE api_keys SET last_used_at = ? WHERE id = ?", (_us(now), key_id)
            )
        )

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        def select(conn: sqlite3.Connection) -> list[ApiKey]:
            rows = conn.execute(
                "SELECT * FROM api_keys WHERE tenant_id = ? ORDER BY id", (tenant_id,)
            )
            return [api_key_from(_values(row)) for row in rows]

        return await self._reader.run(select)

    async def revoke_api_key(self, tenant_id: str, key_id: str, now: datetime) -> None:
        def revoke(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                _owned(conn, "api_keys", tenant_id, key_id)
                conn.execute(
                    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
                    (_us(now), key_id),
                )

        await self._writer.run(revoke)

    async def add_tenant(self, tenant: Tenant) -> None:
        await self._writer.run(
            lambda conn: conn.execute(
                "INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)",
                (tenant.id, tenant.name, _us(tenant.created_at)),
            )
        )

    async def get_tenant(self, tenant_id: str) -> Tenant:
        def get(conn: sqlite3.Connection) -> Tenant:
            row = conn.execute("SELECT * FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
            if row is None:
                raise NotFound(f"no tenant {tenant_id}")
            return tenant_from(_values(row))

        return await self._reader.run(get)

    async def list_tenants(self) -> list[Tenant]:
        return await self._reader.run(
            lambda conn: [
                tenant_from(_values(row))
                for row in conn.execute("SELECT * FROM tenants ORDER BY created_at, id")
            ]
        )

    async def count_api_keys(self) -> int:
        return await self._reader.run(
            lambda conn: int(conn.execute("SELECT count(*) FROM api_keys").fetchone()[0])
        )

    # -- webhooks ------------------------------------------------------------------------------

    @staticmethod
    def _write_topics(conn: sqlite3.Connection, webhook: Webhook) -> None:
        conn.execute("DELETE FROM webhook_topics WHERE webhook_id = ?", (webhook.id,))
        conn.executemany(
            "INSERT INTO webhook_topics (tenant_id, topic, webhook_id) VALUES (?, ?, ?)",
            [(webhook.tenant_id, topic, webhook.id) for topic in webhook.topics],
        )

    def _webhook_row(self, webhook: Webhook) -> tuple[Any, ...]:
        """The columns a person sets (the failure streak and pause are the dispatcher's)."""
        return (
            webhook.name,
            webhook.url,
            self.box.seal(webhook.secret),
            int(webhook.enabled),
            orjson.dumps(list(webhook.topics)).decode(),
            webhook.max_in_flight,
            webhook.rate_limit,
            int(webhook.ordered),
            None if webhook.disabled_at is None else _us(webhook.disabled_at),
            webhook.disabled_reason,
            self.box.seal(webhook.previous_secret),
            None if webhook.previous_secret_until is None else _us(webhook.previous_secret_until),
            _us(webhook.updated_at),
            webhook.id,
            webhook.tenant_id,
        )

    async def insert_webhook(self, webhook: Webhook) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute(
                    "INSERT INTO webhooks (name, url, secret, enabled, topics, max_in_flight, "
                    "rate_limit, ordered, disabled_at, disabled_reason, previous_secret, "
                    "previous_secret_until, updated_at, id, tenant_id, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*self._webhook_row(webhook), _us(webhook.created_at)),
                )
                self._write_topics(conn, webhook)

        await self._writer.run(insert)

    async def get_webhook(self, tenant_id: str, webhook_id: str) -> Webhook:
        return await self._reader.run(
            lambda conn: self._revealed(
                webhook_from(_owned(conn, "webhooks", tenant_id, webhook_id))
            )
        )

    async def list_webhooks(self, tenant_id: str, cursor: str | None, limit: int) -> Page:
        def select(conn: sqlite3.Connection) -> Page:
            rows = conn.execute(
                "SELECT * FROM webhooks WHERE tenant_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
                (tenant_id, cursor or "~", limit + 1),
            ).fetchall()
            return page_of([self._revealed(webhook_from(_values(row))) for row in rows], limit)

        return await self._reader.run(select)

    async def count_webhooks(self, tenant_id: str) -> int:
        return await self._reader.run(
            lambda conn: int(
                conn.execute(
                    "SELECT count(*) FROM webhooks WHERE tenant_id = ?", (tenant_id,)
                ).fetchone()[0]
            )
        )

    async def update_webhook(self, webhook: Webhook) -> None:
        def update(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                # enabling a disabled webhook starts its failure streak afresh
                fresh = int(webhook.enabled)
                conn.execute(
                    "UPDATE webhooks SET failing_since = NULL, consecutive_failures = 0, "
                    "paused_until = NULL WHERE id = ? AND tenant_id = ? AND enabled = 0 AND ? = 1",
                    (webhook.id, webhook.tenant_id, fresh),
                )
                changed = conn.execute(
                    "UPDATE webhooks SET name = ?, url = ?, secret = ?, enabled = ?, topics = ?, "
                    "max_in_flight = ?, rate_limit = ?, ordered = ?, disabled_at = ?, "
                    "disabled_reason = ?, previous_secret = ?, previous_secret_until = ?, "
                    "updated_at = ? WHERE id = ? AND tenant_id = ?",
                    self._webhook_row(webhook),
                ).rowcount
                if not changed:
                    raise NotFound(f"no webhook {webhook.id}")
                self._write_topics(conn, webhook)

        await self._writer.run(update)

    async def delete_webhook(self, tenant_id: str, webhook_id: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                deleted = conn.execute(
                    "DELETE FROM webhooks WHERE id = ? AND tenant_id = ?", (webhook_id, tenant_id)
                ).rowcount
                if not deleted:
                    raise NotFound(f"no webhook {webhook_id}")
                conn.execute("DELETE FROM webhook_topics WHERE webhook_id = ?", (webhook_id,))
                conn.execute(
                    "DELETE FROM attempts WHERE delivery_id IN "
                    "(SELECT id FROM deliveries WHERE webhook_id = ?)",
                    (webhook_id,),
                )
                conn.execute("DELETE FROM deliveries WHERE webhook_id = ?", (webhook_id,))

        await self._writer.run(delete)

    # -- events --------------------------------------------------------------------------------

    async def insert_event(self, new: NewEvent) -> StoredEvent:
        now = _us(new.created_at)

        def replay(conn: sqlite3.Connection) -> StoredEvent | None:
            row = conn.execute(
                "SELECT request_hash, event_id, expires_at FROM idempotency_keys "
                "WHERE tenant_id = ? AND key = ?",
                (new.tenant_id, new.idempotency_key),
            ).fetchone()
            if row is None:
                return None
            if row["expires_at"] <= now:
                conn.execute(
                    "DELETE FROM idempotency_keys WHERE tenant_id = ? AND key = ?",
                    (new.tenant_id, new.idempotency_key),
                )
                return None
            if row["request_hash"] != new.request_hash:
                raise IdempotencyConflict()
            event = event_from(_owned(conn, "events", new.tenant_id, row["event_id"]))
            ids = conn.execute("SELECT id FROM deliveries WHERE event_id = ?", (event.id,))
            return StoredEvent(event=event, delivery_ids=tuple(r[0] for r in ids), replayed=True)

        def insert(conn: sqlite3.Connection) -> StoredEvent:
            if new.idempotency_key is not None:
                earlier = replay(conn)
                if earlier is not None:
                    return earlier
            if new.only_webhook_id is not None:
                targets = [(new.only_webhook_id, True)]
            else:
                targets = [
                    (row[0], bool(row[1]))
                    for row in conn.execute(
                        "SELECT t.webhook_id, w.enabled FROM webhook_topics t JOIN webhooks w "
                        "ON w.id = t.webhook_id WHERE t.tenant_id = ? AND t.topic = ?",
                        (new.tenant_id, new.action),
                    )
                ]
            conn.execute(
                "INSERT INTO events (id, tenant_id, action, payload, deliveries_count, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (new.id, new.tenant_id, new.action, new.payload, len(targets), now),
            )
            ids = tuple(new_id("dlv") for _ in targets)
            conn.executemany(
                "INSERT INTO deliveries (id, tenant_id, event_id, webhook_id, topic, status, "
                "next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        did,
                        new.tenant_id,
                        new.id,
                        wid,
                        new.action,
                        "pending" if enabled else "skipped",
                        now if enabled else None,
                        now,
                        now,
                    )
                    for did, (wid, enabled) in zip(ids, targets, strict=True)
                ],
            )
            if new.idempotency_key is not None:
                assert new.idempotency_expires_at is not None
                conn.execute(
                    "INSERT INTO idempotency_keys (tenant_id, key, request_hash, event_id, "
                    "expires_at) VALUES (?, ?, ?, ?, ?)",
                    (
                        new.tenant_id,
                        new.idempotency_key,
                        new.request_hash,
                        new.id,
                        _us(new.idempotency_expires_at),
                    ),
                )
            event = Event(
                id=new.id,
                tenant_id=new.tenant_id,
                action=new.action,
                payload=new.payload,
                created_at=_dt(now),
                deliveries_count=len(targets),
            )
            return StoredEvent(event=event, delivery_ids=ids, replayed=False)

        # publishes share durable commits: one fsync for all that arrived meanwhile
        return await self._publishes.run(insert)

    async def get_event(self, tenant_id: str, event_id: str) -> Event:
        return await self._reader.run(
            lambda conn: event_from(_owned(conn, "events", tenant_id, event_id))
        )

    # -- deliveries ----------------------------------------------------------------------------

    async def list_deliveries(self, query: DeliveryFilter, cursor: str | None, limit: int) -> Page:
        clauses = ["tenant_id = ?", "id < ?"]
        params: list[Any] = [query.tenant_id, cursor or "~"]
        for column, value in (
            ("webhook_id", query.webhook_id),
            ("status", query.status.value if query.status else None),
            ("topic", query.topic),
            ("event_id", query.event_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if query.since is not None:
            clauses.append("created_at >= ?")
            params.append(_us(query.since))
        if query.until is not None:
            clauses.append("created_at < ?")
            params.append(_us(query.until))
        sql = f"SELECT * FROM deliveries WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?"

        def select(conn: sqlite3.Connection) -> Page:
            rows = conn.execute(sql, (*params, limit + 1)).fetchall()
            return page_of([delivery_from(_values(row)) for row in rows], limit)

        return await self._reader.run(select)

    async def get_delivery(self, tenant_id: str, delivery_id: str) -> DeliveryDetail:
        def get(conn: sqlite3.Connection) -> DeliveryDetail:
            row = _owned(conn, "deliveries", tenant_id, delivery_id)
            payload = conn.execute(
                "SELECT payload FROM events WHERE id = ?", (row["event_id"],)
            ).fetchone()[0]
            attempts = conn.execute(
                "SELECT * FROM attempts WHERE delivery_id = ? ORDER BY number, started_at",
                (delivery_id,),
            )
            return DeliveryDetail(
                delivery=delivery_from(row),
                attempts=tuple(attempt_from(_values(a), bytes(payload)) for a in attempts),
            )

        return await self._reader.run(get)

    async def redeliver(self, tenant_id: str, delivery_id: str, now: datetime) -> Delivery:
        def update(conn: sqlite3.Connection) -> Delivery:
            row = conn.execute(
                "UPDATE deliveries SET status = 'pending', manual = 1, next_attempt_at = ?, "
                "updated_at = ? WHERE id = ? AND tenant_id = ? AND status != 'delivering' "
                "RETURNING *",
                (_us(now), _us(now), delivery_id, tenant_id),
            ).fetchone()
            if row is not None:
                return delivery_from(_values(row))
            # in flight right now: the attempt under way is the redelivery asked for
            return delivery_from(_owned(conn, "deliveries", tenant_id, delivery_id))

        return await self._writer.run(update)

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
        def claim(conn: sqlite3.Connection) -> list[Job]:
            with _transaction(conn, durable=False):
                return self._claim_in(
                    conn, now, limit, lease_until, lease_token, lane, failed_blocks
                )

        return await self._writer.run(claim)

    async def record(
        self, outcomes: list[Outcome], now: datetime, rules: RecordRules
    ) -> list[WebhookAlert]:
        def write(conn: sqlite3.Connection) -> list[WebhookAlert]:
            with _transaction(conn, durable=False):
                return self._record_in(conn, outcomes, now, rules)

        return await self._writer.run(write)

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
        # one transaction, one trip to the writer thread: the round's fixed cost paid once
        def round_trip(conn: sqlite3.Connection) -> RoundResult:
            with _transaction(conn, durable=False):
                alerts = self._record_in(conn, outcomes, now, rules) if outcomes else []
                jobs = {
                    lane: self._claim_in(
                        conn, now, want, lease_until, lease_token, lane, failed_blocks
                    )
                    for lane, want in wants.items()
                    if want > 0
                }
            return alerts, jobs

        return await self._writer.run(round_trip)

    def _claim_in(
        self,
        conn: sqlite3.Connection,
        now: datetime,
        limit: int,
        lease_until: datetime,
        lease_token: str,
        lane: Lane,
        failed_blocks: bool,
    ) -> list[Job]:
        at = _us(now)
        ids = orjson.dumps(_due_ids(conn, at, limit, lane, failed_blocks)).decode()
        conn.execute(
            "UPDATE deliveries SET status = 'delivering', next_attempt_at = ?, "
            "lease_token = ? WHERE id IN (SELECT value FROM json_each(?))",
            (_us(lease_until), lease_token, ids),
        )
        rows = conn.execute(
            "SELECT d.id, d.tenant_id, d.webhook_id, d.attempts_count, d.schedule_step, "
            "d.manual, d.topic, w.url, w.secret, w.rate_limit, e.payload, "
            "CASE WHEN w.previous_secret_until > ? THEN w.previous_secret END "
            "AS previous_secret FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id "
            "JOIN events e ON e.id = d.event_id "
            "WHERE d.id IN (SELECT value FROM json_each(?)) ORDER BY d.next_attempt_at",
            (at, ids),
        ).fetchall()
        return [job_from(row, lease_token, self.box.open) for row in rows]

    def _record_in(
        self,
        conn: sqlite3.Connection,
        outcomes: list[Outcome],
        now: datetime,
        rules: RecordRules,
    ) -> list[WebhookAlert]:
        conn.executemany(
            "INSERT INTO attempts (id, delivery_id, number, manual, started_at, "
            "duration_ms, request_url, request_headers, response_status, "
            "response_headers, response_body, error_kind, error_message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [_attempt_row(outcome.attempt) for outcome in outcomes],
        )
        # webhooks before deliveries, in the same order as on PostgreSQL
        alerts = self._update_webhooks(conn, outcomes, now, rules)
        conn.executemany(
            "UPDATE deliveries SET status = ?, next_attempt_at = ?, schedule_step = ?, "
            "attempts_count = max(attempts_count, ?), last_status_code = ?, "
            "last_duration_ms = ?, updated_at = ?, lease_token = NULL, manual = 0 "
            "WHERE id = ? AND lease_token = ?",
            [_delivery_update(outcome) for outcome in outcomes],
        )
        return alerts

    @staticmethod
    def _update_webhooks(
        conn: sqlite3.Connection, outcomes: list[Outcome], now: datetime, rules: RecordRules
    ) -> list[WebhookAlert]:
        """Streaks, pauses and disabling: the webhook side of recording attempts."""
        alerts = []
        disable: dict[str, str] = {}
        changes = webhook_changes(outcomes)
        ended = [c.streak.webhook_id for c in changes if quiet(c)]
        if ended:
            # only webhooks that were failing are written: a healthy batch writes nothing
            conn.execute(
                "UPDATE webhooks SET consecutive_failures = 0, failing_since = NULL "
                "WHERE id IN (SELECT value FROM json_each(?)) AND (consecutive_failures <> 0 "
                "OR failing_since IS NOT NULL)",
                (orjson.dumps(ended).decode(),),
            )
        for change in changes:
            if quiet(change):
                continue
            update = change.streak
            first = None if update.first_failure_at is None else _us(update.first_failure_at)
            pause = None if change.pause_until is None else _us(change.pause_until)
            row = conn.execute(
                "UPDATE webhooks SET consecutive_failures = CASE WHEN ? THEN ? "
                "ELSE consecutive_failures + ? END, failing_since = CASE WHEN ? THEN ? "
                "ELSE coalesce(failing_since, ?) END, paused_until = CASE WHEN ? IS NULL "
                "THEN paused_until ELSE max(coalesce(paused_until, 0), ?) END "
                "WHERE id = ? RETURNING *",
                (
                    update.reset,
                    update.failures,
                    update.failures,
                    update.reset,
                    first,
                    first,
                    pause,
                    pause,
                    update.webhook_id,
                ),
            ).fetchone()
            if row is None:
                continue
            failing, reason = judge(
                webhook_from(_values(row)), row["consecutive_failures"], update, rules, now
            )
            if failing is not None:
                alerts.append(failing)
            why = change.disable_reason or reason
            if why is not None:
                disable[update.webhook_id] = why
        for webhook_id, why in disable.items():
            row = conn.execute(
                "UPDATE webhooks SET enabled = 0, disabled_at = ?, disabled_reason = ?, "
                "updated_at = ? WHERE id = ? AND enabled = 1 RETURNING *",
                (_us(now), why, _us(now), webhook_id),
            ).fetchone()
            if row is not None:
                webhook = webhook_from(_values(row))
                alerts.append(alert(webhook, "disabled", row["consecutive_failures"], why))
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
        clauses = ["webhook_id = ?", "tenant_id = ?", "status IN (SELECT value FROM json_each(?))"]
        params: list[Any] = [webhook_id, tenant_id, orjson.dumps([s.value for s in statuses])]
        if since is not None:
            clauses.append("created_at >= ?")
            params.append(_us(since))
        if until is not None:
            clauses.append("created_at < ?")
            params.append(_us(until))
        if changed_since is not None:
            clauses.append("updated_at >= ?")
            params.append(_us(changed_since))
        step = spacing // timedelta(microseconds=1)

        def update(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                _owned(conn, "webhooks", tenant_id, webhook_id)
                ids = [
                    row[0]
                    for row in conn.execute(
                        f"SELECT id FROM deliveries WHERE {' AND '.join(clauses)} ORDER BY id",
                        params,
                    )
                ]
                conn.executemany(
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, "
                    "schedule_step = 0, manual = 0, updated_at = ? WHERE id = ?",
                    [(_us(now) + index * step, _us(now), did) for index, did in enumerate(ids)],
                )
                return len(ids)

        return await self._writer.run(update)

    async def release(self, jobs: list[Job], now: datetime) -> None:
        def write(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, "
                    "lease_token = NULL WHERE id = ? AND lease_token = ?",
                    [(_us(now), job.delivery_id, job.lease_token) for job in jobs],
                )

        await self._writer.run(write)

    # -- what the UI shows -----------------------------------------------------------------------

    async def webhook_summaries(
        self, tenant_id: str, webhook_ids: list[str], since: datetime
    ) -> dict[str, WebhookSummary]:
        # deliveries still retrying may be older than the window: look two days further back
        floor = id_floor("dlv", _us(since - RETRY_HORIZON) // 1000)

        def select(conn: sqlite3.Connection) -> dict[str, WebhookSummary]:
            summaries = {}
            for webhook_id in webhook_ids:
                last = conn.execute(
                    "SELECT status, last_status_code, updated_at FROM deliveries "
                    "WHERE webhook_id = ? AND tenant_id = ? ORDER BY id DESC LIMIT 1",
                    (webhook_id, tenant_id),
                ).fetchone()
                ok, failed = conn.execute(
                    "SELECT count(*) FILTER (WHERE a.error_kind IS NULL), "
                    "count(*) FILTER (WHERE a.error_kind IS NOT NULL) FROM deliveries d "
                    "JOIN attempts a ON a.delivery_id = d.id WHERE d.webhook_id = ? "
                    "AND d.id >= ? AND a.started_at >= ?",
                    (webhook_id, floor, _us(since)),
                ).fetchone()
                summaries[webhook_id] = WebhookSummary(
                    last_status=None if last is None else DeliveryStatus(last["status"]),
                    last_status_code=None if last is None else last["last_status_code"],
                    last_at=None if last is None else _dt(last["updated_at"]),
                    succeeded=ok,
                    failed=failed,
                )
            return summaries

        return await self._reader.run(select)

    async def delivery_counts(
        self, tenant_id: str, webhook_id: str, since: datetime, bucket_seconds: int, buckets: int
    ) -> list[dict[str, int]]:
        start = _us(since)
        width = bucket_seconds * 1_000_000

        def select(conn: sqlite3.Connection) -> list[dict[str, int]]:
            counts: list[dict[str, int]] = [{} for _ in range(buckets)]
            for bucket, status, count in conn.execute(
                "SELECT (created_at - ?) / ? AS bucket, status, count(*) FROM deliveries "
                "WHERE webhook_id = ? AND tenant_id = ? AND id >= ? AND created_at >= ? "
                "GROUP BY bucket, status",
                (start, width, webhook_id, tenant_id, id_floor("dlv", start // 1000), start),
            ):
                if 0 <= bucket < buckets:
                    counts[bucket][status] = count
            return counts

        return await self._reader.run(select)

    async def queue_stats(self, now: datetime) -> QueueStats:
        def select(conn: sqlite3.Connection) -> QueueStats:
            due, oldest = conn.execute(
                f"SELECT count(*), min(next_attempt_at) FROM deliveries WHERE status IN {_QUEUED} "
                "AND next_attempt_at <= ?",
                (_us(now),),
            ).fetchone()
            disabled = conn.execute("SELECT count(*) FROM webhooks WHERE enabled = 0").fetchone()
            return QueueStats(
                due=due, oldest_due_at=_dt_or_none(oldest), disabled_webhooks=disabled[0]
            )

        return await self._reader.run(select)

    # -- sessions ------------------------------------------------------------------------------

    async def add_session(self, session: Session, now: datetime) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO ui_sessions (token_hash, tenant_id, csrf_token, created_at, "
                "expires_at, portal) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    session.token_hash,
                    session.tenant_id,
                    session.csrf_token,
                    _us(now),
                    _us(session.expires_at),
                    int(session.portal),
                ),
            )

        await self._writer.run(insert)

    async def get_session(self, token_hash: str, now: datetime) -> Session | None:
        def select(conn: sqlite3.Connection) -> Session | None:
            row = conn.execute(
                "SELECT * FROM ui_sessions WHERE token_hash = ? AND expires_at > ?",
                (token_hash, _us(now)),
            ).fetchone()
            return None if row is None else session_from(_values(row))

        return await self._reader.run(select)

    async def delete_session(self, token_hash: str) -> None:
        await self._writer.run(
            lambda conn: conn.execute("DELETE FROM ui_sessions WHERE token_hash = ?", (token_hash,))
        )

    # -- test inboxes --------------------------------------------------------------------------

    async def add_inbox(self, inbox: Inbox) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO inboxes (id, tenant_id, name, token, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    inbox.id,
                    inbox.tenant_id,
                    inbox.name,
                    inbox.token,
                    _us(inbox.created_at),
                    _us(inbox.expires_at),
                ),
            )

        await self._writer.run(insert)

    async def get_inbox(self, tenant_id: str, inbox_id: str) -> Inbox:
        return await self._reader.run(
            lambda conn: inbox_from(_owned(conn, "inboxes", tenant_id, inbox_id))
        )

    async def list_inboxes(self, tenant_id: str, now: datetime) -> list[Inbox]:
        def select(conn: sqlite3.Connection) -> list[Inbox]:
            rows = conn.execute(
                "SELECT * FROM inboxes WHERE tenant_id = ? AND expires_at > ? ORDER BY id DESC",
                (tenant_id, _us(now)),
            )
            return [inbox_from(_values(row)) for row in rows]

        return await self._reader.run(select)

    async def delete_inbox(self, tenant_id: str, inbox_id: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                _owned(conn, "inboxes", tenant_id, inbox_id)
                conn.execute("DELETE FROM inbox_requests WHERE inbox_id = ?", (inbox_id,))
                conn.execute("DELETE FROM inboxes WHERE id = ?", (inbox_id,))

        await self._writer.run(delete)

    async def capture(self, token: str, request: InboxRequest, now: datetime, keep: int) -> bool:
        def insert(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                row = conn.execute(
                    "SELECT id FROM inboxes WHERE token = ? AND expires_at > ?", (token, _us(now))
                ).fetchone()
                if row is None:
                    return False
                conn.execute(
                    "INSERT INTO inbox_requests (id, inbox_id, received_at, headers, body) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        request.id,
                        row["id"],
                        _us(request.received_at),
                        orjson.dumps(request.headers).decode(),
                        request.body,
                    ),
                )
                conn.execute(
                    "DELETE FROM inbox_requests WHERE inbox_id = ? AND id NOT IN (SELECT id "
                    "FROM inbox_requests WHERE inbox_id = ? ORDER BY id DESC LIMIT ?)",
                    (row["id"], row["id"], keep),
                )
                return True

        return await self._writer.run(insert)

    async def inbox_requests(self, inbox_id: str, limit: int) -> list[InboxRequest]:
        def select(conn: sqlite3.Connection) -> list[InboxRequest]:
            rows = conn.execute(
                "SELECT * FROM inbox_requests WHERE inbox_id = ? ORDER BY id DESC LIMIT ?",
                (inbox_id, limit),
            )
            return [inbox_request_from(_values(row)) for row in rows]

        return await self._reader.run(select)

    async def reseal_secrets(self) -> int:
        def reseal(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                stale = [
                    (self.box.seal(self.box.open(secret)), webhook_id)
                    for webhook_id, secret in conn.execute(
                        "SELECT id, secret FROM webhooks WHERE secret IS NOT NULL"
                    )
                    if not self.box.sealed_by_primary(secret)
                ]
                conn.executemany("UPDATE webhooks SET secret = ? WHERE id = ?", stale)
                return len(stale)

        return await self._writer.run(reseal)

    async def reserve_dispatch(self) -> None:
        """One dispatching process per SQLite file: SQLite has one writer, and leases between
        processes on one machine would buy nothing but lock contention."""
        if self.path == ":memory:":
            return
        lock = open(f"{self.path}.dispatch.lock", "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise Conflict(
                f"another hookline process is already delivering from {self.path}; on SQLite "
                "run one `hookline serve` or `hookline worker` (PostgreSQL allows many)"
            ) from None
        self._dispatch_lock = lock

    async def purge(self, before: datetime, now: datetime, limit: int) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            with _transaction(conn):
                ids = orjson.dumps(
                    [
                        row[0]
                        for row in conn.execute(
                            "SELECT id FROM events WHERE created_at < ? ORDER BY created_at "
                            "LIMIT ?",
                            (_us(before), limit),
                        )
                    ]
                ).decode()
                conn.execute(
                    "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries "
                    "WHERE event_id IN (SELECT value FROM json_each(?)))",
                    (ids,),
                )
                conn.execute(
                    "DELETE FROM deliveries WHERE event_id IN (SELECT value FROM json_each(?))",
                    (ids,),
                )
                deleted = conn.execute(
                    "DELETE FROM events WHERE id IN (SELECT value FROM json_each(?))", (ids,)
                ).rowcount
                conn.execute(
                    "DELETE FROM idempotency_keys WHERE (tenant_id, key) IN (SELECT tenant_id, "
                    "key FROM idempotency_keys WHERE expires_at < ? LIMIT ?)",
                    (_us(now), limit),
                )
                conn.execute("DELETE FROM ui_sessions WHERE expires_at < ?", (_us(now),))
                conn.execute(
                    "DELETE FROM inbox_requests WHERE inbox_id IN "
                    "(SELECT id FROM inboxes WHERE expires_at < ?)",
                    (_us(now),),
                )
                conn.execute("DELETE FROM inboxes WHERE expires_at < ?", (_us(now),))
                return int(deleted)

        return await self._writer.run(delete)

    async def next_due_at(self) -> datetime | None:
        def select(conn: sqlite3.Connection) -> datetime | None:
            row = conn.execute(
                "SELECT min(d.next_attempt_at) FROM deliveries d JOIN webhooks w "
                f"ON w.id = d.webhook_id WHERE d.status IN {_QUEUED} AND w.enabled = 1"
            ).fetchone()
            return _dt_or_none(row[0])

        return await self._reader.run(select)


def _due_ids(
    conn: sqlite3.Connection, at: int, limit: int, lane: Lane, failed_blocks: bool
) -> list[str]:
    """Due deliveries of the lane, at most each webhook's free slots, oldest first."""
    lane_condition = "attempts_count = 0" if lane is Lane.FIRST else "attempts_count > 0"
    head_statuses = "('pending', 'delivering', 'failed')" if failed_blocks else _QUEUED
    busy = dict(
        conn.execute(
            "SELECT webhook_id, count(*) FROM deliveries WHERE status = 'delivering' "
            "AND next_attempt_at > ? GROUP BY webhook_id",
            (at,),
        ).fetchall()
    )
    candidates: list[tuple[int, str]] = []
    for hook in conn.execute(
        "SELECT id, max_in_flight, ordered FROM webhooks WHERE enabled = 1 "
        "AND (paused_until IS NULL OR paused_until <= ?)",
        (at,),
    ):
        room = (1 if hook["ordered"] else hook["max_in_flight"]) - busy.get(hook["id"], 0)
        if room <= 0:
            continue
        if hook["ordered"]:
            # only the oldest unfinished delivery may go, whatever its lane
            head = conn.execute(
                f"SELECT id, status, next_attempt_at FROM deliveries WHERE webhook_id = ? "
                f"AND status IN {head_statuses} ORDER BY id LIMIT 1",
                (hook["id"],),
            ).fetchone()
            if (
                lane is Lane.FIRST
                and head is not None
                and head["status"] != "failed"
                and head["next_attempt_at"] <= at
            ):
                candidates.append((head["next_attempt_at"], head["id"]))
            continue
        candidates.extend(
            (row[1], row[0])
            for row in conn.execute(
                "SELECT id, next_attempt_at FROM deliveries WHERE webhook_id = ? "
                f"AND status IN {_QUEUED} AND next_attempt_at <= ? AND {lane_condition} "
                "ORDER BY next_attempt_at LIMIT ?",
                (hook["id"], at, room),
            )
        )
    candidates.sort()
    return [delivery_id for _, delivery_id in candidates[:limit]]


def _attempt_row(a: Attempt) -> tuple[Any, ...]:
    return (
        a.id,
        a.delivery_id,
        a.number,
        int(a.manual),
        _us(a.started_at),
        a.duration_ms,
        a.request_url,
        orjson.dumps(a.request_headers).decode(),
        a.response_status,
        None if a.response_headers is None else orjson.dumps(a.response_headers),
        a.response_body,
        None if a.error_kind is None else a.error_kind.value,
        a.error_message,
    )


def _delivery_update(outcome: Outcome) -> tuple[Any, ...]:
    a = outcome.attempt
    return (
        outcome.status.value,
        None if outcome.next_attempt_at is None else _us(outcome.next_attempt_at),
        outcome.schedule_step,
        a.number,
        a.response_status,
        a.duration_ms,
        _us(a.started_at),
        a.delivery_id,
        outcome.job.lease_token,
    )
