-- [ext] expiresAt of webhook subscriptions (docs/subscriptions.md "Temporary subscriptions"): a
-- subscription whose expires_at has passed is deleted by housekeeping, as a DELETE through the API
-- would delete it. `herald listen` creates its subscriptions with an expiry it keeps renewing, so
-- those of a listener that was killed go by themselves. NULL (every subscription so far) = never.
ALTER TABLE webhook_subscriptions ADD COLUMN expires_at timestamptz;

-- Housekeeping looks for expired subscriptions on every run; only the few temporary ones are indexed.
CREATE INDEX webhook_subscriptions_expiry ON webhook_subscriptions (expires_at)
  WHERE expires_at IS NOT NULL;
