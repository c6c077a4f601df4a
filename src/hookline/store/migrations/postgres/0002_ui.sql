-- the web UI: sign-in sessions, test inboxes, and each delivery's last attempt duration

ALTER TABLE deliveries ADD COLUMN last_duration_ms integer;

CREATE TABLE ui_sessions (
    token_hash  text PRIMARY KEY,
    tenant_id   text NOT NULL,
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

CREATE TABLE inboxes (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL,
    name        text NOT NULL,
    token       text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX inboxes_by_tenant ON inboxes (tenant_id, id);

CREATE TABLE inbox_requests (
    id           text PRIMARY KEY,
    inbox_id     text NOT NULL,
    received_at  timestamptz NOT NULL,
    headers      jsonb NOT NULL,
    body         bytea NOT NULL
);
CREATE INDEX inbox_requests_by_inbox ON inbox_requests (inbox_id, id);
