-- hookline on SQLite: the first schema. Times are integer microseconds since the Unix epoch.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
INSERT INTO tenants (id, name, created_at) VALUES ('default', 'Default', 0);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    url         TEXT NOT NULL,
    secret      TEXT,
    enabled     INTEGER NOT NULL,
    topics      TEXT NOT NULL,  -- JSON array, in the order given
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX webhooks_by_tenant ON webhooks (tenant_id, id);

-- who is subscribed to what: the fan-out of a publish is one index range
CREATE TABLE webhook_topics (
    tenant_id   TEXT NOT NULL,
    topic       TEXT NOT NULL,
    webhook_id  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, topic, webhook_id)
) WITHOUT ROWID;

CREATE TABLE events (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    action            TEXT NOT NULL,
    payload           BLOB NOT NULL,  -- the exact bytes sent, stored once for all deliveries
    deliveries_count  INTEGER NOT NULL,
    created_at        INTEGER NOT NULL
);
CREATE INDEX events_by_time ON events (created_at);

CREATE TABLE idempotency_keys (
    tenant_id     TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
) WITHOUT ROWID;

-- the delivery queue: a row is due when it is pending (or leased, with the lease expired)
-- and next_attempt_at has passed; while leased, next_attempt_at is the lease's end
CREATE TABLE deliveries (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    event_id          TEXT NOT NULL,
    webhook_id        TEXT NOT NULL,
    topic             TEXT NOT NULL,
    status            TEXT NOT NULL,
    attempts_count    INTEGER NOT NULL DEFAULT 0,
    schedule_step     INTEGER NOT NULL DEFAULT 0,
    manual            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER,
    lease_token       TEXT,
    last_status_code  INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('pending', 'delivering');
CREATE INDEX deliveries_by_tenant ON deliveries (tenant_id, id);
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id);

CREATE TABLE attempts (
    id                TEXT PRIMARY KEY,
    delivery_id       TEXT NOT NULL,
    number            INTEGER NOT NULL,
    manual            INTEGER NOT NULL,
    started_at        INTEGER NOT NULL,
    duration_ms       INTEGER NOT NULL,
    request_url       TEXT NOT NULL,
    request_headers   TEXT NOT NULL,  -- JSON object
    response_status   INTEGER,
    response_headers  TEXT,           -- JSON object
    response_body     BLOB,
    error_kind        TEXT,
    error_message     TEXT
);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, number);
