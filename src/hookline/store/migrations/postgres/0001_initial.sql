-- hookline on PostgreSQL: the first schema.
-- deliveries and attempts are the big tables; docs/scaling.md has the plan to partition them
-- by month when one table per kind stops being enough.

CREATE TABLE tenants (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL
);
INSERT INTO tenants (id, name, created_at) VALUES ('default', 'Default', 'epoch');

CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL,
    key_hash    text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL
);

CREATE TABLE webhooks (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL,
    name        text NOT NULL,
    url         text NOT NULL,
    secret      text,
    enabled     boolean NOT NULL,
    topics      text[] NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX webhooks_by_tenant ON webhooks (tenant_id, id);

CREATE TABLE webhook_topics (
    tenant_id   text NOT NULL,
    topic       text NOT NULL,
    webhook_id  text NOT NULL,
    PRIMARY KEY (tenant_id, topic, webhook_id)
);
CREATE INDEX webhook_topics_by_webhook ON webhook_topics (webhook_id);

CREATE TABLE events (
    id                text PRIMARY KEY,
    tenant_id         text NOT NULL,
    action            text NOT NULL,
    payload           bytea NOT NULL,
    deliveries_count  integer NOT NULL,
    created_at        timestamptz NOT NULL
);
CREATE INDEX events_by_time ON events (created_at);

CREATE TABLE idempotency_keys (
    tenant_id     text NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    event_id      text NOT NULL,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- the delivery queue: while leased, next_attempt_at is the lease's end
CREATE TABLE deliveries (
    id                text PRIMARY KEY,
    tenant_id         text NOT NULL,
    event_id          text NOT NULL,
    webhook_id        text NOT NULL,
    topic             text NOT NULL,
    status            text NOT NULL,
    attempts_count    integer NOT NULL DEFAULT 0,
    schedule_step     integer NOT NULL DEFAULT 0,
    manual            boolean NOT NULL DEFAULT false,
    next_attempt_at   timestamptz,
    lease_token       text,
    last_status_code  integer,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('pending', 'delivering');
CREATE INDEX deliveries_by_tenant ON deliveries (tenant_id, id);
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id);

CREATE TABLE attempts (
    id                text PRIMARY KEY,
    delivery_id       text NOT NULL,
    number            integer NOT NULL,
    manual            boolean NOT NULL,
    started_at        timestamptz NOT NULL,
    duration_ms       integer NOT NULL,
    request_url       text NOT NULL,
    request_headers   jsonb NOT NULL,
    response_status   integer,
    response_headers  jsonb,
    response_body     bytea,
    error_kind        text,
    error_message     text
);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, number);
