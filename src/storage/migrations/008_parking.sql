-- Per-record parking (DESIGN §5 "a failing record blocks only itself"). When one record's push keeps
-- failing while the endpoint accepts other records, the record is parked: its failing events and
-- every later event of it are listed here, in log order, and the subscription's watermark moves past
-- them (they are no longer the stream's business but the parked record's). The parked record is
-- retried on the retry schedule; when its head push succeeds (or is given up), the next events follow.
CREATE TABLE parked_records (
  subscription_id     bigint NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
  record_key          text NOT NULL,          -- source, source id and record key, \x1f-separated
  push_id             uuid NOT NULL,          -- the head push's webhook-id: the same on every retry
  head_last_position  bigint NOT NULL,        -- the head push holds the parked events up to here
  attempts            integer NOT NULL,       -- attempts of the head push so far
  next_attempt_at     timestamptz NOT NULL,
  parked_at           timestamptz NOT NULL,
  last_error          text,
  PRIMARY KEY (subscription_id, record_key)
);

CREATE TABLE parked_events (
  subscription_id  bigint NOT NULL,
  record_key       text NOT NULL,
  position         bigint NOT NULL,
  PRIMARY KEY (subscription_id, position),
  FOREIGN KEY (subscription_id, record_key)
    REFERENCES parked_records (subscription_id, record_key) ON DELETE CASCADE
);
-- A parked record's events in order (its head push and what queues behind it).
CREATE INDEX parked_events_record ON parked_events (subscription_id, record_key, position);
