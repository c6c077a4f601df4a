-- portal links: a session opened by one is confined to one tenant's Settings → Webhooks

ALTER TABLE ui_sessions ADD COLUMN portal INTEGER NOT NULL DEFAULT 0;
