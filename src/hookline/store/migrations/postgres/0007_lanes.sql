-- Each lane of the dispatcher finds its due deliveries in an index of its own. With one index
-- for both, the retry lane's claim read past every first attempt of a webhook to find no
-- retry: with a million pending deliveries, half a second a claim.
DROP INDEX deliveries_due_by_webhook;
CREATE INDEX deliveries_due_first ON deliveries (webhook_id, next_attempt_at)
    WHERE status IN ('pending', 'delivering') AND attempts_count = 0;
CREATE INDEX deliveries_due_retry ON deliveries (webhook_id, next_attempt_at)
    WHERE status IN ('pending', 'delivering') AND attempts_count > 0;
