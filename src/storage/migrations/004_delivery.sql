-- Delivery: push attempts (DESIGN §5 "every attempt is recorded") and the live delivery workers
-- (their heartbeats size each worker's fair share of subscription leases).

CREATE TABLE delivery_attempts (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subscription_id  bigint NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
  push_id          uuid NOT NULL,                 -- the envelope id and `webhook-id`, the same on every retry
  attempt          integer NOT NULL,              -- 1 = first try
  event_ids        bigint[] NOT NULL,             -- change_events.id of the events in the push
  first_position   bigint NOT NULL,
  last_position    bigint NOT NULL,
  attempted_at     timestamptz NOT NULL,
  duration_ms      integer NOT NULL,
  outcome          text NOT NULL,                 -- DELIVERED, RETRY, FAILED, DISABLED
  status_code      integer,                       -- NULL when no HTTP answer came
  error_class      text,                          -- retry-policy ERROR_CLASSES; NULL when delivered
  error_message    text,
  response_excerpt text,                          -- at most 4 KiB of the answer body
  next_attempt_at  timestamptz,                   -- RETRY: when the push goes again
  worker_id        text NOT NULL
);
-- The daily error log and the attempts API read one subscription's attempts by time.
CREATE INDEX delivery_attempts_subscription_time ON delivery_attempts (subscription_id, attempted_at);
CREATE INDEX delivery_attempts_push ON delivery_attempts (push_id);
-- Retention prunes by age.
CREATE INDEX delivery_attempts_time ON delivery_attempts (attempted_at);

CREATE TABLE delivery_workers (
  worker_id     text PRIMARY KEY,
  started_at    timestamptz NOT NULL DEFAULT now(),
  heartbeat_at  timestamptz NOT NULL DEFAULT now()
);
