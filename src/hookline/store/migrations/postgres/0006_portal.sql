-- portal links: a session opened by one is confined to one tenant's Settings → Webhooks

ALTER TABLE ui_sessions ADD COLUMN portal boolean NOT NULL DEFAULT false;
