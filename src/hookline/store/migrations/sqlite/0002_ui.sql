-- the web UI: sign-in sessions, test inboxes, and each delivery's last attempt duration

ALTER TABLE deliveries ADD COLUMN last_duration_ms INTEGER;

CREATE TABLE ui_sessions (
    token_hash  TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    csrf_token  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE inboxes (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    token       TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX inboxes_by_tenant ON inboxes (tenant_id, id);

CREATE TABLE inbox_requests (
    id           TEXT PRIMARY KEY,
    inbox_id     TEXT NOT NULL,
    received_at  INTEGER NOT NULL,
    headers      TEXT NOT NULL,  -- JSON object
    body         BLOB NOT NULL
);
CREATE INDEX inbox_requests_by_inbox ON inbox_requests (inbox_id, id);
