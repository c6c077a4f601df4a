-- delivery that survives bad receivers: per-webhook limits, ordering, back-off and
-- auto-disable state on the webhook; a due index per webhook for fair claims

ALTER TABLE webhooks
    ADD COLUMN max_in_flight integer NOT NULL DEFAULT 8,
    ADD COLUMN rate_limit double precision,
    ADD COLUMN ordered boolean NOT NULL DEFAULT false,
    ADD COLUMN paused_until timestamptz,
    ADD COLUMN failing_since timestamptz,
    ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN disabled_at timestamptz,
    ADD COLUMN disabled_reason text;

CREATE INDEX deliveries_due_by_webhook ON deliveries (webhook_id, next_attempt_at)
    WHERE status IN ('pending', 'delivering');

CREATE INDEX deliveries_leased ON deliveries (webhook_id) WHERE status = 'delivering';
