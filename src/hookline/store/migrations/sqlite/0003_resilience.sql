-- delivery that survives bad receivers: per-webhook limits, ordering, back-off and
-- auto-disable state on the webhook; a due index per webhook for fair claims

ALTER TABLE webhooks ADD COLUMN max_in_flight INTEGER NOT NULL DEFAULT 8;
ALTER TABLE webhooks ADD COLUMN rate_limit REAL;
ALTER TABLE webhooks ADD COLUMN ordered INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN paused_until INTEGER;
ALTER TABLE webhooks ADD COLUMN failing_since INTEGER;
ALTER TABLE webhooks ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN disabled_at INTEGER;
ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT;

CREATE INDEX deliveries_due_by_webhook ON deliveries (webhook_id, next_attempt_at)
    WHERE status IN ('pending', 'delivering');

CREATE INDEX deliveries_leased ON deliveries (webhook_id) WHERE status = 'delivering';
